//! The promise under change, from the user's side: a deploy that changed
//! the code of a suspended instance, signals that come early, in parallel
//! or either-or, waiting until the end, and a cancel that stops work. Every
//! test runs on every backend (see `support`); a "deploy" shuts the engine
//! down, reopens the store and starts an engine with the new code.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memable::{Context, Engine, EngineError, ManualClock, StepError, SuspendPoint, WorkflowState};

use support::{Backend, backend_tests};

static APPROVAL: SuspendPoint<u32> = SuspendPoint::new("approval");
static SECOND: SuspendPoint<String> = SuspendPoint::new("second");
static APPROVE: SuspendPoint<String> = SuspendPoint::new("approve");
static REJECT: SuspendPoint<u32> = SuspendPoint::new("reject");

const GUARD: Duration = Duration::from_secs(20);

async fn guarded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(GUARD, fut)
        .await
        .expect("did not finish within the test guard")
}

/// An engine over `backend`'s store and `clock`, started.
async fn engine_on(backend: &Backend, clock: &ManualClock, code: impl Fn(&Engine)) -> Engine {
    let engine = Engine::builder()
        .store(backend.store())
        .clock(clock.clone())
        .build();
    code(&engine);
    engine.start().await.unwrap();
    engine
}

/// Shuts `engine` down and reopens the store: the process goes away.
async fn deploy(engine: Engine, backend: &mut Backend) {
    engine.shutdown().await;
    drop(engine);
    backend.reopen().unwrap();
}

/// v1: one step, then waits at `approval`.
fn v1(engine: &Engine) {
    engine
        .register("order", |ctx: Context| async move {
            let n: u32 = ctx
                .step("price")
                .run(|| async { Ok::<_, StepError>(40u32) })
                .await?;
            let approved = ctx.suspend(&APPROVAL).await?;
            Ok(n + approved)
        })
        .unwrap();
}

