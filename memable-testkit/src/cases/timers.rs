//! Timer rows: ordered by `(deadline, instance, step)`, the next deadline,
//! the due set exact at the boundary, removal by claim, cancel and delete.

use memable_core::StepStoreExt;
use memable_core::{InstanceKey, TimerEntry};

use crate::StoreFactory;
use crate::support::{entry, fresh, key, ok, payload, start, timer};

/// Timers set in scrambled order across instances come back sorted by
/// deadline, then instance, then step key.
pub async fn timers_ordered_by_deadline(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let deadlines = [900_u64, 5, 300, 70, 1_000_000, 301, 6, 299];
    let mut expected = Vec::new();
    for (i, d) in deadlines.iter().enumerate() {
        let k = key("wf", &format!("i{}", i % 3));
        if i < 3 {
            start(&*store, &k, 1).await;
        }
        let step = format!("t{i}");
        ok(
            store
                .suspend_step(k.clone(), step.clone(), timer(*d), None, 2)
                .await,
            "suspend",
        );
        expected.push(entry(*d, &k, &step));
    }
    expected.sort();
    let got = ok(store.due_timers(u64::MAX, usize::MAX).await, "due");
    assert_eq!(got, expected);
    let deadlines_got: Vec<u64> = got.iter().map(|t| t.deadline_ms).collect();
    assert!(
        deadlines_got.windows(2).all(|w| w[0] <= w[1]),
        "{deadlines_got:?}"
    );
}

/// Equal deadlines are all returned, ordered by instance then step key.
pub async fn equal_deadlines_all_listed(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let keys = [key("b", "1"), key("a", "2"), key("a", "10")];
    for k in &keys {
        start(&*store, k, 1).await;
        for s in ["z", "a", "m"] {
            ok(
                store
                    .suspend_step(k.clone(), s.into(), timer(50), None, 2)
                    .await,
                "suspend",
            );
        }
    }
    let got = ok(store.due_timers(50, usize::MAX).await, "due");
    let mut expected: Vec<TimerEntry> = keys
        .iter()
        .flat_map(|k| ["z", "a", "m"].map(|s| entry(50, k, s)))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(got[0], entry(50, &key("a", "10"), "a"));
}

/// `next_timer_deadline` is the earliest pending deadline, `None` when no
/// timer is pending, and follows claims, cancels and deletes.
pub async fn next_deadline_follows_changes(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    assert_eq!(ok(store.next_timer_deadline().await, "next"), None);
    let (a, b, c) = (key("wf", "a"), key("wf", "b"), key("wf", "c"));
    for k in [&a, &b, &c] {
        start(&*store, k, 1).await;
    }
    ok(
        store
            .suspend_step(b.clone(), "t".into(), timer(200), None, 2)
            .await,
        "suspend",
    );
    assert_eq!(ok(store.next_timer_deadline().await, "next"), Some(200));
    ok(
        store
            .suspend_step(a.clone(), "t".into(), timer(100), None, 2)
            .await,
        "suspend",
    );
    assert_eq!(ok(store.next_timer_deadline().await, "next"), Some(100));
    ok(
        store
            .suspend_step(c.clone(), "t".into(), timer(300), None, 2)
            .await,
        "suspend",
    );
    assert_eq!(ok(store.next_timer_deadline().await, "next"), Some(100));
    ok(
        store
            .claim_step(a.clone(), "t".into(), payload(b""), 100)
            .await,
        "claim",
    );
    assert_eq!(ok(store.next_timer_deadline().await, "next"), Some(200));
    ok(store.cancel_instance(b.clone(), 5).await, "cancel");
    assert_eq!(ok(store.next_timer_deadline().await, "next"), Some(300));
    ok(store.delete_instance(c.clone()).await, "delete");
    assert_eq!(ok(store.next_timer_deadline().await, "next"), None);
}

/// A timer is due exactly when `deadline <= now`: not at `deadline - 1`,
/// yes at `deadline` and after.
pub async fn due_set_exact_at_boundary(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    for (s, d) in [("a", 999_u64), ("b", 1_000), ("c", 1_001)] {
        ok(
            store
                .suspend_step(k.clone(), s.into(), timer(d), None, 2)
                .await,
            "suspend",
        );
    }
    let due = |now: u64| {
        let store = store.clone();
        async move { ok(store.due_timers(now, usize::MAX).await, "due") }
    };
    assert!(due(0).await.is_empty());
    assert!(due(998).await.is_empty());
    assert_eq!(due(999).await, vec![entry(999, &k, "a")]);
    assert_eq!(
        due(1_000).await,
        vec![entry(999, &k, "a"), entry(1_000, &k, "b")]
    );
    assert_eq!(due(1_001).await.len(), 3);
}

