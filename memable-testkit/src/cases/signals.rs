//! The wait / park / signal / fire transitions: a workflow registers the
//! points it waits at (`wait_at`), parks at the end of its run (`park`), and
//! a signal (`deliver_signal`) or a due timer (`fire_timer`) resolves a
//! point. A signal that arrives before its point is buffered under the
//! reserved key `_signal:<point>` and consumed by the wait that reaches it.
//! Every case checks the outcome and the whole store afterwards.

use std::sync::Arc;

use memable_core::StepStoreExt;
use memable_core::{
    FireOutcome, InstanceKey, MetadataStatus, ParkOutcome, SignalOutcome, StepKind, StepRecord,
    StepStore, WaitOutcome, WorkflowMetadata,
};

use crate::StoreFactory;
use crate::support::{Dump, done, dump, entry, fresh, key, ok, payload, start, waiting};

/// The reserved key a signal for `point` is buffered under.
fn buffered(point: &str) -> String {
    format!("_signal:{point}")
}

/// The buffered row of a signal carrying `value` (kind `Engine`).
fn buffered_row(value: &[u8]) -> StepRecord {
    StepRecord {
        kind: StepKind::Engine,
        ..payload(value)
    }
}

/// A signal point waiting with a deadline.
fn waiting_until(deadline_ms: u64) -> StepRecord {
    StepRecord {
        deadline_ms: Some(deadline_ms),
        ..waiting()
    }
}

/// The record of `point` once a signal carrying `value` resolved it: the
/// payload, kind `Suspend`, with the point's status.
fn delivered(point: &StepRecord, value: &[u8]) -> StepRecord {
    StepRecord {
        kind: StepKind::Suspend,
        status: point.status.clone(),
        ..payload(value)
    }
}

/// `record` with the times a store gives it: waiting (or begun) since
/// `started`, completed at `completed`.
fn timed(record: StepRecord, started: u64, completed: Option<u64>) -> StepRecord {
    record.with_times(Some(started), completed)
}

/// A suspended group (`first_of`) record.
fn group(deadline_ms: Option<u64>) -> StepRecord {
    StepRecord::suspended(StepKind::Select, "", Some("either".into()), deadline_ms)
}

/// A suspended member record of group `group_key`.
fn member(group_key: &str) -> StepRecord {
    StepRecord {
        value: group_key.as_bytes().to_vec(),
        ..StepRecord::suspended(StepKind::Member, "signal", Some("either".into()), None)
    }
}

/// A group won by `member_key`.
fn won_by(member_key: &str) -> StepRecord {
    StepRecord::completed(
        StepKind::Select,
        "",
        member_key.as_bytes().to_vec(),
        Some("either".into()),
    )
}

/// A fired timer's payload.
fn tick() -> StepRecord {
    StepRecord::completed(StepKind::Timer, "()", b"null".to_vec(), None)
}

/// Members `m0..mN` of group `g`, for `wait_at`.
fn members(group_key: &str, n: usize) -> Vec<(String, StepRecord)> {
    (0..n)
        .map(|i| (format!("m{i}"), member(group_key)))
        .collect()
}

async fn wait(
    store: &dyn StepStore,
    k: &InstanceKey,
    step: &str,
    record: StepRecord,
    group_members: Vec<(String, StepRecord)>,
    now_ms: u64,
) -> WaitOutcome {
    ok(
        store
            .wait_at(k.clone(), step.into(), record, group_members, now_ms)
            .await,
        "wait_at",
    )
}

async fn signal(
    store: &dyn StepStore,
    k: &InstanceKey,
    step: &str,
    record: StepRecord,
    now_ms: u64,
) -> SignalOutcome {
    ok(
        store
            .deliver_signal(k.clone(), step.into(), record, now_ms)
            .await,
        "deliver_signal",
    )
}

async fn park(store: &dyn StepStore, k: &InstanceKey, points: &[&str], now_ms: u64) -> ParkOutcome {
    let points = points.iter().map(|p| (*p).to_owned()).collect();
    ok(
        store
            .park(k.clone(), points, Some("parked".into()), now_ms)
            .await,
        "park",
    )
}

async fn meta(store: &dyn StepStore, k: &InstanceKey) -> WorkflowMetadata {
    ok(store.get_metadata(k).await, "get_metadata").unwrap_or_else(|| panic!("{k} has no metadata"))
}

async fn finish(store: &dyn StepStore, k: &InstanceKey, now_ms: u64) {
    let fin = memable_core::Finish::Failed("done".into());
    assert_eq!(
        ok(
            store.finish_instance(k.clone(), fin, now_ms).await,
            "finish"
        ),
        memable_core::FinishOutcome::Finished
    );
}

