//! `delete_instance` (retention): every row of the instance goes, together;
//! nothing of any other instance does.

use memable_core::StepStoreExt;
use memable_core::{Finish, InstanceFilter, StartOutcome};

use crate::StoreFactory;
use crate::support::{done, dump, fresh, input, key, ok, output, start, timer, waiting};

/// Deleting removes metadata, `_input`, `_output`, every step and every
/// timer row, returns `true`; the key can then start afresh with nothing
/// left over.
pub async fn delete_removes_every_row(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    let keep = key("wf", "10");
    start(&*store, &keep, 1).await;
    ok(
        store
            .suspend_step(keep.clone(), "t".into(), timer(7), None, 2)
            .await,
        "suspend",
    );
    let kept = dump(&*store).await;

    ok(
        store.start_instance(k.clone(), input(b"old"), 1).await,
        "start",
    );
    for i in 0..20 {
        ok(
            store
                .commit_step(k.clone(), format!("s{i}"), done(b"v"))
                .await,
            "commit",
        );
    }
    ok(
        store
            .suspend_step(k.clone(), "a".into(), timer(5), None, 2)
            .await,
        "suspend",
    );
    ok(
        store.claim_step(k.clone(), "a".into(), done(b"p"), 3).await,
        "claim",
    );
    let fin = Finish::Completed {
        status: None,
        output: output(b"out"),
    };
    ok(store.finish_instance(k.clone(), fin, 4).await, "finish");
    ok(store.revive_instance(k.clone(), 5).await, "revive");
    ok(
        store
            .suspend_step(k.clone(), "b".into(), timer(6), None, 6)
            .await,
        "suspend",
    );
    ok(
        store
            .suspend_step(k.clone(), "c".into(), waiting(), None, 6)
            .await,
        "suspend",
    );

    assert!(ok(store.delete_instance(k.clone()).await, "delete"));
    assert_eq!(
        dump(&*store).await,
        kept,
        "delete left rows behind or touched another instance"
    );
    assert_eq!(ok(store.get_metadata(&k).await, "meta"), None);
    for step in ["_input", "_output", "s0", "s19", "a", "b", "c"] {
        assert_eq!(
            ok(store.get_step(&k, step).await, "get"),
            None,
            "step {step} survived delete"
        );
    }
    assert_eq!(
        ok(
            store.start_instance(k.clone(), input(b"new"), 9).await,
            "start"
        ),
        StartOutcome::Started
    );
    let snap = ok(store.load_instance(&k).await, "load").expect("snapshot");
    assert_eq!(snap.steps, vec![("_input".to_owned(), input(b"new"))]);
    assert_eq!(snap.metadata.created_at_ms, 9);
}

/// Deleting a missing instance returns `false` and writes nothing; a second
/// delete of the same key also returns `false`.
pub async fn delete_missing_returns_false(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    start(&*store, &key("wf", "2"), 1).await;
    let before = dump(&*store).await;
    assert!(!ok(store.delete_instance(key("wf", "1")).await, "delete"));
    assert_eq!(dump(&*store).await, before);
    assert!(ok(store.delete_instance(key("wf", "2")).await, "delete"));
    assert!(!ok(store.delete_instance(key("wf", "2")).await, "delete"));
}

/// Deleting instances in every status empties the store completely.
pub async fn delete_in_every_status_empties_the_store(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let keys: Vec<_> = (0..5).map(|i| key("wf", &i.to_string())).collect();
    for k in &keys {
        start(&*store, k, 1).await;
        ok(
            store
                .suspend_step(k.clone(), "t".into(), timer(3), None, 2)
                .await,
            "suspend",
        );
    }
    ok(
        store
            .claim_step(keys[0].clone(), "t".into(), done(b""), 3)
            .await,
        "claim",
    );
    ok(
        store
            .claim_step(keys[1].clone(), "t".into(), done(b""), 3)
            .await,
        "claim",
    );
    let fin = Finish::Completed {
        status: None,
        output: output(b"o"),
    };
    ok(
        store.finish_instance(keys[1].clone(), fin, 4).await,
        "finish",
    );
    ok(
        store
            .claim_step(keys[2].clone(), "t".into(), done(b""), 3)
            .await,
        "claim",
    );
    ok(
        store
            .finish_instance(keys[2].clone(), Finish::Failed("x".into()), 4)
            .await,
        "finish",
    );
    ok(store.cancel_instance(keys[3].clone(), 4).await, "cancel");
    for k in &keys {
        assert!(ok(store.delete_instance(k.clone()).await, "delete"));
    }
    let d = dump(&*store).await;
    assert!(
        d.instances.is_empty() && d.timers.is_empty() && d.next_deadline.is_none(),
        "{d:?}"
    );
    for kind in memable_core::StatusKind::ALL {
        assert!(
            ok(
                store
                    .list_instances(&InstanceFilter::new().status(kind))
                    .await,
                "list"
            )
            .is_empty()
        );
    }
}
