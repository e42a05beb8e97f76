//! Step timeouts bound each attempt; a timed-out attempt is a retryable
//! failure, retried per the step's policy and dead-lettered when the
//! attempts run out.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{counter, fresh, get, guarded, step_record};
use memable_core::{Context, EngineError, RetryPolicy, StepError, StepState};

/// A step whose first `slow` attempts never finish (they wait forever) and
/// whose later ones succeed with the attempt number.
fn register_hanging(
    engine: &memable_core::Engine,
    calls: &common::Counter,
    slow: usize,
    policy: RetryPolicy,
) {
    let calls = calls.clone();
    engine
        .register("wf", move |ctx: Context| {
            let calls = calls.clone();
            async move {
                ctx.step("slow")
                    .timeout(Duration::from_millis(5))
                    .retry(policy)
                    .run(|| {
                        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                        async move {
                            if n <= slow {
                                std::future::pending::<()>().await;
                            }
                            Ok::<_, StepError>(n)
                        }
                    })
                    .await
            }
        })
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried_and_the_next_success_is_committed() {
    let (store, _clock, engine) = fresh();
    let calls = counter();
    register_hanging(&engine, &calls, 1, RetryPolicy::fixed(3, Duration::ZERO));
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<usize>()).await.unwrap(), 2);
    assert_eq!(get(&calls), 2);
    let record = step_record(&store, "wf", "1", "slow").await.unwrap();
    assert_eq!(record.state, StepState::Completed);
}

#[tokio::test(start_paused = true)]
async fn attempts_that_all_time_out_dead_letter_the_step_with_the_timeout_as_source() {
    let (store, _clock, engine) = fresh();
    let calls = counter();
    engine
        .register("wf", {
            let calls = calls.clone();
            move |ctx: Context| {
                let calls = calls.clone();
                async move {
                    let r = ctx
                        .step("slow")
                        .timeout(Duration::from_millis(5))
                        .retry(RetryPolicy::fixed(3, Duration::ZERO))
                        .run(|| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            std::future::pending::<Result<u8, StepError>>()
                        })
                        .await;
                    Ok(match r {
                        Err(EngineError::RetriesExhausted {
                            key,
                            attempts,
                            source,
                        }) => match source.downcast_ref::<EngineError>() {
                            Some(EngineError::StepTimeout { duration, .. }) => {
                                format!("{key}:{attempts}:{}", duration.as_millis())
                            }
                            _ => format!("unexpected source {source:?}"),
                        },
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
        "slow:3:5"
    );
    assert_eq!(get(&calls), 3);
    let record = step_record(&store, "wf", "1", "slow").await.unwrap();
    assert_eq!((record.state, record.attempts), (StepState::Failed, 3));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_recorded_as_a_retry_before_the_backoff() {
    let (store, clock, engine) = fresh();
    let calls = counter();
    register_hanging(
        &engine,
        &calls,
        1,
        RetryPolicy::fixed(2, Duration::from_secs(60)),
    );
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    guarded(async {
        loop {
            let record = step_record(&store, "wf", "1", "slow").await;
            if record.is_some_and(|r| r.state == StepState::Retrying && r.attempts == 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    common::quiesce().await;
    assert_eq!(get(&calls), 1, "retried before the 60 s backoff");
    clock.advance(Duration::from_secs(60));
    let state = common::settled(&engine, "wf", "1").await;
    assert!(state.is_terminal(), "{state:?}");
    assert_eq!(engine.output::<usize>("wf", "1").await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_step_runs_again_on_resume() {
    let (_store, _clock, engine) = fresh();
    let calls = counter();
    engine
        .register("wf", {
            let calls = calls.clone();
            move |ctx: Context| {
                let calls = calls.clone();
                async move {
                    // One attempt: the timeout dead-letters the step at once.
                    ctx.step("slow")
                        .timeout(Duration::from_millis(50))
                        .no_retry()
                        .run(|| {
                            let n = calls.fetch_add(1, Ordering::SeqCst);
                            async move {
                                if n == 0 {
                                    tokio::time::sleep(Duration::from_secs(10)).await;
                                }
                                Ok::<_, StepError>(n)
                            }
                        })
                        .await
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    match guarded(run.wait_output::<usize>()).await {
        Err(EngineError::WorkflowFailed { error, .. }) => {
            assert!(error.contains("timed out"), "{error}");
        }
        other => panic!("expected WorkflowFailed, got {other:?}"),
    }
    let run = engine.resume("wf", "1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<usize>()).await.unwrap(), 1);
    assert_eq!(get(&calls), 2);
}

#[tokio::test(start_paused = true)]
async fn the_timeout_bounds_each_attempt_not_the_whole_retry_sequence() {
    let (_store, _clock, engine) = fresh();
    let calls = counter();
    engine
        .register("wf", {
            let calls = calls.clone();
            move |ctx: Context| {
                let calls = calls.clone();
                async move {
                    ctx.step("call")
                        .timeout(Duration::from_millis(100))
                        .retry(RetryPolicy::fixed(3, Duration::ZERO))
                        .run(|| {
                            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                            async move {
                                tokio::time::sleep(Duration::from_millis(80)).await;
                                if n < 3 {
                                    Err(StepError::retryable("busy"))
                                } else {
                                    Ok(n)
                                }
                            }
                        })
                        .await
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<usize>()).await.unwrap(), 3);
    assert_eq!(get(&calls), 3);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_within_the_timeout_is_committed() {
    let (store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.step("quick")
                .timeout(Duration::from_secs(1))
                .run(|| async {
                    tokio::time::sleep(Duration::from_millis(999)).await;
                    Ok::<_, StepError>(String::from("done"))
                })
                .await
                .map(|s: String| s.len())
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert_eq!(guarded(run.wait_output::<usize>()).await.unwrap(), 4);
    assert!(step_record(&store, "wf", "1", "quick").await.is_some());
}
