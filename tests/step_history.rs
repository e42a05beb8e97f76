//! `Engine::step_history` on every backend (see `support`): what an
//! operator reads about an instance's steps — in order of completion, with
//! the attempts made (the successful one included), the times on the
//! engine's clock, the values as JSON, the error of a dead letter, the
//! points still waiting with their deadlines, and the signals buffered for
//! points not reached yet. The history is the same after the store is
//! reopened, and a step retried across a restart keeps the start of its
//! first attempt.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use memable::{
    Context, Engine, EngineError, ManualClock, RetryPolicy, StepError, StepKind, StepState,
    StepStore, SuspendPoint,
};
use serde_json::json;
use tokio::sync::Notify;

use support::backend_tests;

static APPROVE: SuspendPoint<String> = SuspendPoint::new("approve");
static LATER: SuspendPoint<u32> = SuspendPoint::new("later");

/// `order`: step `z` (10 ms on the clock), then step `a`, which fails twice
/// (5 ms each attempt) and succeeds on its third attempt.
fn order_engine(store: Arc<dyn StepStore>, clock: &ManualClock) -> Engine {
    let engine = Engine::builder().store(store).clock(clock.clone()).build();
    let clock = clock.clone();
    engine
        .register("order", move |ctx: Context| {
            let clock = clock.clone();
            async move {
                let z = ctx
                    .step("z")
                    .run(|| {
                        let clock = clock.clone();
                        async move {
                            clock.advance(Duration::from_millis(10));
                            Ok::<_, StepError>("zed".to_string())
                        }
                    })
                    .await?;
                let calls = AtomicU32::new(0);
                let a = ctx
                    .step("a")
                    .retry(RetryPolicy::fixed(5, Duration::ZERO))
                    .run(|| {
                        let clock = clock.clone();
                        let call = calls.fetch_add(1, Ordering::SeqCst);
                        async move {
                            clock.advance(Duration::from_millis(5));
                            if call < 2 {
                                Err(StepError::retryable("503"))
                            } else {
                                Ok(vec![1u8, 2])
                            }
                        }
                    })
                    .await?;
                Ok(format!("{z}{}", a.len()))
            }
        })
        .unwrap();
    engine
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn steps_come_in_order_of_completion_with_attempts_times_and_values(backend) {
        let mut backend = backend;
        let clock = ManualClock::new(1_000);
        let engine = order_engine(backend.store(), &clock);
        engine.start().await.unwrap();
        let out: String = engine.invoke("order").id("o").await.unwrap().wait_output().await.unwrap();
        assert_eq!(out, "zed2");
        let history = engine.step_history("order", "o").await.unwrap();
        let keys: Vec<_> = history.steps.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["z", "a"], "{backend}: completion order, not key order");
        let (z, a) = (&history.steps[0], &history.steps[1]);
        assert_eq!((z.state, z.kind), (StepState::Completed, StepKind::Step));
        assert_eq!((z.attempts, z.started_at_ms, z.completed_at_ms), (1, Some(1_000), Some(1_010)));
        assert_eq!(z.value, Some(json!("zed")));
        assert_eq!(z.type_tag, "String");
        assert_eq!((a.attempts, a.started_at_ms, a.completed_at_ms), (3, Some(1_010), Some(1_025)));
        assert_eq!(a.value, Some(json!([1, 2])));
        assert_eq!(a.error, None);
        assert!(history.timers.is_empty() && history.buffered_signals.is_empty());
        engine.shutdown().await;
        drop(engine);

        // The same history from the reopened store, on an engine never started.
        backend.reopen().unwrap();
        let reopened = Engine::builder().store(backend.store()).build();
        assert_eq!(reopened.step_history("order", "o").await.unwrap(), history, "{backend}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_points_deadlines_buffered_signals_and_dead_letters_are_shown(backend) {
        let clock = ManualClock::new(5_000);
        let engine = Engine::builder().store(backend.store()).clock(clock.clone()).build();
        engine
            .register("approval", |ctx: Context| async move {
                let draft = ctx.step("draft").run(|| async { Ok::<_, StepError>(7u32) }).await?;
                let verdict = ctx.suspend(&APPROVE).timeout(Duration::from_secs(3_600)).await?;
                let later = ctx.suspend(&LATER).await?;
                Ok(format!("{draft}{verdict:?}{later}"))
            })
            .unwrap();
        engine
            .register("flaky", |ctx: Context| async move {
                ctx.step("call")
                    .retry(RetryPolicy::fixed(2, Duration::ZERO))
                    .run(|| async { Err::<u32, _>(StepError::retryable("503 from upstream")) })
                    .await
            })
            .unwrap();
        engine.start().await.unwrap();
        engine.invoke("approval").id("p").await.unwrap().wait_idle().await.unwrap();
        clock.advance(Duration::from_millis(250));
        engine.signal("approval", "p", &LATER, 42).await.unwrap();

        let history = engine.step_history("approval", "p").await.unwrap();
        let keys: Vec<_> = history.steps.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["draft", "approve"], "{backend}");
        let waiting = &history.steps[1];
        assert_eq!((waiting.state, waiting.kind), (StepState::Suspended, StepKind::Suspend));
        assert_eq!((waiting.started_at_ms, waiting.completed_at_ms), (Some(5_000), None));
        assert_eq!(waiting.deadline_ms, Some(5_000 + 3_600_000));
        assert_eq!(waiting.value, None);
        assert_eq!(history.timers.len(), 1);
        assert_eq!((history.timers[0].key.as_str(), history.timers[0].deadline_ms), ("approve", 3_605_000));
        assert_eq!(history.buffered_signals.len(), 1, "{backend}");
        let buffered = &history.buffered_signals[0];
        assert_eq!((buffered.point.as_str(), buffered.value.clone()), ("later", Some(json!(42))));
        assert_eq!(buffered.received_at_ms, Some(5_250));

        // The signal completes the point: its wait began when it was reached.
        clock.advance(Duration::from_millis(750));
        let out: String = engine
            .signal("approval", "p", &APPROVE, "yes".to_string())
            .await
            .unwrap()
            .wait_output()
            .await
            .unwrap();
        assert_eq!(out, "7Some(\"yes\")42");
        let history = engine.step_history("approval", "p").await.unwrap();
        let keys: Vec<_> = history.steps.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["draft", "approve", "later"], "{backend}");
        let approve = &history.steps[1];
        assert_eq!((approve.state, approve.started_at_ms, approve.completed_at_ms), (StepState::Completed, Some(5_000), Some(6_000)));
        assert_eq!(approve.value, Some(json!("yes")));
        assert!(history.timers.is_empty() && history.buffered_signals.is_empty());

        // A dead letter: its attempts and its error.
        let err = engine.invoke("flaky").id("f").await.unwrap().wait_output::<u32>().await.unwrap_err();
        assert!(matches!(err, EngineError::WorkflowFailed { .. }), "{err:?}");
        let history = engine.step_history("flaky", "f").await.unwrap();
        let call = &history.steps[0];
        assert_eq!((call.state, call.attempts), (StepState::Failed, 2));
        assert_eq!(call.error.as_deref(), Some("503 from upstream"));
        assert_eq!((call.started_at_ms, call.completed_at_ms), (Some(6_000), None));
        engine.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_retried_across_a_restart_keeps_its_first_start(backend) {
        let mut backend = backend;
        let clock = ManualClock::new(1_000);
        let failed = Arc::new(Notify::new());
        let tried = Arc::new(AtomicBool::new(false));
        let build = |store: Arc<dyn StepStore>| {
            let engine = Engine::builder().store(store).clock(clock.clone()).build();
            let (failed, tried) = (Arc::clone(&failed), Arc::clone(&tried));
            engine
                .register("slow_retry", move |ctx: Context| {
                    let (failed, tried) = (Arc::clone(&failed), Arc::clone(&tried));
                    async move {
                        ctx.step("call")
                            .retry(RetryPolicy::fixed(3, Duration::from_secs(3_600)))
                            .run(|| {
                                let failed = Arc::clone(&failed);
                                let first = !tried.swap(true, Ordering::SeqCst);
                                async move {
                                    if first {
                                        failed.notify_one();
                                        Err(StepError::retryable("busy"))
                                    } else {
                                        Ok::<_, StepError>(1u8)
                                    }
                                }
                            })
                            .await
                    }
                })
                .unwrap();
            engine
        };
        {
            let engine = build(backend.store());
            engine.start().await.unwrap();
            engine.invoke("slow_retry").id("r").await.unwrap();
            failed.notified().await;
            // The failure is committed before the backoff starts (a group
            // commit on a busy disk may take a while: wait for it, bounded).
            let recorded = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    let history = engine.step_history("slow_retry", "r").await.unwrap();
                    if history.steps.first().is_some_and(|s| s.state == StepState::Retrying) {
                        return history;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
            let retrying = recorded.expect("the failed attempt is recorded");
            assert_eq!((retrying.steps[0].attempts, retrying.steps[0].started_at_ms), (1, Some(1_000)));
            assert_eq!(retrying.steps[0].error.as_deref(), Some("busy"));
            // Stopped in its backoff: the next engine goes on from the record.
            let report = engine.shutdown_timeout(Duration::ZERO).await;
            assert_eq!(report.interrupted, 1, "{backend}");
        }
        backend.reopen().unwrap();
        clock.set(9_000);
        let engine = build(backend.store());
        engine.start().await.unwrap();
        let out: u8 = engine.resume("slow_retry", "r").await.unwrap().wait_output().await.unwrap();
        assert_eq!(out, 1);
        let call = &engine.step_history("slow_retry", "r").await.unwrap().steps[0];
        assert_eq!((call.state, call.attempts), (StepState::Completed, 2), "{backend}");
        assert_eq!((call.started_at_ms, call.completed_at_ms), (Some(1_000), Some(9_000)));
        engine.shutdown().await;
    }
}
