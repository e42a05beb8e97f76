//! No prefix bleed: keys that share prefixes, look like separators, use
//! unicode or are long never mix in reads, listings, snapshots, timers or
//! deletions.

use memable_core::StepStoreExt;
use memable_core::{InstanceFilter, InstanceKey, MAX_KEY_LEN, StepStore};

use crate::StoreFactory;
use crate::support::{done, dump, fresh, key, ok, start, timer};

/// Starts every key, gives each one step and one timer carrying its own
/// name, then checks each snapshot, listing and timer belongs to it alone,
/// and that deleting each key in turn leaves the others intact.
async fn check_isolated(store: &dyn StepStore, keys: &[InstanceKey]) {
    for (i, k) in keys.iter().enumerate() {
        start(store, k, 1).await;
        ok(
            store
                .commit_step(k.clone(), "s".into(), done(k.to_string().as_bytes()))
                .await,
            "commit",
        );
        let deadline = 1_000 + u64::try_from(i).unwrap_or(0);
        ok(
            store
                .suspend_step(k.clone(), "t".into(), timer(deadline), None, 2)
                .await,
            "suspend",
        );
    }
    let all = ok(store.list_instances(&InstanceFilter::new()).await, "list");
    assert_eq!(all.len(), keys.len(), "listing: {all:?}");
    let mut sorted: Vec<_> = keys.to_vec();
    sorted.sort();
    let listed: Vec<_> = all.iter().map(|m| ok(m.key(), "key")).collect();
    assert_eq!(listed, sorted, "listing order is (workflow, instance)");
    for k in keys {
        let snap = ok(store.load_instance(k).await, "load").expect("snapshot");
        assert_eq!(snap.steps.len(), 3, "{k:?} snapshot: {:?}", snap.steps);
        assert_eq!(
            snap.step("s").map(|r| r.value.clone()),
            Some(k.to_string().into_bytes()),
            "{k:?}"
        );
        let by_wf = ok(
            store
                .list_instances(&InstanceFilter::new().workflow(k.workflow()))
                .await,
            "list",
        );
        let expected = keys.iter().filter(|o| o.workflow() == k.workflow()).count();
        assert_eq!(by_wf.len(), expected, "listing workflow {:?}", k.workflow());
        assert!(by_wf.iter().all(|m| m.workflow_name == k.workflow()));
    }
    let timers = ok(store.due_timers(u64::MAX, usize::MAX).await, "due_timers");
    assert_eq!(timers.len(), keys.len());
    for (i, k) in keys.iter().enumerate() {
        let deadline = 1_000 + u64::try_from(i).unwrap_or(0);
        assert!(
            timers
                .iter()
                .any(|t| &t.instance == k && t.deadline_ms == deadline),
            "timer of {k:?}"
        );
    }
    // Delete one at a time; the rest stay whole.
    for (i, k) in keys.iter().enumerate() {
        assert!(
            ok(store.delete_instance(k.clone()).await, "delete"),
            "delete {k:?}"
        );
        let left = dump(store).await;
        assert_eq!(
            left.instances.len(),
            keys.len() - i - 1,
            "after deleting {k:?}"
        );
        assert_eq!(
            left.timers.len(),
            keys.len() - i - 1,
            "timers after deleting {k:?}"
        );
        for other in &keys[i + 1..] {
            let snap = left
                .instance(other)
                .unwrap_or_else(|| panic!("deleting {k:?} removed {other:?}"));
            assert_eq!(snap.steps.len(), 3, "deleting {k:?} touched {other:?}");
        }
    }
}

/// Workflow names `a`, `a-b`, `ab`, `a_b`, `a.`, `b` with the same
/// instance id stay apart.
pub async fn workflow_prefixes_do_not_bleed(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let keys: Vec<_> = ["a", "a-b", "ab", "a_b", "a.", "b", "A"]
        .iter()
        .map(|w| key(w, "1"))
        .collect();
    check_isolated(&*store, &keys).await;
}

/// Instance ids `1`, `10`, `100`, `1-0`, `01`, `2` in one workflow stay
/// apart.
pub async fn instance_prefixes_do_not_bleed(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let keys: Vec<_> = ["1", "10", "100", "1-0", "01", "2", "1 "]
        .iter()
        .map(|i| key("wf", i))
        .collect();
    check_isolated(&*store, &keys).await;
}

