//! Upgrading stored step values: a deploy changes a step's output type
//! while instances hold results of the old type. With
//! `StepBuilder::upgrade_from` the new code reads them through a
//! conversion, after the store was closed and reopened, without running
//! the step again and without rewriting the record; without one the read is
//! a typed `TypeMismatch` and nothing is lost, so the fix can be deployed
//! and the instance resumed.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memable::{Context, Engine, EngineError, StepError, SuspendPoint, WorkflowState};
use serde::{Deserialize, Serialize};
use support::backend_tests;

static PAID: SuspendPoint<bool> = SuspendPoint::new("paid");

mod v1 {
    /// Yesterday's quote: whole cents, no currency.
    #[derive(serde::Serialize, serde::Deserialize, Clone, Copy)]
    pub struct Quote {
        pub cents: u32,
    }
}

/// The quote before it was called `Quote`.
#[derive(Serialize, Deserialize, Clone, Copy)]
struct Estimate(u32);

/// Today's quote.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Quote {
    cents: u64,
    currency: String,
}

fn from_v1(old: v1::Quote) -> Quote {
    Quote {
        cents: u64::from(old.cents),
        currency: "EUR".into(),
    }
}

fn from_estimate(old: Estimate) -> Quote {
    Quote {
        cents: u64::from(old.0),
        currency: "USD".into(),
    }
}

/// Closure runs of today's `quote` step, and reads of it that failed
/// because the stored value does not decode as a `Quote`.
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>, Arc<AtomicUsize>);

/// Yesterday's `order`: `quote` commits `old`, then the workflow waits to
/// be paid.
fn register_old<T>(engine: &Engine, old: T)
where
    T: Serialize + for<'de> Deserialize<'de> + Clone + Send + Sync + 'static,
{
    engine
        .register("order", move |ctx: Context| {
            let old = old.clone();
            async move {
                ctx.step("quote")
                    .run(move || {
                        let old = old.clone();
                        async move { Ok::<_, StepError>(old) }
                    })
                    .await?;
                ctx.suspend(&PAID).await?;
                Ok(String::from("paid"))
            }
        })
        .expect("register");
}

/// Today's `order`: `quote` returns a `Quote`, upgrading stored values if
/// `upgrade` is set; the output shows the quote.
fn register_new(engine: &Engine, upgrade: bool, runs: &Runs) {
    let runs = runs.clone();
    engine
        .register("order", move |ctx: Context| {
            let runs = runs.clone();
            async move {
                let mut step = ctx.step("quote");
                if upgrade {
                    step = step.upgrade_from(from_v1).upgrade_from(from_estimate);
                }
                let read = step
                    .run(|| {
                        runs.0.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, StepError>(Quote {
                                cents: 1,
                                currency: "XXX".into(),
                            })
                        }
                    })
                    .await;
                if matches!(&read, Err(EngineError::Serialization { key, .. }) if key == "quote") {
                    runs.1.fetch_add(1, Ordering::SeqCst);
                }
                let quote: Quote = read?;
                if !ctx.suspend(&PAID).await? {
                    return Ok(String::from("unpaid"));
                }
                Ok(format!("{} {}", quote.cents, quote.currency))
            }
        })
        .expect("register");
}

/// Runs yesterday's code for `id` up to its wait, then closes the store.
async fn stored_by_old_code<T>(backend: &mut support::Backend, id: &str, old: T)
where
    T: Serialize + for<'de> Deserialize<'de> + Clone + Send + Sync + 'static,
{
    let engine = Engine::builder().store(backend.store()).build();
    register_old(&engine, old);
    engine.start().await.expect("start");
    let state = engine
        .invoke("order")
        .id(id)
        .await
        .expect("invoke")
        .wait_idle()
        .await
        .expect("idle");
    assert!(
        matches!(state, WorkflowState::Suspended { .. }),
        "{state:?}"
    );
    engine.shutdown().await;
    drop(engine);
    backend.reopen().expect("reopen the store");
}

async fn quote_record(backend: &support::Backend, id: &str) -> memable::store::StepRecord {
    let key = memable::InstanceKey::new("order", id).expect("key");
    backend
        .store()
        .get_step(&key, "quote")
        .await
        .expect("get_step")
        .expect("the quote is stored")
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_old_result_is_upgraded_after_a_restart_and_not_run_again(backend) {
        stored_by_old_code(&mut backend, "o1", v1::Quote { cents: 250 }).await;
        stored_by_old_code(&mut backend, "o2", Estimate(99)).await;
        let before = (quote_record(&backend, "o1").await, quote_record(&backend, "o2").await);

        // The check before the deploy: a mismatch without the upgrade, none
        // with it.
        let runs = Runs::default();
        let unfixed = Engine::builder().store(backend.store()).build();
        register_new(&unfixed, false, &Runs::default());
        let report = unfixed.check_instance("order", "o1").await.expect("check");
        assert_eq!(report.mismatches.len(), 1, "{report:?}");
        assert_eq!(report.mismatches[0].key, "quote");
        drop(unfixed);
        let engine = Engine::builder().store(backend.store()).build();
        register_new(&engine, true, &runs);
        for id in ["o1", "o2"] {
            let report = engine.check_instance("order", id).await.expect("check");
            assert!(report.mismatches.is_empty(), "{report:?}");
        }

        engine.start().await.expect("start");
        for (id, expected) in [("o1", "250 EUR"), ("o2", "99 USD")] {
            let out: String = engine
                .signal("order", id, &PAID, true)
                .await
                .expect("signal")
                .wait_output()
                .await
                .expect("output");
            assert_eq!(out, expected, "{id} on {}", backend.name());
        }
        assert_eq!(runs.0.load(Ordering::SeqCst), 0, "a committed step ran again");
        assert_eq!(runs.1.load(Ordering::SeqCst), 0);
        engine.shutdown().await;
        drop(engine);
        // Read through the conversion; the records keep their old bytes.
        backend.reopen().expect("reopen");
        assert_eq!(quote_record(&backend, "o1").await, before.0);
        assert_eq!(quote_record(&backend, "o2").await, before.1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_an_upgrade_the_read_is_a_mismatch_and_a_fixed_deploy_resumes(backend) {
        stored_by_old_code(&mut backend, "o1", v1::Quote { cents: 250 }).await;
        let before = quote_record(&backend, "o1").await;
        let runs = Runs::default();

        let engine = Engine::builder().store(backend.store()).build();
        register_new(&engine, false, &runs);
        engine.start().await.expect("start");
        let err = engine
            .signal("order", "o1", &PAID, true)
            .await
            .expect("signal")
            .wait_output::<String>()
            .await
            .expect_err("the old value is not a Quote");
        assert!(matches!(err, EngineError::WorkflowFailed { .. }), "{err:?}");
        assert_eq!(runs.1.load(Ordering::SeqCst), 1, "the step read failed to decode");
        assert_eq!(runs.0.load(Ordering::SeqCst), 0);
        engine.shutdown().await;
        drop(engine);
        backend.reopen().expect("reopen");
        assert_eq!(quote_record(&backend, "o1").await, before, "nothing was lost");

        // The fix is deployed: the failed instance is resumed and completes.
        let engine = Engine::builder().store(backend.store()).build();
        register_new(&engine, true, &runs);
        engine.start().await.expect("start");
        let out: String = engine
            .resume("order", "o1")
            .await
            .expect("resume")
            .wait_output()
            .await
            .expect("output");
        assert_eq!(out, "250 EUR", "{}", backend.name());
        assert_eq!(runs.0.load(Ordering::SeqCst), 0);
        engine.shutdown().await;
    }
}
