//! Atomicity: refused transitions write nothing; a write that fails writes
//! nothing (checked by injecting failures with [`FaultyStore`]); a write
//! whose acknowledgement is lost is durable.

use std::sync::Arc;

use memable_core::StepStoreExt;
use memable_core::{
    ClaimOutcome, CommitOutcome, EngineError, Finish, FinishOutcome, InstanceKey, ReviveOutcome,
    StartOutcome, StepStore, SuspendOutcome, TimerEntry,
};

use crate::support::{
    done, dump, fresh, input, key, ok, output, payload, populate, timer, waiting,
};
use crate::{FaultyStore, StoreFactory, StoreOp};

/// Runs a refused call, checks its outcome and that the store is unchanged.
macro_rules! refused {
    ($s:expr, $before:expr, $call:expr, $pat:pat) => {{
        let outcome = ok($call.await, stringify!($call));
        assert!(
            matches!(outcome, $pat),
            "{} returned {outcome:?}",
            stringify!($call)
        );
        assert_eq!(
            dump($s).await,
            $before,
            "refused {} wrote something",
            stringify!($call)
        );
    }};
}

/// Every refused transition (start of an existing key, kept commit, commit
/// to a missing instance, suspend of a completed step or inactive instance,
/// every kind of lost claim, finish of a non-running instance, revive of a
/// cancelled, missing or active one, cancel of a terminal one, delete of a
/// missing one) leaves the whole store unchanged.
pub async fn refused_transitions_write_nothing(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let keys = populate(&*store).await;
    // populate: i % 5 == 0 suspended, 1 running, 2 completed, 3 failed, 4 cancelled.
    let (suspended, completed, failed, cancelled) = (&keys[0], &keys[2], &keys[3], &keys[4]);
    let missing = key("a", "100");
    let before = dump(&*store).await;
    let s = &*store;
    for k in &keys {
        refused!(
            s,
            before,
            s.start_instance(k.clone(), input(b"again"), 999),
            StartOutcome::Exists(_)
        );
        if k == cancelled {
            refused!(
                s,
                before,
                s.commit_step(k.clone(), "done".into(), done(b"over")),
                CommitOutcome::Cancelled
            );
        } else {
            refused!(
                s,
                before,
                s.commit_step(k.clone(), "done".into(), done(b"over")),
                CommitOutcome::Kept(_)
            );
        }
        refused!(
            s,
            before,
            s.suspend_step(k.clone(), "done".into(), timer(5), None, 999),
            SuspendOutcome::AlreadyCompleted(_) | SuspendOutcome::NotActive(_)
        );
        refused!(
            s,
            before,
            s.claim_step(k.clone(), "done".into(), payload(b"x"), 999),
            ClaimOutcome::StepNotSuspended(_)
        );
        refused!(
            s,
            before,
            s.claim_step(k.clone(), "nope".into(), payload(b"x"), 999),
            ClaimOutcome::StepMissing
        );
    }
    refused!(
        s,
        before,
        s.commit_step(suspended.clone(), "nap".into(), done(b"x")),
        CommitOutcome::Kept(_)
    );
    refused!(
        s,
        before,
        s.commit_step(missing.clone(), "s".into(), done(b"x")),
        CommitOutcome::InstanceMissing
    );
    refused!(
        s,
        before,
        s.suspend_step(missing.clone(), "s".into(), waiting(), None, 999),
        SuspendOutcome::NotActive(None)
    );
    for k in [completed, failed, cancelled] {
        refused!(
            s,
            before,
            s.suspend_step(k.clone(), "new".into(), timer(5), None, 999),
            SuspendOutcome::NotActive(Some(_))
        );
    }
    refused!(
        s,
        before,
        s.claim_step(cancelled.clone(), "nap".into(), payload(b"x"), 999),
        ClaimOutcome::InstanceNotSuspended(_)
    );
    refused!(
        s,
        before,
        s.claim_step(missing.clone(), "nap".into(), payload(b"x"), 999),
        ClaimOutcome::StepMissing
    );
}

