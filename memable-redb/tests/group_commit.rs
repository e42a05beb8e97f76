//! Group commit: one commit per step for a lone writer, one commit for many
//! queued writers, and failures confined to the operation (or the batch)
//! that hit them.

mod support;

use std::sync::Arc;

use memable_core::StepStoreExt;
use memable_core::{CommitOutcome, StepStore};
use memable_redb::RedbStore;
use support::backend::{Shared, TestBackend};
use support::{input, key, poll_once, value};

#[tokio::test]
async fn a_lone_sequential_writer_pays_one_commit_per_step() {
    let store = RedbStore::in_memory().unwrap();
    let k = key("wf", "1");
    store.start_instance(k.clone(), input(), 1).await.unwrap();
    for i in 0..40 {
        let outcome = store
            .commit_step(k.clone(), format!("s{i}"), value(&[i]))
            .await
            .unwrap();
        assert_eq!(outcome, CommitOutcome::Committed);
    }
    let stats = store.stats();
    assert_eq!((stats.commits, stats.ops, stats.largest_batch), (41, 41, 1));
}

/// A store whose writer is held inside a commit's `sync_data`, so the
/// operations queued meanwhile all wait for the next transaction.
fn held_store() -> (RedbStore, Arc<Shared>) {
    let shared = Arc::new(Shared::default());
    let store = RedbStore::builder()
        .open_backend(TestBackend(Arc::clone(&shared)))
        .unwrap();
    (store, shared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_writers_share_one_commit() {
    let (store, shared) = held_store();
    let k = key("wf", "1");
    store.start_instance(k.clone(), input(), 1).await.unwrap();

    shared.arm_gate();
    let blocked = {
        let store = store.clone();
        let k = k.clone();
        tokio::spawn(async move { store.commit_step(k, "first".into(), value(b"1")).await })
    };
    tokio::task::spawn_blocking({
        let shared = Arc::clone(&shared);
        move || shared.wait_at_gate()
    })
    .await
    .unwrap();

    let mut queued: Vec<_> = (0..300_u32)
        .map(|i| Box::pin(store.commit_step(k.clone(), format!("q{i}"), value(&i.to_le_bytes()))))
        .collect();
    for op in &mut queued {
        poll_once(op);
    }
    shared.open_gate();
    assert_eq!(blocked.await.unwrap().unwrap(), CommitOutcome::Committed);
    for op in queued {
        assert_eq!(op.await.unwrap(), CommitOutcome::Committed);
    }
    let stats = store.stats();
    assert_eq!(
        (stats.commits, stats.ops, stats.largest_batch),
        (3, 302, 300)
    );
    let snap = store.load_instance(&k).await.unwrap().unwrap();
    assert_eq!(snap.steps.len(), 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_compare_and_set_in_a_batch_is_an_answer() {
    let (store, shared) = held_store();
    let k = key("wf", "1");
    store.start_instance(k.clone(), input(), 1).await.unwrap();
    shared.arm_gate();
    let blocked = {
        let store = store.clone();
        let k = k.clone();
        tokio::spawn(async move { store.commit_step(k, "first".into(), value(b"1")).await })
    };
    tokio::task::spawn_blocking({
        let shared = Arc::clone(&shared);
        move || shared.wait_at_gate()
    })
    .await
    .unwrap();
    // Two commits of one key in one batch: the first wins, the second is
    // answered with the kept record.
    let mut a = Box::pin(store.commit_step(k.clone(), "same".into(), value(b"a")));
    let mut b = Box::pin(store.commit_step(k.clone(), "same".into(), value(b"b")));
    poll_once(&mut a);
    poll_once(&mut b);
    shared.open_gate();
    blocked.await.unwrap().unwrap();
    assert_eq!(a.await.unwrap(), CommitOutcome::Committed);
    assert_eq!(b.await.unwrap(), CommitOutcome::Kept(value(b"a")));
    assert_eq!(store.stats().largest_batch, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_operation_does_not_fail_its_batch() {
    let shared = Arc::new(Shared::default());
    {
        let store = RedbStore::builder()
            .open_backend(TestBackend(Arc::clone(&shared)))
            .unwrap();
        for i in ["good", "bad"] {
            store
                .start_instance(key("wf", i), input(), 1)
                .await
                .unwrap();
        }
    }
    {
        // An unreadable record under ("wf", "bad", "s").
        let db = redb::Database::builder()
            .create_with_backend(TestBackend(Arc::clone(&shared)))
            .unwrap();
        let txn = db.begin_write().unwrap();
        let steps: redb::TableDefinition<(&str, &str, &str), &[u8]> =
            redb::TableDefinition::new("memable_steps");
        txn.open_table(steps)
            .unwrap()
            .insert(("wf", "bad", "s"), [0xEE_u8, 1, 2].as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = RedbStore::builder()
        .open_backend(TestBackend(Arc::clone(&shared)))
        .unwrap();
    shared.arm_gate();
    let blocked = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .commit_step(key("wf", "good"), "first".into(), value(b"1"))
                .await
        })
    };
    tokio::task::spawn_blocking({
        let shared = Arc::clone(&shared);
        move || shared.wait_at_gate()
    })
    .await
    .unwrap();
    // One batch: five good commits, the bad one, five more good ones.
    let mut ops: Vec<_> = (0..11)
        .map(|i| {
            let (instance, step) = if i == 5 {
                ("bad", "s".to_owned())
            } else {
                ("good", format!("s{i}"))
            };
            Box::pin(store.commit_step(key("wf", instance), step, value(b"ok")))
        })
        .collect();
    for op in &mut ops {
        poll_once(op);
    }
    let before = store.stats();
    shared.open_gate();
    blocked.await.unwrap().unwrap();
    for (i, op) in ops.into_iter().enumerate() {
        if i == 5 {
            let err = op.await.unwrap_err();
            assert!(err.is_storage(), "{err:?}");
        } else {
            assert_eq!(op.await.unwrap(), CommitOutcome::Committed, "op {i}");
        }
    }
    // The blocked commit, then the ten good ones retried one per commit.
    let after = store.stats();
    assert_eq!(after.commits - before.commits, 11);
    assert_eq!(after.ops - before.ops, 11);
    let snap = store
        .load_instance(&key("wf", "good"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snap.steps.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_every_operation_of_the_batch() {
    let (store, shared) = held_store();
    let k = key("wf", "1");
    store.start_instance(k.clone(), input(), 1).await.unwrap();
    shared.arm_gate();
    let blocked = {
        let store = store.clone();
        let k = k.clone();
        tokio::spawn(async move { store.commit_step(k, "first".into(), value(b"1")).await })
    };
    tokio::task::spawn_blocking({
        let shared = Arc::clone(&shared);
        move || shared.wait_at_gate()
    })
    .await
    .unwrap();
    let mut queued: Vec<_> = (0..10_u8)
        .map(|i| Box::pin(store.commit_step(k.clone(), format!("q{i}"), value(&[i]))))
        .collect();
    for op in &mut queued {
        poll_once(op);
    }
    shared.lock().fail_writes = true;
    shared.open_gate();
    blocked.await.unwrap().unwrap();
    for op in queued {
        let err = op.await.unwrap_err();
        assert!(
            matches!(&err, memable_core::EngineError::Storage(s) if s.operation() == "commit_step"),
            "{err}"
        );
    }
    drop(store);
    // Reopened over the same bytes, none of the failed batch is there.
    shared.lock().fail_writes = false;
    let store = RedbStore::builder()
        .open_backend(TestBackend(Arc::clone(&shared)))
        .unwrap();
    let snap = store.load_instance(&k).await.unwrap().unwrap();
    let keys: Vec<&str> = snap.steps.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["_input", "first"]);
}