/// Sets (or with `None` removes) one step record of `k` in a dump, keeping
/// the steps sorted: the expected state after a write.
fn set_step(d: &mut Dump, k: &InstanceKey, step: &str, record: Option<StepRecord>) {
    let snap = d
        .instances
        .iter_mut()
        .find(|s| {
            s.metadata.workflow_name == k.workflow() && s.metadata.instance_id == k.instance()
        })
        .unwrap_or_else(|| panic!("{k} is not in the dump"));
    snap.steps.retain(|(s, _)| s != step);
    if let Some(record) = record {
        snap.steps.push((step.to_owned(), record));
        snap.steps.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

/// Replaces the metadata of `k` in a dump.
fn set_meta(d: &mut Dump, k: &InstanceKey, meta: WorkflowMetadata) {
    let snap = d
        .instances
        .iter_mut()
        .find(|s| {
            s.metadata.workflow_name == k.workflow() && s.metadata.instance_id == k.instance()
        })
        .unwrap_or_else(|| panic!("{k} is not in the dump"));
    snap.metadata = meta;
}

/// Removes one timer row from a dump.
fn drop_timer(d: &mut Dump, k: &InstanceKey, step: &str, deadline_ms: u64) {
    let row = entry(deadline_ms, k, step);
    assert!(d.timers.contains(&row), "expected timer row {row:?}");
    d.timers.retain(|t| *t != row);
    d.next_deadline = d.timers.iter().map(|t| t.deadline_ms).min();
}

/// `Running` metadata of `k` created at `created` and updated at `updated`.
fn running(k: &InstanceKey, created: u64, updated: u64) -> WorkflowMetadata {
    WorkflowMetadata {
        updated_at_ms: updated,
        ..WorkflowMetadata::running(k, created)
    }
}

/// A wait registers the point's record (and its timer row when it has a
/// deadline) and leaves the instance's status alone, on a `Running` and on
/// a `Suspended` instance; a re-wait with another deadline replaces the
/// row, one with the same deadline keeps it.
pub async fn wait_registers_point_and_keeps_status(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let before = dump(&*store).await;
    assert_eq!(
        wait(&*store, &k, "p", waiting(), vec![], 2).await,
        WaitOutcome::Waiting
    );
    let mut expected = before;
    // The point waits since the wait's clock reading.
    set_step(&mut expected, &k, "p", Some(timed(waiting(), 2, None)));
    assert_eq!(dump(&*store).await, expected, "wait without deadline");
    assert!(expected.timers.is_empty());

    assert_eq!(
        wait(&*store, &k, "t", waiting_until(500), vec![], 3).await,
        WaitOutcome::Waiting
    );
    let got = dump(&*store).await;
    assert_eq!(got.timers, vec![entry(500, &k, "t")]);
    assert_eq!(got.next_deadline, Some(500));
    assert_eq!(
        got.instance(&k).and_then(|s| s.step("t")),
        Some(&timed(waiting_until(500), 3, None))
    );
    assert_eq!(meta(&*store, &k).await, running(&k, 1, 1));

    // Same deadline again: the same single row.
    assert_eq!(
        wait(&*store, &k, "t", waiting_until(500), vec![], 4).await,
        WaitOutcome::Waiting
    );
    assert_eq!(dump(&*store).await, got, "a re-wait with the same deadline");
    // Another deadline: the old row is replaced.
    assert_eq!(
        wait(&*store, &k, "t", waiting_until(900), vec![], 5).await,
        WaitOutcome::Waiting
    );
    let got = dump(&*store).await;
    assert_eq!(got.timers, vec![entry(900, &k, "t")], "the old row stayed");
    assert_eq!(got.next_deadline, Some(900));
    // Still waiting since the first wait.
    assert_eq!(
        got.instance(&k).and_then(|s| s.step("t")),
        Some(&timed(waiting_until(900), 3, None))
    );

    // A suspended instance waits too, and stays suspended.
    assert_eq!(park(&*store, &k, &["p", "t"], 6).await, ParkOutcome::Parked);
    let parked = meta(&*store, &k).await;
    assert_eq!(
        wait(&*store, &k, "q", waiting(), vec![], 7).await,
        WaitOutcome::Waiting
    );
    assert_eq!(meta(&*store, &k).await, parked, "a wait changed the status");
    assert_eq!(
        ok(store.get_step(&k, "q").await, "get"),
        Some(timed(waiting(), 7, None))
    );
}

/// A wait at a point that already has a `Completed` record is `Resolved`
/// with it and writes nothing (no timer row, the record kept).
pub async fn wait_at_completed_point_is_resolved(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    assert_eq!(
        wait(&*store, &k, "p", waiting(), vec![], 2).await,
        WaitOutcome::Waiting
    );
    assert_eq!(
        signal(&*store, &k, "p", payload(b"yes"), 3).await,
        SignalOutcome::Delivered
    );
    ok(
        store.commit_step(k.clone(), "s".into(), done(b"d")).await,
        "commit",
    );
    let before = dump(&*store).await;
    for (step, rec) in [
        ("p", timed(delivered(&waiting(), b"yes"), 2, Some(3))),
        ("s", done(b"d")),
    ] {
        let outcome = wait(&*store, &k, step, waiting_until(50), vec![], 4).await;
        assert_eq!(
            outcome,
            WaitOutcome::Resolved {
                record: rec,
                winner: None
            },
            "wait at completed {step}"
        );
    }
    assert_eq!(
        dump(&*store).await,
        before,
        "a resolved wait wrote something"
    );
}

/// A wait on a missing, completed, failed or cancelled instance is
/// `NotActive` with its status and writes nothing.
pub async fn wait_on_inactive_instance_writes_nothing(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let missing = key("wf", "missing");
    assert_eq!(
        wait(&*store, &missing, "p", waiting_until(5), vec![], 1).await,
        WaitOutcome::NotActive(None)
    );
    let (c, f, x) = (key("wf", "c"), key("wf", "f"), key("wf", "x"));
    for k in [&c, &f, &x] {
        start(&*store, k, 1).await;
    }
    let fin = memable_core::Finish::Completed {
        status: Some("ok".into()),
        output: crate::support::output(b"o"),
    };
    ok(store.finish_instance(c.clone(), fin, 2).await, "finish");
    finish(&*store, &f, 2).await;
    ok(store.cancel_instance(x.clone(), 2).await, "cancel");
    let before = dump(&*store).await;
    for (k, status) in [
        (&c, MetadataStatus::Completed(Some("ok".into()))),
        (&f, MetadataStatus::Failed("done".into())),
        (&x, MetadataStatus::Cancelled),
    ] {
        let group_members = members("g", 2);
        assert_eq!(
            wait(&*store, k, "p", waiting_until(5), vec![], 3).await,
            WaitOutcome::NotActive(Some(status.clone()))
        );
        assert_eq!(
            wait(&*store, k, "g", group(Some(5)), group_members, 3).await,
            WaitOutcome::NotActive(Some(status))
        );
    }
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused wait wrote something"
    );
}

/// A signal to a point the workflow has not reached is `Buffered` under
/// `_signal:<point>` (visible in `load_instance`), the instance unchanged;
/// a second one is `Superseded` and writes nothing.
pub async fn signal_before_wait_is_buffered_once(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let before = dump(&*store).await;
    assert_eq!(
        signal(&*store, &k, "p", payload(b"first"), 2).await,
        SignalOutcome::Buffered
    );
    let mut expected = before;
    // Received at the signal's clock reading.
    let row = timed(buffered_row(b"first"), 2, Some(2));
    set_step(&mut expected, &k, &buffered("p"), Some(row.clone()));
    let got = dump(&*store).await;
    assert_eq!(got, expected, "a buffered signal");
    let snap = ok(store.load_instance(&k).await, "load").expect("snapshot");
    assert_eq!(snap.step(&buffered("p")), Some(&row));
    assert_eq!(snap.step("p"), None, "buffering wrote the point itself");

    assert_eq!(
        signal(&*store, &k, "p", payload(b"second"), 3).await,
        SignalOutcome::Superseded
    );
    assert_eq!(
        dump(&*store).await,
        got,
        "a superseded signal wrote something"
    );
}

/// A wait at a point with a buffered signal of its type is `Resolved` with
/// the payload; the point holds it, the buffered row is gone, no timer row
/// is written and the status is unchanged.
pub async fn wait_consumes_buffered_signal(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let before = dump(&*store).await;
    assert_eq!(
        signal(&*store, &k, "p", payload(b"early"), 2).await,
        SignalOutcome::Buffered
    );
    let outcome = wait(&*store, &k, "p", waiting_until(70), vec![], 3).await;
    // Reached and resolved at the wait.
    let resolved = timed(delivered(&waiting(), b"early"), 3, Some(3));
    assert_eq!(
        outcome,
        WaitOutcome::Resolved {
            record: resolved.clone(),
            winner: None
        }
    );
    let mut expected = before;
    set_step(&mut expected, &k, "p", Some(resolved));
    assert_eq!(
        dump(&*store).await,
        expected,
        "after consuming the buffered signal"
    );
    // Consumed: a later signal is superseded, nothing is buffered again.
    assert_eq!(
        signal(&*store, &k, "p", payload(b"late"), 4).await,
        SignalOutcome::Superseded
    );
    assert_eq!(dump(&*store).await, expected);
}

/// A buffered signal whose type tag differs from the point's stays buffered
/// and the wait registers the point.
pub async fn buffered_signal_of_other_type_stays_buffered(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let other = StepRecord::completed(StepKind::Suspend, "other", b"1".to_vec(), None);
    assert_eq!(
        signal(&*store, &k, "p", other.clone(), 2).await,
        SignalOutcome::Buffered
    );
    let before = dump(&*store).await;
    assert_eq!(
        wait(&*store, &k, "p", waiting_until(40), vec![], 3).await,
        WaitOutcome::Waiting
    );
    let mut expected = before;
    set_step(
        &mut expected,
        &k,
        "p",
        Some(timed(waiting_until(40), 3, None)),
    );
    expected.timers = vec![entry(40, &k, "p")];
    expected.next_deadline = Some(40);
    let got = dump(&*store).await;
    assert_eq!(got, expected);
    assert_eq!(
        got.instance(&k).and_then(|s| s.step(&buffered("p"))),
        Some(&timed(
            StepRecord {
                kind: StepKind::Engine,
                ..other
            },
            2,
            Some(2)
        ))
    );
}

/// A signal to a waiting point is `Delivered`: the record is the payload,
/// the point's timer row is gone, a `Suspended` instance is `Running`
/// (`updated_at = now`), a `Running` one stays `Running`.
pub async fn signal_to_waiting_point_is_delivered(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    // Suspended instance, point with a deadline.
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    wait(&*store, &k, "p", waiting_until(300), vec![], 2).await;
    wait(&*store, &k, "other", waiting_until(400), vec![], 2).await;
    assert_eq!(
        park(&*store, &k, &["p", "other"], 3).await,
        ParkOutcome::Parked
    );
    let before = dump(&*store).await;
    assert_eq!(
        signal(&*store, &k, "p", payload(b"v"), 9).await,
        SignalOutcome::Delivered
    );
    let mut expected = before;
    set_step(
        &mut expected,
        &k,
        "p",
        // Waiting since the wait, completed by the signal.
        Some(timed(delivered(&waiting_until(300), b"v"), 2, Some(9))),
    );
    drop_timer(&mut expected, &k, "p", 300);
    set_meta(&mut expected, &k, running(&k, 1, 9));
    assert_eq!(
        dump(&*store).await,
        expected,
        "delivery to a suspended instance"
    );

    // Running instance, point without a deadline.
    let r = key("wf", "2");
    start(&*store, &r, 1).await;
    wait(&*store, &r, "p", waiting(), vec![], 2).await;
    let before = dump(&*store).await;
    assert_eq!(
        signal(&*store, &r, "p", payload(b"w"), 9).await,
        SignalOutcome::Delivered
    );
    let got = dump(&*store).await;
    let mut expected = before;
    set_step(
        &mut expected,
        &r,
        "p",
        Some(timed(delivered(&waiting(), b"w"), 2, Some(9))),
    );
    // The rule does not fix `updated_at` of a running instance.
    let got_meta = got.instance(&r).map(|s| s.metadata.clone()).expect("r");
    assert_eq!(got_meta.status, MetadataStatus::Running);
    set_meta(&mut expected, &r, got_meta);
    assert_eq!(got, expected, "delivery to a running instance");
}

/// A signal whose type tag differs from the waiting point's is `WrongType`
/// with the point's tag and writes nothing.
pub async fn signal_of_wrong_type_is_refused(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    wait(&*store, &k, "p", waiting_until(30), vec![], 2).await;
    wait(&*store, &k, "g", group(None), members("g", 2), 2).await;
    park(&*store, &k, &["p", "g"], 3).await;
    let before = dump(&*store).await;
    let wrong = StepRecord::completed(StepKind::Suspend, "u64", b"7".to_vec(), None);
    for point in ["p", "m1"] {
        assert_eq!(
            signal(&*store, &k, point, wrong.clone(), 4).await,
            SignalOutcome::WrongType("signal".into()),
            "{point}"
        );
    }
    assert_eq!(
        dump(&*store).await,
        before,
        "a wrong-typed signal wrote something"
    );
}

/// A signal to something that is not a point — a waiting durable timer, a
/// regular step (completed, retrying, dead), a group's own key, an engine
/// record — is `NotAPoint` with its kind and writes nothing.
pub async fn signal_to_non_point_is_refused(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    wait(&*store, &k, "nap", crate::support::timer(100), vec![], 2).await;
    wait(&*store, &k, "g", group(Some(200)), members("g", 2), 2).await;
    ok(
        store.commit_step(k.clone(), "s".into(), done(b"d")).await,
        "commit",
    );
    ok(
        store
            .commit_step(k.clone(), "r".into(), crate::support::retrying(1))
            .await,
        "commit",
    );
    ok(
        store
            .commit_step(k.clone(), "x".into(), crate::support::dead(3))
            .await,
        "commit",
    );
    let before = dump(&*store).await;
    for (point, kind) in [
        ("nap", StepKind::Timer),
        ("s", StepKind::Step),
        ("r", StepKind::Step),
        ("x", StepKind::Step),
        ("g", StepKind::Select),
        ("_input", StepKind::Engine),
    ] {
        let p = StepRecord {
            type_tag: before
                .instance(&k)
                .and_then(|s| s.step(point))
                .map(|r| r.type_tag.clone())
                .unwrap_or_default(),
            ..payload(b"v")
        };
        assert_eq!(
            signal(&*store, &k, point, p, 3).await,
            SignalOutcome::NotAPoint(kind),
            "signal to {point}"
        );
    }
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused signal wrote something"
    );
}

