//! Concurrent writers: nothing lost, first writer wins, one start wins.

use std::sync::Arc;

use memable_core::StepStoreExt;
use memable_core::{CommitOutcome, InstanceFilter, StartOutcome};

use crate::StoreFactory;
use crate::support::{done, fresh, input, key, ok, start};

/// 64 tasks each write 100 steps (to their own instance and to one shared
/// instance, alternately) concurrently; afterwards all 6,400 are readable.
pub async fn concurrent_writers_lose_nothing(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let shared = key("wf", "shared");
    start(&*store, &shared, 1).await;
    let mut tasks = Vec::new();
    for w in 0..64_u32 {
        let store = Arc::clone(&store);
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let own = key("wf", &format!("writer-{w}"));
            start(&*store, &own, 1).await;
            for i in 0..100_u32 {
                let target = if i % 2 == 0 {
                    own.clone()
                } else {
                    shared.clone()
                };
                let value = [w.to_be_bytes(), i.to_be_bytes()].concat();
                let outcome = ok(
                    store
                        .commit_step(target, format!("w{w}-i{i}"), done(&value))
                        .await,
                    "commit",
                );
                assert_eq!(outcome, CommitOutcome::Committed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer panicked");
    }
    for w in 0..64_u32 {
        let own = key("wf", &format!("writer-{w}"));
        let own_snap = ok(store.load_instance(&own).await, "load").expect("snapshot");
        assert_eq!(own_snap.steps.len(), 51, "writer {w}");
        for i in 0..100_u32 {
            let target = if i % 2 == 0 { &own } else { &shared };
            let value = [w.to_be_bytes(), i.to_be_bytes()].concat();
            assert_eq!(
                ok(store.get_step(target, &format!("w{w}-i{i}")).await, "get"),
                Some(done(&value)),
                "write {w}/{i} lost"
            );
        }
    }
    let shared_snap = ok(store.load_instance(&shared).await, "load").expect("snapshot");
    assert_eq!(shared_snap.steps.len(), 64 * 50 + 1);
    assert_eq!(
        ok(store.list_instances(&InstanceFilter::new()).await, "list").len(),
        65
    );
}

/// 32 concurrent commits of one step key: exactly one `Committed`, every
/// other caller gets `Kept` with the winner's record, which is stored.
pub async fn concurrent_commits_first_writer_wins(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (0..32_u8)
        .map(|i| {
            let (store, k, barrier) = (Arc::clone(&store), k.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                (
                    i,
                    ok(
                        store.commit_step(k, "once".into(), done(&[i])).await,
                        "commit",
                    ),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut kept = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (i, CommitOutcome::Committed) => winners.push(i),
            (_, CommitOutcome::Kept(rec)) => kept.push(rec),
            (i, other) => panic!("committer {i} got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let won = done(&[winners[0]]);
    assert!(kept.iter().all(|r| *r == won));
    assert_eq!(ok(store.get_step(&k, "once").await, "get"), Some(won));
}

/// 32 concurrent starts of one key: exactly one `Started`; the stored input
/// is the winner's; every other caller gets `Exists`.
pub async fn concurrent_starts_one_wins(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (0..32_u8)
        .map(|i| {
            let (store, k, barrier) = (Arc::clone(&store), k.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                (
                    i,
                    ok(
                        store.start_instance(k, input(&[i]), u64::from(i)).await,
                        "start",
                    ),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, outcome) = t.await.expect("task");
        match outcome {
            StartOutcome::Started => winners.push(i),
            StartOutcome::Exists(_) => {}
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        ok(store.get_step(&k, "_input").await, "get"),
        Some(input(&[winners[0]]))
    );
    let meta = ok(store.get_metadata(&k).await, "meta").expect("metadata");
    assert_eq!(meta.created_at_ms, u64::from(winners[0]));
}
