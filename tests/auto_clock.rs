//! `AutoAdvanceClock` on every backend: a day's timer, minutes of retry
//! backoff and timers in order finish by themselves, with exactly the
//! skipped time on the clock (see `support`).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use memable::{AutoAdvanceClock, Clock, Context, Engine, RetryPolicy, StepError};

use support::backend_tests;

const START: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;
/// A hang fails the test instead of blocking the suite (real time; nothing
/// waits on it when the clock works).
const GUARD: Duration = Duration::from_secs(30);

async fn finished<O: serde::de::DeserializeOwned + 'static>(
    engine: &Engine,
    workflow: &str,
    id: &str,
) -> O {
    tokio::time::timeout(GUARD, async {
        let mut states = engine.subscribe(workflow, id).await.unwrap();
        while states.next().await.is_some() {}
    })
    .await
    .unwrap_or_else(|_| panic!("{workflow}/{id} did not finish"));
    engine.output(workflow, id).await.unwrap()
}

backend_tests! {
    #[tokio::test]
    async fn a_workflow_that_waits_a_day_finishes_at_once(backend) {
        let clock = AutoAdvanceClock::new(START);
        let engine = Engine::builder().store(backend.store()).clock(clock.clone()).build();
        engine
            .register("trial", |ctx: Context| async move {
                ctx.timer("day", Duration::from_secs(86_400)).await?;
                ctx.step("convert")
                    .run(|| async { Ok::<_, StepError>(7u32) })
                    .await
            })
            .unwrap();
        engine.start().await.unwrap();

        engine.invoke("trial").id("u1").await.unwrap();
        assert_eq!(finished::<u32>(&engine, "trial", "u1").await, 7);
        assert_eq!(clock.now_ms(), START + 24 * HOUR);
    }

    #[tokio::test]
    async fn minutes_of_retry_backoff_pass_at_once(backend) {
        let clock = AutoAdvanceClock::new(START);
        let engine = Engine::builder().store(backend.store()).clock(clock.clone()).build();
        let calls = Arc::new(Mutex::new(0u32));
        let seen = Arc::clone(&calls);
        engine
            .register("flaky", move |ctx: Context| {
                let seen = Arc::clone(&seen);
                async move {
                    ctx.step("call")
                        .retry(RetryPolicy::fixed(3, Duration::from_secs(60)))
                        .run(|| {
                            let mut n = seen.lock().unwrap();
                            *n += 1;
                            let n = *n;
                            async move {
                                if n < 3 {
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
        engine.start().await.unwrap();

        engine.invoke("flaky").id("f1").await.unwrap();
        assert_eq!(finished::<u32>(&engine, "flaky", "f1").await, 3);
        let moved = clock.now_ms() - START;
        assert!((120_000..=120_004).contains(&moved), "moved {moved} ms");
    }

    #[tokio::test]
    async fn timers_of_one_and_two_hours_fire_in_order(backend) {
        let clock = AutoAdvanceClock::new(START);
        let engine = Engine::builder().store(backend.store()).clock(clock.clone()).build();
        let fired = Arc::new(Mutex::new(Vec::new()));
        let (log, probe) = (Arc::clone(&fired), clock.clone());
        engine
            .register("nap", move |ctx: Context| {
                let (log, probe) = (Arc::clone(&log), probe.clone());
                async move {
                    let hours: u64 = ctx.input()?;
                    ctx.timer("nap", Duration::from_secs(hours * 3_600)).await?;
                    let id = ctx.instance_id().to_string();
                    ctx.step("woke")
                        .run(|| {
                            log.lock().unwrap().push((id.clone(), probe.now_ms()));
                            async { Ok::<_, StepError>(()) }
                        })
                        .await
                }
            })
            .unwrap();
        engine.start().await.unwrap();

        // Both start at the same "now": the test's own invocations are work
        // the clock cannot see.
        let hold = clock.hold();
        engine.invoke("nap").id("two").input(2u64).await.unwrap();
        engine.invoke("nap").id("one").input(1u64).await.unwrap();
        drop(hold);

        finished::<()>(&engine, "nap", "two").await;
        finished::<()>(&engine, "nap", "one").await;
        assert_eq!(
            *fired.lock().unwrap(),
            [
                ("one".to_string(), START + HOUR),
                ("two".to_string(), START + 2 * HOUR),
            ]
        );
        assert_eq!(clock.now_ms(), START + 2 * HOUR);
    }

    #[tokio::test]
    async fn a_timer_set_while_a_later_one_is_pending_fires_first(backend) {
        let clock = AutoAdvanceClock::new(START);
        let engine = Engine::builder().store(backend.store()).clock(clock.clone()).build();
        let fired = Arc::new(Mutex::new(Vec::new()));
        let (log, probe) = (Arc::clone(&fired), clock.clone());
        let (open, gate) = tokio::sync::oneshot::channel::<()>();
        let gate = Arc::new(Mutex::new(Some(gate)));
        engine
            .register("nap", move |ctx: Context| {
                let (log, probe, gate) = (Arc::clone(&log), probe.clone(), Arc::clone(&gate));
                async move {
                    let hours: u64 = ctx.input()?;
                    // The gated instance does real work before its timer.
                    ctx.step("work")
                        .run(|| {
                            let gate = if hours == 1 {
                                gate.lock().unwrap().take()
                            } else {
                                None
                            };
                            async move {
                                if let Some(gate) = gate {
                                    gate.await.map_err(StepError::permanent)?;
                                }
                                Ok::<_, StepError>(())
                            }
                        })
                        .await?;
                    ctx.timer("nap", Duration::from_secs(hours * 3_600)).await?;
                    let id = ctx.instance_id().to_string();
                    ctx.step("woke")
                        .run(|| {
                            log.lock().unwrap().push((id.clone(), probe.now_ms()));
                            async { Ok::<_, StepError>(()) }
                        })
                        .await
                }
            })
            .unwrap();
        engine.start().await.unwrap();

        let hold = clock.hold();
        engine.invoke("nap").id("two").input(2u64).await.unwrap().wait_idle().await.unwrap();
        engine.invoke("nap").id("one").input(1u64).await.unwrap();
        drop(hold);
        // "one" is busy in its step: the two hours of "two" must not pass.
        for _ in 0..200 {
            tokio::task::yield_now().await;
        }
        assert_eq!(clock.now_ms(), START);
        // Its run now commits a one-hour timer, earlier than the pending one.
        open.send(()).unwrap();

        finished::<()>(&engine, "nap", "one").await;
        finished::<()>(&engine, "nap", "two").await;
        assert_eq!(
            *fired.lock().unwrap(),
            [
                ("one".to_string(), START + HOUR),
                ("two".to_string(), START + 2 * HOUR),
            ]
        );
    }
}