/// `due_timers` returns at most `limit` timers: the earliest ones.
pub async fn due_timers_respects_limit(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    for i in 0..10_u64 {
        ok(
            store
                .suspend_step(k.clone(), format!("t{i}"), timer(100 - i), None, 2)
                .await,
            "suspend",
        );
    }
    let got = ok(store.due_timers(u64::MAX, 3).await, "due");
    assert_eq!(
        got,
        vec![
            entry(91, &k, "t9"),
            entry(92, &k, "t8"),
            entry(93, &k, "t7")
        ]
    );
    assert!(ok(store.due_timers(u64::MAX, 0).await, "due").is_empty());
    assert_eq!(ok(store.due_timers(95, 100).await, "due").len(), 5);
}

/// Deadlines order numerically across byte and sign boundaries, from 0 to
/// `u64::MAX` (a timer of `Duration::MAX` saturates there).
pub async fn extreme_deadlines_order_numerically(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let deadlines = [
        u64::MAX,
        0,
        255,
        256,
        1 << 32,
        (1 << 53) + 1,
        i64::MAX.unsigned_abs(),
        i64::MAX.unsigned_abs() + 1,
        u64::MAX - 1,
        1,
        1_700_000_000_000,
    ];
    let mut expected = Vec::new();
    for (i, d) in deadlines.iter().enumerate() {
        ok(
            store
                .suspend_step(k.clone(), format!("t{i:02}"), timer(*d), None, 2)
                .await,
            "suspend",
        );
        expected.push(entry(*d, &k, &format!("t{i:02}")));
    }
    expected.sort();
    assert_eq!(
        ok(store.due_timers(u64::MAX, usize::MAX).await, "due"),
        expected
    );
    assert_eq!(ok(store.next_timer_deadline().await, "next"), Some(0));
    let below_sign: Vec<u64> = ok(
        store.due_timers(i64::MAX.unsigned_abs(), usize::MAX).await,
        "due",
    )
    .iter()
    .map(|t| t.deadline_ms)
    .collect();
    assert_eq!(
        below_sign,
        vec![
            0,
            1,
            255,
            256,
            1 << 32,
            1_700_000_000_000,
            (1 << 53) + 1,
            i64::MAX.unsigned_abs()
        ]
    );
    assert_eq!(
        ok(store.get_step(&k, "t00").await, "get"),
        Some(timer(u64::MAX))
    );
}

/// Cancelling an instance removes every one of its timer rows and only
/// those; its suspended records stay.
pub async fn cancel_removes_only_its_timers(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let (a, a1) = (key("wf", "1"), key("wf", "10"));
    for k in [&a, &a1] {
        start(&*store, k, 1).await;
        ok(
            store
                .suspend_step(k.clone(), "x".into(), timer(10), None, 2)
                .await,
            "suspend",
        );
        ok(
            store
                .suspend_step(k.clone(), "y".into(), timer(20), None, 2)
                .await,
            "suspend",
        );
    }
    ok(store.cancel_instance(a.clone(), 3).await, "cancel");
    let left: Vec<InstanceKey> = ok(store.due_timers(u64::MAX, 100).await, "due")
        .into_iter()
        .map(|t| t.instance)
        .collect();
    assert_eq!(left, vec![a1.clone(), a1.clone()]);
    assert_eq!(ok(store.get_step(&a, "x").await, "get"), Some(timer(10)));
}

/// A claim removes the timer row in the same transaction as it completes
/// the step: a reader that sees the step completed never sees its timer row
/// afterwards, while claims run concurrently.
pub async fn claim_removes_timer_atomically(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let keys: Vec<InstanceKey> = (0..100).map(|i| key("wf", &format!("{i:03}"))).collect();
    for (i, k) in keys.iter().enumerate() {
        start(&*store, k, 1).await;
        let deadline = 10 + u64::try_from(i % 7).unwrap_or(0);
        ok(
            store
                .suspend_step(k.clone(), "nap".into(), timer(deadline), None, 2)
                .await,
            "suspend",
        );
    }
    let claimer = {
        let (store, keys) = (std::sync::Arc::clone(&store), keys.clone());
        tokio::spawn(async move {
            for k in keys {
                ok(
                    store
                        .claim_step(k, "nap".into(), payload(b"fired"), 20)
                        .await,
                    "claim",
                );
            }
        })
    };
    let mut rng = fastrand::Rng::with_seed(5);
    let mut checked_completed = 0_u32;
    while !claimer.is_finished() || checked_completed == 0 {
        let k = &keys[rng.usize(..keys.len())];
        let step = ok(store.get_step(k, "nap").await, "get_step").expect("record");
        if step.state == memable_core::StepState::Completed {
            checked_completed += 1;
            let timers = ok(store.due_timers(u64::MAX, usize::MAX).await, "due");
            assert!(
                !timers.iter().any(|t| &t.instance == k),
                "{k}: step completed but its timer row is still there"
            );
        }
        tokio::task::yield_now().await;
    }
    claimer.await.expect("claimer panicked");
    assert!(ok(store.due_timers(u64::MAX, usize::MAX).await, "due").is_empty());
}
