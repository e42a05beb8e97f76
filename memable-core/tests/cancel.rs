//! Cancellation: running instances stop at their next step boundary,
//! suspended ones end at once, finished ones cannot be cancelled.

mod common;

use std::time::Duration;

use common::{Gate, counter, fail_retryable, finished, fresh, get, guarded, quiesce, tick, until};
use memable_core::{
    Context, EngineError, InstanceFilter, MetadataStatus, RetryPolicy, StatusKind, StepError,
    SuspendPoint, WorkflowState,
};

static GO: SuspendPoint<u8> = SuspendPoint::new("go");

#[tokio::test(start_paused = true)]
async fn a_running_instance_stops_at_its_next_step_boundary() {
    let (_store, _clock, engine) = fresh();
    let gate = Gate::new();
    let first = counter();
    let second = counter();
    engine
        .register("wf", {
            let (gate, first, second) = (gate.clone(), first.clone(), second.clone());
            move |ctx: Context| {
                let (gate, first, second) = (gate.clone(), first.clone(), second.clone());
                async move {
                    ctx.step("first")
                        .run(|| {
                            let (gate, first) = (gate.clone(), first.clone());
                            async move {
                                tick(&first, ()).await?;
                                gate.pass().await;
                                Ok::<_, StepError>(())
                            }
                        })
                        .await?;
                    ctx.step("second").run(|| tick(&second, ())).await?;
                    Ok(())
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    until("first step started", || get(&first) == 1).await;
    engine.cancel("wf", "1").await.unwrap();
    gate.open(1);
    assert_eq!(
        guarded(run.wait_idle()).await.unwrap(),
        WorkflowState::Cancelled
    );
    guarded(engine.wait_all()).await;
    assert_eq!(get(&second), 0, "a step after the cancel ran");
    let meta = engine.get_metadata("wf", "1").await.unwrap().unwrap();
    assert_eq!(meta.status, MetadataStatus::Cancelled);
    assert!(meta.completed_at_ms.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_suspended_instance_is_cancelled_at_once() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move { ctx.suspend(&GO).await })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    guarded(run.wait_idle()).await.unwrap();
    engine.cancel("wf", "1").await.unwrap();
    assert_eq!(
        engine.state("wf", "1").await.unwrap(),
        WorkflowState::Cancelled
    );
    let cancelled = engine
        .list_instances(&InstanceFilter::new().status(StatusKind::Cancelled))
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    let mut stream = engine.subscribe("wf", "1").await.unwrap();
    assert_eq!(guarded(stream.next()).await, Some(WorkflowState::Cancelled));
    assert_eq!(guarded(stream.next()).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_handle_following_a_suspended_instance_sees_the_cancel() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move { ctx.suspend(&GO).await })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    guarded(run.wait_idle()).await.unwrap();
    let mut states = engine.subscribe("wf", "1").await.unwrap();
    assert!(matches!(
        guarded(states.next()).await,
        Some(WorkflowState::Suspended { .. })
    ));
    engine.cancel("wf", "1").await.unwrap();
    assert_eq!(guarded(states.next()).await, Some(WorkflowState::Cancelled));
    assert_eq!(run.status(), WorkflowState::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_completed_or_failed_instance_is_invalid() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            let fail: bool = ctx.input()?;
            if fail {
                Err(EngineError::step_failed("x", "boom", false))
            } else {
                Ok(())
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    for (id, fail) in [("ok", false), ("bad", true)] {
        let run = engine.invoke("wf").id(id).input(fail).await.unwrap();
        guarded(run.wait_idle()).await.unwrap();
        let err = engine.cancel("wf", id).await.unwrap_err();
        assert!(
            matches!(
                &err,
                EngineError::InvalidState {
                    operation: "cancel",
                    ..
                }
            ),
            "{id}: {err:?}"
        );
        assert!(engine.state("wf", id).await.unwrap().is_terminal());
        assert_ne!(
            engine.state("wf", id).await.unwrap(),
            WorkflowState::Cancelled
        );
    }
}

#[tokio::test(start_paused = true)]
async fn cancelling_twice_is_fine_and_unknown_is_not_found() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move { ctx.suspend(&GO).await })
        .unwrap();
    engine.start().await.unwrap();
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine.cancel("wf", "1").await.unwrap();
    engine.cancel("wf", "1").await.unwrap();
    let err = engine.cancel("wf", "ghost").await.unwrap_err();
    assert!(
        matches!(err, EngineError::InstanceNotFound { .. }),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_instance_cannot_be_resumed_or_signalled() {
    let (_store, _clock, engine) = fresh();
    let runs = counter();
    engine
        .register("wf", {
            let runs = runs.clone();
            move |ctx: Context| {
                let runs = runs.clone();
                async move {
                    ctx.step("a").run(|| tick(&runs, ())).await?;
                    ctx.suspend(&GO).await
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine.cancel("wf", "1").await.unwrap();
    let err = engine.resume("wf", "1").await.unwrap_err();
    assert!(matches!(err, EngineError::Cancelled { .. }), "{err:?}");
    let err = engine.signal("wf", "1", &GO, 1).await.unwrap_err();
    assert!(matches!(err, EngineError::SignalRejected { .. }), "{err:?}");
    quiesce().await;
    assert_eq!(get(&runs), 1);
    assert_eq!(
        engine.state("wf", "1").await.unwrap(),
        WorkflowState::Cancelled
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_wakes_a_run_waiting_in_a_retry_backoff() {
    let (_store, _clock, engine) = fresh();
    let calls = counter();
    engine
        .register("wf", {
            let calls = calls.clone();
            move |ctx: Context| {
                let calls = calls.clone();
                async move {
                    ctx.step("call")
                        .retry(RetryPolicy::fixed(5, Duration::from_secs(3600)))
                        .run(|| fail_retryable::<()>(&calls))
                        .await
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    until("first attempt", || get(&calls) == 1).await;
    quiesce().await;
    engine.cancel("wf", "1").await.unwrap();
    assert_eq!(
        guarded(run.wait_idle()).await.unwrap(),
        WorkflowState::Cancelled
    );
    guarded(engine.wait_all()).await; // the run ended without the clock moving
    assert_eq!(get(&calls), 1);
    assert_eq!(finished(&engine, "wf", "1").await, WorkflowState::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_run_writes_no_output() {
    let (store, _clock, engine) = fresh();
    let gate = Gate::new();
    let entered = counter();
    engine
        .register("wf", {
            let (gate, entered) = (gate.clone(), entered.clone());
            move |ctx: Context| {
                let (gate, entered) = (gate.clone(), entered.clone());
                async move {
                    ctx.step("a")
                        .run(|| {
                            let (gate, entered) = (gate.clone(), entered.clone());
                            async move {
                                tick(&entered, ()).await?;
                                gate.pass().await;
                                Ok::<_, StepError>(())
                            }
                        })
                        .await?;
                    Ok(5u8) // no step boundary after "a"
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    until("step started", || get(&entered) == 1).await;
    engine.cancel("wf", "1").await.unwrap();
    gate.open(1);
    assert_eq!(finished(&engine, "wf", "1").await, WorkflowState::Cancelled);
    assert!(
        common::step_record(&store, "wf", "1", "_output")
            .await
            .is_none()
    );
    let err = engine.output::<u8>("wf", "1").await.unwrap_err();
    assert!(matches!(err, EngineError::Cancelled { .. }), "{err:?}");
}
