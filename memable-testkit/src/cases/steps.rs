//! `commit_step` and `get_step`: every record state round-trips; a
//! `Completed` or `Suspended` record is never overwritten; `Retrying` and
//! `Failed` are.

use memable_core::StepStoreExt;
use memable_core::{
    Codec, CommitOutcome, Finish, MetadataStatus, StepKind, StepRecord, StepState, StepStore,
};

use crate::StoreFactory;
use crate::support::{dead, done, dump, fresh, key, ok, output, retrying, start, waiting};

/// A committed `Completed` record reads back equal, by `get_step` and in
/// the snapshot.
pub async fn commit_completed_reads_back(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let rec = StepRecord::completed(
        StepKind::Step,
        "u64",
        vec![7, 0, 255],
        Some("fetching".into()),
    );
    assert_eq!(
        ok(
            store
                .commit_step(k.clone(), "fetch".into(), rec.clone())
                .await,
            "commit"
        ),
        CommitOutcome::Committed
    );
    assert_eq!(
        ok(store.get_step(&k, "fetch").await, "get_step"),
        Some(rec.clone())
    );
    let snap = ok(store.load_instance(&k).await, "load").expect("snapshot");
    assert_eq!(snap.step("fetch"), Some(&rec));
}

/// Every field of a record (state, kind, tag, value, status, attempts,
/// error, deadline) round-trips for every state and kind.
pub async fn every_record_field_round_trips(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let mut expected = Vec::new();
    let states = [StepState::Completed, StepState::Retrying, StepState::Failed];
    let kinds = [
        StepKind::Step,
        StepKind::Suspend,
        StepKind::Timer,
        StepKind::Engine,
    ];
    for (i, state) in states.into_iter().enumerate() {
        for (j, kind) in kinds.into_iter().enumerate() {
            let rec = StepRecord {
                state,
                kind,
                type_tag: format!("tag<{i},{j}>"),
                value: vec![u8::try_from(i * 4 + j).unwrap_or(0); i + j],
                // Every store keeps the codec id of each record.
                codec: if (i + j) % 2 == 0 {
                    Codec::Json
                } else {
                    Codec::Postcard
                },
                status: (j % 2 == 0).then(|| format!("status {i}")),
                attempts: u32::try_from(i * 1000 + j).unwrap_or(u32::MAX),
                error: (i > 0).then(|| "boom: ünïcode".to_owned()),
                deadline_ms: (j == 2).then_some(u64::MAX - 1),
                // Every store keeps the step's times, or their absence.
                started_at_ms: (j != 1).then(|| 1_700_000_000_000 + u64::try_from(i).unwrap_or(0)),
                completed_at_ms: (j == 0).then_some(1_700_000_000_999),
            };
            let step = format!("s-{i}-{j}");
            assert_eq!(
                ok(
                    store
                        .commit_step(k.clone(), step.clone(), rec.clone())
                        .await,
                    "commit"
                ),
                CommitOutcome::Committed
            );
            expected.push((step, rec));
        }
    }
    for (step, rec) in &expected {
        assert_eq!(
            ok(store.get_step(&k, step).await, "get_step").as_ref(),
            Some(rec),
            "step {step}"
        );
    }
    let snap = ok(store.load_instance(&k).await, "load").expect("snapshot");
    for (step, rec) in &expected {
        assert_eq!(snap.step(step), Some(rec), "snapshot step {step}");
    }
}

/// A `Retrying` record is overwritten by the next attempt's record, and a
/// completed result then replaces it.
pub async fn commit_overwrites_retrying(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    for attempt in 1..=3 {
        assert_eq!(
            ok(
                store
                    .commit_step(k.clone(), "s".into(), retrying(attempt))
                    .await,
                "commit"
            ),
            CommitOutcome::Committed
        );
        assert_eq!(
            ok(store.get_step(&k, "s").await, "get"),
            Some(retrying(attempt))
        );
    }
    assert_eq!(
        ok(
            store.commit_step(k.clone(), "s".into(), done(b"ok")).await,
            "commit"
        ),
        CommitOutcome::Committed
    );
    assert_eq!(ok(store.get_step(&k, "s").await, "get"), Some(done(b"ok")));
}

/// A dead letter (`Failed`) is overwritten by a later commit (a resumed
/// re-attempt).
pub async fn commit_overwrites_dead_letter(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store.commit_step(k.clone(), "s".into(), dead(5)).await,
        "commit",
    );
    assert_eq!(ok(store.get_step(&k, "s").await, "get"), Some(dead(5)));
    assert_eq!(
        ok(
            store.commit_step(k.clone(), "s".into(), retrying(1)).await,
            "commit"
        ),
        CommitOutcome::Committed
    );
    assert_eq!(
        ok(
            store.commit_step(k.clone(), "s".into(), done(b"v")).await,
            "commit"
        ),
        CommitOutcome::Committed
    );
    assert_eq!(ok(store.get_step(&k, "s").await, "get"), Some(done(b"v")));
}

