//! Ownership and fencing: a worker's run acquires its instance (`acquire`,
//! which bumps the instance's epoch) and every write of the run carries that
//! epoch (`WriteOp::Fenced`); a write whose epoch is no longer current lands
//! nothing. Every store implements it; a store that serves one engine
//! judges every other owner dead, so these cases use owners that never sent
//! a heartbeat (dead on every store).

use std::sync::Arc;

use memable_core::{
    AcquireOutcome, CommitOutcome, Finish, FinishOutcome, InstanceKey, MetadataStatus, ParkOutcome,
    ReviveOutcome, StaleEpoch, StepStore, StepStoreExt, WaitOutcome, WriteOp, WriteOutcome,
};

use crate::StoreFactory;
use crate::support::{done, dump, fresh, key, ok, output, start, waiting};

async fn acquire(store: &dyn StepStore, key: &InstanceKey, worker: &str) -> AcquireOutcome {
    ok(
        store.acquire(key.clone(), worker.to_owned(), 10).await,
        "acquire",
    )
}

async fn acquired(store: &dyn StepStore, key: &InstanceKey, worker: &str) -> u64 {
    match acquire(store, key, worker).await {
        AcquireOutcome::Acquired { epoch } => epoch,
        other => panic!("acquire of {key} by {worker} was refused: {other:?}"),
    }
}

async fn fenced(store: &dyn StepStore, epoch: u64, op: WriteOp) -> WriteOutcome {
    ok(
        store
            .write(WriteOp::Fenced {
                epoch,
                op: Box::new(op),
            })
            .await,
        "fenced write",
    )
}

fn commit(key: &InstanceKey, step: &str) -> WriteOp {
    WriteOp::Commit {
        key: key.clone(),
        step_key: step.to_owned(),
        record: done(step.as_bytes()),
    }
}

fn finish(key: &InstanceKey) -> WriteOp {
    WriteOp::Finish {
        key: key.clone(),
        finish: Finish::Completed {
            status: None,
            output: output(b"out"),
        },
        now_ms: 20,
    }
}

fn park(key: &InstanceKey, point: &str) -> WriteOp {
    WriteOp::Park {
        key: key.clone(),
        waiting: vec![point.to_owned()],
        status: Some("parked".into()),
        now_ms: 20,
    }
}

fn wait(key: &InstanceKey, point: &str) -> WriteOp {
    WriteOp::Wait {
        key: key.clone(),
        step_key: point.to_owned(),
        record: waiting(),
        members: Vec::new(),
        now_ms: 20,
    }
}

/// Every acquisition bumps the epoch by one, by the same worker or another
/// (whose predecessor never heartbeated, so it is not alive); the status is
/// not changed.
pub async fn acquire_bumps_the_epoch_every_time(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    assert_eq!(acquired(&*store, &k, "w1").await, 1);
    assert_eq!(acquired(&*store, &k, "w1").await, 2);
    assert_eq!(acquired(&*store, &k, "w2").await, 3);
    let meta = ok(store.get_metadata(&k).await, "get_metadata").expect("instance");
    assert_eq!(meta.status, MetadataStatus::Running);
}

/// A missing or cancelled instance is not acquired, and nothing is written.
pub async fn acquire_refuses_missing_and_cancelled(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let missing = key("wf", "missing");
    assert_eq!(
        acquire(&*store, &missing, "w1").await,
        AcquireOutcome::InstanceMissing
    );
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(store.cancel_instance(k.clone(), 2).await, "cancel");
    let before = dump(&*store).await;
    assert_eq!(acquire(&*store, &k, "w1").await, AcquireOutcome::Cancelled);
    assert_eq!(dump(&*store).await, before, "a refused acquire wrote");
}

