//! One live run per instance, and parallel steps that recover whatever
//! order they finished in.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Gate, counter, engine_on, finished, fresh, get, guarded, quiesce, tick, until};
use memable_core::{Context, Engine, StepError, SuspendPoint, WorkflowState};

static GO: SuspendPoint<u32> = SuspendPoint::new("go");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_never_runs_twice_at_once() {
    let (_store, _clock, engine) = fresh();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let runs = counter();
    engine
        .register("wf", {
            let (in_flight, max_seen, runs) = (in_flight.clone(), max_seen.clone(), runs.clone());
            move |ctx: Context| {
                let (in_flight, max_seen, runs) =
                    (in_flight.clone(), max_seen.clone(), runs.clone());
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen.fetch_max(now, Ordering::SeqCst);
                    runs.fetch_add(1, Ordering::SeqCst);
                    // A step with a fresh key per run keeps the run busy a while.
                    let n = runs.load(Ordering::SeqCst);
                    let result = ctx
                        .step(format!("busy:{n}"))
                        .run(|| async {
                            for _ in 0..20 {
                                tokio::task::yield_now().await;
                            }
                            Ok::<_, StepError>(())
                        })
                        .await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    result?;
                    let v = ctx.suspend(&GO).await?;
                    Ok(v)
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..21 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            if i == 10 {
                engine.signal("wf", "1", &GO, 7).await.map(|_| ())
            } else {
                engine.resume("wf", "1").await.map(|_| ())
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    guarded(engine.wait_all()).await;
    assert_eq!(max_seen.load(Ordering::SeqCst), 1, "two runs overlapped");
    assert!(get(&runs) >= 2, "the signal's run never happened");
    assert_eq!(
        finished(&engine, "wf", "1").await,
        WorkflowState::Completed { status: None }
    );
    assert_eq!(engine.output::<u32>("wf", "1").await.unwrap(), 7);
}

/// "par": steps "left" and "right" run with `tokio::join!`, each waiting on
/// its own gate; output = left * 100 + right.
fn register_parallel(
    engine: &Engine,
    left: &Gate,
    right: &Gate,
) -> (common::Counter, common::Counter) {
    let (l, r) = (counter(), counter());
    let (lc, rc, lg, rg) = (l.clone(), r.clone(), left.clone(), right.clone());
    engine
        .register("par", move |ctx: Context| {
            let (lc, rc, lg, rg) = (lc.clone(), rc.clone(), lg.clone(), rg.clone());
            async move {
                let left = ctx.step("left").run(|| {
                    let (lc, lg) = (lc.clone(), lg.clone());
                    async move {
                        lg.pass().await;
                        tick(&lc, 1u32).await
                    }
                });
                let right = ctx.step("right").run(|| {
                    let (rc, rg) = (rc.clone(), rg.clone());
                    async move {
                        rg.pass().await;
                        tick(&rc, 2u32).await
                    }
                });
                let (left, right) = tokio::join!(left, right);
                Ok(left? * 100 + right?)
            }
        })
        .unwrap();
    (l, r)
}

/// Lets one parallel step finish, crashes, restarts: each closure must run
/// at most once after its commit and the output must be right.
async fn parallel_recovery(first_finisher_is_left: bool) {
    let (store, clock, engine) = fresh();
    let (lg, rg) = (Gate::new(), Gate::new());
    let (l, r) = register_parallel(&engine, &lg, &rg);
    engine.start().await.unwrap();
    engine.invoke("par").id("1").await.unwrap();
    let (gate, done) = if first_finisher_is_left {
        (&lg, &l)
    } else {
        (&rg, &r)
    };
    gate.open(1);
    until("one parallel step finished", || get(done) == 1).await;
    quiesce().await; // let its commit land
    engine.abort();

    let restarted = engine_on(&store, &clock);
    let (lg2, rg2) = (Gate::new(), Gate::new());
    lg2.open(1);
    rg2.open(1);
    let (l2, r2) = register_parallel(&restarted, &lg2, &rg2);
    restarted.start().await.unwrap();
    assert!(finished(&restarted, "par", "1").await.is_terminal());
    assert_eq!(restarted.output::<u32>("par", "1").await.unwrap(), 102);
    let expected = if first_finisher_is_left {
        (1, 0, 0, 1)
    } else {
        (0, 1, 1, 0)
    };
    assert_eq!((get(&l), get(&r), get(&l2), get(&r2)), expected);
}

#[tokio::test(start_paused = true)]
async fn parallel_steps_recover_when_the_first_one_finished_first() {
    parallel_recovery(true).await;
}

#[tokio::test(start_paused = true)]
async fn parallel_steps_recover_when_the_second_one_finished_first() {
    parallel_recovery(false).await;
}

#[tokio::test(start_paused = true)]
async fn many_parallel_steps_recover_from_a_crash_in_any_order() {
    const N: usize = 12;
    let register = |engine: &Engine, gates: &[Gate], calls: &[common::Counter]| {
        let (gates, calls) = (gates.to_vec(), calls.to_vec());
        engine
            .register("fan", move |ctx: Context| {
                let (gates, calls) = (gates.clone(), calls.clone());
                async move {
                    let steps = (0..N).map(|i| {
                        let (gate, calls) = (gates[i].clone(), calls[i].clone());
                        let ctx = ctx.clone();
                        async move {
                            ctx.step(format!("part:{i}"))
                                .run(|| {
                                    let (gate, calls) = (gate.clone(), calls.clone());
                                    async move {
                                        gate.pass().await;
                                        tick(&calls, i * i).await
                                    }
                                })
                                .await
                        }
                    });
                    let mut handles = Vec::new();
                    for step in steps {
                        handles.push(step);
                    }
                    let mut sum = 0;
                    // Poll all at once: a hand-rolled join_all over the steps.
                    let results = join_all(handles).await;
                    for r in results {
                        sum += r?;
                    }
                    Ok(sum)
                }
            })
            .unwrap();
    };
    let (store, clock, engine) = fresh();
    let gates: Vec<Gate> = (0..N).map(|_| Gate::new()).collect();
    let calls: Vec<common::Counter> = (0..N).map(|_| counter()).collect();
    register(&engine, &gates, &calls);
    engine.start().await.unwrap();
    engine.invoke("fan").id("1").await.unwrap();
    // Finish an arbitrary subset in a scrambled order, then crash.
    let finished_first = [7, 2, 11, 0, 5];
    for &i in &finished_first {
        gates[i].open(1);
        until("part finished", || get(&calls[i]) == 1).await;
    }
    quiesce().await;
    engine.abort();

    let restarted = engine_on(&store, &clock);
    let gates2: Vec<Gate> = (0..N).map(|_| Gate::new()).collect();
    let calls2: Vec<common::Counter> = (0..N).map(|_| counter()).collect();
    for g in &gates2 {
        g.open(1);
    }
    register(&restarted, &gates2, &calls2);
    restarted.start().await.unwrap();
    assert!(finished(&restarted, "fan", "1").await.is_terminal());
    let expected: usize = (0..N).map(|i| i * i).sum();
    assert_eq!(
        restarted.output::<usize>("fan", "1").await.unwrap(),
        expected
    );
    for i in 0..N {
        let total = get(&calls[i]) + get(&calls2[i]);
        assert_eq!(total, 1, "part {i} ran {total} times");
    }
}

/// Polls every future concurrently and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_instances_all_complete_correctly() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("sum", |ctx: Context| async move {
            let n: u64 = ctx.input()?;
            let mut total = 0;
            for i in 0..5u64 {
                total += ctx
                    .step(format!("add:{i}"))
                    .run(|| async move { Ok::<_, StepError>(n + i) })
                    .await?;
            }
            Ok(total)
        })
        .unwrap();
    engine.start().await.unwrap();
    let tasks: Vec<_> = (0..100u64)
        .map(|n| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let run = engine
                    .invoke("sum")
                    .id(format!("{n}"))
                    .input(n)
                    .await
                    .unwrap();
                run.wait_output::<u64>().await.unwrap()
            })
        })
        .collect();
    for (n, task) in (0..100u64).zip(tasks) {
        assert_eq!(guarded(task).await.unwrap(), 5 * n + 10);
    }
}

#[tokio::test(start_paused = true)]
async fn a_resume_during_a_run_queues_behind_it() {
    let (_store, _clock, engine) = fresh();
    let gate = Gate::new();
    let entries = counter();
    engine
        .register("wf", {
            let (gate, entries) = (gate.clone(), entries.clone());
            move |ctx: Context| {
                let (gate, entries) = (gate.clone(), entries.clone());
                async move {
                    let n = entries.fetch_add(1, Ordering::SeqCst);
                    ctx.step(format!("run:{n}"))
                        .run(|| {
                            let gate = gate.clone();
                            async move {
                                gate.pass().await;
                                Ok::<_, StepError>(n)
                            }
                        })
                        .await
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    until("first run entered", || get(&entries) == 1).await;
    let queued = engine.resume("wf", "1").await.unwrap();
    quiesce().await;
    assert_eq!(
        get(&entries),
        1,
        "the resume ran while the first run was in progress"
    );
    gate.open(2);
    assert!(guarded(queued.wait_idle()).await.unwrap().is_terminal());
    guarded(engine.wait_all()).await;
    assert_eq!(get(&entries), 2);
}
