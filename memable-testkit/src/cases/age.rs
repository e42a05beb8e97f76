//! `list_instances` by age: `created_before` / `created_since` on the
//! creation time (half-open: `since <= created_at_ms < before`),
//! `ended_before` on the time the instance ended, combined with the other
//! conditions, and `limit` counting matches only (a page is full unless the
//! listing ended), as retention sweeps rely on.

use memable_core::StepStoreExt;
use memable_core::{Finish, InstanceFilter, InstanceKey, StatusKind, StepStore};

use crate::StoreFactory;
use crate::support::{fresh, key, ok, output, start, waiting};

async fn list(store: &dyn StepStore, filter: InstanceFilter) -> Vec<InstanceKey> {
    ok(store.list_instances(&filter).await, "list_instances")
        .iter()
        .map(|m| ok(m.key(), "key"))
        .collect()
}

async fn complete(store: &dyn StepStore, k: &InstanceKey, at: u64) {
    let fin = Finish::Completed {
        status: None,
        output: output(b"o"),
    };
    ok(store.finish_instance(k.clone(), fin, at).await, "finish");
}

async fn fail(store: &dyn StepStore, k: &InstanceKey, at: u64) {
    ok(
        store
            .finish_instance(k.clone(), Finish::Failed("e".into()), at)
            .await,
        "finish",
    );
}

/// `created_before(t)` keeps `created_at_ms < t`, `created_since(t)` keeps
/// `created_at_ms >= t`, exactly at the boundaries, together a half-open
/// window, in any status.
pub async fn list_by_creation_time_is_half_open(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let at = [10, 20, 30, 40];
    let keys: Vec<InstanceKey> = at.iter().map(|t| key("wf", &format!("c{t}"))).collect();
    for (k, t) in keys.iter().zip(at) {
        start(&*store, k, t).await;
    }
    // Statuses do not matter to the creation time.
    complete(&*store, &keys[0], 100).await;
    ok(store.cancel_instance(keys[2].clone(), 100).await, "cancel");
    let s = &*store;
    assert_eq!(
        list(s, InstanceFilter::new().created_before(30)).await,
        keys[..2]
    );
    assert_eq!(
        list(s, InstanceFilter::new().created_before(31)).await,
        keys[..3]
    );
    assert!(
        list(s, InstanceFilter::new().created_before(10))
            .await
            .is_empty()
    );
    assert_eq!(
        list(s, InstanceFilter::new().created_since(20)).await,
        keys[1..]
    );
    assert!(
        list(s, InstanceFilter::new().created_since(41))
            .await
            .is_empty()
    );
    assert_eq!(
        list(
            s,
            InstanceFilter::new().created_since(20).created_before(40)
        )
        .await,
        keys[1..3]
    );
    assert_eq!(
        list(
            s,
            InstanceFilter::new()
                .created_since(0)
                .created_before(u64::MAX)
        )
        .await,
        keys
    );
}

/// `ended_before(t)` keeps instances that ended (completed, failed or
/// cancelled) strictly before `t`; running, suspended and revived instances
/// have not ended and never match.
pub async fn list_by_end_time_skips_instances_not_ended(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let s = &*store;
    let done = key("wf", "completed");
    let failed = key("wf", "failed");
    let cancelled = key("wf", "cancelled");
    let running = key("wf", "running");
    let suspended = key("wf", "suspended");
    let revived = key("wf", "revived");
    for k in [&done, &failed, &cancelled, &running, &suspended, &revived] {
        start(s, k, 1).await;
    }
    complete(s, &done, 50).await;
    fail(s, &failed, 60).await;
    ok(s.cancel_instance(cancelled.clone(), 70).await, "cancel");
    ok(
        s.suspend_step(suspended.clone(), "w".into(), waiting(), None, 5)
            .await,
        "suspend",
    );
    complete(s, &revived, 10).await;
    ok(s.revive_instance(revived.clone(), 20).await, "revive");

    assert!(
        list(s, InstanceFilter::new().ended_before(50))
            .await
            .is_empty()
    );
    assert_eq!(
        list(s, InstanceFilter::new().ended_before(51)).await,
        vec![done.clone()]
    );
    let mut all_ended = vec![cancelled.clone(), done.clone(), failed.clone()];
    all_ended.sort();
    assert_eq!(
        list(s, InstanceFilter::new().ended_before(u64::MAX)).await,
        all_ended
    );
    assert_eq!(
        list(
            s,
            InstanceFilter::new()
                .status(StatusKind::Failed)
                .ended_before(u64::MAX)
        )
        .await,
        vec![failed.clone()]
    );
    assert!(
        list(
            s,
            InstanceFilter::new()
                .status(StatusKind::Cancelled)
                .ended_before(70)
        )
        .await
        .is_empty()
    );
    for kind in [StatusKind::Running, StatusKind::Suspended] {
        assert!(
            list(s, InstanceFilter::new().status(kind).ended_before(u64::MAX))
                .await
                .is_empty(),
            "{kind:?} instances have not ended"
        );
    }
    // The end time and the creation time are separate conditions.
    assert_eq!(
        list(s, InstanceFilter::new().ended_before(61).created_since(2)).await,
        Vec::<InstanceKey>::new()
    );
}

