//! Instance ids: caller-chosen ids are idempotent, generated ids are unique,
//! workflows have separate id spaces.

mod common;

use std::collections::HashSet;

use common::{counter, fresh, get, guarded, tick};
use memable_core::{Context, EngineError, InstanceFilter, SuspendPoint, WorkflowState};

static GO: SuspendPoint<()> = SuspendPoint::new("go");

#[tokio::test(start_paused = true)]
async fn invoking_an_existing_id_returns_the_existing_instance() {
    let (_store, _clock, engine) = fresh();
    let runs = counter();
    engine
        .register("greet", {
            let runs = runs.clone();
            move |ctx: Context| {
                let runs = runs.clone();
                async move {
                    let name: String = ctx.input()?;
                    ctx.step("greet")
                        .run(|| tick(&runs, format!("hello {name}")))
                        .await
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let first = engine
        .invoke("greet")
        .id("order-42")
        .input("ada".to_string())
        .await
        .unwrap();
    assert!(first.is_new());
    assert_eq!(
        guarded(first.wait_output::<String>()).await.unwrap(),
        "hello ada"
    );
    let again = engine
        .invoke("greet")
        .id("order-42")
        .input("ada".to_string())
        .await
        .unwrap();
    assert!(!again.is_new());
    assert_eq!(again.instance_id(), "order-42");
    assert_eq!(
        guarded(again.wait_output::<String>()).await.unwrap(),
        "hello ada"
    );
    // Another input under the same id is refused, never silently dropped.
    let other = engine
        .invoke("greet")
        .id("order-42")
        .input("bob".to_string())
        .await;
    assert!(
        matches!(other, Err(EngineError::InputConflict { .. })),
        "{other:?}"
    );
    assert_eq!(get(&runs), 1);
    let all = engine.list_instances(&InstanceFilter::new()).await.unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn invoking_the_id_of_a_suspended_instance_does_not_run_it_again() {
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
    guarded(engine.invoke("wf").id("x").await.unwrap().wait_idle())
        .await
        .unwrap();
    let again = engine.invoke("wf").id("x").await.unwrap();
    assert!(!again.is_new());
    assert!(matches!(
        guarded(again.wait_idle()).await.unwrap(),
        WorkflowState::Suspended { .. }
    ));
    common::quiesce().await;
    assert_eq!(get(&runs), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_invocations_of_one_id_start_it_once() {
    let (_store, _clock, engine) = fresh();
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
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.invoke("wf").id("same").await.unwrap().is_new() })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.unwrap());
    }
    assert_eq!(created, 1);
    common::finished(&engine, "wf", "same").await;
    assert_eq!(get(&runs), 1);
}

#[tokio::test(start_paused = true)]
async fn generated_ids_are_unique() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            Ok(ctx.instance_id().to_owned())
        })
        .unwrap();
    engine.start().await.unwrap();
    let mut ids = HashSet::new();
    for _ in 0..200 {
        let run = engine.invoke("wf").await.unwrap();
        assert!(run.is_new());
        let id = run.instance_id().to_owned();
        assert!(!id.is_empty());
        assert_eq!(guarded(run.wait_output::<String>()).await.unwrap(), id);
        ids.insert(id);
    }
    assert_eq!(ids.len(), 200);
    let all = engine.list_instances(&InstanceFilter::new()).await.unwrap();
    assert_eq!(all.len(), 200);
}

#[tokio::test(start_paused = true)]
async fn two_workflows_may_use_the_same_instance_id() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("left", |ctx: Context| async move {
            Ok(format!("{}:{}", ctx.workflow_name(), ctx.input::<u8>()?))
        })
        .unwrap();
    engine
        .register("right", |ctx: Context| async move {
            Ok(format!("{}:{}", ctx.workflow_name(), ctx.input::<u8>()?))
        })
        .unwrap();
    engine.start().await.unwrap();
    let l = engine.invoke("left").id("shared").input(1u8).await.unwrap();
    let r = engine
        .invoke("right")
        .id("shared")
        .input(2u8)
        .await
        .unwrap();
    assert!(l.is_new() && r.is_new());
    assert_eq!(l.workflow_name(), "left");
    assert_eq!(guarded(l.wait_output::<String>()).await.unwrap(), "left:1");
    assert_eq!(guarded(r.wait_output::<String>()).await.unwrap(), "right:2");
    assert!(engine.delete("left", "shared").await.unwrap());
    assert_eq!(
        engine.output::<String>("right", "shared").await.unwrap(),
        "right:2"
    );
}
