//! Typed input and output of instances.

mod common;

use common::{Gate, counter, engine_on, finished, fresh, get, guarded, tick, until};
use memable_core::{Context, EngineError, StepError, SuspendPoint, WorkflowState};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    lines: Vec<(String, u32)>,
}

fn sample() -> Order {
    Order {
        id: 42,
        lines: vec![("tea".into(), 2), ("cake".into(), 1)],
    }
}

static GO: SuspendPoint<u32> = SuspendPoint::new("go");

fn total(order: &Order) -> u32 {
    order.lines.iter().map(|(_, n)| n).sum()
}

#[tokio::test(start_paused = true)]
async fn a_typed_input_reaches_the_workflow_and_a_typed_output_comes_back() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            let order: Order = ctx.input()?;
            Ok((order.id, total(&order)))
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").input(sample()).await.unwrap();
    assert_eq!(
        guarded(run.wait_output::<(u64, u32)>()).await.unwrap(),
        (42, 3)
    );
    assert_eq!(
        engine.output::<(u64, u32)>("wf", "1").await.unwrap(),
        (42, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn without_input_the_input_is_unit() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.input::<()>()?;
            Ok(matches!(
                ctx.input::<u32>(),
                Err(EngineError::TypeMismatch { .. })
            ))
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert!(guarded(run.wait_output::<bool>()).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn reading_the_input_as_the_wrong_type_fails_the_workflow() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            let n: u64 = ctx.input()?;
            Ok(n)
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").input(sample()).await.unwrap();
    match guarded(run.wait_output::<u64>()).await {
        Err(EngineError::WorkflowFailed { error, .. }) => {
            assert!(
                error.contains("type mismatch") && error.contains("_input"),
                "{error}"
            );
        }
        other => panic!("expected WorkflowFailed, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_input_survives_a_signal() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            let extra = ctx.suspend(&GO).await?;
            let order: Order = ctx.input()?;
            Ok(total(&order) + extra)
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").input(sample()).await.unwrap();
    guarded(run.wait_idle()).await.unwrap();
    let run = engine.signal("wf", "1", &GO, 10).await.unwrap();
    assert_eq!(guarded(run.wait_output::<u32>()).await.unwrap(), 13);
}

#[tokio::test(start_paused = true)]
async fn the_input_survives_a_resume() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            let order: Order = ctx.input()?;
            Ok(order)
        })
        .unwrap();
    engine.start().await.unwrap();
    guarded(
        engine
            .invoke("wf")
            .id("1")
            .input(sample())
            .await
            .unwrap()
            .wait_idle(),
    )
    .await
    .unwrap();
    engine
        .register("wf", |ctx: Context| async move {
            let order: Order = ctx.input()?;
            Ok(order.lines.len())
        })
        .unwrap();
    let run = engine.resume("wf", "1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<usize>()).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_input_survives_crash_recovery() {
    let (store, clock, engine) = fresh();
    let gate = Gate::new();
    let entered = counter();
    engine
        .register("wf", {
            let (gate, entered) = (gate.clone(), entered.clone());
            move |ctx: Context| {
                let (gate, entered) = (gate.clone(), entered.clone());
                async move {
                    ctx.step("hang")
                        .run(|| {
                            let (gate, entered) = (gate.clone(), entered.clone());
                            async move {
                                tick(&entered, ()).await?;
                                gate.pass().await;
                                Ok::<_, StepError>(())
                            }
                        })
                        .await?;
                    Ok(0u32)
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").input(sample()).await.unwrap();
    until("the step started", || get(&entered) == 1).await;
    engine.abort();

    let restarted = engine_on(&store, &clock);
    restarted
        .register("wf", |ctx: Context| async move {
            let order: Order = ctx.input()?;
            Ok(total(&order))
        })
        .unwrap();
    restarted.start().await.unwrap();
    assert!(finished(&restarted, "wf", "1").await.is_terminal());
    assert_eq!(restarted.output::<u32>("wf", "1").await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn wait_output_of_the_wrong_type_is_a_type_mismatch() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |_ctx: Context| async move { Ok(sample()) })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    let err = guarded(run.wait_output::<u64>()).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::TypeMismatch { key, .. } if key == "_output"),
        "{err:?}"
    );
    assert_eq!(engine.output::<Order>("wf", "1").await.unwrap(), sample());
}

#[tokio::test(start_paused = true)]
async fn the_output_of_a_failed_instance_is_workflow_failed() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.step("boom")
                .run(|| async { Err::<u8, _>(StepError::permanent("card declined")) })
                .await
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    let err = guarded(run.wait_output::<u8>()).await.unwrap_err();
    match &err {
        EngineError::WorkflowFailed { key, error } => {
            assert_eq!((key.workflow(), key.instance()), ("wf", "1"));
            assert!(error.contains("card declined"), "{error}");
        }
        other => panic!("expected WorkflowFailed, got {other:?}"),
    }
    let err = engine.output::<u8>("wf", "1").await.unwrap_err();
    assert!(matches!(err, EngineError::WorkflowFailed { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn the_output_of_a_suspended_instance_is_waited_for_not_returned() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move { ctx.suspend(&GO).await })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    let output = tokio::spawn(run.wait_output::<u32>());
    common::state_until(&engine, "wf", "1", |s| {
        matches!(s, WorkflowState::Suspended { .. })
    })
    .await;
    common::quiesce().await;
    assert!(
        !output.is_finished(),
        "wait_output returned while the instance waits"
    );
    let err = engine.output::<u32>("wf", "1").await.unwrap_err();
    assert!(matches!(err, EngineError::InvalidState { .. }), "{err:?}");
    engine.signal("wf", "1", &GO, 5).await.unwrap();
    assert_eq!(guarded(output).await.unwrap().unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn the_output_of_unknown_and_cancelled_instances() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move { ctx.suspend(&GO).await })
        .unwrap();
    engine.start().await.unwrap();
    let err = engine.output::<u32>("wf", "nope").await.unwrap_err();
    assert!(
        matches!(err, EngineError::InstanceNotFound { .. }),
        "{err:?}"
    );
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    engine.cancel("wf", "1").await.unwrap();
    let err = engine.output::<u32>("wf", "1").await.unwrap_err();
    assert!(matches!(err, EngineError::Cancelled { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_step_result_of_a_rich_type_round_trips() {
    let (_store, _clock, engine) = fresh();
    let calls = counter();
    engine
        .register("wf", {
            let calls = calls.clone();
            move |ctx: Context| {
                let calls = calls.clone();
                async move {
                    let order = ctx.step("load").run(|| tick(&calls, sample())).await?;
                    let maybe: Option<Vec<Order>> = ctx
                        .step("wrap")
                        .run(|| tick(&calls, Some(vec![order.clone()])))
                        .await?;
                    Ok(maybe)
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(
        guarded(run.wait_output::<Option<Vec<Order>>>())
            .await
            .unwrap(),
        Some(vec![sample()])
    );
    let run = engine.resume("wf", "1").await.unwrap();
    assert_eq!(
        guarded(run.wait_output::<Option<Vec<Order>>>())
            .await
            .unwrap(),
        Some(vec![sample()])
    );
    assert_eq!(get(&calls), 2);
}
