//! Type tags guard memoised values: a wrong type is a `TypeMismatch`, a type
//! moved to another module keeps working, a renamed type does not.

mod common;

use common::{engine_on, fresh, guarded};
use memable_core::{Context, Engine, EngineError, ManualClock, MemoryStore, StepError, type_tag};
use serde::{Deserialize, Serialize};

mod before {
    use serde::{Deserialize, Serialize};
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Order {
        pub id: u32,
        pub item: String,
    }
}

mod after {
    pub mod moved {
        use serde::{Deserialize, Serialize};
        #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
        pub struct Order {
            pub id: u32,
            pub item: String,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Purchase {
    id: u32,
    item: String,
}

/// Runs workflow "wf" instance "1" whose step "order" returns
/// `before::Order`, then swaps in `reader` and resumes; returns the output.
async fn write_then_read<O>(reader: fn(Context) -> futures_out::Fut<O>) -> Result<O, EngineError>
where
    O: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let (store, clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.step("order")
                .run(|| async {
                    Ok::<_, StepError>(before::Order {
                        id: 7,
                        item: "tea".into(),
                    })
                })
                .await?;
            Ok(())
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    guarded(run.wait_output::<()>()).await.unwrap();
    engine.stop();
    let v2 = new_version(&store, &clock);
    v2.register("wf", reader).unwrap();
    v2.start().await.unwrap();
    let run = v2.resume("wf", "1").await.unwrap();
    guarded(run.wait_output::<O>()).await
}

fn new_version(store: &MemoryStore, clock: &ManualClock) -> Engine {
    engine_on(store, clock)
}

mod futures_out {
    use std::future::Future;
    use std::pin::Pin;
    pub type Fut<O> = Pin<Box<dyn Future<Output = Result<O, memable_core::EngineError>> + Send>>;
}

fn read_moved(ctx: Context) -> futures_out::Fut<after::moved::Order> {
    Box::pin(async move {
        ctx.step("order")
            .run(|| async { Err::<after::moved::Order, _>(StepError::permanent("must not run")) })
            .await
    })
}

fn read_renamed(ctx: Context) -> futures_out::Fut<String> {
    Box::pin(async move {
        let read = ctx
            .step("order")
            .run(|| async { Err::<Purchase, _>(StepError::permanent("must not run")) })
            .await;
        Ok(match read {
            Err(EngineError::TypeMismatch {
                key,
                expected,
                found,
            }) => format!("{key}:{expected}:{found}"),
            other => format!("unexpected {other:?}"),
        })
    })
}

fn read_as_string(ctx: Context) -> futures_out::Fut<bool> {
    Box::pin(async move {
        let read = ctx
            .step("order")
            .run(|| async { Ok::<_, StepError>(String::from("fresh")) })
            .await;
        Ok(matches!(read, Err(EngineError::TypeMismatch { .. })))
    })
}

#[tokio::test(start_paused = true)]
async fn a_type_moved_to_another_module_keeps_working() {
    let order = write_then_read(read_moved).await.unwrap();
    assert_eq!(
        order,
        after::moved::Order {
            id: 7,
            item: "tea".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_renamed_type_is_a_type_mismatch() {
    let found = write_then_read(read_renamed).await.unwrap();
    assert_eq!(found, "order:Purchase:Order");
}

#[tokio::test(start_paused = true)]
async fn reading_a_step_as_another_type_is_a_type_mismatch_and_does_not_rerun() {
    assert!(write_then_read(read_as_string).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_type_mismatch_propagated_fails_the_workflow() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.step("n")
                .run(|| async { Ok::<_, StepError>(1i32) })
                .await?;
            Ok(())
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    guarded(run.wait_idle()).await.unwrap();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.step("n")
                .run(|| async { Ok::<_, StepError>(1u32) })
                .await?;
            Ok(())
        })
        .unwrap();
    let run = engine.resume("wf", "1").await.unwrap();
    match guarded(run.wait_output::<()>()).await {
        Err(EngineError::WorkflowFailed { error, .. }) => {
            assert!(error.contains("type mismatch"), "{error}");
            assert!(error.contains("u32") && error.contains("i32"), "{error}");
        }
        other => panic!("expected WorkflowFailed, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn str_and_string_share_a_tag_for_input_and_output() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            let name: String = ctx.input()?;
            let greeting: &'static str = if name == "ada" { "hi ada" } else { "who?" };
            Ok(greeting)
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").input("ada").await.unwrap();
    assert_eq!(
        guarded(run.wait_output::<String>()).await.unwrap(),
        "hi ada"
    );
    assert_eq!(type_tag::<&str>(), type_tag::<String>());
}

#[tokio::test(start_paused = true)]
async fn the_output_type_is_checked() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |_ctx: Context| async move {
            Ok(before::Order {
                id: 1,
                item: "x".into(),
            })
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    guarded(run.wait_idle()).await.unwrap();
    match engine.output::<Purchase>("wf", "1").await {
        Err(EngineError::TypeMismatch {
            key,
            expected,
            found,
        }) => {
            assert_eq!(
                (key.as_str(), expected.as_str(), found.as_str()),
                ("_output", "Purchase", "Order")
            );
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    let moved: after::moved::Order = engine.output("wf", "1").await.unwrap();
    assert_eq!(moved.id, 1);
}

#[test]
fn tags_strip_module_paths_inside_generics() {
    assert_eq!(type_tag::<before::Order>(), "Order");
    assert_eq!(
        type_tag::<Vec<Option<after::moved::Order>>>(),
        "Vec<Option<Order>>"
    );
    assert_eq!(type_tag::<(String, u8)>(), "(String, u8)");
    assert_ne!(type_tag::<i32>(), type_tag::<u32>());
}
