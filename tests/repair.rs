//! Repairing stored instances from the user's side (issue 15, item 2):
//! `Engine::forget` drops chosen step results so they run again on the
//! next `resume`, `Engine::fork` copies an instance to a new id without
//! chosen steps. Every test runs on every backend (see `support`).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memable::{
    Context, Engine, EngineError, InvalidKeyReason, MetadataStatus, StatusKind, StepError,
    SuspendPoint, WorkflowState,
};

use support::backend_tests;

static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval");

/// Closure runs of `charge` and `ship`.
#[derive(Clone, Default)]
struct Runs {
    charge: Arc<AtomicUsize>,
    ship: Arc<AtomicUsize>,
}

impl Runs {
    fn get(&self) -> (usize, usize) {
        (
            self.charge.load(Ordering::SeqCst),
            self.ship.load(Ordering::SeqCst),
        )
    }
}

/// `order`: charges, then ships with carrier `carrier`; outputs both.
fn order_engine(store: Arc<dyn memable::StepStore>, runs: &Runs, carrier: &'static str) -> Engine {
    let engine = Engine::builder().store(store).build();
    let runs = runs.clone();
    engine
        .register("order", move |ctx: Context| {
            let runs = runs.clone();
            async move {
                let charge = Arc::clone(&runs.charge);
                let paid: u32 = ctx
                    .step("charge")
                    .run(move || {
                        charge.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(42) }
                    })
                    .await?;
                let ship = Arc::clone(&runs.ship);
                let label: String = ctx
                    .step("ship")
                    .run(move || {
                        ship.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, StepError>(carrier.to_owned()) }
                    })
                    .await?;
                Ok(format!("{paid} via {label}"))
            }
        })
        .unwrap();
    engine
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forgotten_step_runs_again_on_resume_and_the_others_replay(backend) {
        let runs = Runs::default();
        let engine = order_engine(backend.store(), &runs, "bad-carrier");
        engine.start().await.unwrap();
        let out: String = engine.invoke("order").id("o1").await.unwrap().wait_output().await.unwrap();
        assert_eq!(out, "42 via bad-carrier");
        engine.shutdown().await;
        drop(engine);

        // The bug is fixed and deployed; the operator forgets the step it
        // got wrong and resumes the order.
        backend.reopen().unwrap();
        let engine = order_engine(backend.store(), &runs, "good-carrier");
        engine.start().await.unwrap();
        assert_eq!(engine.forget("order", "o1", &["ship"]).await.unwrap(), ["ship"]);
        // Its status is unchanged until it runs again.
        assert!(matches!(
            engine.state("order", "o1").await.unwrap(),
            WorkflowState::Completed { .. }
        ));
        let out: String = engine.resume("order", "o1").await.unwrap().wait_output().await.unwrap();
        assert_eq!(out, "42 via good-carrier", "{backend}");
        assert_eq!(runs.get(), (1, 2), "{backend}: charge must replay, ship run again");
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fork_without_a_step_reruns_that_step_only_and_leaves_the_original(backend) {
        let runs = Runs::default();
        let engine = order_engine(backend.store(), &runs, "first");
        engine.start().await.unwrap();
        let out: String = engine.invoke("order").id("o1").await.unwrap().wait_output().await.unwrap();
        assert_eq!(out, "42 via first");
        engine.shutdown().await;
        drop(engine);

        backend.reopen().unwrap();
        let engine = order_engine(backend.store(), &runs, "second");
        engine.start().await.unwrap();
        engine.fork("order", "o1", "o1-retry", &["ship"]).await.unwrap();
        let mut states = engine.subscribe("order", "o1-retry").await.unwrap();
        while states.next().await.is_some() {}
        assert_eq!(engine.output::<String>("order", "o1-retry").await.unwrap(), "42 via second");
        assert_eq!(runs.get(), (1, 2), "{backend}: the fork replays charge and runs ship");
        // The original is as it was.
        assert_eq!(engine.output::<String>("order", "o1").await.unwrap(), "42 via first");
        // A fork of it with nothing left out replays everything.
        engine.fork("order", "o1", "o1-copy", &[]).await.unwrap();
        let mut states = engine.subscribe("order", "o1-copy").await.unwrap();
        while states.next().await.is_some() {}
        assert_eq!(engine.output::<String>("order", "o1-copy").await.unwrap(), "42 via first");
        assert_eq!(runs.get(), (1, 2));
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fork_of_a_waiting_instance_waits_for_its_own_signal(backend) {
        let engine = Engine::builder().store(backend.store()).build();
        engine
            .register("review", |ctx: Context| async move { ctx.suspend(&APPROVAL).await })
            .unwrap();
        engine.start().await.unwrap();
        engine.invoke("review").id("r1").await.unwrap().wait_idle().await.unwrap();
        engine.fork("review", "r1", "r2", &[]).await.unwrap();
        let fork = engine.subscribe("review", "r2").await.unwrap();
        let mut fork = fork;
        while let Some(state) = fork.next().await {
            if matches!(state, WorkflowState::Suspended { .. }) {
                break;
            }
        }
        let approved = engine.signal("review", "r2", &APPROVAL, true).await.unwrap();
        assert!(approved.wait_output::<bool>().await.unwrap());
        let original = engine.get_metadata("review", "r1").await.unwrap().unwrap();
        assert_eq!(original.status.kind(), StatusKind::Suspended, "{backend}");
        let rejected = engine.signal("review", "r1", &APPROVAL, false).await.unwrap();
        assert!(!rejected.wait_output::<bool>().await.unwrap());
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repairs_are_refused_with_typed_errors(backend) {
        let engine = Engine::builder().store(backend.store()).build();
        let reached = Arc::new(tokio::sync::Notify::new());
        let signal_reached = Arc::clone(&reached);
        engine
            .register("hang", move |ctx: Context| {
                let reached = Arc::clone(&signal_reached);
                async move {
                    ctx.step("done").run(|| async { Ok::<_, StepError>(1u8) }).await?;
                    ctx.step("wait")
                        .run(move || {
                            // `done` is committed once this runs.
                            reached.notify_one();
                            std::future::pending::<Result<(), StepError>>()
                        })
                        .await
                }
            })
            .unwrap();
        engine.start().await.unwrap();
        engine.invoke("hang").id("h1").await.unwrap();
        reached.notified().await;
        // Running: a run is in flight.
        let running = engine.forget("hang", "h1", &["done"]).await;
        assert!(
            matches!(running, Err(EngineError::InvalidState { state: StatusKind::Running, .. })),
            "{backend}: {running:?}"
        );
        engine.cancel("hang", "h1").await.unwrap();
        for reserved in ["_input", "_output", "_child:x"] {
            let refused = engine.forget("hang", "h1", &[reserved]).await;
            assert!(
                matches!(refused, Err(EngineError::InvalidKey { reason: InvalidKeyReason::Reserved, .. })),
                "{backend}: {reserved}: {refused:?}"
            );
            let refused = engine.fork("hang", "h1", "h2", &[reserved]).await;
            assert!(
                matches!(refused, Err(EngineError::InvalidKey { reason: InvalidKeyReason::Reserved, .. })),
                "{backend}: {reserved}: {refused:?}"
            );
        }
        // A queue's reserved instance is the engine's.
        assert!(matches!(
            engine.forget("_queue", "jobs", &["done"]).await,
            Err(EngineError::InvalidKey { reason: InvalidKeyReason::Reserved, .. })
        ));
        assert!(matches!(
            engine.fork("_queue", "jobs", "copy", &[]).await,
            Err(EngineError::InvalidKey { reason: InvalidKeyReason::Reserved, .. })
        ));
        assert!(matches!(
            engine.forget("hang", "missing", &["done"]).await,
            Err(EngineError::InstanceNotFound { .. })
        ));
        assert!(matches!(
            engine.fork("hang", "missing", "h2", &[]).await,
            Err(EngineError::InstanceNotFound { .. })
        ));
        assert!(matches!(
            engine.fork("hang", "h1", "h1", &[]).await,
            Err(EngineError::InstanceExists { .. })
        ));
        assert!(matches!(
            engine.fork("hang", "h1", "a/b", &[]).await,
            Err(EngineError::InvalidKey { reason: InvalidKeyReason::ContainsSlash, .. })
        ));
        // Nothing was written by any of them.
        assert!(engine.get_metadata("hang", "h2").await.unwrap().is_none());
        let snapshot = backend
            .store()
            .load_instance(&memable::InstanceKey::new("hang", "h1").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(snapshot.metadata.status, MetadataStatus::Cancelled);
        assert!(snapshot.step("done").is_some(), "{backend}: a refused forget removed a step");
        engine.shutdown().await;
    }
}
