//! `suspend_step`: step `Suspended` + timer row + instance `Suspended`
//! together; idempotent; refused for completed steps and inactive instances.

use memable_core::StepStoreExt;
use memable_core::{Finish, MetadataStatus, SuspendOutcome, WorkflowMetadata};

use crate::StoreFactory;
use crate::support::{done, dump, entry, fresh, key, ok, output, start, timer, waiting};

/// Suspending writes the record, the timer row and `Suspended{key,status}`
/// with `updated_at = now`; `created_at` is kept.
pub async fn suspend_writes_step_timer_and_status(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 10).await;
    let outcome = ok(
        store
            .suspend_step(
                k.clone(),
                "nap".into(),
                timer(500),
                Some("sleeping".into()),
                20,
            )
            .await,
        "suspend",
    );
    assert_eq!(outcome, SuspendOutcome::Suspended);
    assert_eq!(ok(store.get_step(&k, "nap").await, "get"), Some(timer(500)));
    let meta = ok(store.get_metadata(&k).await, "get_metadata").expect("metadata");
    let expected = WorkflowMetadata {
        status: MetadataStatus::Suspended {
            key: "nap".into(),
            status: Some("sleeping".into()),
        },
        updated_at_ms: 20,
        ..WorkflowMetadata::running(&k, 10)
    };
    assert_eq!(meta, expected);
    assert_eq!(
        ok(store.due_timers(u64::MAX, 10).await, "due"),
        vec![entry(500, &k, "nap")]
    );
    assert_eq!(ok(store.next_timer_deadline().await, "next"), Some(500));
}

/// A suspend point without a deadline writes no timer row.
pub async fn suspend_without_deadline_writes_no_timer(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    assert_eq!(
        ok(
            store
                .suspend_step(k.clone(), "approval".into(), waiting(), None, 2)
                .await,
            "suspend"
        ),
        SuspendOutcome::Suspended
    );
    assert_eq!(
        ok(store.get_step(&k, "approval").await, "get"),
        Some(waiting())
    );
    assert!(ok(store.due_timers(u64::MAX, 10).await, "due").is_empty());
    assert_eq!(ok(store.next_timer_deadline().await, "next"), None);
}

/// Suspending an already suspended step again rewrites the same rows: one
/// record, one timer row.
pub async fn suspend_is_idempotent(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store
            .suspend_step(k.clone(), "nap".into(), timer(100), Some("s".into()), 2)
            .await,
        "suspend",
    );
    let first = dump(&*store).await;
    assert_eq!(
        ok(
            store
                .suspend_step(k.clone(), "nap".into(), timer(100), Some("s".into()), 2)
                .await,
            "suspend"
        ),
        SuspendOutcome::Suspended
    );
    assert_eq!(dump(&*store).await, first);
    assert_eq!(first.timers, vec![entry(100, &k, "nap")]);
}

/// Re-suspending a step with another deadline replaces its timer row.
pub async fn resuspend_with_new_deadline_replaces_timer(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store
            .suspend_step(k.clone(), "nap".into(), timer(100), None, 2)
            .await,
        "suspend",
    );
    ok(
        store
            .suspend_step(k.clone(), "nap".into(), timer(300), None, 3)
            .await,
        "suspend",
    );
    assert_eq!(
        ok(store.due_timers(u64::MAX, 10).await, "due"),
        vec![entry(300, &k, "nap")]
    );
    assert_eq!(ok(store.next_timer_deadline().await, "next"), Some(300));
    assert_eq!(ok(store.get_step(&k, "nap").await, "get"), Some(timer(300)));
}

/// Suspending a step that already has a `Completed` record (a signal won
/// the race) returns it and writes nothing.
pub async fn suspend_completed_step_is_reported(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store
            .commit_step(k.clone(), "nap".into(), done(b"already"))
            .await,
        "commit",
    );
    let before = dump(&*store).await;
    let outcome = ok(
        store
            .suspend_step(k.clone(), "nap".into(), timer(100), None, 5)
            .await,
        "suspend",
    );
    assert_eq!(outcome, SuspendOutcome::AlreadyCompleted(done(b"already")));
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused suspend wrote something"
    );
}

/// Suspending in a missing, completed, failed or cancelled instance returns
/// `NotActive` with its status and writes nothing.
pub async fn suspend_inactive_instance_is_reported(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let missing = key("wf", "missing");
    let before = dump(&*store).await;
    assert_eq!(
        ok(
            store
                .suspend_step(missing, "s".into(), timer(1), None, 1)
                .await,
            "suspend"
        ),
        SuspendOutcome::NotActive(None)
    );
    assert_eq!(dump(&*store).await, before);
    let (c, f, x) = (key("wf", "c"), key("wf", "f"), key("wf", "x"));
    for k in [&c, &f, &x] {
        start(&*store, k, 1).await;
    }
    let fin = Finish::Completed {
        status: Some("ok".into()),
        output: output(b"o"),
    };
    ok(store.finish_instance(c.clone(), fin, 2).await, "finish");
    ok(
        store
            .finish_instance(f.clone(), Finish::Failed("bad".into()), 2)
            .await,
        "finish",
    );
    ok(store.cancel_instance(x.clone(), 2).await, "cancel");
    let before = dump(&*store).await;
    for (k, status) in [
        (&c, MetadataStatus::Completed(Some("ok".into()))),
        (&f, MetadataStatus::Failed("bad".into())),
        (&x, MetadataStatus::Cancelled),
    ] {
        let outcome = ok(
            store
                .suspend_step(k.clone(), "s".into(), timer(7), None, 9)
                .await,
            "suspend",
        );
        assert_eq!(outcome, SuspendOutcome::NotActive(Some(status)), "{k}");
    }
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused suspend wrote something"
    );
}

/// An instance suspended at one step may suspend at another: the metadata
/// points at the newest, both records and both timers remain.
pub async fn suspend_while_suspended_moves_the_status(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store
            .suspend_step(k.clone(), "a".into(), timer(10), None, 2)
            .await,
        "suspend",
    );
    assert_eq!(
        ok(
            store
                .suspend_step(k.clone(), "b".into(), timer(20), Some("b".into()), 3)
                .await,
            "suspend"
        ),
        SuspendOutcome::Suspended
    );
    let meta = ok(store.get_metadata(&k).await, "get_metadata").expect("metadata");
    assert_eq!(
        meta.status,
        MetadataStatus::Suspended {
            key: "b".into(),
            status: Some("b".into())
        }
    );
    assert_eq!(meta.updated_at_ms, 3);
    assert_eq!(
        ok(store.due_timers(u64::MAX, 10).await, "due"),
        vec![entry(10, &k, "a"), entry(20, &k, "b")]
    );
}
