//! Suspend points and signals: an atomic claim with typed payloads.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{counter, fresh, get, guarded, settled, step_record, tick};
use memable_core::{
    Context, EngineError, MetadataStatus, StepKind, StepState, SuspendPoint, WorkflowState,
};

static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval");
static APPROVAL_AS_NUMBER: SuspendPoint<u32> = SuspendPoint::new("approval");
static ELSEWHERE: SuspendPoint<bool> = SuspendPoint::new("elsewhere");
static PREPARE: SuspendPoint<u32> = SuspendPoint::new("prepare");
static NAP: SuspendPoint<()> = SuspendPoint::new("nap");
static SECOND: SuspendPoint<String> = SuspendPoint::new("second");

/// "review": step "prepare" (counted), then suspend at APPROVAL with a
/// status; output = the approval.
fn review(engine: &memable_core::Engine) -> common::Counter {
    let prepared = counter();
    engine
        .register("review", {
            let prepared = prepared.clone();
            move |ctx: Context| {
                let prepared = prepared.clone();
                async move {
                    ctx.step("prepare").run(|| tick(&prepared, 1u32)).await?;
                    ctx.suspend(&APPROVAL).status("waiting for a manager").await
                }
            }
        })
        .unwrap();
    prepared
}

#[tokio::test(start_paused = true)]
async fn suspend_ends_the_run_with_its_status_and_persists_it() {
    let (store, _clock, engine) = fresh();
    review(&engine);
    engine.start().await.unwrap();
    let run = engine.invoke("review").id("r").await.unwrap();
    let expected = WorkflowState::Suspended {
        key: "approval".into(),
        status: Some("waiting for a manager".into()),
    };
    assert_eq!(guarded(run.wait_idle()).await.unwrap(), expected);
    assert_eq!(run.status(), expected);
    assert_eq!(engine.state("review", "r").await.unwrap(), expected);
    let meta = engine.get_metadata("review", "r").await.unwrap().unwrap();
    assert_eq!(
        meta.status,
        MetadataStatus::Suspended {
            key: "approval".into(),
            status: Some("waiting for a manager".into())
        }
    );
    let record = step_record(&store, "review", "r", "approval")
        .await
        .unwrap();
    assert_eq!(
        (record.state, record.kind),
        (StepState::Suspended, StepKind::Suspend)
    );
}

