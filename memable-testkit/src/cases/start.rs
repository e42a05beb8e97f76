//! `start_instance`: creates metadata + `_input` together; an existing key is
//! reported and never overwritten.

use memable_core::StepStoreExt;
use memable_core::{
    CancelOutcome, Finish, FinishOutcome, InstanceFilter, MetadataStatus, StartOutcome,
    WorkflowMetadata,
};

use crate::StoreFactory;
use crate::support::{dump, fresh, input, key, ok, output, start};

/// A started instance is `Running` with `created_at = updated_at = now`, no
/// `completed_at`, and its `_input` record is exactly the input given.
pub async fn start_writes_running_metadata_and_input(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("orders", "1");
    let rec = input(b"the input");
    let outcome = ok(
        store.start_instance(k.clone(), rec.clone(), 1_234).await,
        "start",
    );
    assert_eq!(outcome, StartOutcome::Started);
    let meta = ok(store.get_metadata(&k).await, "get_metadata").expect("metadata written");
    assert_eq!(meta, WorkflowMetadata::running(&k, 1_234));
    assert_eq!(meta.completed_at_ms, None);
    assert_eq!(
        ok(store.get_step(&k, "_input").await, "get_step"),
        Some(rec.clone())
    );
    let snap = ok(store.load_instance(&k).await, "load").expect("snapshot");
    assert_eq!(snap.metadata, meta);
    assert_eq!(snap.steps, vec![("_input".to_owned(), rec)]);
}

/// Starting an existing `(name, id)` returns `Exists` with the current
/// metadata and writes nothing: input, timestamps and steps are unchanged.
pub async fn start_existing_is_reported_never_overwrites(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("orders", "1");
    ok(
        store.start_instance(k.clone(), input(b"first"), 10).await,
        "start",
    );
    ok(
        store
            .commit_step(k.clone(), "a".into(), crate::support::done(b"A"))
            .await,
        "commit",
    );
    let before = dump(&*store).await;
    let outcome = ok(
        store.start_instance(k.clone(), input(b"second"), 99).await,
        "start again",
    );
    assert_eq!(
        outcome,
        StartOutcome::Exists(WorkflowMetadata::running(&k, 10))
    );
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused start wrote something"
    );
    assert_eq!(
        ok(store.get_step(&k, "_input").await, "get_step"),
        Some(input(b"first"))
    );
}

/// Starting a completed instance again is reported with its terminal
/// metadata; its status, input and output stay.
pub async fn start_existing_finished_instance_is_reported(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("orders", "1");
    start(&*store, &k, 10).await;
    let finish = Finish::Completed {
        status: Some("done".into()),
        output: output(b"out"),
    };
    assert_eq!(
        ok(store.finish_instance(k.clone(), finish, 20).await, "finish"),
        FinishOutcome::Finished
    );
    let before = dump(&*store).await;
    let meta = before.instance(&k).expect("instance").metadata.clone();
    assert_eq!(meta.status, MetadataStatus::Completed(Some("done".into())));
    let outcome = ok(
        store.start_instance(k.clone(), input(b"again"), 30).await,
        "start again",
    );
    assert_eq!(outcome, StartOutcome::Exists(meta));
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused start wrote something"
    );
}

/// Starting a cancelled instance again is reported; it stays cancelled.
pub async fn start_existing_cancelled_instance_is_reported(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("orders", "1");
    start(&*store, &k, 10).await;
    assert_eq!(
        ok(store.cancel_instance(k.clone(), 15).await, "cancel"),
        CancelOutcome::Cancelled
    );
    let before = dump(&*store).await;
    match ok(
        store.start_instance(k.clone(), input(b"again"), 30).await,
        "start again",
    ) {
        StartOutcome::Exists(meta) => assert_eq!(meta.status, MetadataStatus::Cancelled),
        StartOutcome::Started => panic!("a cancelled instance was started over"),
    }
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused start wrote something"
    );
}

/// The same instance id under two workflow names is two instances, each
/// with its own input.
pub async fn start_same_id_in_two_workflows_is_two_instances(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let a = key("alpha", "1");
    let b = key("beta", "1");
    assert_eq!(
        ok(
            store.start_instance(a.clone(), input(b"A"), 1).await,
            "start"
        ),
        StartOutcome::Started
    );
    assert_eq!(
        ok(
            store.start_instance(b.clone(), input(b"B"), 2).await,
            "start"
        ),
        StartOutcome::Started
    );
    assert_eq!(
        ok(store.get_step(&a, "_input").await, "get"),
        Some(input(b"A"))
    );
    assert_eq!(
        ok(store.get_step(&b, "_input").await, "get"),
        Some(input(b"B"))
    );
    let all = ok(store.list_instances(&InstanceFilter::new()).await, "list");
    assert_eq!(
        all,
        vec![
            WorkflowMetadata::running(&a, 1),
            WorkflowMetadata::running(&b, 2)
        ]
    );
}

/// An empty store answers every read with nothing: no metadata, snapshot,
/// step, listing or timer.
pub async fn missing_instance_reads_are_empty(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("orders", "1");
    assert_eq!(ok(store.get_metadata(&k).await, "get_metadata"), None);
    assert_eq!(ok(store.load_instance(&k).await, "load_instance"), None);
    assert_eq!(ok(store.get_step(&k, "_input").await, "get_step"), None);
    assert!(ok(store.list_instances(&InstanceFilter::new()).await, "list").is_empty());
    assert!(ok(store.due_timers(u64::MAX, usize::MAX).await, "due_timers").is_empty());
    assert_eq!(
        ok(store.next_timer_deadline().await, "next_timer_deadline"),
        None
    );
    // Another instance existing does not change that.
    start(&*store, &key("orders", "2"), 1).await;
    assert_eq!(ok(store.load_instance(&k).await, "load_instance"), None);
    assert_eq!(ok(store.get_step(&k, "_input").await, "get_step"), None);
}
