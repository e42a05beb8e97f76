//! Fault injection: storage failures are reported as errors, never as a
//! wrong answer, and every workflow recovers once the store works again.
//! Every test runs `FaultyStore` over every backend (see `support`).

mod support;

use std::sync::Arc;
use std::time::Duration;

use memable::{
    Context, Engine, EngineError, InstanceFilter, MetadataStatus, RetryPolicy, StepError,
    StepStore, SuspendPoint,
};
use memable_testkit::{FaultyStore, StoreOp};

use support::backend_tests;

type Faulty = FaultyStore<Arc<dyn StepStore>>;

static APPROVAL: SuspendPoint<u64> = SuspendPoint::new("approval");

const WRITES: [StoreOp; 6] = [
    StoreOp::StartInstance,
    StoreOp::CommitStep,
    StoreOp::WaitAt,
    StoreOp::ParkInstance,
    StoreOp::DeliverSignal,
    StoreOp::FinishInstance,
];

/// `sum`: input n, five steps, output 5n + 10.
fn register(engine: &Engine) {
    engine
        .register("sum", |ctx: Context| async move {
            let n: u64 = ctx.input()?;
            let mut total = 0;
            for i in 0..5u64 {
                total += ctx
                    .step(format!("s{i}"))
                    .run(|| async move { Ok::<_, StepError>(n + i) })
                    .await?;
            }
            Ok(total)
        })
        .unwrap();
    engine
        .register("gate", |ctx: Context| async move {
            let before = ctx
                .step("before")
                .run(|| async { Ok::<_, StepError>(1u64) })
                .await?;
            let approval = ctx.suspend(&APPROVAL).await?;
            let after = ctx
                .step("after")
                .run(|| async { Ok::<_, StepError>(2u64) })
                .await?;
            Ok(before + approval + after)
        })
        .unwrap();
}

fn expected(n: u64) -> u64 {
    5 * n + 10
}

fn engine_on(store: Arc<Faulty>) -> Engine {
    let engine = Engine::builder()
        .store(store)
        .default_retry(RetryPolicy::fixed(2, Duration::ZERO))
        .build();
    register(&engine);
    engine
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_storage_faults_never_produce_wrong_answers_and_recover(backend) {
        let mut builder = FaultyStore::builder(backend.store()).seed(7);
        for op in WRITES
            .into_iter()
            .chain([StoreOp::LoadInstance, StoreOp::GetMetadata])
        {
            builder = builder.fail_with_probability(op, 0.05);
        }
        builder = builder.ack_lost_with_probability(StoreOp::CommitStep, 0.02);
        let store = Arc::new(builder.build());
        let engine = engine_on(Arc::clone(&store));
        engine.start().await.unwrap();

        let mut reported_errors = 0;
        let mut reported_ok = 0;
        let mut runs = tokio::task::JoinSet::new();
        for n in 0..200u64 {
            let engine = engine.clone();
            runs.spawn(async move {
                let run = engine.invoke("sum").id(format!("w{n}")).input(n).await;
                match run {
                    Ok(run) => (n, run.wait_output::<u64>().await),
                    Err(error) => (n, Err(error)),
                }
            });
        }
        while let Some(joined) = runs.join_next().await {
            let (n, result) = joined.expect("no panic");
            match result {
                Ok(out) => {
                    assert_eq!(out, expected(n), "w{n} reported a wrong output");
                    reported_ok += 1;
                }
                Err(error) => {
                    assert!(
                        error.is_storage()
                            || matches!(error, EngineError::WorkflowFailed { ref error, .. } if error.contains("storage error")),
                        "w{n}: a fault surfaced as a non-storage error: {error}"
                    );
                    reported_errors += 1;
                }
            }
        }
        engine.wait_all().await;
        assert!(
            reported_errors > 0,
            "the faults never hit: the test proves nothing"
        );
        assert!(reported_ok > 0);
        assert!(store.injected(StoreOp::CommitStep) > 0);

        // Nothing the store calls Completed is wrong.
        store.set_enabled(false);
        for meta in engine.list_instances(&InstanceFilter::new()).await.unwrap() {
            if matches!(meta.status, MetadataStatus::Completed(_)) {
                let n: u64 = meta.instance_id[1..].parse().unwrap();
                assert_eq!(
                    engine
                        .output::<u64>("sum", &meta.instance_id)
                        .await
                        .unwrap(),
                    expected(n)
                );
            }
        }

        // Faults stop: re-invoking (idempotent) or resuming completes everything.
        for n in 0..200u64 {
            let id = format!("w{n}");
            let state = engine.state("sum", &id).await;
            let out: u64 = match state {
                Ok(memable::WorkflowState::Completed { .. }) => {
                    engine.output("sum", &id).await.unwrap()
                }
                Ok(memable::WorkflowState::Failed { .. }) => engine
                    .resume("sum", &id)
                    .await
                    .unwrap()
                    .wait_output()
                    .await
                    .unwrap(),
                _ => engine
                    .invoke("sum")
                    .id(id.clone())
                    .input(n)
                    .await
                    .unwrap()
                    .wait_output()
                    .await
                    .unwrap(),
            };
            assert_eq!(out, expected(n), "{id} after recovery");
        }
    }
}

