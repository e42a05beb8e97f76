//! Retry policies, dead letters and the durability of a retry budget.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    Counter, counter, engine_on, fail_retryable, fresh, get, guarded, quiesce, step_record, until,
};
use memable_core::{
    Context, Engine, EngineError, ManualClock, MemoryStore, RetryPolicy, StepError, StepState,
    SuspendPoint,
};

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn fixed_policy_waits_the_same_delay_every_time() {
    let p = RetryPolicy::fixed(4, MS(250));
    assert_eq!(p.max_attempts(), 4);
    for attempt in 1..=10 {
        assert_eq!(p.delay_for(attempt), MS(250));
    }
}

#[test]
fn exponential_policy_doubles_and_caps_at_thirty_seconds_by_default() {
    let p = RetryPolicy::exponential(10, MS(500));
    let delays: Vec<Duration> = (1..=8).map(|a| p.delay_for(a)).collect();
    assert_eq!(
        delays,
        [
            MS(500),
            MS(1_000),
            MS(2_000),
            MS(4_000),
            MS(8_000),
            MS(16_000),
            MS(30_000),
            MS(30_000)
        ]
    );
}

#[test]
fn exponential_policy_respects_a_custom_cap() {
    let p = RetryPolicy::exponential(10, MS(100)).with_max_delay(MS(350));
    let delays: Vec<Duration> = (1..=4).map(|a| p.delay_for(a)).collect();
    assert_eq!(delays, [MS(100), MS(200), MS(350), MS(350)]);
}

#[test]
fn jitter_only_shortens_the_delay_within_its_fraction() {
    let p = RetryPolicy::exponential(5, Duration::from_secs(2)).with_jitter(0.5);
    let mut seen_shorter = false;
    for _ in 0..500 {
        let d = p.jittered_delay_for(2);
        assert!(
            d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
            "{d:?}"
        );
        seen_shorter |= d < Duration::from_secs(4);
    }
    assert!(seen_shorter, "jitter never changed the delay");
    let none = RetryPolicy::fixed(2, MS(300));
    assert_eq!(none.jittered_delay_for(1), MS(300));
}

#[test]
fn none_and_zero_attempts_mean_a_single_attempt() {
    assert_eq!(RetryPolicy::none().max_attempts(), 1);
    assert_eq!(RetryPolicy::exponential(0, MS(1)).max_attempts(), 1);
}

/// A workflow with one step "call" whose attempts fail `fails` times then
/// succeed; the step's retry configuration is chosen by `configure`.
fn register_flaky(
    engine: &Engine,
    calls: &Counter,
    fails: usize,
    configure: fn(memable_core::StepBuilder<'_>) -> memable_core::StepBuilder<'_>,
) {
    let calls = calls.clone();
    engine
        .register("wf", move |ctx: Context| {
            let calls = calls.clone();
            async move {
                configure(ctx.step("call"))
                    .run(|| {
                        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                        async move {
                            if n <= fails {
                                Err(StepError::retryable(format!("attempt {n} failed")))
                            } else {
                                Ok(n)
                            }
                        }
                    })
                    .await
            }
        })
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_retryable_failure_is_retried_until_it_succeeds() {
    let (_store, _clock, engine) = fresh();
    let calls = counter();
    register_flaky(&engine, &calls, 2, |s| {
        s.retry(RetryPolicy::fixed(3, Duration::ZERO))
    });
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<usize>()).await.unwrap(), 3);
    assert_eq!(get(&calls), 3);
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_dead_letter_the_step() {
    let (store, _clock, engine) = fresh();
    let calls = counter();
    register_flaky(&engine, &calls, usize::MAX, |s| {
        s.retry(RetryPolicy::fixed(4, Duration::ZERO))
    });
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    match guarded(run.wait_output::<usize>()).await {
        Err(EngineError::WorkflowFailed { error, .. }) => {
            assert!(error.contains("after 4 attempts"), "{error}");
            assert!(error.contains("attempt 4 failed"), "{error}");
        }
        other => panic!("expected WorkflowFailed, got {other:?}"),
    }
    assert_eq!(get(&calls), 4);
    let record = step_record(&store, "wf", "1", "call").await.unwrap();
    assert_eq!(record.state, StepState::Failed);
    assert_eq!(record.attempts, 4);
    assert_eq!(record.error.as_deref(), Some("attempt 4 failed"));
}

#[tokio::test(start_paused = true)]
async fn retries_exhausted_is_the_error_the_workflow_sees() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            let calls = counter();
            let r = ctx
                .step("call")
                .retry(RetryPolicy::fixed(2, Duration::ZERO))
                .run(|| fail_retryable::<()>(&calls))
                .await;
            Ok(match r {
                Err(EngineError::RetriesExhausted {
                    key,
                    attempts,
                    source,
                }) => {
                    format!("{key}:{attempts}:{source}")
                }
                other => format!("unexpected {other:?}"),
            })
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(
        guarded(run.wait_output::<String>()).await.unwrap(),
        "call:2:attempt 2 failed"
    );
}

