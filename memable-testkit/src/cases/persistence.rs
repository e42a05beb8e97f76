//! Persistence: what was committed is there after the store is dropped and
//! reopened (for factories whose fixtures can reopen).

use memable_core::StepStoreExt;
use memable_core::{ClaimOutcome, InstanceFilter, MetadataStatus, StartOutcome, StatusKind};

use crate::StoreFactory;
use crate::support::{dump, fresh, input, key, ok, payload, populate, skip, start, timer};

/// Every instance, step, timer and index entry is identical after a
/// reopen.
pub async fn reopen_keeps_everything(factory: &dyn StoreFactory) {
    if !factory.capabilities().reopen {
        return skip(
            "reopen_keeps_everything",
            factory,
            "the factory cannot reopen",
        );
    }
    let (mut fx, store) = fresh(factory).await;
    populate(&*store).await;
    let before = dump(&*store).await;
    let mut by_status = Vec::new();
    for kind in StatusKind::ALL {
        by_status.push(ok(
            store
                .list_instances(&InstanceFilter::new().status(kind))
                .await,
            "list",
        ));
    }
    drop(store);
    ok(fx.reopen().await, "reopen");
    let store = fx.store();
    assert_eq!(dump(&*store).await, before, "state changed across a reopen");
    for (kind, expected) in StatusKind::ALL.into_iter().zip(by_status) {
        assert_eq!(
            ok(
                store
                    .list_instances(&InstanceFilter::new().status(kind))
                    .await,
                "list"
            ),
            expected,
            "{kind:?} index"
        );
    }
}

/// After a reopen the store keeps working: persisted suspend points can be
/// claimed, existing keys are reported on start, new writes land, and a
/// second reopen keeps those too.
pub async fn reopen_then_writes_continue(factory: &dyn StoreFactory) {
    if !factory.capabilities().reopen {
        return skip(
            "reopen_then_writes_continue",
            factory,
            "the factory cannot reopen",
        );
    }
    let (mut fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store
            .suspend_step(k.clone(), "nap".into(), timer(77), None, 2)
            .await,
        "suspend",
    );
    drop(store);
    ok(fx.reopen().await, "reopen");
    let store = fx.store();
    assert_eq!(ok(store.next_timer_deadline().await, "next"), Some(77));
    assert!(matches!(
        ok(
            store.start_instance(k.clone(), input(b"x"), 3).await,
            "start"
        ),
        StartOutcome::Exists(_)
    ));
    assert_eq!(
        ok(
            store
                .claim_step(k.clone(), "nap".into(), payload(b"p"), 4)
                .await,
            "claim"
        ),
        ClaimOutcome::Claimed
    );
    let k2 = key("wf", "2");
    start(&*store, &k2, 5).await;
    let before = dump(&*store).await;
    drop(store);
    ok(fx.reopen().await, "reopen");
    let store = fx.store();
    assert_eq!(dump(&*store).await, before);
    let meta = ok(store.get_metadata(&k).await, "meta").expect("metadata");
    assert_eq!(meta.status, MetadataStatus::Running);
    assert_eq!(ok(store.next_timer_deadline().await, "next"), None);
}

/// An empty store reopens empty, and reopening several times in a row
/// changes nothing.
pub async fn reopen_empty_store_stays_empty(factory: &dyn StoreFactory) {
    if !factory.capabilities().reopen {
        return skip(
            "reopen_empty_store_stays_empty",
            factory,
            "the factory cannot reopen",
        );
    }
    let (mut fx, store) = fresh(factory).await;
    let empty = dump(&*store).await;
    drop(store);
    for _ in 0..3 {
        ok(fx.reopen().await, "reopen");
    }
    let store = fx.store();
    assert_eq!(dump(&*store).await, empty);
    assert!(empty.instances.is_empty());
}