/// With age conditions `limit` still counts only matching instances: every
/// page but the last is full, even when most instances in key order do not
/// match, and paging with `after` reaches every match once, also combined
/// with a workflow and a status.
pub async fn age_filtered_pages_are_full(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let s = &*store;
    let mut old = Vec::new();
    for i in 0..40u64 {
        let workflow = if i % 4 == 3 { "other" } else { "wf" };
        let k = key(workflow, &format!("{i:03}"));
        start(s, &k, i).await;
        // Every fifth instance ended long ago, the rest recently or not at all.
        match i % 5 {
            0 => {
                complete(s, &k, 100 + i).await;
                if workflow == "wf" {
                    old.push(k);
                }
            }
            1 => complete(s, &k, 10_000).await,
            2 => fail(s, &k, 10_000).await,
            _ => {}
        }
    }
    assert_eq!(old.len(), 6);
    let filter = InstanceFilter::new()
        .workflow("wf")
        .status(StatusKind::Completed)
        .ended_before(1_000);
    let mut seen = Vec::new();
    let mut page_filter = filter.clone().limit(4);
    loop {
        let page = list(s, page_filter.clone()).await;
        assert!(page.len() <= 4);
        let last_page = page.len() < 4;
        if !last_page {
            assert_eq!(page.len(), 4, "a page that is not the last is full");
        }
        seen.extend(page.iter().cloned());
        match page.last() {
            Some(last) if !last_page => page_filter = page_filter.after(last.clone()),
            _ => break,
        }
    }
    assert_eq!(seen, old);
    // A creation window on top: only the old ones created in [10, 30).
    let windowed: Vec<InstanceKey> = old
        .iter()
        .filter(|k| {
            let n: u64 = k.instance().parse().unwrap_or(u64::MAX);
            (10..30).contains(&n)
        })
        .cloned()
        .collect();
    assert_eq!(
        list(s, filter.created_since(10).created_before(30).limit(100)).await,
        windowed
    );
}

/// `delete_ended(k, t)` (what retention calls) deletes an instance only if
/// it has ended, and before `t` (strictly), checking in its own
/// transaction: an instance that is running, suspended, revived after a
/// listing, or ended at or after `t` is kept and nothing is written.
pub async fn delete_ended_checks_the_end_in_its_transaction(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let s = &*store;
    let (old, recent, running, suspended, revived) = (
        key("wf", "old"),
        key("wf", "recent"),
        key("wf", "running"),
        key("wf", "suspended"),
        key("wf", "revived"),
    );
    for k in [&old, &recent, &running, &suspended, &revived] {
        start(s, k, 1).await;
    }
    complete(s, &old, 10).await;
    fail(s, &recent, 100).await;
    ok(
        s.wait_at(suspended.clone(), "p".into(), waiting(), Vec::new(), 2)
            .await,
        "wait_at",
    );
    complete(s, &revived, 10).await;
    // Listed as ended, then resumed before the delete.
    ok(s.revive_instance(revived.clone(), 50).await, "revive");

    for k in [&recent, &running, &suspended, &revived] {
        assert!(
            !ok(s.delete_ended(k.clone(), 100).await, "delete_ended"),
            "{k} was deleted"
        );
        assert!(
            ok(s.get_metadata(k).await, "get_metadata").is_some(),
            "{k} is gone"
        );
    }
    assert!(ok(s.delete_ended(old.clone(), 11).await, "delete_ended"));
    assert!(ok(s.get_metadata(&old).await, "get_metadata").is_none());
    assert!(!ok(s.delete_ended(old, 11).await, "delete_ended again"));
    assert!(ok(
        s.delete_ended(recent.clone(), 101).await,
        "delete_ended"
    ));
    assert_eq!(
        list(s, InstanceFilter::new()).await,
        [revived, running, suspended]
    );
}
