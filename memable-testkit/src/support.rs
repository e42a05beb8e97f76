//! Helpers shared by the cases: fixtures, keys, records and a full dump of a
//! store's observable state.

use std::sync::Arc;

use memable_core::StepStoreExt;
use memable_core::{
    EngineError, InstanceFilter, InstanceKey, InstanceSnapshot, StepKind, StepRecord, StepState,
    StepStore, TimerEntry, WorkflowMetadata,
};

use crate::{StoreFactory, StoreFixture};

/// Unwraps a store result, failing the case with the operation's name.
#[track_caller]
pub(crate) fn ok<T>(result: Result<T, EngineError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what} failed with a storage error: {err}"),
    }
}

/// A fresh fixture and a handle to its store.
pub(crate) async fn fresh(
    factory: &dyn StoreFactory,
) -> (Box<dyn StoreFixture>, Arc<dyn StepStore>) {
    let fixture = ok(factory.create().await, "StoreFactory::create");
    let store = fixture.store();
    (fixture, store)
}

/// Prints the skip line and tells the case to return.
pub(crate) fn skip(case: &str, factory: &dyn StoreFactory, reason: &str) {
    println!("SKIPPED {case} on {}: {reason}", factory.name());
}

/// `InstanceKey::new`, failing the case on an invalid key.
#[track_caller]
pub(crate) fn key(workflow: &str, instance: &str) -> InstanceKey {
    ok(InstanceKey::new(workflow, instance), "InstanceKey::new")
}

/// A completed step record holding `value`.
pub(crate) fn done(value: &[u8]) -> StepRecord {
    StepRecord::completed(StepKind::Step, "bytes", value.to_vec(), None)
}

/// An `_input` record.
pub(crate) fn input(value: &[u8]) -> StepRecord {
    StepRecord::completed(StepKind::Engine, "input", value.to_vec(), None)
}

/// An `_output` record.
pub(crate) fn output(value: &[u8]) -> StepRecord {
    StepRecord::completed(StepKind::Engine, "output", value.to_vec(), None)
}

/// A suspended signal point (no deadline).
pub(crate) fn waiting() -> StepRecord {
    StepRecord::suspended(StepKind::Suspend, "signal", Some("waiting".into()), None)
}

/// A suspended timer firing at `deadline_ms`.
pub(crate) fn timer(deadline_ms: u64) -> StepRecord {
    StepRecord::suspended(StepKind::Timer, "()", None, Some(deadline_ms))
}

/// A signal / timer payload.
pub(crate) fn payload(value: &[u8]) -> StepRecord {
    StepRecord::completed(StepKind::Suspend, "signal", value.to_vec(), None)
}

/// A retrying failure record.
pub(crate) fn retrying(attempts: u32) -> StepRecord {
    StepRecord::failure(
        StepState::Retrying,
        attempts,
        format!("attempt {attempts} failed"),
    )
}

/// A dead-letter record.
pub(crate) fn dead(attempts: u32) -> StepRecord {
    StepRecord::failure(StepState::Failed, attempts, "gave up")
}

/// A timer entry, for comparisons.
pub(crate) fn entry(deadline_ms: u64, instance: &InstanceKey, step_key: &str) -> TimerEntry {
    TimerEntry {
        deadline_ms,
        instance: instance.clone(),
        step_key: step_key.to_owned(),
    }
}

/// Starts `key` with a small input, asserting it started.
pub(crate) async fn start(store: &dyn StepStore, key: &InstanceKey, now_ms: u64) {
    let outcome = ok(
        store
            .start_instance(key.clone(), input(key.to_string().as_bytes()), now_ms)
            .await,
        "start_instance",
    );
    assert_eq!(outcome, memable_core::StartOutcome::Started, "start {key}");
}

/// Everything a store lets a caller observe: every instance's snapshot (in
/// listing order), every timer, the next deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Dump {
    pub(crate) instances: Vec<InstanceSnapshot>,
    pub(crate) timers: Vec<TimerEntry>,
    pub(crate) next_deadline: Option<u64>,
}

