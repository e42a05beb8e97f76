//! Store-level behaviour specific to the redb backend: a workflow's whole
//! lifecycle across reopens, with both durabilities.

mod support;

use std::sync::Arc;

use memable_core::StepStoreExt;
use memable_core::{
    ClaimOutcome, Finish, FinishOutcome, InstanceFilter, MetadataStatus, StatusKind, StepKind,
    StepRecord, StepStore, SuspendOutcome,
};
use memable_redb::{Durability, RedbStore};
use support::{input, key, value};

async fn lifecycle_across_reopens(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("life.redb");
    let open = || {
        RedbStore::builder()
            .durability(durability)
            .open(&path)
            .unwrap()
    };
    let k = key("order", "42");
    // A lookalike instance whose id extends "42": never mixed in.
    let other = key("order", "420");

    let store = open();
    assert_eq!(store.durability(), durability);
    store.start_instance(k.clone(), input(), 10).await.unwrap();
    store
        .start_instance(other.clone(), input(), 10)
        .await
        .unwrap();
    store
        .commit_step(k.clone(), "charge".into(), value(b"paid"))
        .await
        .unwrap();
    let timer = StepRecord::suspended(StepKind::Timer, "()", None, Some(500));
    assert_eq!(
        store
            .suspend_step(k.clone(), "wait".into(), timer, Some("waiting".into()), 11)
            .await
            .unwrap(),
        SuspendOutcome::Suspended
    );
    drop(store);

    let store = open();
    assert_eq!(store.next_timer_deadline().await.unwrap(), Some(500));
    assert!(store.due_timers(499, 10).await.unwrap().is_empty());
    let due = store.due_timers(500, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].instance.clone(), due[0].step_key.as_str()),
        (k.clone(), "wait")
    );
    let suspended = store
        .list_instances(&InstanceFilter::new().status(StatusKind::Suspended))
        .await
        .unwrap();
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0].instance_id, "42");
    let fired = StepRecord::completed(StepKind::Timer, "()", vec![], None);
    assert_eq!(
        store
            .claim_step(k.clone(), "wait".into(), fired, 600)
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    drop(store);

    let store = open();
    assert_eq!(store.next_timer_deadline().await.unwrap(), None);
    let finish = Finish::Completed {
        status: Some("shipped".into()),
        output: value(b"receipt"),
    };
    assert_eq!(
        store.finish_instance(k.clone(), finish, 700).await.unwrap(),
        FinishOutcome::Finished
    );
    drop(store);

    let store = open();
    let snap = store.load_instance(&k).await.unwrap().unwrap();
    assert_eq!(
        snap.metadata.status,
        MetadataStatus::Completed(Some("shipped".into()))
    );
    assert_eq!(snap.metadata.completed_at_ms, Some(700));
    let keys: Vec<&str> = snap.steps.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["_input", "_output", "charge", "wait"]);
    let running = store
        .list_instances(&InstanceFilter::new().status(StatusKind::Running))
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].instance_id, "420");
    assert!(store.delete_instance(k.clone()).await.unwrap());
    drop(store);

    let store = open();
    assert!(store.load_instance(&k).await.unwrap().is_none());
    assert_eq!(
        store
            .load_instance(&other)
            .await
            .unwrap()
            .unwrap()
            .steps
            .len(),
        1
    );
}

#[tokio::test]
async fn lifecycle_survives_reopens_with_immediate_durability() {
    lifecycle_across_reopens(Durability::Immediate).await;
}

#[tokio::test]
async fn lifecycle_survives_reopens_with_relaxed_durability() {
    lifecycle_across_reopens(Durability::Relaxed).await;
}

#[tokio::test(flavor = "current_thread")]
async fn reads_and_writes_work_on_a_current_thread_runtime() {
    let store = RedbStore::in_memory().unwrap();
    let k = key("wf", "1");
    store.start_instance(k.clone(), input(), 1).await.unwrap();
    assert!(store.get_metadata(&k).await.unwrap().is_some());
    assert_eq!(store.name(), "redb");
}

/// Polls `future` to completion on this thread, with no async runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn reads_and_writes_work_without_a_tokio_runtime() {
    // The store answers through its own writer and reader threads, so any
    // executor can drive its futures.
    let store = RedbStore::in_memory().unwrap();
    let k = key("wf", "1");
    assert!(block_on(store.get_metadata(&k)).unwrap().is_none());
    block_on(store.start_instance(k.clone(), input(), 1)).unwrap();
    let meta = block_on(store.get_metadata(&k)).unwrap().unwrap();
    assert_eq!(meta.created_at_ms, 1);
}
