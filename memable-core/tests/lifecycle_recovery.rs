//! Engine lifecycle (`start`, `stop`, `wait_all`) and crash recovery on start.

mod common;

use common::{
    Counter, Gate, counter, engine_on, finished, fresh, get, guarded, quiesce, tick, until,
};
use memable_core::{
    Context, Engine, EngineBuilder, EngineError, InstanceFilter, StatusKind, StepError,
    SuspendPoint, WorkflowState,
};

static GO: SuspendPoint<u8> = SuspendPoint::new("go");

/// "wf": step "a" (counted), step "b" that waits on `gate` (counted on entry).
fn register_two(engine: &Engine, a: &Counter, b: &Counter, gate: &Gate) {
    let (a, b, gate) = (a.clone(), b.clone(), gate.clone());
    engine
        .register("wf", move |ctx: Context| {
            let (a, b, gate) = (a.clone(), b.clone(), gate.clone());
            async move {
                let x = ctx.step("a").run(|| tick(&a, 1u32)).await?;
                let y = ctx
                    .step("b")
                    .run(|| {
                        let (b, gate) = (b.clone(), gate.clone());
                        async move {
                            tick(&b, ()).await?;
                            gate.pass().await;
                            Ok::<_, StepError>(10u32)
                        }
                    })
                    .await?;
                Ok(x + y)
            }
        })
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn nothing_works_before_start() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |_ctx: Context| async { Ok(()) })
        .unwrap();
    assert!(matches!(
        engine.invoke("wf").await,
        Err(EngineError::NotStarted)
    ));
    assert!(matches!(
        engine.resume("wf", "1").await,
        Err(EngineError::NotStarted)
    ));
    assert!(matches!(
        engine.signal("wf", "1", &GO, 1).await,
        Err(EngineError::NotStarted)
    ));
}

