//! `finish_instance`, `revive_instance` and `cancel_instance`: terminal
//! statuses, revival for `resume`, cancellation.

use memable_core::StepStoreExt;
use memable_core::{
    CancelOutcome, Finish, FinishOutcome, InstanceKey, MetadataStatus, ReviveOutcome, StepStore,
    WorkflowMetadata,
};

use crate::StoreFactory;
use crate::support::{dump, fresh, key, ok, output, start, timer, waiting};

fn completed(status: Option<&str>, out: &[u8]) -> Finish {
    Finish::Completed {
        status: status.map(str::to_owned),
        output: output(out),
    }
}

async fn meta(store: &dyn StepStore, k: &InstanceKey) -> WorkflowMetadata {
    ok(store.get_metadata(k).await, "get_metadata").unwrap_or_else(|| panic!("no metadata for {k}"))
}

/// Finishing as completed writes `Completed(status)`, `_output`, and
/// `updated_at = completed_at = now`.
pub async fn finish_completed_writes_output_and_status(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 10).await;
    let outcome = ok(
        store
            .finish_instance(k.clone(), completed(Some("all done"), b"result"), 50)
            .await,
        "finish",
    );
    assert_eq!(outcome, FinishOutcome::Finished);
    let expected = WorkflowMetadata {
        status: MetadataStatus::Completed(Some("all done".into())),
        updated_at_ms: 50,
        completed_at_ms: Some(50),
        ..WorkflowMetadata::running(&k, 10)
    };
    assert_eq!(meta(&*store, &k).await, expected);
    assert_eq!(
        ok(store.get_step(&k, "_output").await, "get"),
        Some(output(b"result"))
    );
}

/// Finishing as failed writes `Failed(message)` and no `_output`.
pub async fn finish_failed_writes_message_without_output(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 10).await;
    let outcome = ok(
        store
            .finish_instance(k.clone(), Finish::Failed("boom".into()), 60)
            .await,
        "finish",
    );
    assert_eq!(outcome, FinishOutcome::Finished);
    let m = meta(&*store, &k).await;
    assert_eq!(m.status, MetadataStatus::Failed("boom".into()));
    assert_eq!(
        (m.updated_at_ms, m.completed_at_ms, m.created_at_ms),
        (60, Some(60), 10)
    );
    assert_eq!(ok(store.get_step(&k, "_output").await, "get"), None);
}

/// Finishing an instance that is missing, suspended, finished or cancelled
/// returns `NotRunning` with its status and writes nothing.
pub async fn finish_not_running_is_reported(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let outcome = ok(
        store
            .finish_instance(key("wf", "none"), Finish::Failed("x".into()), 1)
            .await,
        "finish",
    );
    assert_eq!(outcome, FinishOutcome::NotRunning(None));
    let (s, c, f, x) = (
        key("wf", "s"),
        key("wf", "c"),
        key("wf", "f"),
        key("wf", "x"),
    );
    for k in [&s, &c, &f, &x] {
        start(&*store, k, 1).await;
    }
    ok(
        store
            .suspend_step(s.clone(), "w".into(), waiting(), Some("w".into()), 2)
            .await,
        "suspend",
    );
    ok(
        store
            .finish_instance(c.clone(), completed(None, b"o"), 2)
            .await,
        "finish",
    );
    ok(
        store
            .finish_instance(f.clone(), Finish::Failed("e".into()), 2)
            .await,
        "finish",
    );
    ok(store.cancel_instance(x.clone(), 2).await, "cancel");
    let before = dump(&*store).await;
    for k in [&s, &c, &f, &x] {
        let status = meta(&*store, k).await.status;
        for fin in [
            completed(Some("again"), b"new"),
            Finish::Failed("again".into()),
        ] {
            let outcome = ok(store.finish_instance(k.clone(), fin, 9).await, "finish");
            assert_eq!(
                outcome,
                FinishOutcome::NotRunning(Some(status.clone())),
                "{k}"
            );
        }
    }
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused finish wrote something"
    );
}

/// Reviving a completed instance makes it `Running` (clearing
/// `completed_at`, `updated_at = now`) and keeps `_output`; the status
/// before is returned.
pub async fn revive_completed_runs_again_keeping_output(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 10).await;
    ok(
        store
            .finish_instance(k.clone(), completed(Some("ok"), b"out"), 20)
            .await,
        "finish",
    );
    let outcome = ok(store.revive_instance(k.clone(), 30).await, "revive");
    assert_eq!(
        outcome,
        ReviveOutcome::Revived(MetadataStatus::Completed(Some("ok".into())))
    );
    assert_eq!(
        meta(&*store, &k).await,
        WorkflowMetadata {
            updated_at_ms: 30,
            ..WorkflowMetadata::running(&k, 10)
        }
    );
    assert_eq!(
        ok(store.get_step(&k, "_output").await, "get"),
        Some(output(b"out"))
    );
    // The next finish replaces the output.
    ok(
        store
            .finish_instance(k.clone(), completed(None, b"out2"), 40)
            .await,
        "finish",
    );
    assert_eq!(
        ok(store.get_step(&k, "_output").await, "get"),
        Some(output(b"out2"))
    );
    assert_eq!(meta(&*store, &k).await.completed_at_ms, Some(40));
}