/// A second signal to a delivered point is `Superseded`; once the instance
/// is terminal a late duplicate is still `Superseded`, while a signal to a
/// point that was never resolved is `Finished`; a missing instance is
/// `InstanceMissing`. None of them writes.
pub async fn signal_after_delivery_or_finish(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    assert_eq!(
        signal(&*store, &key("wf", "none"), "p", payload(b"v"), 1).await,
        SignalOutcome::InstanceMissing
    );
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    wait(&*store, &k, "p", waiting(), vec![], 2).await;
    wait(&*store, &k, "q", waiting(), vec![], 2).await;
    assert_eq!(
        signal(&*store, &k, "p", payload(b"one"), 3).await,
        SignalOutcome::Delivered
    );
    let before = dump(&*store).await;
    assert_eq!(
        signal(&*store, &k, "p", payload(b"two"), 4).await,
        SignalOutcome::Superseded
    );
    assert_eq!(
        dump(&*store).await,
        before,
        "a duplicate signal wrote something"
    );

    finish(&*store, &k, 5).await;
    let before = dump(&*store).await;
    assert_eq!(
        signal(&*store, &k, "p", payload(b"late"), 6).await,
        SignalOutcome::Superseded,
        "a late duplicate of a delivered signal"
    );
    let failed = MetadataStatus::Failed("done".into());
    for point in ["q", "never"] {
        assert_eq!(
            signal(&*store, &k, point, payload(b"late"), 6).await,
            SignalOutcome::Finished(failed.clone()),
            "{point}"
        );
    }
    assert_eq!(
        dump(&*store).await,
        before,
        "a signal to a finished instance wrote"
    );
    assert_eq!(
        signal(&*store, &key("wf", "none"), "p", payload(b"v"), 7).await,
        SignalOutcome::InstanceMissing
    );
    assert_eq!(dump(&*store).await, before);
}