/// Starts `order/o1` under v1 and leaves it suspended at `approval`.
async fn suspended_under_v1(backend: &mut Backend, clock: &ManualClock) {
    let engine = engine_on(backend, clock, v1).await;
    let state = guarded(engine.invoke("order").id("o1").await.unwrap().wait_idle())
        .await
        .unwrap();
    assert!(
        matches!(&state, WorkflowState::Suspended { key, .. } if key == "approval"),
        "{state:?}"
    );
    deploy(engine, backend).await;
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changed_code_that_no_longer_waits_completes_a_resumed_instance(backend) {
        let clock = ManualClock::new(0);
        suspended_under_v1(&mut backend, &clock).await;
        let priced = Arc::new(AtomicUsize::new(0));
        let engine = engine_on(&backend, &clock, |engine| {
            let priced = Arc::clone(&priced);
            engine
                .register("order", move |ctx: Context| {
                    let priced = Arc::clone(&priced);
                    async move {
                        let n: u32 = ctx
                            .step("price")
                            .run(|| async {
                                priced.fetch_add(1, Ordering::SeqCst);
                                Ok::<_, StepError>(0u32)
                            })
                            .await?;
                        let tax: u32 = ctx.step("tax").run(|| async { Ok::<_, StepError>(2u32) }).await?;
                        Ok(n + tax)
                    }
                })
                .unwrap();
        })
        .await;
        let out: u32 = guarded(engine.resume("order", "o1").await.unwrap().wait_output())
            .await
            .unwrap();
        assert_eq!(out, 42, "the committed price is replayed, the new step runs");
        assert_eq!(priced.load(Ordering::SeqCst), 0);
        assert_eq!(
            engine.state("order", "o1").await.unwrap(),
            WorkflowState::Completed { status: None }
        );
        assert_eq!(engine.output::<u32>("order", "o1").await.unwrap(), 42);
        // It stays recorded across another restart.
        deploy(engine, &mut backend).await;
        let engine = engine_on(&backend, &clock, v1).await;
        assert_eq!(engine.output::<u32>("order", "o1").await.unwrap(), 42);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changed_code_that_fails_fails_a_resumed_instance(backend) {
        let clock = ManualClock::new(0);
        suspended_under_v1(&mut backend, &clock).await;
        let engine = engine_on(&backend, &clock, |engine| {
            engine
                .register("order", |ctx: Context| async move {
                    let _: u32 = ctx.step("price").run(|| async { Ok::<_, StepError>(0u32) }).await?;
                    ctx.step("charge")
                        .run(|| async { Err::<u32, _>(StepError::permanent("card declined")) })
                        .await
                })
                .unwrap();
        })
        .await;
        let err = guarded(engine.resume("order", "o1").await.unwrap().wait_output::<u32>())
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::WorkflowFailed { .. }), "{err:?}");
        assert!(matches!(
            engine.state("order", "o1").await.unwrap(),
            WorkflowState::Failed { .. }
        ));
        assert!(matches!(
            engine.output::<u32>("order", "o1").await,
            Err(EngineError::WorkflowFailed { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changed_code_that_waits_elsewhere_suspends_there_and_completes_on_its_signal(backend) {
        let clock = ManualClock::new(0);
        suspended_under_v1(&mut backend, &clock).await;
        let engine = engine_on(&backend, &clock, |engine| {
            engine
                .register("order", |ctx: Context| async move {
                    let n: u32 = ctx.step("price").run(|| async { Ok::<_, StepError>(0u32) }).await?;
                    let note = ctx.suspend(&SECOND).await?;
                    Ok(format!("{n} {note}"))
                })
                .unwrap();
        })
        .await;
        let state = guarded(engine.resume("order", "o1").await.unwrap().wait_idle())
            .await
            .unwrap();
        assert!(
            matches!(&state, WorkflowState::Suspended { key, .. } if key == "second"),
            "{state:?}"
        );
        assert!(matches!(
            engine.state("order", "o1").await.unwrap(),
            WorkflowState::Suspended { key, .. } if key == "second"
        ));
        let out: String = guarded(
            engine
                .signal("order", "o1", &SECOND, "ok".to_owned())
                .await
                .unwrap()
                .wait_output(),
        )
        .await
        .unwrap();
        assert_eq!(out, "40 ok");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changed_code_that_waits_on_a_timer_fires_it_and_completes(backend) {
        let clock = ManualClock::new(0);
        suspended_under_v1(&mut backend, &clock).await;
        let engine = engine_on(&backend, &clock, |engine| {
            engine
                .register("order", |ctx: Context| async move {
                    let n: u32 = ctx.step("price").run(|| async { Ok::<_, StepError>(0u32) }).await?;
                    ctx.timer("cool-off", Duration::from_secs(3_600)).await?;
                    Ok(n + 1)
                })
                .unwrap();
        })
        .await;
        let run = engine.resume("order", "o1").await.unwrap();
        let state = guarded(run.wait_idle()).await.unwrap();
        assert!(
            matches!(&state, WorkflowState::Suspended { key, .. } if key == "cool-off"),
            "{state:?}"
        );
        clock.advance(Duration::from_secs(3_600));
        assert_eq!(guarded(run.wait_output::<u32>()).await.unwrap(), 41);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_early_signal_survives_a_restart_and_is_consumed_at_its_point(backend) {
        let clock = ManualClock::new(0);
        let code = |engine: &Engine| {
            engine
                .register("late", |ctx: Context| async move {
                    ctx.timer("first", Duration::from_secs(60)).await?;
                    ctx.suspend(&APPROVAL).await
                })
                .unwrap();
        };
        let engine = engine_on(&backend, &clock, code).await;
        guarded(engine.invoke("late").id("l").await.unwrap().wait_idle())
            .await
            .unwrap();
        // The webhook beats the workflow to its point.
        engine.signal("late", "l", &APPROVAL, 7).await.unwrap();
        assert!(matches!(
            engine.signal("late", "l", &APPROVAL, 8).await,
            Err(EngineError::SignalSuperseded { .. })
        ));
        deploy(engine, &mut backend).await;
        let engine = engine_on(&backend, &clock, code).await;
        let buffered = engine.buffered_signals("late", "l").await.unwrap();
        assert_eq!(buffered.len(), 1, "the buffered signal is durable");
        assert_eq!(buffered[0].0, "approval");
        let mut stream = engine.subscribe("late", "l").await.unwrap();
        clock.advance(Duration::from_secs(60));
        while guarded(stream.next()).await.is_some() {}
        assert_eq!(engine.output::<u32>("late", "l").await.unwrap(), 7);
        assert!(engine.buffered_signals("late", "l").await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_joined_suspensions_take_their_signals_in_either_order(backend) {
        let clock = ManualClock::new(0);
        let code = |engine: &Engine| {
            engine
                .register("pair", |ctx: Context| async move {
                    let (a, b) = tokio::join!(ctx.suspend(&APPROVAL), ctx.suspend(&SECOND));
                    Ok(format!("{}-{}", a?, b?))
                })
                .unwrap();
        };
        let engine = engine_on(&backend, &clock, code).await;
        for (id, second_first) in [("p1", true), ("p2", false)] {
            guarded(engine.invoke("pair").id(id).await.unwrap().wait_idle())
                .await
                .unwrap();
            // Back to back: the second arrives before the run the first
            // started has even begun.
            let run = if second_first {
                engine.signal("pair", id, &SECOND, "b".into()).await.unwrap();
                engine.signal("pair", id, &APPROVAL, 1).await.unwrap()
            } else {
                engine.signal("pair", id, &APPROVAL, 1).await.unwrap();
                engine.signal("pair", id, &SECOND, "b".into()).await.unwrap()
            };
            assert_eq!(guarded(run.wait_output::<String>()).await.unwrap(), "1-b", "{id}");
        }
        // One signal, a restart, then the other.
        guarded(engine.invoke("pair").id("p3").await.unwrap().wait_idle())
            .await
            .unwrap();
        guarded(engine.signal("pair", "p3", &SECOND, "z".into()).await.unwrap().wait_idle())
            .await
            .unwrap();
        deploy(engine, &mut backend).await;
        let engine = engine_on(&backend, &clock, code).await;
        let run = engine.signal("pair", "p3", &APPROVAL, 3).await.unwrap();
        assert_eq!(guarded(run.wait_output::<String>()).await.unwrap(), "3-z");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_of_several_points_and_a_deadline_has_exactly_one_winner(backend) {
        let clock = ManualClock::new(0);
        let code = |engine: &Engine| {
            engine
                .register("review", |ctx: Context| async move {
                    let first = ctx
                        .first_of("decision")
                        .or(&APPROVE)
                        .or(&REJECT)
                        .timeout(Duration::from_secs(3_600))
                        .await?;
                    Ok(if let Some(by) = first.value(&APPROVE)? {
                        format!("approved by {by}")
                    } else if let Some(code) = first.value(&REJECT)? {
                        format!("rejected {code}")
                    } else {
                        assert!(first.timed_out());
                        "timed out".to_owned()
                    })
                })
                .unwrap();
        };
        let engine = engine_on(&backend, &clock, code).await;
        for id in ["r1", "r2", "r3"] {
            guarded(engine.invoke("review").id(id).await.unwrap().wait_idle())
                .await
                .unwrap();
        }
        // r1: reject wins; the approve that follows is superseded.
        let run = engine.signal("review", "r1", &REJECT, 9).await.unwrap();
        assert!(matches!(
            engine.signal("review", "r1", &APPROVE, "ann".into()).await,
            Err(EngineError::SignalSuperseded { .. })
        ));
        assert_eq!(guarded(run.wait_output::<String>()).await.unwrap(), "rejected 9");
        // r2: approve wins, across a restart.
        engine.signal("review", "r2", &APPROVE, "bo".into()).await.unwrap();
        deploy(engine, &mut backend).await;
        let engine = engine_on(&backend, &clock, code).await;
        engine.wait_all().await;
        assert!(matches!(
            engine.signal("review", "r2", &REJECT, 1).await,
            Err(EngineError::SignalSuperseded { .. })
        ));
        let mut stream = engine.subscribe("review", "r3").await.unwrap();
        // r3: the deadline wins; a late signal is superseded.
        clock.advance(Duration::from_secs(3_600));
        while guarded(stream.next()).await.is_some() {}
        assert_eq!(engine.output::<String>("review", "r3").await.unwrap(), "timed out");
        assert!(matches!(
            engine.signal("review", "r3", &APPROVE, "late".into()).await,
            Err(EngineError::SignalSuperseded { .. })
        ));
        engine.wait_all().await;
        assert_eq!(engine.output::<String>("review", "r2").await.unwrap(), "approved by bo");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_early_signal_wins_a_first_of_group(backend) {
        let clock = ManualClock::new(0);
        let engine = engine_on(&backend, &clock, |engine| {
            engine
                .register("review", |ctx: Context| async move {
                    ctx.timer("queue", Duration::from_secs(60)).await?;
                    let first = ctx.first_of("decision").or(&APPROVE).or(&REJECT).await?;
                    Ok(first.point().map(str::to_owned))
                })
                .unwrap();
        })
        .await;
        let run = engine.invoke("review").id("e").await.unwrap();
        guarded(run.wait_idle()).await.unwrap();
        engine.signal("review", "e", &REJECT, 4).await.unwrap();
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            guarded(run.wait_output::<Option<String>>()).await.unwrap().as_deref(),
            Some("reject")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_output_waits_across_a_timer_and_a_signal(backend) {
        let clock = ManualClock::new(0);
        let engine = engine_on(&backend, &clock, |engine| {
            engine
                .register("slow", |ctx: Context| async move {
                    ctx.timer("nap", Duration::from_secs(600)).await?;
                    let n = ctx.suspend(&APPROVAL).await?;
                    Ok(n * 2)
                })
                .unwrap();
        })
        .await;
        let run = engine.invoke("slow").id("s").await.unwrap();
        let output = tokio::spawn(run.wait_output::<u32>());
        // Suspended at the timer, then at the point: the wait goes on.
        let mut stream = engine.subscribe("slow", "s").await.unwrap();
        while !matches!(guarded(stream.next()).await, Some(WorkflowState::Suspended { .. })) {}
        assert!(!output.is_finished());
        clock.advance(Duration::from_secs(600));
        loop {
            match guarded(stream.next()).await {
                Some(WorkflowState::Suspended { key, .. }) if key == "approval" => break,
                Some(_) => {}
                None => panic!("the stream ended before the instance waited at its point"),
            }
        }
        assert!(!output.is_finished());
        engine.signal("slow", "s", &APPROVAL, 21).await.unwrap();
        assert_eq!(guarded(output).await.unwrap().unwrap(), 42);
    }
}

/// A guard held by a step closure's future: counts the futures dropped.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_stops_in_flight_steps_and_nothing_commits_after_it(backend) {
        const STEPS: usize = 20;
        let clock = ManualClock::new(0);
        let started = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let engine = engine_on(&backend, &clock, |engine| {
            let (started, dropped, gate) = (started.clone(), dropped.clone(), gate.clone());
            engine
                .register("fan", move |ctx: Context| {
                    let (started, dropped, gate) = (started.clone(), dropped.clone(), gate.clone());
                    async move {
                        let steps = (0..STEPS).map(|i| {
                            let (started, dropped, gate) =
                                (started.clone(), dropped.clone(), gate.clone());
                            let ctx = ctx.clone();
                            async move {
                                ctx.step(format!("part:{i}"))
                                    .run(move || {
                                        let (started, dropped, gate) =
                                            (started.clone(), dropped.clone(), gate.clone());
                                        async move {
                                            let _guard = Dropped(dropped);
                                            started.fetch_add(1, Ordering::SeqCst);
                                            gate.notified().await;
                                            Ok::<_, StepError>(i)
                                        }
                                    })
                                    .await
                            }
                        });
                        let parts = futures_util::future::join_all(steps).await;
                        Ok(parts.into_iter().collect::<Result<Vec<_>, _>>()?.len())
                    }
                })
                .unwrap();
        })
        .await;
        let run = engine.invoke("fan").id("f").await.unwrap();
        while started.load(Ordering::SeqCst) < STEPS {
            tokio::task::yield_now().await;
        }
        engine.cancel("fan", "f").await.unwrap();
        assert_eq!(guarded(run.wait()).await.unwrap(), WorkflowState::Cancelled);
        engine.wait_all().await;
        assert_eq!(dropped.load(Ordering::SeqCst), STEPS, "every in-flight step future was dropped");
        gate.notify_waiters();
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        let snapshot = backend
            .store()
            .load_instance(&memable::InstanceKey::new("fan", "f").unwrap())
            .await
            .unwrap()
            .unwrap();
        let parts = snapshot
            .steps
            .iter()
            .filter(|(key, _)| key.starts_with("part:"))
            .count();
        assert_eq!(parts, 0, "a step committed into the cancelled instance");
        assert_eq!(
            engine.state("fan", "f").await.unwrap(),
            WorkflowState::Cancelled
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_context_that_outlives_its_run_cannot_run_a_step(backend) {
        let clock = ManualClock::new(0);
        let (tx, rx) = tokio::sync::oneshot::channel::<Context>();
        let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
        let ran = Arc::new(AtomicUsize::new(0));
        let engine = engine_on(&backend, &clock, |engine| {
            let tx = tx.clone();
            engine
                .register("leaky", move |ctx: Context| {
                    let tx = tx.clone();
                    async move {
                        if let Some(tx) = tx.lock().unwrap().take() {
                            let _ = tx.send(ctx.clone());
                        }
                        Ok(())
                    }
                })
                .unwrap();
        })
        .await;
        guarded(engine.invoke("leaky").id("k").await.unwrap().wait_output::<()>())
            .await
            .unwrap();
        let leaked = rx.await.unwrap();
        let err = leaked
            .step("late")
            .run(|| {
                ran.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, StepError>(1u8) }
            })
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::RunEnded { .. }), "{err:?}");
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        let snapshot = backend
            .store()
            .load_instance(&memable::InstanceKey::new("leaky", "k").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(snapshot.step("late").is_none());
    }
}