/// Refused lifecycle transitions (finish of a non-running instance, revive
/// of a cancelled, missing or active one, cancel of a terminal or missing
/// one, delete of a missing one, suspend or commit where refused) leave the
/// whole store unchanged.
pub async fn refused_lifecycle_transitions_write_nothing(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let keys = populate(&*store).await;
    let (suspended, running, completed, failed, cancelled) =
        (&keys[0], &keys[1], &keys[2], &keys[3], &keys[4]);
    let missing = key("a", "100");
    let before = dump(&*store).await;
    let s = &*store;
    for k in [completed, failed, cancelled] {
        refused!(
            s,
            before,
            s.cancel_instance(k.clone(), 999),
            memable_core::CancelOutcome::NotActive(Some(_))
        );
    }
    for k in [suspended, completed, failed, cancelled, &missing] {
        refused!(
            s,
            before,
            s.finish_instance(
                k.clone(),
                Finish::Completed {
                    status: None,
                    output: output(b"o")
                },
                999
            ),
            FinishOutcome::NotRunning(_)
        );
        refused!(
            s,
            before,
            s.finish_instance(k.clone(), Finish::Failed("f".into()), 999),
            FinishOutcome::NotRunning(_)
        );
    }
    refused!(
        s,
        before,
        s.revive_instance(cancelled.clone(), 999),
        ReviveOutcome::Cancelled
    );
    refused!(
        s,
        before,
        s.revive_instance(missing.clone(), 999),
        ReviveOutcome::InstanceMissing
    );
    refused!(
        s,
        before,
        s.revive_instance(running.clone(), 999),
        ReviveOutcome::Revived(_)
    );
    refused!(
        s,
        before,
        s.cancel_instance(missing.clone(), 999),
        memable_core::CancelOutcome::NotActive(None)
    );
    let deleted = ok(s.delete_instance(missing.clone()).await, "delete");
    assert!(!deleted);
    assert_eq!(
        dump(s).await,
        before,
        "deleting a missing instance wrote something"
    );
}

/// Runs the write `op` against `store` with arguments that would succeed on
/// the populated store.
#[allow(clippy::too_many_lines)] // one arm per write op
async fn write(
    store: &dyn StepStore,
    op: StoreOp,
    keys: &[InstanceKey],
) -> Result<(), EngineError> {
    let (suspended, running, completed, new) = (&keys[0], &keys[1], &keys[2], key("new", "1"));
    match op {
        StoreOp::StartInstance => store.start_instance(new, input(b"i"), 500).await.map(drop),
        StoreOp::CommitStep => store
            .commit_step(running.clone(), "fresh".into(), done(b"f"))
            .await
            .map(drop),
        StoreOp::SuspendStep => store
            .suspend_step(running.clone(), "t2".into(), timer(3), None, 500)
            .await
            .map(drop),
        StoreOp::ClaimStep => store
            .claim_step(suspended.clone(), "nap".into(), payload(b"p"), 500)
            .await
            .map(drop),
        StoreOp::FinishInstance => {
            let fin = Finish::Completed {
                status: None,
                output: output(b"o"),
            };
            store
                .finish_instance(running.clone(), fin, 500)
                .await
                .map(drop)
        }
        StoreOp::ReviveInstance => store
            .revive_instance(completed.clone(), 500)
            .await
            .map(drop),
        StoreOp::CancelInstance => store
            .cancel_instance(suspended.clone(), 500)
            .await
            .map(drop),
        StoreOp::DeleteInstance => store.delete_instance(suspended.clone()).await.map(drop),
        StoreOp::WaitAt => store
            .wait_at(running.clone(), "point".into(), waiting(), Vec::new(), 500)
            .await
            .map(drop),
        StoreOp::ParkInstance => store
            .park(
                suspended.clone(),
                vec!["nap".into()],
                Some("parked".into()),
                500,
            )
            .await
            .map(drop),
        StoreOp::DeliverSignal => store
            .deliver_signal(running.clone(), "early".into(), payload(b"p"), 500)
            .await
            .map(drop),
        StoreOp::AcquireInstance => store
            .acquire(running.clone(), "worker-1".into(), 500)
            .await
            .map(drop),
        StoreOp::ReleaseInstance => store.release(running.clone()).await.map(drop),
        StoreOp::ForgetSteps => store
            .forget_steps(suspended.clone(), vec!["nap".into(), "done".into()], 500)
            .await
            .map(drop),
        StoreOp::DeleteEnded => store
            .delete_ended(keys[2].clone(), u64::MAX)
            .await
            .map(drop),
        StoreOp::ResumeInstance => store.resume_instance(keys[3].clone(), 500).await.map(drop),
        StoreOp::ForkInstance => store
            .fork_instance(
                completed.clone(),
                key(completed.workflow(), "forked"),
                vec!["done".into()],
                500,
            )
            .await
            .map(drop),
        StoreOp::Enqueue => store
            .enqueue(
                key("queued", "q3"),
                input(b"q3"),
                memable_core::QueueTicket::new("jobs"),
                500,
            )
            .await
            .map(drop),
        StoreOp::Admit => {
            let limits = memable_core::QueueLimits {
                concurrency: Some(1),
                ..memable_core::QueueLimits::default()
            };
            store
                .admit("jobs", limits, None, None, 10, 500)
                .await
                .map(drop)
        }
        StoreOp::StartChild => store
            .start_child(
                running.clone(),
                "kid".into(),
                key("kid", "1"),
                input(b"k"),
                Some(memable_core::StepRecord::suspended(
                    memable_core::StepKind::Child,
                    "u32",
                    None,
                    None,
                )),
                500,
            )
            .await
            .map(drop),
        StoreOp::FireTimer => {
            let due = TimerEntry {
                deadline_ms: 1_000,
                instance: suspended.clone(),
                step_key: "nap".into(),
            };
            store.fire_timer(due, payload(b"p"), 500).await.map(drop)
        }
        _ => Ok(()),
    }
}

