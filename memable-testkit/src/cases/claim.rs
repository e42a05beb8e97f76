//! `claim_step`, the compare-and-set that delivers a signal or fires a
//! timer: checked in order (step exists, step suspended, instance
//! suspended); exactly one concurrent claimant wins.

use std::sync::Arc;

use memable_core::StepStoreExt;
use memable_core::{ClaimOutcome, Finish, MetadataStatus, StepStore, WorkflowMetadata};

use crate::StoreFactory;
use crate::support::{done, dump, entry, fresh, key, ok, payload, start, timer, waiting};

/// A winning claim replaces the step by the payload, sets the instance
/// `Running` with `updated_at = now`, and removes the step's timer row.
pub async fn claim_completes_step_and_runs_instance(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 10).await;
    ok(
        store
            .suspend_step(k.clone(), "nap".into(), timer(500), Some("s".into()), 20)
            .await,
        "suspend",
    );
    let outcome = ok(
        store
            .claim_step(k.clone(), "nap".into(), payload(b"fired"), 30)
            .await,
        "claim",
    );
    assert_eq!(outcome, ClaimOutcome::Claimed);
    assert_eq!(
        ok(store.get_step(&k, "nap").await, "get"),
        Some(payload(b"fired"))
    );
    let meta = ok(store.get_metadata(&k).await, "get_metadata").expect("metadata");
    assert_eq!(
        meta,
        WorkflowMetadata {
            updated_at_ms: 30,
            ..WorkflowMetadata::running(&k, 10)
        }
    );
    assert!(
        ok(store.due_timers(u64::MAX, 10).await, "due").is_empty(),
        "the claim left the timer row"
    );
    assert_eq!(ok(store.next_timer_deadline().await, "next"), None);
}

/// Claiming a step with no record, or in an instance that does not exist,
/// is rejected with `StepMissing` and writes nothing.
pub async fn claim_missing_step_is_rejected(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    assert_eq!(
        ok(
            store
                .claim_step(k.clone(), "s".into(), payload(b"x"), 1)
                .await,
            "claim"
        ),
        ClaimOutcome::StepMissing
    );
    start(&*store, &k, 1).await;
    ok(
        store
            .suspend_step(k.clone(), "other".into(), waiting(), None, 2)
            .await,
        "suspend",
    );
    let before = dump(&*store).await;
    assert_eq!(
        ok(
            store
                .claim_step(k.clone(), "s".into(), payload(b"x"), 3)
                .await,
            "claim"
        ),
        ClaimOutcome::StepMissing
    );
    assert_eq!(
        ok(
            store
                .claim_step(key("wf", "2"), "other".into(), payload(b"x"), 3)
                .await,
            "claim"
        ),
        ClaimOutcome::StepMissing
    );
    assert_eq!(
        dump(&*store).await,
        before,
        "a rejected claim wrote something"
    );
}

/// Claiming a step that is not suspended (completed, retrying, failed)
/// returns `StepNotSuspended` with its record and writes nothing.
pub async fn claim_step_not_suspended_is_superseded(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store
            .suspend_step(k.clone(), "w".into(), waiting(), None, 2)
            .await,
        "suspend",
    );
    let records = [
        done(b"d"),
        crate::support::retrying(2),
        crate::support::dead(3),
    ];
    for (i, rec) in records.iter().enumerate() {
        ok(
            store
                .commit_step(k.clone(), format!("s{i}"), rec.clone())
                .await,
            "commit",
        );
    }
    let before = dump(&*store).await;
    for (i, rec) in records.iter().enumerate() {
        let outcome = ok(
            store
                .claim_step(k.clone(), format!("s{i}"), payload(b"x"), 5)
                .await,
            "claim",
        );
        assert_eq!(outcome, ClaimOutcome::StepNotSuspended(rec.clone()));
    }
    assert_eq!(
        dump(&*store).await,
        before,
        "a superseded claim wrote something"
    );
}

/// The second claim of one step loses with `StepNotSuspended` carrying the
/// first claim's payload.
pub async fn claim_twice_second_is_superseded(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store
            .suspend_step(k.clone(), "w".into(), waiting(), None, 2)
            .await,
        "suspend",
    );
    assert_eq!(
        ok(
            store
                .claim_step(k.clone(), "w".into(), payload(b"one"), 3)
                .await,
            "claim"
        ),
        ClaimOutcome::Claimed
    );
    let before = dump(&*store).await;
    let second = ok(
        store
            .claim_step(k.clone(), "w".into(), payload(b"two"), 4)
            .await,
        "claim",
    );
    assert_eq!(second, ClaimOutcome::StepNotSuspended(payload(b"one")));
    assert_eq!(dump(&*store).await, before);
}