/// Reviving a failed instance makes it `Running` again.
pub async fn revive_failed_runs_again(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 10).await;
    ok(
        store
            .finish_instance(k.clone(), Finish::Failed("boom".into()), 20)
            .await,
        "finish",
    );
    let outcome = ok(store.revive_instance(k.clone(), 30).await, "revive");
    assert_eq!(
        outcome,
        ReviveOutcome::Revived(MetadataStatus::Failed("boom".into()))
    );
    assert_eq!(
        meta(&*store, &k).await,
        WorkflowMetadata {
            updated_at_ms: 30,
            ..WorkflowMetadata::running(&k, 10)
        }
    );
}

/// Reviving a running instance returns its status and writes nothing (not
/// even `updated_at`); reviving a suspended one (a resume, or a run whose
/// new code reaches new work) sets it `Running` and keeps its step records
/// and timer rows, so a signal or timer still reaches the point.
pub async fn revive_active_instance_writes_nothing(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let (r, s) = (key("wf", "r"), key("wf", "s"));
    start(&*store, &r, 1).await;
    start(&*store, &s, 1).await;
    ok(
        store
            .suspend_step(s.clone(), "t".into(), timer(9), Some("zz".into()), 2)
            .await,
        "suspend",
    );
    let before = dump(&*store).await;
    assert_eq!(
        ok(store.revive_instance(r.clone(), 50).await, "revive"),
        ReviveOutcome::Revived(MetadataStatus::Running)
    );
    assert_eq!(
        dump(&*store).await.instances,
        before.instances,
        "reviving a running instance wrote something"
    );
    let suspended = MetadataStatus::Suspended {
        key: "t".into(),
        status: Some("zz".into()),
    };
    assert_eq!(
        ok(store.revive_instance(s.clone(), 50).await, "revive"),
        ReviveOutcome::Revived(suspended)
    );
    assert_eq!(
        meta(&*store, &s).await,
        WorkflowMetadata {
            updated_at_ms: 50,
            ..WorkflowMetadata::running(&s, 1)
        }
    );
    let after = dump(&*store).await;
    assert_eq!(after.timers, before.timers, "revive dropped a timer row");
    assert_eq!(
        after.instance(&s).map(|i| &i.steps),
        before.instance(&s).map(|i| &i.steps),
        "revive changed a step record"
    );
}

/// Reviving a cancelled or missing instance is refused and writes nothing.
pub async fn revive_cancelled_or_missing_is_refused(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    assert_eq!(
        ok(store.revive_instance(k.clone(), 1).await, "revive"),
        ReviveOutcome::InstanceMissing
    );
    start(&*store, &k, 1).await;
    ok(store.cancel_instance(k.clone(), 2).await, "cancel");
    let before = dump(&*store).await;
    assert_eq!(
        ok(store.revive_instance(k.clone(), 3).await, "revive"),
        ReviveOutcome::Cancelled
    );
    assert_eq!(dump(&*store).await, before);
}

/// Cancelling a running or suspended instance sets `Cancelled` with
/// `updated_at = completed_at = now`, removes its timers, keeps its steps.
pub async fn cancel_active_instance(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let (r, s) = (key("wf", "r"), key("wf", "s"));
    start(&*store, &r, 1).await;
    start(&*store, &s, 1).await;
    ok(
        store
            .suspend_step(s.clone(), "t".into(), timer(9), None, 2)
            .await,
        "suspend",
    );
    for k in [&r, &s] {
        let steps_before = ok(store.load_instance(k).await, "load")
            .expect("snapshot")
            .steps;
        assert_eq!(
            ok(store.cancel_instance(k.clone(), 7).await, "cancel"),
            CancelOutcome::Cancelled
        );
        let m = meta(&*store, k).await;
        assert_eq!(
            m,
            WorkflowMetadata {
                status: MetadataStatus::Cancelled,
                updated_at_ms: 7,
                completed_at_ms: Some(7),
                ..WorkflowMetadata::running(k, 1)
            }
        );
        assert_eq!(
            ok(store.load_instance(k).await, "load")
                .expect("snapshot")
                .steps,
            steps_before
        );
    }
    assert_eq!(ok(store.next_timer_deadline().await, "next"), None);
}

/// Cancelling a missing or terminal instance returns `NotActive` with its
/// status and writes nothing.
pub async fn cancel_terminal_instance_is_refused(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    assert_eq!(
        ok(store.cancel_instance(key("wf", "none"), 1).await, "cancel"),
        CancelOutcome::NotActive(None)
    );
    let (c, f, x) = (key("wf", "c"), key("wf", "f"), key("wf", "x"));
    for k in [&c, &f, &x] {
        start(&*store, k, 1).await;
    }
    ok(
        store
            .finish_instance(c.clone(), completed(Some("s"), b"o"), 2)
            .await,
        "finish",
    );
    ok(
        store
            .finish_instance(f.clone(), Finish::Failed("e".into()), 2)
            .await,
        "finish",
    );
    ok(store.cancel_instance(x.clone(), 2).await, "cancel");
    let before = dump(&*store).await;
    for k in [&c, &f, &x] {
        let status = meta(&*store, k).await.status;
        assert_eq!(
            ok(store.cancel_instance(k.clone(), 9).await, "cancel"),
            CancelOutcome::NotActive(Some(status))
        );
    }
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused cancel wrote something"
    );
}
