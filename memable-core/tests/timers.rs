//! Durable timers: fired by the scheduler on the engine's clock, kept across
//! restarts, dropped by cancel and delete.

mod common;

use std::time::Duration;

use common::{Counter, counter, engine_on, finished, get, guarded, quiesce, tick};
use memable_core::{Context, Engine, ManualClock, MemoryStore, StepStore, WorkflowState};

const MINUTE: Duration = Duration::from_secs(60);

/// "nap": a counted step, a timer of `delay`, then a counted step.
fn register_nap(engine: &Engine, delay: Duration) -> (Counter, Counter) {
    let before = counter();
    let after = counter();
    engine
        .register("nap", {
            let (before, after) = (before.clone(), after.clone());
            move |ctx: Context| {
                let (before, after) = (before.clone(), after.clone());
                async move {
                    ctx.step("before").run(|| tick(&before, ())).await?;
                    ctx.timer("sleep", delay).await?;
                    ctx.step("after").run(|| tick(&after, ())).await?;
                    Ok("woke")
                }
            }
        })
        .unwrap();
    (before, after)
}

fn setup(start_ms: u64) -> (MemoryStore, ManualClock, Engine) {
    let store = MemoryStore::new();
    let clock = ManualClock::new(start_ms);
    let engine = engine_on(&store, &clock);
    (store, clock, engine)
}

async fn is_suspended(engine: &Engine, id: &str) -> bool {
    matches!(
        engine.state("nap", id).await.unwrap(),
        WorkflowState::Suspended { .. }
    )
}