/// A suspended step whose instance is not `Suspended` (running again,
/// finished, cancelled) returns `InstanceNotSuspended` with the status;
/// the record and its timer stay.
pub async fn claim_instance_not_suspended_is_superseded(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store
            .suspend_step(k.clone(), "a".into(), timer(10), None, 2)
            .await,
        "suspend",
    );
    ok(
        store
            .suspend_step(k.clone(), "b".into(), waiting(), None, 3)
            .await,
        "suspend",
    );
    assert_eq!(
        ok(
            store
                .claim_step(k.clone(), "b".into(), payload(b"b"), 4)
                .await,
            "claim"
        ),
        ClaimOutcome::Claimed
    );
    // Instance is Running; "a" is still suspended with its timer.
    let before = dump(&*store).await;
    let outcome = ok(
        store
            .claim_step(k.clone(), "a".into(), payload(b"a"), 5)
            .await,
        "claim",
    );
    assert_eq!(
        outcome,
        ClaimOutcome::InstanceNotSuspended(MetadataStatus::Running)
    );
    assert_eq!(
        dump(&*store).await,
        before,
        "a superseded claim wrote something"
    );
    assert_eq!(before.timers, vec![entry(10, &k, "a")]);
    let fin = Finish::Completed {
        status: None,
        output: done(b"o"),
    };
    ok(store.finish_instance(k.clone(), fin, 6).await, "finish");
    let outcome = ok(
        store
            .claim_step(k.clone(), "a".into(), payload(b"a"), 7)
            .await,
        "claim",
    );
    assert_eq!(
        outcome,
        ClaimOutcome::InstanceNotSuspended(MetadataStatus::Completed(None))
    );
    // Cancelled.
    let c = key("wf", "2");
    start(&*store, &c, 1).await;
    ok(
        store
            .suspend_step(c.clone(), "w".into(), waiting(), None, 2)
            .await,
        "suspend",
    );
    ok(store.cancel_instance(c.clone(), 3).await, "cancel");
    let before = dump(&*store).await;
    let outcome = ok(
        store
            .claim_step(c.clone(), "w".into(), payload(b"late"), 4)
            .await,
        "claim",
    );
    assert_eq!(
        outcome,
        ClaimOutcome::InstanceNotSuspended(MetadataStatus::Cancelled)
    );
    assert_eq!(dump(&*store).await, before);
}

/// Of 32 concurrent claims of one step with distinct payloads, exactly one
/// wins; the stored payload is the winner's; every loser is told
/// `StepNotSuspended` with it.
pub async fn claim_exactly_one_winner_of_32(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for round in 0..4_u8 {
        let k = key("race", &round.to_string());
        start(&*store, &k, 1).await;
        ok(
            store
                .suspend_step(k.clone(), "nap".into(), timer(100), None, 2)
                .await,
            "suspend",
        );
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let mut tasks = Vec::new();
        for i in 0..32_u8 {
            let (store, k, barrier) = (Arc::clone(&store), k.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let outcome = store.claim_step(k, "nap".into(), payload(&[i]), 3).await;
                (i, outcome)
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            let (i, outcome) = task.await.expect("claim task panicked");
            match ok(outcome, "claim") {
                ClaimOutcome::Claimed => winners.push(i),
                ClaimOutcome::StepNotSuspended(rec) => losers.push(rec),
                other => panic!("claimant {i} got {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let won = payload(&[winners[0]]);
        assert!(
            losers.iter().all(|r| *r == won),
            "a loser saw another payload"
        );
        assert_eq!(ok(store.get_step(&k, "nap").await, "get"), Some(won));
        assert_eq!(
            ok(store.get_metadata(&k).await, "meta").map(|m| m.status),
            Some(MetadataStatus::Running)
        );
    }
    assert!(ok(store.due_timers(u64::MAX, 100).await, "due").is_empty());
}

/// A claim and a cancel racing: either the claim wins (then the cancel
/// cancels a running instance) or the cancel wins (then the claim is
/// superseded); never both half-applied.
pub async fn claim_races_cancel_consistently(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for round in 0..16_u8 {
        let k = key("race", &round.to_string());
        start(&*store, &k, 1).await;
        ok(
            store
                .suspend_step(k.clone(), "nap".into(), timer(100), None, 2)
                .await,
            "suspend",
        );
        let s2: Arc<dyn StepStore> = Arc::clone(&store);
        let k2 = k.clone();
        let claim =
            tokio::spawn(async move { s2.claim_step(k2, "nap".into(), payload(b"p"), 3).await });
        let cancel = ok(store.cancel_instance(k.clone(), 3).await, "cancel");
        let claim = ok(claim.await.expect("claim task"), "claim");
        assert_eq!(
            cancel,
            memable_core::CancelOutcome::Cancelled,
            "cancel of a running or suspended instance"
        );
        let step = ok(store.get_step(&k, "nap").await, "get");
        match claim {
            ClaimOutcome::Claimed => assert_eq!(step, Some(payload(b"p"))),
            ClaimOutcome::InstanceNotSuspended(MetadataStatus::Cancelled) => {
                assert_eq!(step, Some(timer(100)));
            }
            other => panic!("claim got {other:?}"),
        }
        assert_eq!(
            ok(store.get_metadata(&k).await, "meta").map(|m| m.status),
            Some(MetadataStatus::Cancelled)
        );
    }
    assert!(ok(store.due_timers(u64::MAX, 100).await, "due").is_empty());
}
