//! `FaultyStore` behaves as documented: fail before the store, ack lost
//! after it, deterministic probabilities, delays, counters, toggling.

use std::time::Duration;

use memable_core::{
    CommitOutcome, InstanceKey, MemoryStore, StepKind, StepRecord, StepStore, StepStoreExt,
};
use memable_testkit::{FaultyStore, StoreOp};

fn key() -> InstanceKey {
    InstanceKey::new("wf", "1").unwrap()
}

fn rec(v: u8) -> StepRecord {
    StepRecord::completed(StepKind::Step, "u8", vec![v], None)
}

async fn started(store: &impl StepStore) {
    store.start_instance(key(), rec(0), 0).await.unwrap();
}

#[tokio::test]
async fn fail_nth_fails_only_that_call_and_writes_nothing() {
    let store = FaultyStore::builder(MemoryStore::new())
        .fail_nth(StoreOp::CommitStep, 2)
        .build();
    started(&store).await;
    assert_eq!(
        store.commit_step(key(), "a".into(), rec(1)).await.unwrap(),
        CommitOutcome::Committed
    );
    let err = store
        .commit_step(key(), "b".into(), rec(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, memable_core::EngineError::Storage(s) if s.operation() == "commit_step"),
        "{err}"
    );
    assert_eq!(store.inner().get_step(&key(), "b").await.unwrap(), None);
    assert_eq!(
        store.commit_step(key(), "b".into(), rec(2)).await.unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(
        (
            store.calls(StoreOp::CommitStep),
            store.injected(StoreOp::CommitStep)
        ),
        (3, 1)
    );
    assert_eq!(store.calls(StoreOp::StartInstance), 1);
}

#[tokio::test]
async fn ack_lost_writes_then_errors() {
    let store = FaultyStore::builder(MemoryStore::new())
        .ack_lost_nth(StoreOp::CommitStep, 1)
        .build();
    started(&store).await;
    assert!(
        store
            .commit_step(key(), "a".into(), rec(1))
            .await
            .unwrap_err()
            .is_storage()
    );
    assert_eq!(store.get_step(&key(), "a").await.unwrap(), Some(rec(1)));
    // A retry of the same commit sees the durable write.
    assert_eq!(
        store.commit_step(key(), "a".into(), rec(1)).await.unwrap(),
        CommitOutcome::Kept(rec(1))
    );
}

async fn failure_pattern(seed: u64) -> Vec<bool> {
    let store = FaultyStore::builder(MemoryStore::new())
        .seed(seed)
        .fail_with_probability(StoreOp::GetStep, 0.5)
        .build();
    let mut pattern = Vec::new();
    for _ in 0..64 {
        pattern.push(store.get_step(&key(), "a").await.is_err());
    }
    assert_eq!(
        store.injected(StoreOp::GetStep),
        pattern.iter().filter(|f| **f).count() as u64
    );
    pattern
}

#[tokio::test]
async fn probability_faults_are_deterministic_per_seed() {
    let a = failure_pattern(1).await;
    assert_eq!(a, failure_pattern(1).await);
    assert_ne!(a, failure_pattern(2).await);
    assert!(
        a.iter().any(|f| *f) && a.iter().any(|f| !*f),
        "p = 0.5 over 64 calls: {a:?}"
    );
}

#[tokio::test]
async fn disabled_store_injects_nothing_but_counts() {
    let store = FaultyStore::builder(MemoryStore::new())
        .fail_from(StoreOp::StartInstance, 1)
        .build();
    assert!(store.start_instance(key(), rec(0), 0).await.is_err());
    store.set_enabled(false);
    assert!(store.start_instance(key(), rec(0), 0).await.is_ok());
    store.set_enabled(true);
    assert!(store.get_metadata(&key()).await.unwrap().is_some());
    assert!(store.delete_instance(key()).await.is_ok());
    assert!(store.start_instance(key(), rec(0), 0).await.is_err());
    assert_eq!(
        (
            store.calls(StoreOp::StartInstance),
            store.injected(StoreOp::StartInstance)
        ),
        (3, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn delay_holds_the_call_back() {
    let store = FaultyStore::builder(MemoryStore::new())
        .delay(StoreOp::NextTimerDeadline, Duration::from_secs(30))
        .build();
    let start = tokio::time::Instant::now();
    assert_eq!(store.next_timer_deadline().await.unwrap(), None);
    assert!(start.elapsed() >= Duration::from_secs(30));
    assert_eq!(store.injected(StoreOp::NextTimerDeadline), 0);
}