/// Suspended and finished instances can be acquired (a resume, a signal, a
/// timer runs them again); the acquisition leaves their status alone.
pub async fn acquire_keeps_any_status(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let suspended = key("wf", "suspended");
    start(&*store, &suspended, 1).await;
    let epoch = acquired(&*store, &suspended, "w1").await;
    fenced(&*store, epoch, wait(&suspended, "approval")).await;
    let parked = fenced(&*store, epoch, park(&suspended, "approval")).await;
    assert_eq!(parked, WriteOutcome::Park(ParkOutcome::Parked));
    assert_eq!(acquired(&*store, &suspended, "w2").await, epoch + 1);
    let meta = ok(store.get_metadata(&suspended).await, "get_metadata").expect("instance");
    assert!(matches!(meta.status, MetadataStatus::Suspended { .. }));

    let done_key = key("wf", "done");
    start(&*store, &done_key, 1).await;
    let epoch = acquired(&*store, &done_key, "w1").await;
    fenced(&*store, epoch, finish(&done_key)).await;
    assert_eq!(acquired(&*store, &done_key, "w1").await, epoch + 1);
    let meta = ok(store.get_metadata(&done_key).await, "get_metadata").expect("instance");
    assert!(matches!(meta.status, MetadataStatus::Completed(_)));
}

/// The heart of fencing: after a take-over, every write of the old epoch
/// is refused as stale and lands nothing; the new epoch's writes land.
pub async fn stale_epoch_writes_land_nothing(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let old = acquired(&*store, &k, "zombie").await;
    assert_eq!(
        fenced(&*store, old, commit(&k, "before")).await,
        WriteOutcome::Commit(CommitOutcome::Committed)
    );
    let new = acquired(&*store, &k, "heir").await;
    assert_eq!(new, old + 1);
    let before = dump(&*store).await;
    let stale = WriteOutcome::Stale(StaleEpoch {
        epoch: old,
        current: Some(new),
    });
    for op in [
        commit(&k, "late"),
        wait(&k, "point"),
        park(&k, "before"),
        finish(&k),
        WriteOp::Revive {
            key: k.clone(),
            now_ms: 30,
        },
    ] {
        let name = op.name();
        assert_eq!(fenced(&*store, old, op).await, stale, "{name}");
        assert_eq!(dump(&*store).await, before, "a stale {name} wrote");
    }
    assert_eq!(
        fenced(&*store, new, commit(&k, "late")).await,
        WriteOutcome::Commit(CommitOutcome::Committed)
    );
    let late = ok(store.get_step(&k, "late").await, "get_step").expect("committed");
    assert_eq!(late, done(b"late"));
}

/// A fenced write to an instance nobody acquired, or with an epoch from
/// the future, or to a missing instance, is stale.
pub async fn fenced_write_without_acquisition_is_stale(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let before = dump(&*store).await;
    assert_eq!(
        fenced(&*store, 1, commit(&k, "s")).await,
        WriteOutcome::Stale(StaleEpoch {
            epoch: 1,
            current: Some(0)
        })
    );
    assert_eq!(
        dump(&*store).await,
        before,
        "an unacquired fenced commit wrote"
    );
    let epoch = acquired(&*store, &k, "w1").await;
    let after_acquire = dump(&*store).await;
    assert_eq!(
        fenced(&*store, epoch + 5, commit(&k, "s")).await,
        WriteOutcome::Stale(StaleEpoch {
            epoch: epoch + 5,
            current: Some(epoch)
        })
    );
    assert_eq!(dump(&*store).await, after_acquire);
    let missing = key("wf", "missing");
    assert_eq!(
        fenced(&*store, 1, commit(&missing, "s")).await,
        WriteOutcome::Stale(StaleEpoch {
            epoch: 1,
            current: None
        })
    );
}