impl Dump {
    /// The snapshot of `key`, if present.
    pub(crate) fn instance(&self, key: &InstanceKey) -> Option<&InstanceSnapshot> {
        self.instances.iter().find(|s| {
            s.metadata.workflow_name == key.workflow() && s.metadata.instance_id == key.instance()
        })
    }
}

/// Reads the whole observable state of `store`.
pub(crate) async fn dump(store: &dyn StepStore) -> Dump {
    let metas: Vec<WorkflowMetadata> = ok(
        store.list_instances(&InstanceFilter::new()).await,
        "list_instances",
    );
    let mut instances = Vec::with_capacity(metas.len());
    for meta in metas {
        let key = ok(meta.key(), "WorkflowMetadata::key");
        let snap = ok(store.load_instance(&key).await, "load_instance")
            .unwrap_or_else(|| panic!("{key} is listed but load_instance returns None"));
        assert_eq!(
            snap.metadata, meta,
            "listed metadata of {key} differs from its snapshot"
        );
        instances.push(snap);
    }
    Dump {
        instances,
        timers: ok(store.due_timers(u64::MAX, usize::MAX).await, "due_timers"),
        next_deadline: ok(store.next_timer_deadline().await, "next_timer_deadline"),
    }
}

/// Fills `store` with a bit of everything: instances in every status (some
/// under look-alike and unicode keys), steps in every state, pending timers,
/// inputs and outputs. Returns the keys it created.
pub(crate) async fn populate(store: &dyn StepStore) -> Vec<InstanceKey> {
    use memable_core::Finish;
    let keys = vec![
        key("a", "1"),
        key("a", "10"),
        key("a-b", "1"),
        key("ab", "1"),
        key("工作流", "ïd-🚀"),
        key("a", "2"),
        key("b", "1"),
    ];
    for (i, k) in keys.iter().enumerate() {
        let t = u64::try_from(i).unwrap_or(0) * 10;
        start(store, k, t + 1).await;
        ok(
            store
                .commit_step(k.clone(), "done".into(), done(k.to_string().as_bytes()))
                .await,
            "commit",
        );
        ok(
            store
                .commit_step(k.clone(), "retry".into(), retrying(2))
                .await,
            "commit",
        );
        ok(
            store.commit_step(k.clone(), "dead".into(), dead(3)).await,
            "commit",
        );
        ok(
            store
                .suspend_step(
                    k.clone(),
                    "nap".into(),
                    timer(1_000 + t),
                    Some(format!("napping {i}")),
                    t + 2,
                )
                .await,
            "suspend",
        );
        match i % 5 {
            0 => {}
            1 => {
                ok(
                    store
                        .claim_step(k.clone(), "nap".into(), payload(b"woke"), t + 3)
                        .await,
                    "claim",
                );
                // Running again, and owned by a worker's run.
                ok(
                    store.acquire(k.clone(), "worker-0".into(), t + 3).await,
                    "acquire",
                );
            }
            2 => {
                ok(
                    store
                        .claim_step(k.clone(), "nap".into(), payload(b"woke"), t + 3)
                        .await,
                    "claim",
                );
                let fin = Finish::Completed {
                    status: Some("fine".into()),
                    output: output(b"out"),
                };
                ok(store.finish_instance(k.clone(), fin, t + 4).await, "finish");
            }
            3 => {
                ok(
                    store
                        .claim_step(k.clone(), "nap".into(), payload(b"woke"), t + 3)
                        .await,
                    "claim",
                );
                ok(
                    store
                        .finish_instance(k.clone(), Finish::Failed("broke".into()), t + 4)
                        .await,
                    "finish",
                );
            }
            _ => {
                ok(store.cancel_instance(k.clone(), t + 4).await, "cancel");
            }
        }
    }
    // Two instances waiting in a queue (not among the returned keys).
    for id in ["q1", "q2"] {
        let ticket = memable_core::QueueTicket::new("jobs").partition("p");
        ok(
            store
                .enqueue(key("queued", id), input(id.as_bytes()), ticket, 90)
                .await,
            "enqueue",
        );
    }
    keys
}