/// A write that fails (a fault injected before it reaches the store) leaves
/// the store exactly as it was and reports a storage error naming the
/// operation; once faults stop, the same write succeeds.
pub async fn failed_write_leaves_store_unchanged(factory: &dyn StoreFactory) {
    for op in StoreOp::WRITES {
        let (_fx, store) = fresh(factory).await;
        let keys = populate(&*store).await;
        let before = dump(&*store).await;
        let faulty = FaultyStore::builder(Arc::clone(&store))
            .fail_from(op, 1)
            .build();
        let err = write(&faulty, op, &keys)
            .await
            .expect_err("the injected fault must surface");
        assert!(err.is_storage(), "{op:?}: {err}");
        assert!(
            err.to_string().contains(op.name()),
            "error does not name {}: {err}",
            op.name()
        );
        assert_eq!(
            dump(&*store).await,
            before,
            "failed {} changed the store",
            op.name()
        );
        faulty.set_enabled(false);
        ok(write(&faulty, op, &keys).await, op.name());
        assert_ne!(
            dump(&*store).await,
            before,
            "{} wrote nothing once faults stopped",
            op.name()
        );
        assert_eq!((faulty.calls(op), faulty.injected(op)), (2, 1));
    }
}

/// A write whose acknowledgement is lost reports an error but is durable:
/// the store holds exactly what the same successful write would produce.
pub async fn ack_lost_write_is_durable(factory: &dyn StoreFactory) {
    for op in StoreOp::WRITES {
        let (_fx_ok, reference) = fresh(factory).await;
        let keys = populate(&*reference).await;
        ok(write(&*reference, op, &keys).await, op.name());
        let expected = dump(&*reference).await;

        let (_fx, store) = fresh(factory).await;
        populate(&*store).await;
        let faulty = FaultyStore::builder(Arc::clone(&store))
            .ack_lost_nth(op, 1)
            .build();
        let err = write(&faulty, op, &keys)
            .await
            .expect_err("the lost ack must surface");
        assert!(err.is_storage(), "{op:?}: {err}");
        assert_eq!(
            dump(&*store).await,
            expected,
            "{} with a lost ack is not durable",
            op.name()
        );
    }
}