/// Drives `gate` to completion, recovering from whatever one failure left.
async fn drive_gate(engine: &Engine, id: &str) -> u64 {
    for _ in 0..5 {
        if let Ok(run) = engine.invoke("gate").id(id).await {
            let _ = run.wait_idle().await;
        }
        engine.wait_all().await;
        match engine.state("gate", id).await {
            Ok(memable::WorkflowState::Completed { .. }) => {
                return engine.output("gate", id).await.unwrap();
            }
            Ok(memable::WorkflowState::Suspended { .. }) => {
                if let Ok(run) = engine.signal("gate", id, &APPROVAL, 10).await {
                    let _ = run.wait_idle().await;
                }
            }
            Ok(memable::WorkflowState::Failed { .. }) => {
                if let Ok(run) = engine.resume("gate", id).await {
                    let _ = run.wait_idle().await;
                }
            }
            _ => {}
        }
        engine.wait_all().await;
        if let Ok(memable::WorkflowState::Completed { .. }) = engine.state("gate", id).await {
            return engine.output("gate", id).await.unwrap();
        }
    }
    panic!("{id} never completed");
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_at_each_transition_leaves_a_recoverable_state(backend) {
        for op in WRITES {
            for (mode, ack_lost) in [("fail", false), ("ack-lost", true)] {
                // A fresh, empty store of this backend for each case.
                let fresh = backend.kind().open();
                let builder = FaultyStore::builder(fresh.store());
                let builder = if ack_lost {
                    builder.ack_lost_nth(op, 1)
                } else {
                    builder.fail_nth(op, 1)
                };
                let store = Arc::new(builder.build());
                let engine = engine_on(Arc::clone(&store));
                engine.start().await.unwrap();
                let out = drive_gate(&engine, "g").await;
                assert_eq!(out, 13, "{} {mode}", op.name());
                assert_eq!(
                    store.injected(op),
                    1,
                    "{} {mode}: the fault never fired",
                    op.name()
                );
            }
        }
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_failure_at_each_transition_a_new_engine_on_the_reopened_store_recovers(
        backend
    ) {
        for op in WRITES {
            for (mode, ack_lost) in [("fail", false), ("ack-lost", true)] {
                let mut fresh = backend.kind().open();
                let builder = FaultyStore::builder(fresh.store());
                let builder = if ack_lost {
                    builder.ack_lost_nth(op, 1)
                } else {
                    builder.fail_nth(op, 1)
                };
                let store = Arc::new(builder.build());
                let engine = engine_on(Arc::clone(&store));
                engine.start().await.unwrap();
                // One pass through every transition; the fault hits one.
                if let Ok(run) = engine.invoke("gate").id("g").await {
                    let _ = run.wait_idle().await;
                }
                engine.wait_all().await;
                if let Ok(memable::WorkflowState::Suspended { .. }) =
                    engine.state("gate", "g").await
                    && let Ok(run) = engine.signal("gate", "g", &APPROVAL, 10).await
                {
                    let _ = run.wait_idle().await;
                }
                engine.wait_all().await;
                assert_eq!(
                    store.injected(op),
                    1,
                    "{} {mode}: the fault never fired",
                    op.name()
                );
                // The process goes away; the file is closed and opened again.
                engine.shutdown().await;
                drop((engine, store));
                fresh
                    .reopen()
                    .unwrap_or_else(|error| panic!("{} {mode}: reopen: {error:?}", op.name()));
                let engine = Engine::builder()
                    .store(fresh.store())
                    .default_retry(RetryPolicy::fixed(2, Duration::ZERO))
                    .build();
                register(&engine);
                engine.start().await.unwrap();
                let out = drive_gate(&engine, "g").await;
                assert_eq!(out, 13, "{} {mode} after reopen", op.name());
            }
        }
    }
}