#[tokio::test(start_paused = true)]
async fn a_timer_fires_at_its_deadline_and_not_before() {
    let (store, clock, engine) = setup(0);
    let (before, after) = register_nap(&engine, MINUTE);
    engine.start().await.unwrap();
    let run = engine.invoke("nap").id("1").await.unwrap();
    assert_eq!(
        guarded(run.wait_idle()).await.unwrap(),
        WorkflowState::Suspended {
            key: "sleep".into(),
            status: None
        }
    );
    let timers = store.due_timers(u64::MAX, 10).await.unwrap();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].deadline_ms, 60_000);
    clock.advance(Duration::from_millis(59_999));
    quiesce().await;
    assert!(is_suspended(&engine, "1").await, "timer fired early");
    assert_eq!(get(&after), 0);
    clock.advance(Duration::from_millis(1));
    let state = finished(&engine, "nap", "1").await;
    assert_eq!(state, WorkflowState::Completed { status: None });
    assert_eq!(engine.output::<String>("nap", "1").await.unwrap(), "woke");
    assert_eq!((get(&before), get(&after)), (1, 1));
    assert!(store.due_timers(u64::MAX, 10).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_timer_keeps_its_deadline_across_a_restart() {
    let (store, clock, engine) = setup(0);
    register_nap(&engine, MINUTE);
    engine.start().await.unwrap();
    guarded(engine.invoke("nap").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine.abort();
    clock.advance(Duration::from_secs(30));

    let restarted = engine_on(&store, &clock);
    let (before, after) = register_nap(&restarted, MINUTE);
    restarted.start().await.unwrap();
    quiesce().await;
    assert!(is_suspended(&restarted, "1").await);
    clock.advance(Duration::from_millis(29_999));
    quiesce().await;
    assert!(is_suspended(&restarted, "1").await, "timer fired early");
    clock.advance(Duration::from_millis(1));
    assert!(finished(&restarted, "nap", "1").await.is_terminal());
    assert_eq!((get(&before), get(&after)), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_timer_reached_again_by_a_resume_keeps_its_first_deadline() {
    let (_store, clock, engine) = setup(0);
    register_nap(&engine, MINUTE);
    engine.start().await.unwrap();
    guarded(engine.invoke("nap").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(40));
    let run = engine.resume("nap", "1").await.unwrap();
    assert!(matches!(
        guarded(run.wait_idle()).await.unwrap(),
        WorkflowState::Suspended { .. }
    ));
    clock.advance(Duration::from_secs(20)); // t = 60 s: the original deadline
    assert!(finished(&engine, "nap", "1").await.is_terminal());
}

#[tokio::test(start_paused = true)]
async fn a_timer_that_fell_due_while_the_engine_was_down_fires_at_start() {
    let (store, clock, engine) = setup(0);
    register_nap(&engine, MINUTE);
    engine.start().await.unwrap();
    guarded(engine.invoke("nap").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine.abort();
    clock.advance(Duration::from_secs(3600));

    let restarted = engine_on(&store, &clock);
    let (before, after) = register_nap(&restarted, MINUTE);
    restarted.start().await.unwrap();
    assert_eq!(
        finished(&restarted, "nap", "1").await,
        WorkflowState::Completed { status: None }
    );
    assert_eq!((get(&before), get(&after)), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn cancel_drops_a_pending_timer() {
    let (store, clock, engine) = setup(0);
    let (_before, after) = register_nap(&engine, MINUTE);
    engine.start().await.unwrap();
    guarded(engine.invoke("nap").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine.cancel("nap", "1").await.unwrap();
    assert!(store.due_timers(u64::MAX, 10).await.unwrap().is_empty());
    clock.advance(MINUTE * 2);
    quiesce().await;
    assert_eq!(get(&after), 0);
    assert_eq!(
        engine.state("nap", "1").await.unwrap(),
        WorkflowState::Cancelled
    );
}

#[tokio::test(start_paused = true)]
async fn delete_drops_a_pending_timer() {
    let (store, clock, engine) = setup(0);
    let (_before, after) = register_nap(&engine, MINUTE);
    engine.start().await.unwrap();
    guarded(engine.invoke("nap").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    assert!(engine.delete("nap", "1").await.unwrap());
    assert!(store.due_timers(u64::MAX, 10).await.unwrap().is_empty());
    clock.advance(MINUTE * 2);
    quiesce().await;
    assert_eq!(get(&after), 0);
    assert!(engine.get_metadata("nap", "1").await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn an_earlier_timer_wakes_a_scheduler_sleeping_until_a_later_one() {
    let (_store, clock, engine) = setup(0);
    engine
        .register("nap", |ctx: Context| async move {
            let minutes: u64 = ctx.input()?;
            ctx.timer("sleep", MINUTE * u32::try_from(minutes).unwrap())
                .await?;
            Ok(minutes)
        })
        .unwrap();
    engine.start().await.unwrap();
    let late = engine.invoke("nap").id("late").input(60u64).await.unwrap();
    guarded(late.wait_idle()).await.unwrap();
    quiesce().await; // the scheduler now sleeps until t = 60 min
    let early = engine.invoke("nap").id("early").input(1u64).await.unwrap();
    guarded(early.wait_idle()).await.unwrap();
    clock.advance(MINUTE);
    assert!(finished(&engine, "nap", "early").await.is_terminal());
    assert!(is_suspended(&engine, "late").await);
    clock.advance(MINUTE * 59);
    assert!(finished(&engine, "nap", "late").await.is_terminal());
    assert_eq!(engine.output::<u64>("nap", "late").await.unwrap(), 60);
}

#[tokio::test(start_paused = true)]
async fn many_timers_due_at_once_all_fire() {
    let (_store, clock, engine) = setup(0);
    register_nap(&engine, MINUTE);
    engine.start().await.unwrap();
    for i in 0..50 {
        let run = engine.invoke("nap").id(format!("{i}")).await.unwrap();
        guarded(run.wait_idle()).await.unwrap();
    }
    clock.advance(MINUTE);
    for i in 0..50 {
        assert!(
            finished(&engine, "nap", &format!("{i}"))
                .await
                .is_terminal()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_zero_timer_does_not_suspend() {
    let (store, _clock, engine) = setup(0);
    let (_before, after) = register_nap(&engine, Duration::ZERO);
    engine.start().await.unwrap();
    let run = engine.invoke("nap").id("1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<String>()).await.unwrap(), "woke");
    assert_eq!(get(&after), 1);
    assert!(store.due_timers(u64::MAX, 10).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn stop_stops_timers_from_firing() {
    let (_store, clock, engine) = setup(0);
    let (_before, after) = register_nap(&engine, MINUTE);
    engine.start().await.unwrap();
    guarded(engine.invoke("nap").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine.stop();
    clock.advance(MINUTE * 2);
    quiesce().await;
    assert_eq!(get(&after), 0);
    assert!(is_suspended(&engine, "1").await);
}