#[tokio::test(start_paused = true)]
async fn the_engine_default_policy_applies_to_steps_without_their_own() {
    let engine = Engine::builder()
        .in_memory()
        .default_retry(RetryPolicy::fixed(5, Duration::ZERO))
        .build();
    let calls = counter();
    register_flaky(&engine, &calls, usize::MAX, |s| s);
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    let err = guarded(run.wait_output::<usize>()).await.unwrap_err();
    assert!(err.to_string().contains("after 5 attempts"), "{err}");
    assert_eq!(get(&calls), 5);
}

#[tokio::test(start_paused = true)]
async fn a_step_policy_overrides_the_engine_default() {
    let engine = Engine::builder()
        .in_memory()
        .default_retry(RetryPolicy::none())
        .build();
    let calls = counter();
    register_flaky(&engine, &calls, 5, |s| {
        s.retry(RetryPolicy::fixed(6, Duration::ZERO))
    });
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<usize>()).await.unwrap(), 6);
    assert_eq!(get(&calls), 6);
}

#[tokio::test(start_paused = true)]
async fn no_retry_overrides_a_generous_default() {
    let engine = Engine::builder()
        .in_memory()
        .default_retry(RetryPolicy::fixed(10, Duration::ZERO))
        .build();
    let calls = counter();
    // The method path is not higher-ranked over the builder's lifetime.
    #[allow(clippy::redundant_closure_for_method_calls)]
    register_flaky(&engine, &calls, 1, |s| s.no_retry());
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    let err = guarded(run.wait_output::<usize>()).await.unwrap_err();
    assert!(err.to_string().contains("after 1 attempts"), "{err}");
    assert_eq!(get(&calls), 1);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_is_never_retried() {
    let (store, _clock, engine) = fresh();
    let calls = counter();
    engine
        .register("wf", {
            let calls = calls.clone();
            move |ctx: Context| {
                let calls = calls.clone();
                async move {
                    let r = ctx
                        .step("call")
                        .retry(RetryPolicy::fixed(5, Duration::ZERO))
                        .run(|| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            async { Err::<(), _>(StepError::permanent("bad request")) }
                        })
                        .await;
                    Ok(match r {
                        Err(EngineError::StepFailed {
                            key,
                            source,
                            retryable,
                        }) => {
                            format!("{key}:{source}:{retryable}")
                        }
                        other => format!("unexpected {other:?}"),
                    })
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(
        guarded(run.wait_output::<String>()).await.unwrap(),
        "call:bad request:false"
    );
    assert_eq!(get(&calls), 1);
    let record = step_record(&store, "wf", "1", "call").await;
    assert!(
        record
            .as_ref()
            .is_none_or(|r| r.state != StepState::Completed),
        "a permanent failure must not be memoised as a result: {record:?}"
    );
}

static GO_ON: SuspendPoint<u8> = SuspendPoint::new("go-on");

#[tokio::test(start_paused = true)]
async fn a_dead_letter_is_memoised_for_later_runs_that_are_not_resumes() {
    let (_store, _clock, engine) = fresh();
    let calls = counter();
    engine
        .register("wf", {
            let calls = calls.clone();
            move |ctx: Context| {
                let calls = calls.clone();
                async move {
                    let r = ctx
                        .step("call")
                        .retry(RetryPolicy::fixed(2, Duration::ZERO))
                        .run(|| fail_retryable::<u8>(&calls))
                        .await;
                    let dead = matches!(r, Err(EngineError::RetriesExhausted { attempts: 2, .. }));
                    ctx.suspend(&GO_ON).await?;
                    Ok(dead)
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    guarded(run.wait_idle()).await.unwrap();
    assert_eq!(get(&calls), 2);
    // The signal triggers an ordinary run: the dead letter is replayed.
    let run = engine.signal("wf", "1", &GO_ON, 1).await.unwrap();
    assert!(guarded(run.wait_output::<bool>()).await.unwrap());
    assert_eq!(
        get(&calls),
        2,
        "a dead-lettered step ran again without resume"
    );
}

#[tokio::test(start_paused = true)]
async fn resume_retries_a_dead_letter_with_a_fresh_budget() {
    let (store, _clock, engine) = fresh();
    let calls = counter();
    // Fails 5 times: 3 attempts in the first run, then 2 more + a success.
    register_flaky(&engine, &calls, 5, |s| {
        s.retry(RetryPolicy::fixed(3, Duration::ZERO))
    });
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert!(guarded(run.wait_output::<usize>()).await.is_err());
    assert_eq!(get(&calls), 3);
    let run = engine.resume("wf", "1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<usize>()).await.unwrap(), 6);
    assert_eq!(get(&calls), 6);
    let record = step_record(&store, "wf", "1", "call").await.unwrap();
    assert_eq!(record.state, StepState::Completed);
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_on_the_engine_clock() {
    let (_store, clock, engine) = fresh();
    let calls = counter();
    register_flaky(&engine, &calls, 2, |s| {
        s.retry(RetryPolicy::exponential(3, Duration::from_secs(10)))
    });
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    until("first attempt", || get(&calls) == 1).await;
    clock.advance(Duration::from_millis(9_999));
    quiesce().await;
    assert_eq!(get(&calls), 1, "retried before the 10 s backoff elapsed");
    clock.advance(MS(1));
    until("second attempt", || get(&calls) == 2).await;
    // Second delay doubles to 20 s.
    clock.advance(Duration::from_millis(19_999));
    quiesce().await;
    assert_eq!(get(&calls), 2, "retried before the 20 s backoff elapsed");
    clock.advance(MS(1));
    let state = common::settled(&engine, "wf", "1").await;
    assert!(state.is_terminal(), "{state:?}");
    assert_eq!(engine.output::<usize>("wf", "1").await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_retryable_failure_is_recorded_durably_before_the_backoff() {
    let (store, clock, engine) = fresh();
    let calls = counter();
    register_flaky(&engine, &calls, usize::MAX, |s| {
        s.retry(RetryPolicy::fixed(3, Duration::from_secs(3600)))
    });
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    until("first attempt", || get(&calls) == 1).await;
    quiesce().await;
    let record = step_record(&store, "wf", "1", "call").await.unwrap();
    assert_eq!(record.state, StepState::Retrying);
    assert_eq!(record.attempts, 1);
    assert_eq!(record.error.as_deref(), Some("attempt 1 failed"));
    assert_eq!(get(&calls), 1);
    drop(clock);
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_backoff_does_not_grant_a_fresh_budget() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(0);
    let engine = engine_on(&store, &clock);
    let calls = counter();
    register_flaky(&engine, &calls, usize::MAX, |s| {
        s.retry(RetryPolicy::fixed(3, Duration::from_secs(60)))
    });
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    until("first attempt", || get(&calls) == 1).await;
    quiesce().await;
    engine.abort(); // crash in the middle of the 60 s backoff
    quiesce().await;

    let restarted = engine_on(&store, &clock);
    let after = counter();
    register_flaky(&restarted, &after, usize::MAX, |s| {
        s.retry(RetryPolicy::fixed(3, Duration::ZERO))
    });
    restarted.start().await.unwrap();
    common::settled(&restarted, "wf", "1").await;
    assert_eq!(get(&after), 2, "the restarted run got a fresh budget");
    let record = step_record(&store, "wf", "1", "call").await.unwrap();
    assert_eq!((record.state, record.attempts), (StepState::Failed, 3));
    let err = restarted.output::<usize>("wf", "1").await.unwrap_err();
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_dead_lettered_key_reused_in_the_same_run_is_not_attempted_again() {
    let (_store, _clock, engine) = fresh();
    let calls = counter();
    engine
        .register("wf", {
            let calls = calls.clone();
            move |ctx: Context| {
                let calls = calls.clone();
                async move {
                    let policy = RetryPolicy::fixed(2, Duration::ZERO);
                    let first = ctx
                        .step("call")
                        .retry(policy)
                        .run(|| fail_retryable::<u8>(&calls))
                        .await;
                    let second = ctx
                        .step("call")
                        .retry(policy)
                        .run(|| fail_retryable::<u8>(&calls))
                        .await;
                    Ok([first, second].iter().all(|r| {
                        matches!(r, Err(EngineError::RetriesExhausted { attempts: 2, .. }))
                    }))
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert!(guarded(run.wait_output::<bool>()).await.unwrap());
    assert_eq!(get(&calls), 2);
}

#[tokio::test(start_paused = true)]
async fn a_fractional_millisecond_backoff_is_rounded_up_not_down() {
    let (_store, clock, engine) = fresh();
    let calls = counter();
    register_flaky(&engine, &calls, 1, |s| {
        s.retry(RetryPolicy::fixed(2, Duration::from_micros(1_500)))
    });
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    until("first attempt", || get(&calls) == 1).await;
    clock.advance(MS(1));
    quiesce().await;
    assert_eq!(get(&calls), 1, "retried 1 ms into a 1.5 ms backoff");
    clock.advance(MS(1));
    until("second attempt", || get(&calls) == 2).await;
    let state = common::settled(&engine, "wf", "1").await;
    assert!(state.is_terminal(), "{state:?}");
    assert_eq!(engine.output::<usize>("wf", "1").await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_sub_millisecond_backoff_still_waits_for_the_clock() {
    let (_store, clock, engine) = fresh();
    let calls = counter();
    register_flaky(&engine, &calls, 1, |s| {
        s.retry(RetryPolicy::fixed(2, Duration::from_micros(300)))
    });
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    until("first attempt", || get(&calls) == 1).await;
    quiesce().await;
    assert_eq!(get(&calls), 1, "a 300 µs backoff did not wait at all");
    clock.advance(MS(1));
    until("second attempt", || get(&calls) == 2).await;
    let state = common::settled(&engine, "wf", "1").await;
    assert!(state.is_terminal(), "{state:?}");
}
