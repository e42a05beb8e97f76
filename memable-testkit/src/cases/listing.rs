//! `list_instances`: ordered by `(workflow, instance)`, filtered by exact
//! workflow name and by status (through an index that follows every
//! transition), paged with `after` + `limit`.

use memable_core::StepStoreExt;
use memable_core::{Finish, InstanceFilter, InstanceKey, StatusKind, StepStore, WorkflowMetadata};

use crate::StoreFactory;
use crate::support::{fresh, key, ok, output, payload, start, timer, waiting};

async fn list(store: &dyn StepStore, filter: InstanceFilter) -> Vec<InstanceKey> {
    ok(store.list_instances(&filter).await, "list_instances")
        .iter()
        .map(|m: &WorkflowMetadata| ok(m.key(), "key"))
        .collect()
}

/// Puts instance `k` into status `kind`.
async fn make(store: &dyn StepStore, k: &InstanceKey, kind: StatusKind) {
    start(store, k, 1).await;
    match kind {
        StatusKind::Running => {}
        StatusKind::Suspended => {
            ok(
                store
                    .suspend_step(k.clone(), "w".into(), waiting(), None, 2)
                    .await,
                "suspend",
            );
        }
        StatusKind::Completed => {
            let fin = Finish::Completed {
                status: None,
                output: output(b"o"),
            };
            ok(store.finish_instance(k.clone(), fin, 2).await, "finish");
        }
        StatusKind::Failed => {
            ok(
                store
                    .finish_instance(k.clone(), Finish::Failed("e".into()), 2)
                    .await,
                "finish",
            );
        }
        StatusKind::Cancelled => {
            ok(store.cancel_instance(k.clone(), 2).await, "cancel");
        }
    }
}

/// Without a filter every instance is listed once, ordered by workflow name
/// then instance id (byte order), whatever the insertion order.
pub async fn list_all_ordered_by_workflow_then_instance(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let mut keys = vec![
        key("b", "1"),
        key("a", "2"),
        key("a", "10"),
        key("ab", "0"),
        key("a-b", "0"),
        key("B", "9"),
        key("a", "1"),
        key("é", "1"),
        key("z", "z"),
    ];
    for k in &keys {
        start(&*store, k, 1).await;
    }
    keys.sort();
    assert_eq!(list(&*store, InstanceFilter::new()).await, keys);
}

/// Filtering by workflow name matches it exactly, never its prefixes or
/// extensions.
pub async fn list_by_workflow_is_exact(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for w in ["a", "a-b", "ab", "b", "a "] {
        for i in ["1", "2"] {
            start(&*store, &key(w, i), 1).await;
        }
    }
    assert_eq!(
        list(&*store, InstanceFilter::new().workflow("a")).await,
        vec![key("a", "1"), key("a", "2")]
    );
    assert_eq!(
        list(&*store, InstanceFilter::new().workflow("ab")).await,
        vec![key("ab", "1"), key("ab", "2")]
    );
    assert!(
        list(&*store, InstanceFilter::new().workflow("a-"))
            .await
            .is_empty()
    );
    assert!(
        list(&*store, InstanceFilter::new().workflow(""))
            .await
            .is_empty()
    );
}

/// Filtering by status returns exactly the instances in that status, for
/// each of the five statuses.
pub async fn list_by_each_status(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let mut expected: Vec<(StatusKind, Vec<InstanceKey>)> = Vec::new();
    for (n, kind) in StatusKind::ALL.into_iter().enumerate() {
        let mut keys = Vec::new();
        for i in 0..=n {
            let k = key(&format!("w{}", i % 2), &format!("{}-{i}", kind.as_str()));
            make(&*store, &k, kind).await;
            keys.push(k);
        }
        keys.sort();
        expected.push((kind, keys));
    }
    for (kind, keys) in expected {
        assert_eq!(
            list(&*store, InstanceFilter::new().status(kind)).await,
            keys,
            "status {kind:?}"
        );
        let metas = ok(
            store
                .list_instances(&InstanceFilter::new().status(kind))
                .await,
            "list",
        );
        assert!(metas.iter().all(|m| m.status.kind() == kind));
    }
}