#[tokio::test(start_paused = true)]
async fn stop_refuses_new_work_and_start_again() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move { ctx.suspend(&GO).await })
        .unwrap();
    engine.start().await.unwrap();
    engine.start().await.unwrap(); // a second start is a no-op
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine.stop();
    assert!(matches!(
        engine.invoke("wf").await,
        Err(EngineError::Stopped)
    ));
    assert!(matches!(
        engine.resume("wf", "1").await,
        Err(EngineError::Stopped)
    ));
    assert!(matches!(
        engine.signal("wf", "1", &GO, 1).await,
        Err(EngineError::Stopped)
    ));
    assert!(matches!(engine.start().await, Err(EngineError::Stopped)));
    // Reads still work.
    assert!(matches!(
        engine.state("wf", "1").await.unwrap(),
        WorkflowState::Suspended { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn wait_all_waits_for_runs_in_progress_and_stop_lets_them_finish() {
    let (_store, _clock, engine) = fresh();
    let (a, b, gate) = (counter(), counter(), Gate::new());
    register_two(&engine, &a, &b, &gate);
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    until("step b entered", || get(&b) == 1).await;
    engine.stop();
    let waiter = tokio::spawn({
        let engine = engine.clone();
        async move { engine.wait_all().await }
    });
    quiesce().await;
    assert!(
        !waiter.is_finished(),
        "wait_all returned with a run in progress"
    );
    gate.open(1);
    guarded(waiter).await.unwrap();
    assert_eq!(engine.output::<u32>("wf", "1").await.unwrap(), 11);
}

#[tokio::test(start_paused = true)]
async fn wait_all_returns_at_once_when_idle_or_only_suspended() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move { ctx.suspend(&GO).await })
        .unwrap();
    engine.start().await.unwrap();
    guarded(engine.wait_all()).await;
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    guarded(engine.wait_all()).await;
}

/// Starts ten instances that all block in step "b", then crashes.
async fn crash_with_ten_running() -> (
    memable_core::MemoryStore,
    memable_core::ManualClock,
    Counter,
) {
    let (store, clock, engine) = fresh();
    let (a, b, gate) = (counter(), counter(), Gate::new());
    register_two(&engine, &a, &b, &gate);
    engine.start().await.unwrap();
    for i in 0..10 {
        engine.invoke("wf").id(format!("{i}")).await.unwrap();
    }
    until("all in step b", || get(&b) == 10).await;
    engine.abort();
    quiesce().await;
    (store, clock, a)
}

#[tokio::test(start_paused = true)]
async fn start_recovers_instances_left_running() {
    let (store, clock, a_before) = crash_with_ten_running().await;
    assert_eq!(get(&a_before), 10);
    let restarted = engine_on(&store, &clock);
    let (a, b, gate) = (counter(), counter(), Gate::new());
    gate.open(100);
    register_two(&restarted, &a, &b, &gate);
    restarted.start().await.unwrap();
    for i in 0..10 {
        assert!(
            finished(&restarted, "wf", &format!("{i}"))
                .await
                .is_terminal()
        );
        assert_eq!(
            restarted
                .output::<u32>("wf", &format!("{i}"))
                .await
                .unwrap(),
            11
        );
    }
    assert_eq!(get(&a), 0, "committed steps ran again during recovery");
    assert_eq!(get(&b), 10);
    let running = restarted
        .list_instances(&InstanceFilter::new().status(StatusKind::Running))
        .await
        .unwrap();
    assert!(running.is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_resume_on_start_running_instances_wait_for_resume() {
    let (store, clock, _) = crash_with_ten_running().await;
    let restarted = EngineBuilder::default()
        .store(store.clone())
        .clock(clock.clone())
        .resume_on_start(false)
        .build();
    let (a, b, gate) = (counter(), counter(), Gate::new());
    gate.open(100);
    register_two(&restarted, &a, &b, &gate);
    restarted.start().await.unwrap();
    quiesce().await;
    assert_eq!(
        get(&b),
        0,
        "an instance was recovered despite resume_on_start(false)"
    );
    let running = restarted
        .list_instances(&InstanceFilter::new().status(StatusKind::Running))
        .await
        .unwrap();
    assert_eq!(running.len(), 10);
    let run = restarted.resume("wf", "3").await.unwrap();
    assert_eq!(guarded(run.wait_output::<u32>()).await.unwrap(), 11);
    assert_eq!((get(&a), get(&b)), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn suspended_instances_keep_waiting_across_a_restart() {
    let (store, clock, engine) = fresh();
    let before = counter();
    let register = |engine: &Engine, before: &Counter| {
        let before = before.clone();
        engine
            .register("wf", move |ctx: Context| {
                let before = before.clone();
                async move {
                    ctx.step("before").run(|| tick(&before, ())).await?;
                    ctx.suspend(&GO).await
                }
            })
            .unwrap();
    };
    register(&engine, &before);
    engine.start().await.unwrap();
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine.abort();

    let restarted = engine_on(&store, &clock);
    let after_restart = counter();
    register(&restarted, &after_restart);
    restarted.start().await.unwrap();
    quiesce().await;
    assert!(matches!(
        restarted.state("wf", "1").await.unwrap(),
        WorkflowState::Suspended { .. }
    ));
    let run = restarted.signal("wf", "1", &GO, 9).await.unwrap();
    assert_eq!(guarded(run.wait_output::<u8>()).await.unwrap(), 9);
    assert_eq!(get(&after_restart), 0);
}

#[tokio::test(start_paused = true)]
async fn recovery_skips_unregistered_workflows_and_recovers_the_rest() {
    let (store, clock, engine) = fresh();
    let (a, b, gate) = (counter(), counter(), Gate::new());
    register_two(&engine, &a, &b, &gate);
    engine
        .register("other", {
            let gate = gate.clone();
            move |ctx: Context| {
                let gate = gate.clone();
                async move {
                    ctx.step("x")
                        .run(|| {
                            let gate = gate.clone();
                            async move {
                                gate.pass().await;
                                Ok::<_, StepError>(())
                            }
                        })
                        .await
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    engine.invoke("other").id("1").await.unwrap();
    until("wf in step b", || get(&b) == 1).await;
    quiesce().await;
    engine.abort();

    let restarted = engine_on(&store, &clock);
    let (a2, b2, gate2) = (counter(), counter(), Gate::new());
    gate2.open(1);
    register_two(&restarted, &a2, &b2, &gate2); // "other" is not registered
    restarted.start().await.unwrap();
    assert!(finished(&restarted, "wf", "1").await.is_terminal());
    // Left Running in the store, but no run of it can be in progress here
    // (issue 12): not reported as a live `Running`.
    let state = restarted.state("other", "1").await;
    assert!(
        matches!(state, Err(EngineError::StaleRunning { .. })),
        "{state:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_workflow_fails_and_the_engine_keeps_working() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("boom", |ctx: Context| async move {
            let explode: bool = ctx.input()?;
            assert!(!explode, "kaboom in the workflow");
            Ok(1u8)
        })
        .unwrap();
    engine
        .register("step-boom", |ctx: Context| async move {
            ctx.step("bad")
                .run(|| async {
                    let v: Vec<u8> = Vec::new();
                    #[allow(clippy::indexing_slicing)]
                    Ok::<_, StepError>(v[3])
                })
                .await
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("boom").id("1").input(true).await.unwrap();
    match guarded(run.wait_idle()).await.unwrap() {
        WorkflowState::Failed { error } => {
            assert!(
                error.contains("panicked") && error.contains("kaboom"),
                "{error}"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let meta = engine.get_metadata("boom", "1").await.unwrap().unwrap();
    assert_eq!(meta.status.kind(), StatusKind::Failed);
    let run = engine.invoke("step-boom").id("1").await.unwrap();
    assert!(matches!(
        guarded(run.wait_idle()).await.unwrap(),
        WorkflowState::Failed { .. }
    ));
    let run = engine.invoke("boom").id("2").input(false).await.unwrap();
    assert_eq!(guarded(run.wait_output::<u8>()).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn delete_removes_a_finished_instance_and_frees_its_id() {
    let (store, _clock, engine) = fresh();
    let runs = counter();
    engine
        .register("wf", {
            let runs = runs.clone();
            move |ctx: Context| {
                let runs = runs.clone();
                async move { ctx.step("a").run(|| tick(&runs, 1u8)).await }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    assert!(engine.delete("wf", "1").await.unwrap());
    assert!(engine.get_metadata("wf", "1").await.unwrap().is_none());
    assert!(common::step_record(&store, "wf", "1", "a").await.is_none());
    assert!(
        engine
            .list_instances(&InstanceFilter::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!engine.delete("wf", "1").await.unwrap());
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert!(run.is_new());
    assert_eq!(guarded(run.wait_output::<u8>()).await.unwrap(), 1);
    assert_eq!(get(&runs), 2);
}

#[tokio::test(start_paused = true)]
async fn delete_is_refused_while_a_run_is_in_progress() {
    let (_store, _clock, engine) = fresh();
    let (a, b, gate) = (counter(), counter(), Gate::new());
    register_two(&engine, &a, &b, &gate);
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    until("in step b", || get(&b) == 1).await;
    let err = engine.delete("wf", "1").await.unwrap_err();
    assert!(
        matches!(
            &err,
            EngineError::InvalidState {
                operation: "delete",
                ..
            }
        ),
        "{err:?}"
    );
    gate.open(1);
    assert_eq!(guarded(run.wait_output::<u32>()).await.unwrap(), 11);
    assert!(engine.delete("wf", "1").await.unwrap());
}
