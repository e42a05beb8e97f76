//! Engine-level scenarios run on top of the store under test: the engine's
//! promises must hold whatever store is underneath.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memable_core::{
    Context, Engine, EngineError, InstanceFilter, ManualClock, MetadataStatus, RetryPolicy,
    StatusKind, StepError, StepState, SuspendPoint, WorkflowState,
};
use serde::{Deserialize, Serialize};

use crate::{StoreFactory, StoreFixture};

static APPROVAL: SuspendPoint<u32> = SuspendPoint::new("approval");

async fn fixture(factory: &dyn StoreFactory) -> Box<dyn StoreFixture> {
    factory
        .create()
        .await
        .unwrap_or_else(|e| panic!("{}: create failed: {e}", factory.name()))
}

fn engine_on(fixture: &dyn StoreFixture, clock: &ManualClock) -> Engine {
    Engine::builder()
        .store(fixture.store())
        .clock(clock.clone())
        .default_retry(RetryPolicy::fixed(3, Duration::ZERO))
        .build()
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Registers `counted`: input n, runs steps a and b (each counting its
/// closure runs), outputs n + 1 + 2.
fn register_counted(engine: &Engine, runs: &Arc<AtomicUsize>) {
    let runs = Arc::clone(runs);
    engine
        .register("counted", move |ctx: Context| {
            let runs = Arc::clone(&runs);
            async move {
                let n: u64 = ctx.input()?;
                let a = ctx
                    .step("a")
                    .run(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(1u64) }
                    })
                    .await?;
                let b = ctx
                    .step("b")
                    .run(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(2u64) }
                    })
                    .await?;
                Ok(n + a + b)
            }
        })
        .expect("register");
}

/// Invoke with input → steps commit → completed with typed output, visible
/// in metadata and listings.
pub async fn engine_full_lifecycle(factory: &dyn StoreFactory) {
    let fx = fixture(factory).await;
    let clock = ManualClock::new(1_000);
    let engine = engine_on(fx.as_ref(), &clock);
    let runs = counter();
    register_counted(&engine, &runs);
    engine.start().await.expect("start");
    let out: u64 = engine
        .invoke("counted")
        .id("one")
        .input(10u64)
        .await
        .expect("invoke")
        .wait_output()
        .await
        .expect("output");
    assert_eq!(out, 13);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let meta = engine
        .get_metadata("counted", "one")
        .await
        .unwrap()
        .expect("metadata");
    assert!(
        matches!(meta.status, MetadataStatus::Completed(_)),
        "{meta:?}"
    );
    assert_eq!(meta.created_at_ms, 1_000);
    let done = engine
        .list_instances(
            &InstanceFilter::new()
                .workflow("counted")
                .status(StatusKind::Completed),
        )
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(engine.output::<u64>("counted", "one").await.unwrap(), 13);
}