/// The status index follows every transition: start → suspend → claim →
/// finish → revive → cancel → delete, checked at each step.
pub async fn status_index_follows_transitions(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    let other = key("wf", "0");
    make(&*store, &other, StatusKind::Running).await;
    let only = |kind: StatusKind| {
        let store = store.clone();
        let k = k.clone();
        let other = other.clone();
        async move {
            for s in StatusKind::ALL {
                let mut want = Vec::new();
                if s == StatusKind::Running {
                    want.push(other.clone());
                }
                if s == kind {
                    want.push(k.clone());
                }
                want.sort();
                assert_eq!(
                    list(&*store, InstanceFilter::new().status(s)).await,
                    want,
                    "listing {s:?} while {k} is {kind:?}"
                );
            }
        }
    };
    start(&*store, &k, 1).await;
    only(StatusKind::Running).await;
    ok(
        store
            .suspend_step(k.clone(), "t".into(), timer(5), None, 2)
            .await,
        "suspend",
    );
    only(StatusKind::Suspended).await;
    ok(
        store
            .claim_step(k.clone(), "t".into(), payload(b""), 3)
            .await,
        "claim",
    );
    only(StatusKind::Running).await;
    ok(
        store
            .finish_instance(k.clone(), Finish::Failed("e".into()), 4)
            .await,
        "finish",
    );
    only(StatusKind::Failed).await;
    ok(store.revive_instance(k.clone(), 5).await, "revive");
    only(StatusKind::Running).await;
    let fin = Finish::Completed {
        status: None,
        output: output(b""),
    };
    ok(store.finish_instance(k.clone(), fin, 6).await, "finish");
    only(StatusKind::Completed).await;
    ok(store.revive_instance(k.clone(), 7).await, "revive");
    ok(
        store
            .suspend_step(k.clone(), "w".into(), waiting(), None, 8)
            .await,
        "suspend",
    );
    ok(store.cancel_instance(k.clone(), 9).await, "cancel");
    only(StatusKind::Cancelled).await;
    ok(store.delete_instance(k.clone()).await, "delete");
    for s in StatusKind::ALL {
        assert!(
            !list(&*store, InstanceFilter::new().status(s))
                .await
                .contains(&k),
            "deleted {k} still listed as {s:?}"
        );
    }
}

/// Paging with `after` = last key of the previous page and `limit` visits
/// every instance exactly once, with and without a status filter.
pub async fn list_pages_with_after_and_limit(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for w in ["a", "b", "c"] {
        for i in 0..7 {
            let k = key(w, &format!("{i}"));
            let kind = if i % 2 == 0 {
                StatusKind::Running
            } else {
                StatusKind::Failed
            };
            make(&*store, &k, kind).await;
        }
    }
    for filter in [
        InstanceFilter::new(),
        InstanceFilter::new().status(StatusKind::Failed),
        InstanceFilter::new().workflow("b"),
    ] {
        let all = list(&*store, filter.clone()).await;
        for page_size in [1, 2, 5, 100] {
            let mut seen = Vec::new();
            let mut page_filter = filter.clone().limit(page_size);
            for _ in 0..=all.len() {
                let page = list(&*store, page_filter.clone()).await;
                assert!(page.len() <= page_size);
                let Some(last) = page.last().cloned() else {
                    break;
                };
                assert!(
                    page.iter()
                        .all(|k| page_filter.after.as_ref().is_none_or(|a| k > a)),
                    "page after {:?} holds earlier keys: {page:?}",
                    page_filter.after
                );
                seen.extend(page);
                page_filter = page_filter.after(last);
            }
            assert_eq!(seen, all, "paging by {page_size} with {filter:?}");
        }
    }
    assert_eq!(
        list(&*store, InstanceFilter::new().limit(0)).await,
        Vec::<InstanceKey>::new()
    );
    // `after` a key that does not exist starts right after its position.
    let after = list(
        &*store,
        InstanceFilter::new().after(key("a", "66")).limit(2),
    )
    .await;
    assert_eq!(after, vec![key("b", "0"), key("b", "1")]);
}

/// Workflow and status filters combine (both must hold).
pub async fn list_by_workflow_and_status(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    make(&*store, &key("a", "1"), StatusKind::Running).await;
    make(&*store, &key("a", "2"), StatusKind::Cancelled).await;
    make(&*store, &key("ab", "1"), StatusKind::Cancelled).await;
    make(&*store, &key("b", "1"), StatusKind::Cancelled).await;
    let got = list(
        &*store,
        InstanceFilter::new()
            .workflow("a")
            .status(StatusKind::Cancelled),
    )
    .await;
    assert_eq!(got, vec![key("a", "2")]);
    assert!(
        list(
            &*store,
            InstanceFilter::new()
                .workflow("a")
                .status(StatusKind::Suspended)
        )
        .await
        .is_empty()
    );
}
