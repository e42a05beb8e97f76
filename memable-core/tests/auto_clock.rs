//! `AutoAdvanceClock`: timers, backoff and suspension timeouts finish by
//! themselves, with the skipped time on the clock, and time never moves
//! while a run does real work.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use memable_core::{
    AutoAdvanceClock, Clock, Context, Engine, MemoryStore, RetryPolicy, StepError, SuspendPoint,
    WorkflowState,
};
use tokio::sync::oneshot;

const START: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;
/// A hang fails the test instead of blocking the suite (real time; nothing
/// here waits on it when the clock works).
const GUARD: Duration = Duration::from_secs(20);

fn engine(clock: &AutoAdvanceClock) -> Engine {
    Engine::builder()
        .store(MemoryStore::new())
        .clock(clock.clone())
        .build()
}

/// Waits until the instance is finished and returns its output.
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

fn register_day_timer(engine: &Engine) {
    engine
        .register("trial", |ctx: Context| async move {
            ctx.timer("day", Duration::from_secs(86_400)).await?;
            ctx.step("convert")
                .run(|| async { Ok::<_, StepError>("converted".to_string()) })
                .await
        })
        .unwrap();
}

#[tokio::test]
async fn a_workflow_that_waits_a_day_finishes_and_the_day_is_on_the_clock() {
    let clock = AutoAdvanceClock::new(START);
    let engine = engine(&clock);
    register_day_timer(&engine);
    engine.start().await.unwrap();

    engine.invoke("trial").id("u1").await.unwrap();
    let out: String = finished(&engine, "trial", "u1").await;
    assert_eq!(out, "converted");
    assert_eq!(clock.now_ms(), START + 24 * HOUR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_timer_also_finishes_on_a_multi_thread_runtime() {
    let clock = AutoAdvanceClock::new(START);
    let engine = engine(&clock);
    register_day_timer(&engine);
    engine.start().await.unwrap();

    engine.invoke("trial").id("u1").await.unwrap();
    let out: String = finished(&engine, "trial", "u1").await;
    assert_eq!(out, "converted");
    assert_eq!(clock.now_ms(), START + 24 * HOUR);
}

#[tokio::test]
async fn a_step_retried_with_minutes_of_backoff_finishes_and_the_backoff_is_on_the_clock() {
    let clock = AutoAdvanceClock::new(START);
    let engine = engine(&clock);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&attempts);
    let probe = clock.clone();
    engine
        .register("flaky", move |ctx: Context| {
            let seen = Arc::clone(&seen);
            let probe = probe.clone();
            async move {
                ctx.step("call")
                    .retry(RetryPolicy::fixed(3, Duration::from_secs(60)))
                    .run(|| {
                        let mut seen = seen.lock().unwrap();
                        seen.push(probe.now_ms());
                        let n = seen.len();
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
    let out: usize = finished(&engine, "flaky", "f1").await;
    assert_eq!(out, 3);
    // Each retry waited its minute of backoff, and no more.
    let at = attempts.lock().unwrap().clone();
    assert_eq!(at.len(), 3);
    assert_eq!(at[0], START);
    assert!((60_000..=60_002).contains(&(at[1] - at[0])), "{at:?}");
    assert!((60_000..=60_002).contains(&(at[2] - at[1])), "{at:?}");
    assert_eq!(clock.now_ms(), at[2]);
}

static ANSWER: SuspendPoint<String> = SuspendPoint::new("answer");

#[tokio::test]
async fn a_suspension_timeout_of_an_hour_resolves_to_none_by_itself() {
    let clock = AutoAdvanceClock::new(START);
    let engine = engine(&clock);
    engine
        .register("ask", |ctx: Context| async move {
            let answer = ctx
                .suspend(&ANSWER)
                .timeout(Duration::from_secs(3_600))
                .await?;
            Ok(answer.unwrap_or_else(|| "no answer".to_string()))
        })
        .unwrap();
    engine.start().await.unwrap();

    engine.invoke("ask").id("q").await.unwrap();
    let out: String = finished(&engine, "ask", "q").await;
    assert_eq!(out, "no answer");
    assert_eq!(clock.now_ms(), START + HOUR);
}

#[tokio::test]
async fn time_stands_still_while_a_step_does_real_work() {
    let clock = AutoAdvanceClock::new(START);
    let engine = engine(&clock);
    let (done, work) = oneshot::channel::<u32>();
    let work = Arc::new(Mutex::new(Some(work)));
    engine
        .register("work", move |ctx: Context| {
            let work = Arc::clone(&work);
            async move {
                ctx.step("real-work")
                    .run(|| {
                        let receiver = work.lock().unwrap().take();
                        async move {
                            match receiver {
                                Some(receiver) => receiver.await.map_err(StepError::permanent),
                                None => Err(StepError::permanent("the work ran twice")),
                            }
                        }
                    })
                    .await
            }
        })
        .unwrap();
    engine
        .register("nap", |ctx: Context| async move {
            ctx.timer("hour", Duration::from_secs(3_600)).await?;
            Ok(())
        })
        .unwrap();
    engine.start().await.unwrap();

    engine.invoke("work").id("w").await.unwrap();
    let nap = engine.invoke("nap").id("n").await.unwrap();
    let state = nap.wait_idle().await.unwrap();
    assert!(
        matches!(state, WorkflowState::Suspended { .. }),
        "{state:?}"
    );
    // Plenty of chances for the clock to move: it must not, the step works.
    for _ in 0..500 {
        tokio::task::yield_now().await;
    }
    assert_eq!(clock.now_ms(), START);
    assert!(matches!(
        engine.state("nap", "n").await.unwrap(),
        WorkflowState::Suspended { .. }
    ));

    done.send(7).unwrap();
    let out: u32 = finished(&engine, "work", "w").await;
    assert_eq!(out, 7);
    finished::<()>(&engine, "nap", "n").await;
    // The timer then fired at its deadline, not later.
    assert_eq!(clock.now_ms(), START + HOUR);
}

#[tokio::test]
async fn timers_of_one_and_two_hours_fire_in_order_and_time_ends_at_two_hours() {
    let clock = AutoAdvanceClock::new(START);
    let engine = engine(&clock);
    let fired = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&fired);
    let probe = clock.clone();
    engine
        .register("nap", move |ctx: Context| {
            let log = Arc::clone(&log);
            let probe = probe.clone();
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

    // Both start at the same "now": the test's own invocations are work the
    // clock cannot see.
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
async fn two_engines_on_one_clock_both_count() {
    let clock = AutoAdvanceClock::new(START);
    let busy = engine(&clock);
    let idle = engine(&clock);
    let (done, work) = oneshot::channel::<()>();
    let work = Arc::new(Mutex::new(Some(work)));
    busy.register("work", move |ctx: Context| {
        let work = Arc::clone(&work);
        async move {
            ctx.step("real-work")
                .run(|| {
                    let receiver = work.lock().unwrap().take();
                    async move {
                        match receiver {
                            Some(receiver) => receiver.await.map_err(StepError::permanent),
                            None => Err(StepError::permanent("the work ran twice")),
                        }
                    }
                })
                .await
        }
    })
    .unwrap();
    register_day_timer(&idle);
    busy.start().await.unwrap();
    idle.start().await.unwrap();

    busy.invoke("work").id("w").await.unwrap();
    idle.invoke("trial")
        .id("u1")
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    for _ in 0..500 {
        tokio::task::yield_now().await;
    }
    // The other engine is busy: the day must not pass yet.
    assert_eq!(clock.now_ms(), START);

    done.send(()).unwrap();
    finished::<()>(&busy, "work", "w").await;
    let out: String = finished(&idle, "trial", "u1").await;
    assert_eq!(out, "converted");
    assert_eq!(clock.now_ms(), START + 24 * HOUR);
}

#[tokio::test]
async fn without_an_engine_a_sleeper_wakes_at_its_deadline_and_never_later() {
    let clock = AutoAdvanceClock::new(0);
    let spawn_sleeper = |deadline: u64| {
        let clock = clock.clone();
        tokio::spawn(async move {
            clock.sleep_until(deadline).await;
            clock.now_ms()
        })
    };
    let late = spawn_sleeper(200);
    let early = spawn_sleeper(100);
    let woke = tokio::time::timeout(GUARD, async { (early.await, late.await) })
        .await
        .expect("the sleepers did not wake");
    assert_eq!((woke.0.unwrap(), woke.1.unwrap()), (100, 200));
    assert_eq!(clock.now_ms(), 200);
}

#[tokio::test]
async fn time_moved_by_hand_is_never_moved_back() {
    let clock = AutoAdvanceClock::new(0);
    clock.advance(Duration::from_secs(10));
    // A sleeper already due completes at once; time stays where it is.
    tokio::time::timeout(GUARD, clock.sleep_until(5_000))
        .await
        .expect("a due sleeper completes at once");
    let sleeper = {
        let clock = clock.clone();
        tokio::spawn(async move {
            clock.sleep_until(20_000).await;
            clock.now_ms()
        })
    };
    clock.set(15_000);
    let woke = tokio::time::timeout(GUARD, sleeper)
        .await
        .expect("the sleeper did not wake")
        .unwrap();
    assert_eq!(woke, 20_000);
    clock.set(1_000);
    assert_eq!(clock.now_ms(), 20_000);
}

#[tokio::test]
async fn a_backoff_does_not_move_time_while_a_parallel_step_of_its_run_works() {
    let clock = AutoAdvanceClock::new(START);
    let engine = engine(&clock);
    let (done, work) = oneshot::channel::<u32>();
    let work = Arc::new(Mutex::new(Some(work)));
    let tries = Arc::new(Mutex::new(0u32));
    let counted = Arc::clone(&tries);
    engine
        .register("both", move |ctx: Context| {
            let (work, counted) = (Arc::clone(&work), Arc::clone(&counted));
            async move {
                let flaky = ctx
                    .step("flaky")
                    .retry(RetryPolicy::fixed(2, Duration::from_secs(60)))
                    .run(|| {
                        let mut n = counted.lock().unwrap();
                        *n += 1;
                        let n = *n;
                        async move {
                            if n < 2 {
                                Err(StepError::retryable("first attempt fails"))
                            } else {
                                Ok(n)
                            }
                        }
                    });
                let real = ctx.step("real-work").run(|| {
                    let receiver = work.lock().unwrap().take();
                    async move {
                        match receiver {
                            Some(receiver) => receiver.await.map_err(StepError::permanent),
                            None => Err(StepError::permanent("the work ran twice")),
                        }
                    }
                });
                let (flaky, real) = tokio::join!(flaky, real);
                Ok((flaky?, real?))
            }
        })
        .unwrap();
    engine.start().await.unwrap();

    engine.invoke("both").id("b").await.unwrap();
    for _ in 0..500 {
        tokio::task::yield_now().await;
    }
    // One step sleeps in its backoff, the other works: the minute must not pass.
    assert_eq!(*tries.lock().unwrap(), 1);
    assert_eq!(clock.now_ms(), START);

    done.send(5).unwrap();
    let out: (u32, u32) = finished(&engine, "both", "b").await;
    assert_eq!(out, (2, 5));
    assert_eq!(*tries.lock().unwrap(), 2);
    assert_eq!(clock.now_ms(), START + 60_000);
}
