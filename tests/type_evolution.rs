//! Stored values across a deploy that changed their type: a step's result
//! written by one deploy is replayed by the next, which reads it with its own
//! type after the store was reopened. Safe changes replay the right values
//! without running the step again; the others are typed errors, never a
//! silently different value. Every test runs on every backend (see
//! `support`).

mod support;

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memable::{Context, Engine, EngineError, StepError, SuspendPoint, WorkflowState};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use support::{Backend, backend_tests};

static GO: SuspendPoint<u32> = SuspendPoint::new("go");

/// What the second deploy's workflow saw when it replayed the step.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Got<B> {
    Value(B),
    TypeMismatch,
    Serialization,
}

/// Deploy 1 stores `old` as the result of step `s` of instance `evo/i`,
/// which then suspends; the store is reopened; deploy 2, whose step `s`
/// returns a `B` (`fallback`, if it ever runs), signals the instance and
/// returns what replaying `s` gave. Returns that and how often deploy 2's
/// step ran.
async fn evolve<A, B>(backend: &mut Backend, old: A, fallback: B) -> (Got<B>, usize)
where
    A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    B: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static,
{
    {
        let engine = Engine::builder().store(backend.store()).build();
        engine
            .register("evo", move |ctx: Context| {
                let old = old.clone();
                async move {
                    ctx.step("s")
                        .run(|| {
                            let old = old.clone();
                            async move { Ok::<_, StepError>(old) }
                        })
                        .await?;
                    ctx.suspend(&GO).await
                }
            })
            .unwrap();
        engine.start().await.unwrap();
        let state = engine
            .invoke("evo")
            .id("i")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        assert!(matches!(state, WorkflowState::Suspended { .. }), "{state}");
        engine.shutdown().await;
    }
    backend.reopen().unwrap();

    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let engine = Engine::builder().store(backend.store()).build();
    engine
        .register("evo", move |ctx: Context| {
            let fallback = fallback.clone();
            let runs = Arc::clone(&counter);
            async move {
                let replayed = ctx
                    .step("s")
                    .run(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let fallback = fallback.clone();
                        async move { Ok::<_, StepError>(fallback) }
                    })
                    .await;
                ctx.suspend(&GO).await?;
                match replayed {
                    Ok(value) => Ok(Got::Value(value)),
                    Err(EngineError::TypeMismatch { .. }) => Ok(Got::TypeMismatch),
                    Err(EngineError::Serialization { .. }) => Ok(Got::Serialization),
                    Err(other) => Err(other),
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let got: Got<B> = engine
        .signal("evo", "i", &GO, 1)
        .await
        .unwrap()
        .wait_output()
        .await
        .unwrap();
    engine.shutdown().await;
    (got, runs.load(Ordering::SeqCst))
}

/// The types of the first deploy.
mod v1 {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Item {
        pub id: u32,
        pub name: String,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Bill {
        pub net: u64,
        pub tax: u64,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Order {
        pub id: u32,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Count {
        pub n: u32,
    }
}

/// The types of the second deploy: the same names, changed.
mod v2 {
    use serde::{Deserialize, Serialize};

    /// Fields reordered.
    pub mod reordered {
        #[derive(super::Serialize, super::Deserialize, Debug, Clone, PartialEq)]
        pub struct Item {
            pub name: String,
            pub id: u32,
        }
    }

    /// A defaulted field added.
    pub mod defaulted {
        #[derive(super::Serialize, super::Deserialize, Debug, Clone, PartialEq)]
        pub struct Item {
            pub id: u32,
            pub name: String,
            #[serde(default)]
            pub quantity: u32,
        }
    }

    /// An optional field added.
    pub mod optional {
        #[derive(super::Serialize, super::Deserialize, Debug, Clone, PartialEq)]
        pub struct Item {
            pub id: u32,
            pub name: String,
            pub note: Option<String>,
        }
    }

    /// A field removed.
    pub mod removed {
        #[derive(super::Serialize, super::Deserialize, Debug, Clone, PartialEq)]
        pub struct Item {
            pub name: String,
        }
    }

    /// Two fields of one type swapped in the declaration.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Bill {
        pub tax: u64,
        pub net: u64,
    }

    /// `v1::Order` renamed, same shape.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Invoice {
        pub id: u32,
    }

    /// A field's type changed.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Count {
        pub n: String,
    }
}

/// Types whose encoding depends on the data (the same type in both deploys).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Sparse {
    id: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    note: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    tags: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
enum Contact {
    Email { email: String },
    Phone { phone: u64, ext: Option<u32> },
    Name(String),
}

fn item() -> v1::Item {
    v1::Item {
        id: 7,
        name: "widget".into(),
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reordered_fields_replay(backend) {
        let fallback = v2::reordered::Item { name: String::new(), id: 0 };
        let (got, runs) = evolve(&mut backend, item(), fallback).await;
        assert_eq!(got, Got::Value(v2::reordered::Item { name: "widget".into(), id: 7 }));
        assert_eq!(runs, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_added_defaulted_field_replays_as_its_default(backend) {
        let fallback = v2::defaulted::Item { id: 0, name: String::new(), quantity: 99 };
        let (got, runs) = evolve(&mut backend, item(), fallback).await;
        assert_eq!(
            got,
            Got::Value(v2::defaulted::Item { id: 7, name: "widget".into(), quantity: 0 })
        );
        assert_eq!(runs, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_added_option_field_replays_as_none(backend) {
        let fallback = v2::optional::Item { id: 0, name: String::new(), note: Some("x".into()) };
        let (got, runs) = evolve(&mut backend, item(), fallback).await;
        assert_eq!(
            got,
            Got::Value(v2::optional::Item { id: 7, name: "widget".into(), note: None })
        );
        assert_eq!(runs, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removed_field_is_ignored(backend) {
        let fallback = v2::removed::Item { name: String::new() };
        let (got, runs) = evolve(&mut backend, item(), fallback).await;
        assert_eq!(got, Got::Value(v2::removed::Item { name: "widget".into() }));
        assert_eq!(runs, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn swapped_fields_of_one_type_read_by_name(backend) {
        let old = v1::Bill { net: 100, tax: 20 };
        let (got, runs) = evolve(&mut backend, old, v2::Bill { tax: 0, net: 0 }).await;
        assert_eq!(got, Got::Value(v2::Bill { tax: 20, net: 100 }));
        assert_eq!(runs, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_json_value_result_replays(backend) {
        let old = serde_json::json!({"id": 7, "tags": ["a", 2, null], "nested": {"ok": true}});
        let (got, runs) = evolve(&mut backend, old.clone(), serde_json::Value::Null).await;
        assert_eq!(got, Got::Value(old));
        assert_eq!(runs, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn skipped_fields_with_defaults_replay(backend) {
        let old = Sparse { id: 7, note: None, tags: vec!["t".into()] };
        let fallback = Sparse { id: 0, note: Some("ran".into()), tags: Vec::new() };
        let (got, runs) = evolve(&mut backend, old.clone(), fallback).await;
        assert_eq!(got, Got::Value(old));
        assert_eq!(runs, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_untagged_enum_replays(backend) {
        let old = vec![
            Contact::Phone { phone: 5_550_100, ext: None },
            Contact::Email { email: "a@example.org".into() },
            Contact::Name("ada".into()),
        ];
        let (got, runs) = evolve(&mut backend, old.clone(), Vec::<Contact>::new()).await;
        assert_eq!(got, Got::Value(old));
        assert_eq!(runs, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_renamed_type_is_a_type_mismatch(backend) {
        let (got, runs) =
            evolve(&mut backend, v1::Order { id: 3 }, v2::Invoice { id: 0 }).await;
        assert_eq!(got, Got::TypeMismatch);
        assert_eq!(runs, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_field_whose_type_changed_is_a_serialization_error(backend) {
        let (got, runs) =
            evolve(&mut backend, v1::Count { n: 3 }, v2::Count { n: "three".into() }).await;
        assert_eq!(got, Got::Serialization);
        assert_eq!(runs, 0);
    }
}
