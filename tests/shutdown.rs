//! `Engine::shutdown_timeout` on every backend (see `support`): runs that
//! end before the deadline are recorded as usual; a run still in progress
//! at the deadline finishes the step in flight (its result committed),
//! starts no other, records no end, and the next engine on the store runs
//! it on from there — its committed step never again. Time is a
//! `ManualClock` that never moves: a deadline of 60 s is never reached, a
//! deadline of zero has passed at once.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memable::{Context, Engine, EngineError, ManualClock, MetadataStatus, StepError, StepStore};
use tokio::sync::{Notify, Semaphore};

use support::backend_tests;

/// How often each step's closure ran, across engines.
#[derive(Default)]
struct Runs {
    a: AtomicUsize,
    b: AtomicUsize,
}

/// `gated`: step `a` (announces itself on `entered`, then waits for a
/// permit of `gate`), then step `b`; output `a + b`.
fn engine(
    store: Arc<dyn StepStore>,
    clock: &ManualClock,
    runs: &Arc<Runs>,
    gate: &Arc<Semaphore>,
    entered: &Arc<Notify>,
) -> Engine {
    let engine = Engine::builder().store(store).clock(clock.clone()).build();
    let (runs, gate, entered) = (Arc::clone(runs), Arc::clone(gate), Arc::clone(entered));
    engine
        .register("gated", move |ctx: Context| {
            let (runs, gate, entered) =
                (Arc::clone(&runs), Arc::clone(&gate), Arc::clone(&entered));
            async move {
                let a = ctx
                    .step("a")
                    .run(|| {
                        let (runs, gate, entered) =
                            (Arc::clone(&runs), Arc::clone(&gate), Arc::clone(&entered));
                        async move {
                            runs.a.fetch_add(1, Ordering::SeqCst);
                            entered.notify_one();
                            let _permit = gate.acquire().await.map_err(StepError::permanent)?;
                            Ok::<_, StepError>(1u32)
                        }
                    })
                    .await?;
                let b = ctx
                    .step("b")
                    .run(|| {
                        let runs = Arc::clone(&runs);
                        async move {
                            runs.b.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, StepError>(2u32)
                        }
                    })
                    .await?;
                Ok(a + b)
            }
        })
        .unwrap();
    engine
}

/// Waits until `engine` has stopped taking work: its shutdown has begun
/// (and has read the clock for its deadline). `start` on a started engine
/// is a no-op, and `Stopped` once it stopped.
async fn until_stopped(engine: &Engine) {
    loop {
        match engine.start().await {
            Err(EngineError::Stopped) => return,
            Ok(()) => tokio::task::yield_now().await,
            Err(other) => panic!("unexpected: {other}"),
        }
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_that_ends_before_the_deadline_is_recorded(backend) {
        let clock = ManualClock::new(0);
        let (runs, gate, entered) = (Arc::default(), Arc::new(Semaphore::new(0)), Arc::new(Notify::new()));
        let engine = engine(backend.store(), &clock, &runs, &gate, &entered);
        engine.start().await.unwrap();
        engine.invoke("gated").id("g").await.unwrap();
        entered.notified().await;
        let shutting = tokio::spawn({
            let engine = engine.clone();
            async move { engine.shutdown_timeout(Duration::from_secs(60)).await }
        });
        until_stopped(&engine).await;
        gate.add_permits(1);
        let report = shutting.await.unwrap();
        assert_eq!(report.interrupted, 0, "{backend}");
        let meta = engine.get_metadata("gated", "g").await.unwrap().unwrap();
        assert!(matches!(meta.status, MetadataStatus::Completed(_)), "{backend}: {meta:?}");
        assert_eq!(engine.output::<u32>("gated", "g").await.unwrap(), 3, "{backend}");
        assert_eq!((runs.a.load(Ordering::SeqCst), runs.b.load(Ordering::SeqCst)), (1, 1));
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_past_the_deadline_stops_at_its_next_step_and_recovers(backend) {
        let mut backend = backend;
        let clock = ManualClock::new(0);
        let (runs, gate, entered) = (Arc::default(), Arc::new(Semaphore::new(0)), Arc::new(Notify::new()));
        {
            let engine = engine(backend.store(), &clock, &runs, &gate, &entered);
            engine.start().await.unwrap();
            engine.invoke("gated").id("g").await.unwrap();
            entered.notified().await;
            // With a deadline of zero the runs are told to stop at their
            // next boundary before the engine refuses work — here with step
            // `a` still in flight.
            let shutting = tokio::spawn({
                let engine = engine.clone();
                async move { engine.shutdown_timeout(Duration::ZERO).await }
            });
            until_stopped(&engine).await;
            gate.add_permits(1);
            let report = shutting.await.unwrap();
            assert_eq!(report.interrupted, 1, "{backend}");
            let snap_a = engine.get_metadata("gated", "g").await.unwrap().unwrap();
            assert_eq!(snap_a.status, MetadataStatus::Running, "{backend}: the run recorded an end");
            assert_eq!(runs.b.load(Ordering::SeqCst), 0, "{backend}: step b started after the deadline");
        }
        backend.reopen().unwrap();
        let engine = engine(backend.store(), &clock, &runs, &gate, &entered);
        engine.start().await.unwrap();
        let mut states = engine.subscribe("gated", "g").await.unwrap();
        while states.next().await.is_some() {}
        assert_eq!(engine.output::<u32>("gated", "g").await.unwrap(), 3, "{backend}");
        assert_eq!(
            (runs.a.load(Ordering::SeqCst), runs.b.load(Ordering::SeqCst)),
            (1, 1),
            "{backend}: step a, committed before the shutdown ended, ran again"
        );
        engine.shutdown().await;
    }
}