/// A committed result is never overwritten: a second commit gets `Kept`
/// with the first record, whatever the second record's state.
pub async fn commit_over_completed_is_kept(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store
            .commit_step(k.clone(), "s".into(), done(b"first"))
            .await,
        "commit",
    );
    let before = dump(&*store).await;
    for rec in [done(b"second"), retrying(1), dead(2), waiting()] {
        assert_eq!(
            ok(
                store.commit_step(k.clone(), "s".into(), rec).await,
                "commit"
            ),
            CommitOutcome::Kept(done(b"first"))
        );
    }
    assert_eq!(dump(&*store).await, before, "a kept commit wrote something");
}

/// A suspend point is only completed by a claim: committing over it gets
/// `Kept` with the suspended record and writes nothing.
pub async fn commit_over_suspended_is_kept(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    ok(
        store
            .suspend_step(k.clone(), "wait".into(), waiting(), None, 2)
            .await,
        "suspend",
    );
    let before = dump(&*store).await;
    assert_eq!(
        ok(
            store
                .commit_step(k.clone(), "wait".into(), done(b"sneaky"))
                .await,
            "commit"
        ),
        CommitOutcome::Kept(waiting())
    );
    assert_eq!(dump(&*store).await, before, "a kept commit wrote something");
}

/// Committing to an instance that does not exist reports
/// `InstanceMissing` and creates nothing.
pub async fn commit_to_missing_instance_is_reported(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &key("wf", "2"), 1).await;
    let before = dump(&*store).await;
    assert_eq!(
        ok(
            store.commit_step(k.clone(), "s".into(), done(b"x")).await,
            "commit"
        ),
        CommitOutcome::InstanceMissing
    );
    assert_eq!(ok(store.get_step(&k, "s").await, "get"), None);
    assert_eq!(ok(store.get_metadata(&k).await, "get_metadata"), None);
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused commit wrote something"
    );
}

/// A commit leaves the instance metadata (status and timestamps) untouched.
pub async fn commit_does_not_touch_metadata(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 5).await;
    let meta = ok(store.get_metadata(&k).await, "get_metadata");
    for i in 0..5 {
        ok(
            store
                .commit_step(k.clone(), format!("s{i}"), done(b"v"))
                .await,
            "commit",
        );
    }
    assert_eq!(ok(store.get_metadata(&k).await, "get_metadata"), meta);
}

/// Commits are accepted in every status but `Cancelled` and do not change
/// that status; a cancelled instance refuses them
/// ([`CommitOutcome::Cancelled`]) and nothing is written.
pub async fn commit_accepted_in_every_status(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let keys: Vec<_> = (0..5).map(|i| key("wf", &i.to_string())).collect();
    for k in &keys {
        start(&*store, k, 1).await;
    }
    ok(
        store
            .suspend_step(keys[1].clone(), "w".into(), waiting(), None, 2)
            .await,
        "suspend",
    );
    let fin = Finish::Completed {
        status: None,
        output: output(b"o"),
    };
    ok(
        store.finish_instance(keys[2].clone(), fin, 3).await,
        "finish",
    );
    ok(
        store
            .finish_instance(keys[3].clone(), Finish::Failed("x".into()), 3)
            .await,
        "finish",
    );
    ok(store.cancel_instance(keys[4].clone(), 3).await, "cancel");
    for k in &keys[..4] {
        let before = ok(store.get_metadata(k).await, "get_metadata").map(|m| m.status);
        assert_eq!(
            ok(
                store
                    .commit_step(k.clone(), "late".into(), done(b"L"))
                    .await,
                "commit"
            ),
            CommitOutcome::Committed,
            "{k} in {before:?}"
        );
        assert_eq!(ok(store.get_step(k, "late").await, "get"), Some(done(b"L")));
        assert_eq!(
            ok(store.get_metadata(k).await, "get_metadata").map(|m| m.status),
            before
        );
    }
    // Nothing commits into a cancelled instance.
    let before = dump(&*store).await;
    assert_eq!(
        ok(
            store
                .commit_step(keys[4].clone(), "late".into(), done(b"L"))
                .await,
            "commit"
        ),
        CommitOutcome::Cancelled
    );
    assert_eq!(
        dump(&*store).await,
        before,
        "a commit into a cancelled instance wrote"
    );
    assert!(matches!(
        before_status(&*store, &keys[4]).await,
        Some(MetadataStatus::Cancelled)
    ));
}

async fn before_status(
    store: &dyn StepStore,
    k: &memable_core::InstanceKey,
) -> Option<MetadataStatus> {
    ok(store.get_metadata(k).await, "get_metadata").map(|m| m.status)
}