/// Keys built to collide under naive concatenation (`a`+`b1` vs `ab`+`1`,
/// NUL, control and separator characters) stay apart.
pub async fn separator_lookalikes_do_not_collide(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let pairs = [
        ("a", "b1"),
        ("ab", "1"),
        ("a\u{0}", "b1"),
        ("a", "\u{0}b1"),
        ("a\u{0}b", "1"),
        ("a:b", "1"),
        ("a", "b:1"),
        ("a\u{1}", "1"),
        ("a\u{ff}", "1"),
        ("a|b", "1"),
        ("a", "b|1"),
    ];
    let keys: Vec<_> = pairs.iter().map(|(w, i)| key(w, i)).collect();
    check_isolated(&*store, &keys).await;
}

/// Step keys `s`, `s1`, `s10`, `s-1` in one instance are distinct records.
pub async fn step_key_prefixes_do_not_bleed(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let steps = ["s", "s1", "s10", "s-1", "S", "s\u{0}", "_inputs"];
    for s in steps {
        ok(
            store
                .commit_step(k.clone(), s.into(), done(s.as_bytes()))
                .await,
            "commit",
        );
    }
    for s in steps {
        assert_eq!(
            ok(store.get_step(&k, s).await, "get").map(|r| r.value),
            Some(s.as_bytes().to_vec()),
            "step {s:?}"
        );
    }
    assert_eq!(ok(store.get_step(&k, "s2").await, "get"), None);
    let snap = ok(store.load_instance(&k).await, "load").expect("snapshot");
    assert_eq!(snap.steps.len(), steps.len() + 1);
}

/// Unicode workflow names, ids and step keys round-trip exactly and order
/// by bytes.
pub async fn unicode_keys_round_trip(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let keys: Vec<_> = [
        ("工作流", "ïd-ß"),
        ("工作流", "ïd-ß-🚀"),
        ("e\u{301}", "1"),
        ("é", "1"),
        ("ωf", "1"),
    ]
    .iter()
    .map(|(w, i)| key(w, i))
    .collect();
    check_isolated(&*store, &keys).await;
    let k = key("流れ", "🚀");
    start(&*store, &k, 1).await;
    ok(
        store
            .commit_step(k.clone(), "étape-步骤".into(), done(b"u"))
            .await,
        "commit",
    );
    let meta = ok(store.get_metadata(&k).await, "get_metadata").expect("metadata");
    assert_eq!(
        (meta.workflow_name.as_str(), meta.instance_id.as_str()),
        ("流れ", "🚀")
    );
    assert_eq!(
        ok(store.get_step(&k, "étape-步骤").await, "get"),
        Some(done(b"u"))
    );
}

/// 1 KiB workflow names, ids and step keys (differing only in the last
/// byte) stay apart.
pub async fn long_keys_do_not_bleed(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let w = "w".repeat(1023);
    let i = "i".repeat(1023);
    let keys = vec![
        key(&format!("{w}a"), &format!("{i}a")),
        key(&format!("{w}a"), &format!("{i}b")),
        key(&format!("{w}b"), &format!("{i}a")),
        key(&format!("{w}a"), &i),
    ];
    check_isolated(&*store, &keys).await;
    let k = key(&format!("{w}z"), &format!("{i}z"));
    start(&*store, &k, 1).await;
    let step = "s".repeat(1024);
    ok(
        store
            .commit_step(k.clone(), step.clone(), done(b"long"))
            .await,
        "commit",
    );
    assert_eq!(
        ok(store.get_step(&k, &step).await, "get"),
        Some(done(b"long"))
    );
    assert_eq!(ok(store.get_step(&k, &step[..1023]).await, "get"), None);
}

/// Keys of the maximum accepted length round-trip in every component.
pub async fn max_length_keys_round_trip(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key(&"w".repeat(MAX_KEY_LEN), &"i".repeat(MAX_KEY_LEN));
    start(&*store, &k, 1).await;
    let step = "s".repeat(MAX_KEY_LEN);
    ok(
        store
            .suspend_step(k.clone(), step.clone(), timer(9), None, 2)
            .await,
        "suspend",
    );
    let meta = ok(store.get_metadata(&k).await, "get_metadata").expect("metadata");
    assert_eq!(ok(meta.key(), "key"), k);
    assert_eq!(ok(store.get_step(&k, &step).await, "get"), Some(timer(9)));
    let timers = ok(store.due_timers(u64::MAX, 10).await, "due");
    assert_eq!(timers, vec![crate::support::entry(9, &k, &step)]);
    assert!(ok(store.delete_instance(k).await, "delete"));
    assert_eq!(dump(&*store).await.instances.len(), 0);
}