/// A run that parks or finishes its instance releases it in the same
/// transaction: its epoch writes nothing more, and the next acquisition
/// (by anyone) bumps it.
pub async fn park_and_finish_release_the_instance(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let epoch = acquired(&*store, &k, "w1").await;
    assert_eq!(
        fenced(&*store, epoch, wait(&k, "approval")).await,
        WriteOutcome::Wait(WaitOutcome::Waiting)
    );
    assert_eq!(
        fenced(&*store, epoch, park(&k, "approval")).await,
        WriteOutcome::Park(ParkOutcome::Parked)
    );
    let released = WriteOutcome::Stale(StaleEpoch {
        epoch,
        current: Some(epoch),
    });
    assert_eq!(fenced(&*store, epoch, commit(&k, "late")).await, released);
    assert!(ok(store.get_step(&k, "late").await, "get_step").is_none());

    // Resumed by another worker, which finishes it.
    let next = acquired(&*store, &k, "w2").await;
    assert_eq!(next, epoch + 1);
    assert!(matches!(
        fenced(
            &*store,
            next,
            WriteOp::Revive {
                key: k.clone(),
                now_ms: 30
            }
        )
        .await,
        WriteOutcome::Revive(ReviveOutcome::Revived(_))
    ));
    assert_eq!(
        fenced(&*store, next, finish(&k)).await,
        WriteOutcome::Finish(FinishOutcome::Finished)
    );
    assert_eq!(
        fenced(&*store, next, commit(&k, "after-finish")).await,
        WriteOutcome::Stale(StaleEpoch {
            epoch: next,
            current: Some(next)
        })
    );
}

/// A park that finds a point already resolved (`Woken`) keeps the
/// ownership: the same run's rerun goes on under the same epoch.
pub async fn woken_park_keeps_the_instance(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let epoch = acquired(&*store, &k, "w1").await;
    fenced(&*store, epoch, wait(&k, "approval")).await;
    ok(
        store
            .deliver_signal(
                k.clone(),
                "approval".into(),
                crate::support::payload(b"y"),
                15,
            )
            .await,
        "deliver_signal",
    );
    assert_eq!(
        fenced(&*store, epoch, park(&k, "approval")).await,
        WriteOutcome::Park(ParkOutcome::Woken)
    );
    assert_eq!(
        fenced(&*store, epoch, commit(&k, "next")).await,
        WriteOutcome::Commit(CommitOutcome::Committed)
    );
}

/// Only a run's own writes can be fenced; fencing anything else is a
/// storage error that writes nothing.
pub async fn only_run_writes_can_be_fenced(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let epoch = acquired(&*store, &k, "w1").await;
    let before = dump(&*store).await;
    for op in [
        WriteOp::Cancel {
            key: k.clone(),
            now_ms: 5,
        },
        WriteOp::Delete { key: k.clone() },
        WriteOp::Acquire {
            key: k.clone(),
            worker: "w2".into(),
            now_ms: 5,
        },
    ] {
        let name = op.name();
        let result = store
            .write(WriteOp::Fenced {
                epoch,
                op: Box::new(op),
            })
            .await;
        let err = result.expect_err(name);
        assert!(err.is_storage(), "{name}: {err}");
        assert_eq!(dump(&*store).await, before, "a refused fenced {name} wrote");
    }
}

/// Sixteen concurrent acquisitions of one instance are serialized: each
/// gets its own epoch, 1 to 16, and only the last one's writes land.
pub async fn concurrent_acquisitions_get_distinct_epochs(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            let k = k.clone();
            tokio::spawn(async move { acquired(&*store, &k, &format!("w{i}")).await })
        })
        .collect();
    let mut epochs = Vec::new();
    for handle in handles {
        epochs.push(handle.await.expect("acquire task"));
    }
    epochs.sort_unstable();
    assert_eq!(epochs, (1..=16).collect::<Vec<u64>>());
    for epoch in 1..16 {
        assert!(matches!(
            fenced(&*store, epoch, commit(&k, "s")).await,
            WriteOutcome::Stale(_)
        ));
    }
    assert_eq!(
        fenced(&*store, 16, commit(&k, "s")).await,
        WriteOutcome::Commit(CommitOutcome::Committed)
    );
}

/// Epochs survive a reopen: a worker from before the restart can never
/// reuse an epoch handed out after it.
pub async fn epochs_survive_reopen(factory: &dyn StoreFactory) {
    if !factory.capabilities().reopen {
        println!("SKIPPED epochs_survive_reopen: the store cannot reopen");
        return;
    }
    let (mut fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let before = acquired(&*store, &k, "w1").await;
    drop(store);
    ok(fx.reopen().await, "reopen");
    let store = fx.store();
    let after = acquired(&*store, &k, "w2").await;
    assert_eq!(after, before + 1);
    assert!(matches!(
        fenced(&*store, before, commit(&k, "s")).await,
        WriteOutcome::Stale(_)
    ));
}