/// A wait with members writes the group's record (and its timer row) and
/// one record per member; the status is unchanged.
pub async fn wait_with_members_writes_group_and_members(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let before = dump(&*store).await;
    assert_eq!(
        wait(&*store, &k, "g", group(Some(800)), members("g", 3), 2).await,
        WaitOutcome::Waiting
    );
    let mut expected = before;
    set_step(
        &mut expected,
        &k,
        "g",
        Some(timed(group(Some(800)), 2, None)),
    );
    for i in 0..3 {
        set_step(
            &mut expected,
            &k,
            &format!("m{i}"),
            Some(timed(member("g"), 2, None)),
        );
    }
    expected.timers = vec![entry(800, &k, "g")];
    expected.next_deadline = Some(800);
    assert_eq!(dump(&*store).await, expected);
}

/// A signal to one member completes the member and the group (value = the
/// member's key) and removes the group's timer row; a signal to another
/// member is then `Superseded` and writes nothing, and a wait at the group
/// is `Resolved` with the winner.
pub async fn group_first_member_signal_wins(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    wait(&*store, &k, "g", group(Some(800)), members("g", 3), 2).await;
    assert_eq!(park(&*store, &k, &["g"], 3).await, ParkOutcome::Parked);
    let before = dump(&*store).await;
    assert_eq!(
        signal(&*store, &k, "m1", payload(b"one"), 4).await,
        SignalOutcome::Delivered
    );
    // Member and group: waiting since the wait, completed by the signal.
    let won = timed(delivered(&member("g"), b"one"), 2, Some(4));
    let group_won = timed(won_by("m1"), 2, Some(4));
    let mut expected = before;
    set_step(&mut expected, &k, "m1", Some(won.clone()));
    set_step(&mut expected, &k, "g", Some(group_won.clone()));
    drop_timer(&mut expected, &k, "g", 800);
    set_meta(&mut expected, &k, running(&k, 1, 4));
    assert_eq!(
        dump(&*store).await,
        expected,
        "after the winning member signal"
    );

    for loser in ["m0", "m2", "m1"] {
        assert_eq!(
            signal(&*store, &k, loser, payload(b"two"), 5).await,
            SignalOutcome::Superseded,
            "{loser}"
        );
    }
    assert_eq!(
        dump(&*store).await,
        expected,
        "a losing member signal wrote"
    );
    assert_eq!(
        wait(&*store, &k, "g", group(Some(800)), members("g", 3), 6).await,
        WaitOutcome::Resolved {
            record: group_won,
            winner: Some(("m1".into(), won)),
        }
    );
    assert_eq!(
        dump(&*store).await,
        expected,
        "the resolved group wait wrote"
    );
    // Terminal: a late signal to a member of the won group is superseded.
    finish(&*store, &k, 7).await;
    assert_eq!(
        signal(&*store, &k, "m2", payload(b"late"), 8).await,
        SignalOutcome::Superseded
    );
}

