//! Step timeouts bound each attempt; a timeout is not retried and persists
//! nothing.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{counter, fresh, get, guarded, step_record};
use memable_core::{Context, EngineError, RetryPolicy, StepError};

#[tokio::test(start_paused = true)]
async fn an_attempt_longer_than_the_timeout_is_a_step_timeout_and_persists_nothing() {
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
                        .timeout(Duration::from_millis(50))
                        .retry(RetryPolicy::fixed(5, Duration::ZERO))
                        .run(|| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            async {
                                tokio::time::sleep(Duration::from_secs(10)).await;
                                Ok::<_, StepError>(1u8)
                            }
                        })
                        .await;
                    Ok(match r {
                        Err(EngineError::StepTimeout { key, duration }) => {
                            format!("{key}:{}", duration.as_millis())
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
        "slow:50"
    );
    assert_eq!(get(&calls), 1, "a timed-out attempt was retried");
    assert!(step_record(&store, "wf", "1", "slow").await.is_none());
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
                    ctx.step("slow")
                        .timeout(Duration::from_millis(50))
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