/// Resuming a completed instance replays every step from the store.
pub async fn engine_memoisation_across_resume(factory: &dyn StoreFactory) {
    let fx = fixture(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_on(fx.as_ref(), &clock);
    let runs = counter();
    register_counted(&engine, &runs);
    engine.start().await.unwrap();
    engine
        .invoke("counted")
        .id("m")
        .input(1u64)
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    for _ in 0..3 {
        let out: u64 = engine
            .resume("counted", "m")
            .await
            .unwrap()
            .wait_output()
            .await
            .unwrap();
        assert_eq!(out, 4);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2, "memoised steps ran again");
}

/// A step failing retryably exhausts its budget, is dead-lettered (failed
/// record in the store), the instance fails; resume retries with a fresh
/// budget and completes.
pub async fn engine_retry_and_dead_letter(factory: &dyn StoreFactory) {
    let fx = fixture(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_on(fx.as_ref(), &clock);
    let attempts = counter();
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (seen, up) = (Arc::clone(&attempts), Arc::clone(&healthy));
    engine
        .register("flaky", move |ctx: Context| {
            let (seen, up) = (Arc::clone(&seen), Arc::clone(&up));
            async move {
                ctx.step("call")
                    .run(|| {
                        seen.fetch_add(1, Ordering::SeqCst);
                        let ok = up.load(Ordering::SeqCst);
                        async move {
                            if ok {
                                Ok(7u8)
                            } else {
                                Err(StepError::retryable("down"))
                            }
                        }
                    })
                    .await
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let state = engine
        .invoke("flaky")
        .id("f")
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    assert!(matches!(state, WorkflowState::Failed { .. }), "{state:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let key = memable_core::InstanceKey::new("flaky", "f").unwrap();
    let record = fx
        .store()
        .get_step(&key, "call")
        .await
        .unwrap()
        .expect("dead letter");
    assert_eq!((record.state, record.attempts), (StepState::Failed, 3));
    healthy.store(true, Ordering::SeqCst);
    let out: u8 = engine
        .resume("flaky", "f")
        .await
        .unwrap()
        .wait_output()
        .await
        .unwrap();
    assert_eq!(out, 7);
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}

/// Suspend → signal → complete, with the signal's payload as the value.
pub async fn engine_suspend_signal_complete(factory: &dyn StoreFactory) {
    let fx = fixture(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_on(fx.as_ref(), &clock);
    engine
        .register("approve", |ctx: Context| async move {
            let level = ctx.suspend(&APPROVAL).status("waiting").await?;
            Ok(level * 2)
        })
        .unwrap();
    engine.start().await.unwrap();
    let state = engine
        .invoke("approve")
        .id("a")
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    assert_eq!(
        state,
        WorkflowState::Suspended {
            key: "approval".into(),
            status: Some("waiting".into())
        }
    );
    let out: u32 = engine
        .signal("approve", "a", &APPROVAL, 21)
        .await
        .unwrap()
        .wait_output()
        .await
        .unwrap();
    assert_eq!(out, 42);
    assert!(matches!(
        engine.signal("approve", "a", &APPROVAL, 1).await,
        Err(EngineError::SignalSuperseded { .. })
    ));
}

/// Sixteen concurrent signals to one suspend point: exactly one wins.
pub async fn engine_signal_race_has_one_winner(factory: &dyn StoreFactory) {
    let fx = fixture(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_on(fx.as_ref(), &clock);
    engine
        .register("approve", |ctx: Context| async move {
            ctx.suspend(&APPROVAL).await
        })
        .unwrap();
    engine.start().await.unwrap();
    engine
        .invoke("approve")
        .id("race")
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16u32 {
        let engine = engine.clone();
        tasks.spawn(async move {
            engine
                .signal("approve", "race", &APPROVAL, i)
                .await
                .map(|_| i)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(i) => winners.push(i),
            Err(EngineError::SignalSuperseded { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    engine.wait_all().await;
    assert_eq!(
        engine.output::<u32>("approve", "race").await.unwrap(),
        winners[0]
    );
}

/// A durable timer fires only once the (manual) clock passes its deadline.
pub async fn engine_timer_fires_at_deadline(factory: &dyn StoreFactory) {
    let fx = fixture(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_on(fx.as_ref(), &clock);
    engine
        .register("nap", |ctx: Context| async move {
            ctx.timer("nap", Duration::from_secs(60)).await?;
            Ok("woke")
        })
        .unwrap();
    engine.start().await.unwrap();
    let state = engine
        .invoke("nap")
        .id("n")
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    assert!(matches!(state, WorkflowState::Suspended { .. }));
    let mut states = engine.subscribe("nap", "n").await.unwrap();
    clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(
        engine.state("nap", "n").await.unwrap(),
        WorkflowState::Suspended { .. }
    ));
    clock.advance(Duration::from_secs(1));
    let mut last = None;
    while let Some(state) = states.next().await {
        last = Some(state);
    }
    assert_eq!(last, Some(WorkflowState::Completed { status: None }));
    assert_eq!(engine.output::<String>("nap", "n").await.unwrap(), "woke");
    assert_eq!(fx.store().next_timer_deadline().await.unwrap(), None);
}

/// Cancelling a suspended instance drops its timer and rejects signals.
pub async fn engine_cancel_drops_timer_and_rejects_signals(factory: &dyn StoreFactory) {
    let fx = fixture(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_on(fx.as_ref(), &clock);
    engine
        .register("both", |ctx: Context| async move {
            let (timer, approval) = tokio::join!(
                ctx.timer("t", Duration::from_secs(5)),
                ctx.suspend(&APPROVAL)
            );
            timer?;
            approval
        })
        .unwrap();
    engine.start().await.unwrap();
    engine
        .invoke("both")
        .id("c")
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    engine.wait_all().await;
    assert!(fx.store().next_timer_deadline().await.unwrap().is_some());
    engine.cancel("both", "c").await.unwrap();
    assert_eq!(fx.store().next_timer_deadline().await.unwrap(), None);
    assert_eq!(
        engine.state("both", "c").await.unwrap(),
        WorkflowState::Cancelled
    );
    assert!(matches!(
        engine.signal("both", "c", &APPROVAL, 1).await,
        Err(EngineError::SignalRejected { .. })
    ));
    clock.advance(Duration::from_secs(10));
    engine.wait_all().await;
    assert_eq!(
        engine.state("both", "c").await.unwrap(),
        WorkflowState::Cancelled
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    lines: Vec<(String, u32)>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Receipt {
    id: u64,
    total: u64,
}

/// Structured input survives a signal-triggered rerun; structured output is
/// read back with its type, and a wrong type is a `TypeMismatch`.
pub async fn engine_typed_input_and_output(factory: &dyn StoreFactory) {
    let fx = fixture(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_on(fx.as_ref(), &clock);
    engine
        .register("checkout", |ctx: Context| async move {
            let extra = ctx.suspend(&APPROVAL).await?;
            let order: Order = ctx.input()?;
            let total =
                order.lines.iter().map(|(_, c)| u64::from(*c)).sum::<u64>() + u64::from(extra);
            Ok(Receipt {
                id: order.id,
                total,
            })
        })
        .unwrap();
    engine.start().await.unwrap();
    let order = Order {
        id: 9,
        lines: vec![("tea".into(), 3), ("cake".into(), 4)],
    };
    engine
        .invoke("checkout")
        .id("o")
        .input(order)
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    let receipt: Receipt = engine
        .signal("checkout", "o", &APPROVAL, 100)
        .await
        .unwrap()
        .wait_output()
        .await
        .unwrap();
    assert_eq!(receipt, Receipt { id: 9, total: 107 });
    assert!(matches!(
        engine.output::<String>("checkout", "o").await,
        Err(EngineError::TypeMismatch { .. })
    ));
}

/// The first life of [`engine_recovery_after_reopen`]: starts a running,
/// a suspended and a sleeping instance, commits one step of the running one,
/// then crashes (aborts) the engine.
async fn crash_mid_workflow(fx: &dyn StoreFixture, clock: &ManualClock) {
    let first_runs = counter();
    let engine = engine_on(fx, clock);
    let runs = Arc::clone(&first_runs);
    engine
        .register("work", move |ctx: Context| {
            let runs = Arc::clone(&runs);
            async move {
                ctx.step("done-before-crash")
                    .run(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(5u32) }
                    })
                    .await?;
                // Never finishes in this engine: the crash lands here.
                ctx.step("in-flight")
                    .run(|| async { std::future::pending::<Result<u32, StepError>>().await })
                    .await
            }
        })
        .unwrap();
    engine
        .register("approve", |ctx: Context| async move {
            ctx.suspend(&APPROVAL).await
        })
        .unwrap();
    engine
        .register("nap", |ctx: Context| async move {
            ctx.timer("t", Duration::from_secs(30)).await
        })
        .unwrap();
    engine.start().await.unwrap();
    drop(engine.invoke("work").id("w").await.unwrap());
    engine
        .invoke("approve")
        .id("s")
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    engine
        .invoke("nap")
        .id("t")
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    while first_runs.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Let the first step's commit land before the crash.
    let key = memable_core::InstanceKey::new("work", "w").unwrap();
    while fx
        .store()
        .get_step(&key, "done-before-crash")
        .await
        .unwrap()
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    engine.abort();
    // Waits for the aborted runs and the timer scheduler, so dropping the
    // engine releases the store.
    engine.shutdown().await;
}

/// Recovery: the engine dies mid-workflow (runs aborted, store closed and
/// reopened); a new engine re-runs the `Running` instance without re-running
/// its committed step, leaves the `Suspended` one waiting, and fires a timer
/// that fell due while it was down.
pub async fn engine_recovery_after_reopen(factory: &dyn StoreFactory) {
    if !factory.capabilities().reopen {
        println!(
            "SKIPPED engine_recovery_after_reopen: {} cannot reopen",
            factory.name()
        );
        return;
    }
    let mut fx = fixture(factory).await;
    let clock = ManualClock::new(0);
    crash_mid_workflow(fx.as_ref(), &clock).await;
    fx.reopen().await.expect("reopen");
    clock.advance(Duration::from_secs(60));
    let second_runs = counter();
    let engine = engine_on(fx.as_ref(), &clock);
    let runs = Arc::clone(&second_runs);
    engine
        .register("work", move |ctx: Context| {
            let runs = Arc::clone(&runs);
            async move {
                let a = ctx
                    .step("done-before-crash")
                    .run(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(0u32) }
                    })
                    .await?;
                let b = ctx
                    .step("in-flight")
                    .run(|| async { Ok::<_, StepError>(1u32) })
                    .await?;
                Ok(a + b)
            }
        })
        .unwrap();
    engine
        .register("approve", |ctx: Context| async move {
            ctx.suspend(&APPROVAL).await
        })
        .unwrap();
    engine
        .register("nap", |ctx: Context| async move {
            ctx.timer("t", Duration::from_secs(30)).await?;
            Ok(3u32)
        })
        .unwrap();
    engine.start().await.unwrap();
    let mut states = engine.subscribe("nap", "t").await.unwrap();
    while states.next().await.is_some() {}
    // On a shared store the worker loop takes `work/w` over on its own
    // schedule, maybe after `nap` ended: wait for `work/w` itself.
    let mut states = engine.subscribe("work", "w").await.unwrap();
    while states.next().await.is_some() {}
    engine.wait_all().await;
    assert_eq!(engine.output::<u32>("work", "w").await.unwrap(), 6);
    assert_eq!(
        second_runs.load(Ordering::SeqCst),
        0,
        "a committed step ran again"
    );
    assert_eq!(engine.output::<u32>("nap", "t").await.unwrap(), 3);
    assert!(matches!(
        engine.state("approve", "s").await.unwrap(),
        WorkflowState::Suspended { .. }
    ));
    assert_eq!(
        engine
            .signal("approve", "s", &APPROVAL, 4)
            .await
            .unwrap()
            .wait_output::<u32>()
            .await
            .unwrap(),
        4
    );
}