/// A wait at a group whose second member has a buffered signal resolves
/// the group with it: member and group completed, the other members
/// registered, the buffered row gone, no timer row.
pub async fn group_wait_consumes_buffered_member_signal(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let before = dump(&*store).await;
    assert_eq!(
        signal(&*store, &k, "m1", payload(b"early"), 2).await,
        SignalOutcome::Buffered
    );
    let outcome = wait(&*store, &k, "g", group(Some(90)), members("g", 3), 3).await;
    let WaitOutcome::Resolved { record, winner } = outcome else {
        panic!("a group with a buffered member signal: {outcome:?}");
    };
    // Reached and resolved at the wait.
    assert_eq!(record, timed(won_by("m1"), 3, Some(3)));
    let (winner_key, winner_record) = winner.expect("the winning member");
    assert_eq!(winner_key, "m1");
    assert_eq!(winner_record.state, memable_core::StepState::Completed);
    assert_eq!(winner_record.value, b"early".to_vec());
    assert_eq!(
        (winner_record.started_at_ms, winner_record.completed_at_ms),
        (Some(3), Some(3))
    );
    let got = dump(&*store).await;
    let mut expected = before;
    set_step(&mut expected, &k, "g", Some(record));
    set_step(&mut expected, &k, "m1", Some(winner_record));
    // The other members are registered (so their later signals are
    // superseded); nothing else is written.
    for other in ["m0", "m2"] {
        set_step(&mut expected, &k, other, Some(timed(member("g"), 3, None)));
    }
    assert_eq!(got, expected);
}