#[tokio::test(start_paused = true)]
async fn a_suspension_without_its_own_status_shows_the_current_one() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.set_status("step 2 of 3");
            ctx.suspend(&APPROVAL).await
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(
        guarded(run.wait_idle()).await.unwrap(),
        WorkflowState::Suspended {
            key: "approval".into(),
            status: Some("step 2 of 3".into())
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_delivers_its_value_and_earlier_steps_are_not_rerun() {
    let (store, _clock, engine) = fresh();
    let prepared = review(&engine);
    engine.start().await.unwrap();
    guarded(engine.invoke("review").id("r").await.unwrap().wait_idle())
        .await
        .unwrap();
    let run = engine.signal("review", "r", &APPROVAL, true).await.unwrap();
    assert!(!run.is_new());
    assert!(guarded(run.wait_output::<bool>()).await.unwrap());
    assert_eq!(get(&prepared), 1);
    let record = step_record(&store, "review", "r", "approval")
        .await
        .unwrap();
    assert_eq!(
        (record.state, record.kind),
        (StepState::Completed, StepKind::Suspend)
    );
}

#[tokio::test(start_paused = true)]
async fn a_signalled_value_is_replayed_on_resume() {
    let (_store, _clock, engine) = fresh();
    let prepared = review(&engine);
    engine.start().await.unwrap();
    guarded(engine.invoke("review").id("r").await.unwrap().wait_idle())
        .await
        .unwrap();
    let run = engine
        .signal("review", "r", &APPROVAL, false)
        .await
        .unwrap();
    assert!(!guarded(run.wait_output::<bool>()).await.unwrap());
    let run = engine.resume("review", "r").await.unwrap();
    assert!(!guarded(run.wait_output::<bool>()).await.unwrap());
    assert_eq!(get(&prepared), 1);
}

#[tokio::test(start_paused = true)]
async fn several_suspend_points_in_sequence() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            let n = ctx.suspend(&PREPARE).await?;
            let s = ctx.suspend(&SECOND).await?;
            Ok(format!("{n}-{s}"))
        })
        .unwrap();
    engine.start().await.unwrap();
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    let run = engine.signal("wf", "1", &PREPARE, 7).await.unwrap();
    assert_eq!(
        guarded(run.wait_idle()).await.unwrap(),
        WorkflowState::Suspended {
            key: "second".into(),
            status: None
        }
    );
    let run = engine
        .signal("wf", "1", &SECOND, "x".to_string())
        .await
        .unwrap();
    assert_eq!(guarded(run.wait_output::<String>()).await.unwrap(), "7-x");
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_an_unknown_instance_is_instance_not_found() {
    let (_store, _clock, engine) = fresh();
    review(&engine);
    engine.start().await.unwrap();
    let err = engine
        .signal("review", "nobody", &APPROVAL, true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::InstanceNotFound { .. }),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_a_point_not_reached_is_buffered_and_the_instance_still_waits() {
    let (_store, _clock, engine) = fresh();
    review(&engine);
    engine.start().await.unwrap();
    guarded(engine.invoke("review").id("r").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine
        .signal("review", "r", &ELSEWHERE, true)
        .await
        .unwrap();
    let buffered = engine.buffered_signals("review", "r").await.unwrap();
    assert_eq!(
        buffered
            .iter()
            .map(|(point, _)| point.as_str())
            .collect::<Vec<_>>(),
        ["elsewhere"]
    );
    // One delivery per point: a second one before it is consumed is superseded.
    let err = engine
        .signal("review", "r", &ELSEWHERE, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::SignalSuperseded { key } if key == "elsewhere"),
        "{err:?}"
    );
    // The instance still waits where it was.
    assert!(matches!(
        engine.state("review", "r").await.unwrap(),
        WorkflowState::Suspended { .. }
    ));
    // Deleted with the instance.
    assert!(engine.delete("review", "r").await.unwrap());
    assert!(matches!(
        engine.buffered_signals("review", "r").await,
        Err(EngineError::InstanceNotFound { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_a_regular_step_is_rejected() {
    let (store, _clock, engine) = fresh();
    review(&engine);
    engine.start().await.unwrap();
    guarded(engine.invoke("review").id("r").await.unwrap().wait_idle())
        .await
        .unwrap();
    let err = engine.signal("review", "r", &PREPARE, 9).await.unwrap_err();
    assert!(matches!(err, EngineError::SignalRejected { .. }), "{err:?}");
    let record = step_record(&store, "review", "r", "prepare").await.unwrap();
    assert_eq!(
        memable_core::decode_record::<u32>("prepare", &record).unwrap(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_a_completed_instance_is_rejected() {
    let (_store, _clock, engine) = fresh();
    review(&engine);
    engine.start().await.unwrap();
    guarded(engine.invoke("review").id("r").await.unwrap().wait_idle())
        .await
        .unwrap();
    let run = engine.signal("review", "r", &APPROVAL, true).await.unwrap();
    guarded(run.wait_idle()).await.unwrap();
    let err = engine
        .signal("review", "r", &ELSEWHERE, true)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SignalRejected { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_a_cancelled_instance_is_rejected() {
    let (_store, _clock, engine) = fresh();
    review(&engine);
    engine.start().await.unwrap();
    guarded(engine.invoke("review").id("r").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine.cancel("review", "r").await.unwrap();
    let err = engine
        .signal("review", "r", &APPROVAL, true)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SignalRejected { .. }), "{err:?}");
    assert_eq!(
        engine.state("review", "r").await.unwrap(),
        WorkflowState::Cancelled
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_is_superseded() {
    let (_store, _clock, engine) = fresh();
    review(&engine);
    engine.start().await.unwrap();
    guarded(engine.invoke("review").id("r").await.unwrap().wait_idle())
        .await
        .unwrap();
    let winner = engine.signal("review", "r", &APPROVAL, true).await.unwrap();
    let err = engine
        .signal("review", "r", &APPROVAL, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::SignalSuperseded { key } if key == "approval"),
        "{err:?}"
    );
    assert!(guarded(winner.wait_output::<bool>()).await.unwrap());
    // Still superseded (not rejected) once the instance has completed.
    let err = engine
        .signal("review", "r", &APPROVAL, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::SignalSuperseded { .. }),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_of_the_wrong_type_is_a_type_mismatch_and_claims_nothing() {
    let (_store, _clock, engine) = fresh();
    review(&engine);
    engine.start().await.unwrap();
    guarded(engine.invoke("review").id("r").await.unwrap().wait_idle())
        .await
        .unwrap();
    let err = engine
        .signal("review", "r", &APPROVAL_AS_NUMBER, 1)
        .await
        .unwrap_err();
    match err {
        EngineError::TypeMismatch {
            key,
            expected,
            found,
        } => assert_eq!(
            (key.as_str(), expected.as_str(), found.as_str()),
            ("approval", "bool", "u32")
        ),
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    let run = engine.signal("review", "r", &APPROVAL, true).await.unwrap();
    assert!(guarded(run.wait_output::<bool>()).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_signal_before_the_instance_reaches_the_point_is_buffered_and_consumed_there() {
    let (_store, _clock, engine) = fresh();
    let gate = common::Gate::new();
    engine
        .register("wf", {
            let gate = gate.clone();
            move |ctx: Context| {
                let gate = gate.clone();
                async move {
                    ctx.step("work")
                        .run(|| {
                            let gate = gate.clone();
                            async move {
                                gate.pass().await;
                                Ok::<_, memable_core::StepError>(())
                            }
                        })
                        .await?;
                    ctx.suspend(&APPROVAL).await
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    common::quiesce().await;
    // The webhook beats the workflow: accepted and kept with the instance.
    engine.signal("wf", "1", &APPROVAL, true).await.unwrap();
    let late = engine
        .signal("wf", "1", &APPROVAL, false)
        .await
        .unwrap_err();
    assert!(
        matches!(late, EngineError::SignalSuperseded { .. }),
        "{late:?}"
    );
    gate.open(1);
    // The workflow reaches the point and takes the buffered value: no
    // suspension, no second signal.
    assert!(guarded(run.wait_output::<bool>()).await.unwrap());
    assert!(engine.buffered_signals("wf", "1").await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_signal_to_a_durable_timer_is_rejected() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.timer("nap", Duration::from_secs(60)).await
        })
        .unwrap();
    engine.start().await.unwrap();
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    let err = engine.signal("wf", "1", &NAP, ()).await.unwrap_err();
    assert!(matches!(err, EngineError::SignalRejected { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_regular_step_that_finds_a_suspended_record_is_a_conflict() {
    let (_store, _clock, engine) = fresh();
    review(&engine);
    engine.start().await.unwrap();
    guarded(engine.invoke("review").id("r").await.unwrap().wait_idle())
        .await
        .unwrap();
    // New code calls the suspend point's key as a regular step.
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let calls = counter();
    engine
        .register("review", {
            let seen = seen.clone();
            let calls = calls.clone();
            move |ctx: Context| {
                let seen = seen.clone();
                let calls = calls.clone();
                async move {
                    let r = ctx.step("approval").run(|| tick(&calls, true)).await;
                    *seen.lock().unwrap() = Some(match &r {
                        Err(EngineError::SuspendedStepConflict { key }) => key.clone(),
                        other => format!("unexpected {other:?}"),
                    });
                    r
                }
            }
        })
        .unwrap();
    let run = engine.resume("review", "r").await.unwrap();
    guarded(run.wait_idle()).await.unwrap();
    assert_eq!(seen.lock().unwrap().as_deref(), Some("approval"));
    assert_eq!(get(&calls), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_32_concurrent_signals_exactly_one_wins() {
    let (_store, _clock, engine) = fresh();
    engine
        .register(
            "wf",
            |ctx: Context| async move { ctx.suspend(&PREPARE).await },
        )
        .unwrap();
    engine.start().await.unwrap();
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (0..32u32)
        .map(|i| {
            let engine = engine.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                engine
                    .signal("wf", "1", &PREPARE, i)
                    .await
                    .map(|run| (i, run))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok((i, run)) => winners.push((i, run)),
            Err(EngineError::SignalSuperseded { .. }) => {}
            Err(other) => panic!("a losing signal must be superseded, got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one signal must win");
    let (value, run) = winners.pop().unwrap();
    assert_eq!(guarded(run.wait_output::<u32>()).await.unwrap(), value);
    settled(&engine, "wf", "1").await;
    assert_eq!(engine.output::<u32>("wf", "1").await.unwrap(), value);
}
