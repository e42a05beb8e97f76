//! Races: nothing lost, no instance running twice at once. Every test runs
//! on every backend (see `support`).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memable::{Context, Engine, EngineError, ManualClock, StepError, SuspendPoint, WorkflowState};

use support::backend_tests;

static APPROVAL: SuspendPoint<u32> = SuspendPoint::new("approval");

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_same_signal_from_32_tasks_has_one_winner(backend) {
        let engine = Engine::builder().store(backend.store()).build();
        engine
            .register("approve", |ctx: Context| async move {
                ctx.suspend(&APPROVAL).await
            })
            .unwrap();
        engine.start().await.unwrap();
        engine
            .invoke("approve")
            .id("x")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for value in 0..32u32 {
            let engine = engine.clone();
            tasks.spawn(async move {
                engine
                    .signal("approve", "x", &APPROVAL, value)
                    .await
                    .map(|_| value)
            });
        }
        let mut winners = Vec::new();
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(value) => winners.push(value),
                Err(EngineError::SignalSuperseded { .. }) => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1);
        engine.wait_all().await;
        assert_eq!(
            engine.output::<u32>("approve", "x").await.unwrap(),
            winners[0]
        );
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_signal_racing_its_own_timer_has_one_winner(backend) {
        let clock = ManualClock::new(0);
        let engine = Engine::builder()
            .store(backend.store())
            .clock(clock.clone())
            .build();
        engine
            .register("ask", |ctx: Context| async move {
                ctx.suspend(&APPROVAL)
                    .timeout(Duration::from_secs(10))
                    .await
            })
            .unwrap();
        engine.start().await.unwrap();
        let rounds = 40;
        for round in 0..rounds {
            engine
                .invoke("ask")
                .id(format!("r{round}"))
                .await
                .unwrap()
                .wait_idle()
                .await
                .unwrap();
        }
        let mut signals = tokio::task::JoinSet::new();
        for round in 0..rounds {
            let engine = engine.clone();
            signals.spawn(async move {
                (
                    round,
                    engine
                        .signal("ask", &format!("r{round}"), &APPROVAL, 7)
                        .await
                        .is_ok(),
                )
            });
            if round == rounds / 2 {
                clock.advance(Duration::from_secs(10));
            }
        }
        let mut signal_won = vec![false; rounds];
        while let Some(joined) = signals.join_next().await {
            let (round, won) = joined.unwrap();
            signal_won[round] = won;
        }
        engine.wait_all().await;
        // Wait for timer-triggered runs too.
        for (round, won) in signal_won.into_iter().enumerate() {
            let mut states = engine.subscribe("ask", &format!("r{round}")).await.unwrap();
            while states.next().await.is_some() {}
            let out: Option<u32> = engine.output("ask", &format!("r{round}")).await.unwrap();
            assert_eq!(out.is_some(), won, "round {round}: output {out:?}");
        }
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn resume_while_running_never_runs_the_instance_twice_at_once(backend) {
        let engine = Engine::builder().store(backend.store()).build();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let (now, max, count) = (
            Arc::clone(&in_flight),
            Arc::clone(&max_in_flight),
            Arc::clone(&runs),
        );
        engine
            .register("slow", move |ctx: Context| {
                let (now, max, count) = (Arc::clone(&now), Arc::clone(&max), Arc::clone(&count));
                async move {
                    let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(current, Ordering::SeqCst);
                    count.fetch_add(1, Ordering::SeqCst);
                    let result = ctx
                        .step("work")
                        .run(|| async {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, StepError>(1u8)
                        })
                        .await;
                    tokio::task::yield_now().await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    result
                }
            })
            .unwrap();
        engine.start().await.unwrap();
        let first = engine.invoke("slow").id("s").await.unwrap();
        let mut resumes = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let engine = engine.clone();
            resumes.spawn(async move { engine.resume("slow", "s").await.map(|_| ()) });
        }
        while let Some(joined) = resumes.join_next().await {
            joined.unwrap().unwrap();
        }
        first.wait_idle().await.unwrap();
        engine.wait_all().await;
        assert_eq!(
            max_in_flight.load(Ordering::SeqCst),
            1,
            "two runs of one instance overlapped"
        );
        assert!(
            runs.load(Ordering::SeqCst) >= 2,
            "queued resumes must rerun"
        );
        assert_eq!(engine.output::<u8>("slow", "s").await.unwrap(), 1);
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn ten_thousand_concurrent_invocations_all_complete(backend) {
        let engine = Engine::builder().store(backend.store()).build();
        engine
            .register("add", |ctx: Context| async move {
                let n: u64 = ctx.input()?;
                let a = ctx
                    .step("a")
                    .run(|| async move { Ok::<_, StepError>(n) })
                    .await?;
                let b = ctx
                    .step("b")
                    .run(|| async move { Ok::<_, StepError>(a + 1) })
                    .await?;
                Ok(b)
            })
            .unwrap();
        engine.start().await.unwrap();
        // 10,000 on memory; a synced file store runs 2,000 in about 2 s
        // (debug, 2 cores), so the file stores run that many.
        let count = backend.scaled(10_000u64, 2_000);
        let mut invocations = tokio::task::JoinSet::new();
        for n in 0..count {
            let engine = engine.clone();
            invocations.spawn(async move {
                let out: u64 = engine
                    .invoke("add")
                    .id(format!("i{n}"))
                    .input(n)
                    .await?
                    .wait_output()
                    .await?;
                Ok::<_, EngineError>((n, out))
            });
        }
        let mut done = 0;
        while let Some(joined) = invocations.join_next().await {
            let (n, out) = joined.unwrap().unwrap();
            assert_eq!(out, n + 1);
            done += 1;
        }
        assert_eq!(done, count);
        engine.wait_all().await;
        let all = engine
            .list_instances(&memable::InstanceFilter::new())
            .await
            .unwrap();
        assert_eq!(all.len() as u64, count);
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cancel_racing_a_signal_ends_consistently(backend) {
        let engine = Engine::builder().store(backend.store()).build();
        engine
            .register("approve", |ctx: Context| async move {
                let v = ctx.suspend(&APPROVAL).await?;
                ctx.step("after")
                    .run(|| async move { Ok::<_, StepError>(v) })
                    .await
            })
            .unwrap();
        engine.start().await.unwrap();
        for round in 0..60 {
            let id = format!("c{round}");
            engine
                .invoke("approve")
                .id(id.clone())
                .await
                .unwrap()
                .wait_idle()
                .await
                .unwrap();
            let (signal, cancel) = tokio::join!(
                engine.signal("approve", &id, &APPROVAL, 1),
                engine.cancel("approve", &id)
            );
            engine.wait_all().await;
            let state = engine.state("approve", &id).await.unwrap();
            match state {
                WorkflowState::Completed { .. } => {
                    assert!(signal.is_ok(), "completed without its signal");
                    assert!(
                        matches!(cancel, Err(EngineError::InvalidState { .. })),
                        "{cancel:?}"
                    );
                }
                WorkflowState::Cancelled => {
                    assert!(cancel.is_ok(), "cancelled but cancel failed: {cancel:?}");
                    if let Err(error) = &signal {
                        assert!(
                            matches!(error, EngineError::SignalRejected { .. }),
                            "{error:?}"
                        );
                    }
                }
                other => panic!("round {round}: unexpected end state {other:?}"),
            }
        }
    }
}