/// Of 32 concurrent signals to 32 members of one group, exactly one is
/// `Delivered` and the others `Superseded`; the group names the winner,
/// whose record holds its payload; the group's timer row is gone.
pub async fn group_exactly_one_winner_of_32(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for round in 0..4_u8 {
        let k = key("race", &round.to_string());
        start(&*store, &k, 1).await;
        wait(&*store, &k, "g", group(Some(100)), members("g", 32), 2).await;
        park(&*store, &k, &["g"], 3).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let mut tasks = Vec::new();
        for i in 0..32_u8 {
            let (store, k, barrier) = (Arc::clone(&store), k.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let outcome = store
                    .deliver_signal(k, format!("m{i}"), payload(&[i]), 4)
                    .await;
                (i, outcome)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (i, outcome) = task.await.expect("signal task panicked");
            match ok(outcome, "deliver_signal") {
                SignalOutcome::Delivered => winners.push(i),
                SignalOutcome::Superseded => {}
                other => panic!("member {i} got {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let w = winners[0];
        let snap = ok(store.load_instance(&k).await, "load").expect("snapshot");
        let winner_key = format!("m{w}");
        assert_eq!(
            snap.step("g"),
            Some(&timed(won_by(&winner_key), 2, Some(4)))
        );
        assert_eq!(
            snap.step(&winner_key),
            Some(&timed(delivered(&member("g"), &[w]), 2, Some(4)))
        );
        for i in (0..32_u8).filter(|i| *i != w) {
            assert_eq!(
                snap.step(&format!("m{i}")),
                Some(&timed(member("g"), 2, None)),
                "loser m{i}"
            );
        }
        assert_eq!(snap.metadata.status, MetadataStatus::Running);
    }
    assert!(ok(store.due_timers(u64::MAX, 100).await, "due").is_empty());
}

/// Of 32 concurrent signals to a point not reached yet, exactly one is
/// `Buffered` and the others `Superseded`; the buffered row holds the
/// winner's payload.
pub async fn buffered_exactly_one_of_32(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("race", "buffer");
    start(&*store, &k, 1).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for i in 0..32_u8 {
        let (store, k, barrier) = (Arc::clone(&store), k.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (
                i,
                store.deliver_signal(k, "p".into(), payload(&[i]), 2).await,
            )
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, outcome) = task.await.expect("signal task panicked");
        match ok(outcome, "deliver_signal") {
            SignalOutcome::Buffered => winners.push(i),
            SignalOutcome::Superseded => {}
            other => panic!("signal {i} got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners {winners:?}");
    assert_eq!(
        ok(store.get_step(&k, &buffered("p")).await, "get"),
        Some(timed(buffered_row(&[winners[0]]), 2, Some(2)))
    );
}

/// Park sets the instance `Suspended { key: waiting[0], status }` with
/// `updated_at = now` and writes nothing else.
pub async fn park_suspends_at_first_point(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    wait(&*store, &k, "b", waiting_until(60), vec![], 2).await;
    wait(&*store, &k, "a", waiting(), vec![], 2).await;
    let before = dump(&*store).await;
    assert_eq!(park(&*store, &k, &["b", "a"], 5).await, ParkOutcome::Parked);
    let mut expected = before;
    set_meta(
        &mut expected,
        &k,
        WorkflowMetadata {
            status: MetadataStatus::Suspended {
                key: "b".into(),
                status: Some("parked".into()),
            },
            updated_at_ms: 5,
            ..WorkflowMetadata::running(&k, 1)
        },
    );
    assert_eq!(dump(&*store).await, expected);
}

/// Park is `Woken` and writes nothing when one of the waited points is
/// already completed (a signal or timer resolved it during the run) or the
/// list is empty.
pub async fn park_with_resolved_point_is_woken(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    wait(&*store, &k, "a", waiting(), vec![], 2).await;
    wait(&*store, &k, "b", waiting(), vec![], 2).await;
    assert_eq!(
        signal(&*store, &k, "b", payload(b"v"), 3).await,
        SignalOutcome::Delivered
    );
    let before = dump(&*store).await;
    assert_eq!(park(&*store, &k, &["a", "b"], 4).await, ParkOutcome::Woken);
    assert_eq!(park(&*store, &k, &[], 4).await, ParkOutcome::Woken);
    assert_eq!(dump(&*store).await, before, "a woken park wrote something");
}

/// Park on a missing or terminal instance is `NotActive` and writes nothing.
pub async fn park_inactive_instance_is_refused(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    assert_eq!(
        park(&*store, &key("wf", "none"), &["p"], 1).await,
        ParkOutcome::NotActive(None)
    );
    let (f, x) = (key("wf", "f"), key("wf", "x"));
    for k in [&f, &x] {
        start(&*store, k, 1).await;
        wait(&*store, k, "p", waiting(), vec![], 2).await;
    }
    finish(&*store, &f, 3).await;
    ok(store.cancel_instance(x.clone(), 3).await, "cancel");
    let before = dump(&*store).await;
    assert_eq!(
        park(&*store, &f, &["p"], 4).await,
        ParkOutcome::NotActive(Some(MetadataStatus::Failed("done".into())))
    );
    assert_eq!(
        park(&*store, &x, &["p"], 4).await,
        ParkOutcome::NotActive(Some(MetadataStatus::Cancelled))
    );
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused park wrote something"
    );
}

/// Firing the due row of a waiting timer is `Fired`: the record is the
/// payload with kind `Timer` and the point's status, the row is gone, a
/// `Suspended` instance is `Running`; a group's timer completes the group
/// as a `Timer` record and its members are then superseded.
pub async fn fire_due_timer_completes_point(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let nap = StepRecord {
        status: Some("napping".into()),
        ..crate::support::timer(100)
    };
    wait(&*store, &k, "nap", nap, vec![], 2).await;
    wait(&*store, &k, "other", waiting_until(200), vec![], 2).await;
    park(&*store, &k, &["nap", "other"], 3).await;
    let before = dump(&*store).await;
    let outcome = ok(
        store.fire_timer(entry(100, &k, "nap"), tick(), 100).await,
        "fire",
    );
    assert_eq!(outcome, FireOutcome::Fired);
    let mut expected = before;
    set_step(
        &mut expected,
        &k,
        "nap",
        // Waiting since the wait, completed when fired.
        Some(timed(
            StepRecord {
                status: Some("napping".into()),
                ..tick()
            },
            2,
            Some(100),
        )),
    );
    drop_timer(&mut expected, &k, "nap", 100);
    set_meta(&mut expected, &k, running(&k, 1, 100));
    assert_eq!(dump(&*store).await, expected, "after firing");

    // A group's deadline.
    let g = key("wf", "g");
    start(&*store, &g, 1).await;
    wait(&*store, &g, "g", group(Some(150)), members("g", 2), 2).await;
    park(&*store, &g, &["g"], 3).await;
    let outcome = ok(
        store.fire_timer(entry(150, &g, "g"), tick(), 150).await,
        "fire",
    );
    assert_eq!(outcome, FireOutcome::Fired);
    let snap = ok(store.load_instance(&g).await, "load").expect("snapshot");
    let fired = snap.step("g").expect("the group record");
    assert_eq!(
        (fired.state, fired.kind),
        (memable_core::StepState::Completed, StepKind::Timer)
    );
    assert_eq!(
        (fired.started_at_ms, fired.completed_at_ms),
        (Some(2), Some(150))
    );
    assert_eq!(snap.metadata.status, MetadataStatus::Running);
    let before = dump(&*store).await;
    assert!(!before.timers.iter().any(|t| t.instance == g));
    assert_eq!(
        signal(&*store, &g, "m0", payload(b"late"), 160).await,
        SignalOutcome::Superseded
    );
    assert_eq!(
        dump(&*store).await,
        before,
        "a member signal after the deadline wrote"
    );
}

/// A row whose deadline does not match the waiting record, whose step is
/// already completed, or whose instance is terminal or missing is `Stale`:
/// only the row is removed.
pub async fn fire_stale_row_only_removes_it(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    wait(&*store, &k, "nap", crate::support::timer(100), vec![], 2).await;
    park(&*store, &k, &["nap"], 3).await;
    let before = dump(&*store).await;
    // Another deadline than the waiting record's.
    let outcome = ok(
        store.fire_timer(entry(50, &k, "nap"), tick(), 100).await,
        "fire",
    );
    assert_eq!(outcome, FireOutcome::Stale, "mismatched deadline");
    assert_eq!(
        dump(&*store).await,
        before,
        "a stale fire changed the point"
    );
    // Completed step: fire twice.
    assert_eq!(
        ok(
            store.fire_timer(entry(100, &k, "nap"), tick(), 100).await,
            "fire"
        ),
        FireOutcome::Fired
    );
    let before = dump(&*store).await;
    assert_eq!(
        ok(
            store.fire_timer(entry(100, &k, "nap"), tick(), 101).await,
            "fire"
        ),
        FireOutcome::Stale,
        "completed step"
    );
    assert_eq!(dump(&*store).await, before);
    // A point resolved by a signal, its row fired late.
    let s = key("wf", "s");
    start(&*store, &s, 1).await;
    wait(&*store, &s, "p", waiting_until(70), vec![], 2).await;
    signal(&*store, &s, "p", payload(b"v"), 3).await;
    let before = dump(&*store).await;
    assert_eq!(
        ok(
            store.fire_timer(entry(70, &s, "p"), tick(), 70).await,
            "fire"
        ),
        FireOutcome::Stale,
        "signalled point"
    );
    assert_eq!(dump(&*store).await, before);
    // Terminal instance with its row still there (finish keeps rows).
    let t = key("wf", "t");
    start(&*store, &t, 1).await;
    wait(&*store, &t, "nap", crate::support::timer(90), vec![], 2).await;
    finish(&*store, &t, 3).await;
    let before = dump(&*store).await;
    assert!(before.timers.contains(&entry(90, &t, "nap")));
    assert_eq!(
        ok(
            store.fire_timer(entry(90, &t, "nap"), tick(), 90).await,
            "fire"
        ),
        FireOutcome::Stale,
        "terminal instance"
    );
    let mut expected = before;
    drop_timer(&mut expected, &t, "nap", 90);
    assert_eq!(dump(&*store).await, expected, "only the row is removed");
    // Missing instance.
    assert_eq!(
        ok(
            store
                .fire_timer(entry(90, &key("wf", "none"), "nap"), tick(), 90)
                .await,
            "fire"
        ),
        FireOutcome::Stale
    );
    assert_eq!(dump(&*store).await, expected);
}

/// Delete removes buffered signals with the instance; cancel keeps them,
/// and later signals are `Finished(Cancelled)` and waits `NotActive`.
pub async fn buffered_signals_follow_delete_and_cancel(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let (d, c) = (key("wf", "d"), key("wf", "c"));
    for k in [&d, &c] {
        start(&*store, k, 1).await;
        assert_eq!(
            signal(&*store, k, "p", payload(b"early"), 2).await,
            SignalOutcome::Buffered
        );
    }
    let before = dump(&*store).await;
    assert!(ok(store.delete_instance(d.clone()).await, "delete"));
    assert_eq!(ok(store.load_instance(&d).await, "load"), None);
    assert_eq!(ok(store.get_step(&d, &buffered("p")).await, "get"), None);
    let mut expected = before;
    expected.instances.retain(|s| s.metadata.instance_id != "d");
    assert_eq!(dump(&*store).await, expected, "delete left something");
    // A new instance under the deleted key does not see the old signal.
    start(&*store, &d, 5).await;
    assert_eq!(
        wait(&*store, &d, "p", waiting(), vec![], 6).await,
        WaitOutcome::Waiting
    );

    ok(store.cancel_instance(c.clone(), 3).await, "cancel");
    assert_eq!(
        ok(store.get_step(&c, &buffered("p")).await, "get"),
        Some(timed(buffered_row(b"early"), 2, Some(2))),
        "cancel removed the buffered signal"
    );
    let before = dump(&*store).await;
    for point in ["p", "q"] {
        assert_eq!(
            signal(&*store, &c, point, payload(b"late"), 4).await,
            SignalOutcome::Finished(MetadataStatus::Cancelled),
            "{point}"
        );
    }
    assert_eq!(
        wait(&*store, &c, "p", waiting(), vec![], 4).await,
        WaitOutcome::NotActive(Some(MetadataStatus::Cancelled))
    );
    assert_eq!(
        dump(&*store).await,
        before,
        "a cancelled instance was written"
    );
}

/// A signal sent to a durable timer's key before the workflow reached the
/// timer must not resolve the timer: a timer is not a point (a signal to a
/// waiting timer is `NotAPoint(Timer)`), so the wait registers the timer
/// and its row.
pub async fn buffered_signal_does_not_resolve_a_timer(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    let unit = StepRecord::completed(StepKind::Suspend, "()", b"null".to_vec(), None);
    // Buffered or refused are both fine here; resolving the timer is not.
    let sent = signal(&*store, &k, "nap", unit, 2).await;
    assert!(
        matches!(sent, SignalOutcome::Buffered | SignalOutcome::NotAPoint(_)),
        "{sent:?}"
    );
    assert_eq!(
        wait(&*store, &k, "nap", crate::support::timer(100), vec![], 3).await,
        WaitOutcome::Waiting,
        "a signal resolved a durable timer"
    );
    let got = dump(&*store).await;
    assert_eq!(got.timers, vec![entry(100, &k, "nap")]);
    assert_eq!(
        got.instance(&k).and_then(|s| s.step("nap")),
        Some(&timed(crate::support::timer(100), 3, None))
    );
}

/// Once a group is resolved by a buffered member signal, a signal to
/// another member is `Superseded`, as it is when the group was resolved by
/// a delivered signal: of the signals to the members of one group only one
/// is `Delivered` or `Buffered`.
pub async fn member_signal_after_buffered_win_is_superseded(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    start(&*store, &k, 1).await;
    assert_eq!(
        signal(&*store, &k, "m1", payload(b"early"), 2).await,
        SignalOutcome::Buffered
    );
    let outcome = wait(&*store, &k, "g", group(None), members("g", 2), 3).await;
    assert!(
        matches!(outcome, WaitOutcome::Resolved { .. }),
        "{outcome:?}"
    );
    let before = dump(&*store).await;
    assert_eq!(
        signal(&*store, &k, "m0", payload(b"late"), 4).await,
        SignalOutcome::Superseded,
        "a second member of a won group"
    );
    assert_eq!(dump(&*store).await, before, "a losing member signal wrote");
}
