//! The write transitions as data, and their logic over any transaction.
//!
//! A store's [`StepStore::write`](super::StepStore::write) receives each
//! transition as a [`WriteOp`]; a backend that group-commits lets its
//! writer drain many ops into one
//! transaction, applies each with [`apply`] over its own
//! [`Transaction`] implementation, commits once and answers every caller with
//! its [`WriteOutcome`]. The transition rules therefore live here once, and a
//! backend only provides row-level reads and writes.
//!
//! # Examples
//!
//! ```
//! use memable_core::transitions::{apply, WriteOp, WriteOutcome};
//! use memable_core::{InstanceKey, StepKind, StepRecord, StartOutcome};
//! # use memable_core::transitions::Transaction;
//! # use memable_core::{EngineError, TimerEntry, WorkflowMetadata};
//! # use std::collections::{BTreeMap, BTreeSet};
//! # #[derive(Default)]
//! # struct Rows { meta: BTreeMap<InstanceKey, WorkflowMetadata>, steps: BTreeMap<(InstanceKey, String), StepRecord>, timers: BTreeSet<TimerEntry> }
//! # impl Transaction for Rows {
//! #   fn metadata(&mut self, k: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError> { Ok(self.meta.get(k).cloned()) }
//! #   fn put_metadata(&mut self, k: &InstanceKey, m: &WorkflowMetadata, _: Option<&WorkflowMetadata>) -> Result<(), EngineError> { self.meta.insert(k.clone(), m.clone()); Ok(()) }
//! #   fn step(&mut self, k: &InstanceKey, s: &str) -> Result<Option<StepRecord>, EngineError> { Ok(self.steps.get(&(k.clone(), s.to_owned())).cloned()) }
//! #   fn put_step(&mut self, k: &InstanceKey, s: &str, r: &StepRecord) -> Result<(), EngineError> { self.steps.insert((k.clone(), s.to_owned()), r.clone()); Ok(()) }
//! #   fn remove_step(&mut self, k: &InstanceKey, s: &str) -> Result<(), EngineError> { self.steps.remove(&(k.clone(), s.to_owned())); Ok(()) }
//! #   fn steps(&mut self, k: &InstanceKey) -> Result<Vec<(String, StepRecord)>, EngineError> { Ok(self.steps.iter().filter(|((i, _), _)| i == k).map(|((_, s), r)| (s.clone(), r.clone())).collect()) }
//! #   fn put_timer(&mut self, t: &TimerEntry) -> Result<(), EngineError> { self.timers.insert(t.clone()); Ok(()) }
//! #   fn remove_timer(&mut self, t: &TimerEntry) -> Result<(), EngineError> { self.timers.remove(t); Ok(()) }
//! #   fn remove_instance(&mut self, k: &InstanceKey, _: &WorkflowMetadata) -> Result<(), EngineError> { self.meta.remove(k); self.steps.retain(|(i, _), _| i != k); Ok(()) }
//! # }
//! let mut txn = Rows::default();
//! let key = InstanceKey::new("etl", "1").unwrap();
//! let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
//! let op = WriteOp::Start { key, input, now_ms: 0 };
//! assert_eq!(apply(&op, &mut txn).unwrap(), WriteOutcome::Start(StartOutcome::Started));
//! ```

use serde::{Deserialize, Serialize};

use super::family::{CHILD_CANCELLED, CHILD_FAILED, child_link_key, child_step_of};
use super::ownership::{OWNER_KEY, acquirable};
use super::queue;
use super::repair::{self, ForgetOutcome, ForkOutcome};
use crate::key::{INPUT_KEY, OUTPUT_KEY, PARENT_KEY, buffered_signal_key};
use crate::{
    AcquireOutcome, AdmitOutcome, CancelOutcome, ChildLink, ChildStartOutcome, ClaimOutcome,
    CommitOutcome, EngineError, EnqueueOutcome, Finish, FinishOutcome, FireOutcome, InstanceKey,
    MetadataStatus, Ownership, ParentLink, ParkOutcome, QueueLimits, QueueTicket, ReviveOutcome,
    SignalOutcome, StaleEpoch, StartOutcome, StepKind, StepRecord, StepState, SuspendOutcome,
    TimerEntry, WaitOutcome, WorkflowMetadata,
};

/// Row-level access inside one backend transaction.
///
/// Implementations read their own uncommitted writes. Any `Err` aborts the
/// whole transaction.
pub trait Transaction {
    /// Reads an instance's metadata.
    fn metadata(&mut self, key: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError>;
    /// Writes an instance's metadata. `previous` is what was there (`None` on
    /// insert), so a status index can move the entry.
    fn put_metadata(
        &mut self,
        key: &InstanceKey,
        meta: &WorkflowMetadata,
        previous: Option<&WorkflowMetadata>,
    ) -> Result<(), EngineError>;
    /// Reads one step record.
    fn step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError>;
    /// Writes one step record.
    fn put_step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
        record: &StepRecord,
    ) -> Result<(), EngineError>;
    /// Removes one step record (an absent record is fine).
    fn remove_step(&mut self, key: &InstanceKey, step_key: &str) -> Result<(), EngineError>;
    /// Reads every step record of an instance.
    fn steps(&mut self, key: &InstanceKey) -> Result<Vec<(String, StepRecord)>, EngineError>;
    /// Inserts a timer row.
    fn put_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError>;
    /// Removes a timer row (absent rows are fine).
    fn remove_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError>;
    /// Removes the metadata (and its index entry; `meta` is the current
    /// metadata) and every step record of an instance.
    fn remove_instance(
        &mut self,
        key: &InstanceKey,
        meta: &WorkflowMetadata,
    ) -> Result<(), EngineError>;

    /// Reads an instance's [`Ownership`] (`None`: never acquired). The
    /// default keeps it as the reserved `_owner` step record; a store that
    /// keeps it in columns overrides this and
    /// [`put_ownership`](Self::put_ownership) together.
    fn ownership(&mut self, key: &InstanceKey) -> Result<Option<Ownership>, EngineError> {
        self.step(key, OWNER_KEY)?
            .map(|record| Ownership::from_record(&record))
            .transpose()
    }

    /// Writes an instance's [`Ownership`].
    fn put_ownership(
        &mut self,
        key: &InstanceKey,
        ownership: &Ownership,
    ) -> Result<(), EngineError> {
        self.put_step(key, OWNER_KEY, &ownership.to_record())
    }

    /// Whether `worker`, the recorded owner of some instance, is alive. The
    /// default, for a store that serves one engine at a time (guarded by its
    /// [`EngineSlot`](crate::EngineSlot)), is `false`: an owner other than
    /// the caller can only be a process that is gone. A shared store answers
    /// from its worker rows, by its own clock.
    fn owner_is_live(&mut self, worker: &str) -> Result<bool, EngineError> {
        let _ = worker;
        Ok(false)
    }
}

/// One write transition with its arguments: what
/// [`StepStore::write`](super::StepStore::write) applies, in one
/// transaction. Each variant's documentation is the rule every store
/// follows ([`apply`] implements it; the conformance suite checks it).
///
/// Ops serialize with serde (the journal of `memable-store` stores them
/// with postcard): the variants and their fields are part of the journal
/// format, so they are only ever appended, never reordered.
///
/// # Examples
///
/// ```
/// use memable_core::{InstanceKey, WriteOp};
/// let op = WriteOp::Cancel { key: InstanceKey::new("etl", "1").unwrap(), now_ms: 5 };
/// assert_eq!(op.name(), "cancel_instance");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// **Start an instance.** If no instance exists under `key`, writes its
    /// metadata (`Running`, `created_at = updated_at = now_ms`) and the
    /// `_input` record together and answers [`StartOutcome::Started`]. If
    /// one exists — whatever its status — writes nothing and answers
    /// [`StartOutcome::Exists`] with its metadata.
    Start {
        /// Instance.
        key: InstanceKey,
        /// `_input` record.
        input: StepRecord,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Commit a step.** Writes `record` under `(key, step_key)` unless a
    /// `Completed` or `Suspended` record is already there, which is kept and
    /// answered as [`CommitOutcome::Kept`] (so a committed result is never
    /// overwritten and a suspend point is only completed by a
    /// [`Claim`](Self::Claim)). `Retrying` and `Failed` records are
    /// overwritten. Answers [`CommitOutcome::InstanceMissing`] if the
    /// instance does not exist and [`CommitOutcome::Cancelled`] if it is
    /// cancelled (nothing commits into a cancelled instance). Instance
    /// metadata is not touched.
    Commit {
        /// Instance.
        key: InstanceKey,
        /// Step key.
        step_key: String,
        /// Record to write.
        record: StepRecord,
    },
    /// **Suspend** (legacy: the engine writes [`Wait`](Self::Wait) and
    /// [`Park`](Self::Park) instead; kept with its rule so journals written
    /// by earlier versions replay). If the instance is `Running` or
    /// `Suspended` and the step
    /// has no `Completed` record: writes `record` (state `Suspended`), a
    /// timer row `(record.deadline_ms, key, step_key)` if the record has a
    /// deadline (replacing the row of an earlier deadline), and sets the
    /// instance to `Suspended { key: step_key, status }` with
    /// `updated_at = now_ms` — all together. Idempotent: suspending an
    /// already suspended step rewrites the same rows.
    ///
    /// If the step is `Completed`, answers it as
    /// [`SuspendOutcome::AlreadyCompleted`]; if the instance is missing or
    /// in another status, [`SuspendOutcome::NotActive`]. Neither writes.
    Suspend {
        /// Instance.
        key: InstanceKey,
        /// Step key.
        step_key: String,
        /// Suspended record.
        record: StepRecord,
        /// Status message.
        status: Option<String>,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Claim** (legacy: the engine writes [`Signal`](Self::Signal) and
    /// [`Fire`](Self::Fire) instead; kept with its rule so journals written
    /// by earlier versions replay), a compare-and-set.
    /// Checks, in order: the step exists ([`ClaimOutcome::StepMissing`]),
    /// it is `Suspended` ([`ClaimOutcome::StepNotSuspended`]), the instance
    /// is `Suspended` ([`ClaimOutcome::InstanceNotSuspended`]). If all hold,
    /// writes together: the step replaced by `payload` (state `Completed`),
    /// the instance `Running` with `updated_at = now_ms`, and the step's
    /// timer row removed. Of any number of concurrent claims of one step,
    /// exactly one is answered [`ClaimOutcome::Claimed`].
    Claim {
        /// Instance.
        key: InstanceKey,
        /// Step key.
        step_key: String,
        /// Completed payload record.
        payload: StepRecord,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Finish.** If the instance is `Running`: sets it `Completed(status)`
    /// (writing `output` under `_output`) or `Failed(message)`, with
    /// `updated_at = completed_at = now_ms`, together. An awaited child
    /// (its `_parent` link not detached) also completes its parent's point,
    /// if the parent is active and the point still `Suspended`: with the
    /// output record (kind [`StepKind::Child`]), or with the error (value
    /// `failed`); a `Suspended` parent is set `Running`. An instance that
    /// went through a queue leaves it (its entries are removed). Otherwise
    /// writes nothing and answers [`FinishOutcome::NotRunning`].
    Finish {
        /// Instance.
        key: InstanceKey,
        /// How it finishes.
        finish: Finish,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Revive** (before `Engine::resume` runs an instance again).
    /// `Completed`, `Failed` or `Suspended` → `Running` (clearing
    /// `completed_at`, setting `updated_at = now_ms`; `_output` and the
    /// records of suspended points are kept, so a signal still reaches a
    /// point the new code waits at); `Running` is left as it is, and so is
    /// a queued instance not admitted yet (it runs when its queue admits
    /// it). A revived ended instance that went through a queue runs
    /// outside its queue's limits (its slots were freed at its end). Answers
    /// the status
    /// before the call as [`ReviveOutcome::Revived`], or
    /// [`ReviveOutcome::Cancelled`] / [`ReviveOutcome::InstanceMissing`]
    /// without writing.
    Revive {
        /// Instance.
        key: InstanceKey,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Cancel.** If the instance is `Running` or `Suspended`: sets it
    /// `Cancelled` (`updated_at = completed_at = now_ms`) and removes every
    /// timer row of the instance, together; step records are kept. Every
    /// active child it awaits (a `_child:<key>` link not detached) is
    /// cancelled by the same rule in the same transaction, and theirs. An
    /// awaited child whose parent is still active completes the parent's
    /// point (value `cancelled`) and wakes it, as its finish would. Every
    /// cancelled instance that went through a queue leaves it. A missing
    /// or terminal instance is answered [`CancelOutcome::NotActive`].
    Cancel {
        /// Instance.
        key: InstanceKey,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Delete** (retention): removes the instance's metadata, every step
    /// record (including `_input`, `_output` and buffered signals) and every
    /// timer row, together; an instance that went through a queue leaves
    /// it. Answers whether the instance existed.
    Delete {
        /// Instance.
        key: InstanceKey,
    },
    /// **Wait** (a workflow reaches a suspend point, a durable timer or a
    /// group of either-or points). Refused without writing if the instance
    /// is missing or terminal ([`WaitOutcome::NotActive`]). If the step
    /// already has a `Completed` record it is answered
    /// [`WaitOutcome::Resolved`] (for a [`StepKind::Select`] group
    /// completed by a signal, with its winning member's record).
    /// Otherwise, a buffered signal (`_signal:<key>`) for the point — or,
    /// for a group, for its first member (in `members` order) that has one —
    /// whose type tag matches is consumed: the point (or the member and the
    /// group, the other members written as for a wait) is completed with
    /// it, the buffered row removed, and it is answered `Resolved`. A
    /// durable timer ([`StepKind::Timer`]) never consumes a buffered signal. Otherwise `record` (state `Suspended`) is
    /// written, with its timer row if it has a deadline (replacing the row
    /// of an earlier deadline), and each member record that has no
    /// `Completed` record; answers [`WaitOutcome::Waiting`]. The instance's
    /// status is not changed: [`Park`](Self::Park) does that at the end of
    /// the run.
    Wait {
        /// Instance.
        key: InstanceKey,
        /// The point's (or group's) step key.
        step_key: String,
        /// Its suspended record.
        record: StepRecord,
        /// For a group: the member points' keys and suspended records
        /// (kind [`StepKind::Member`], value = `step_key`); empty otherwise.
        members: Vec<(String, StepRecord)>,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Park** (a run that waits ends). Refused without writing if the
    /// instance is missing or terminal ([`ParkOutcome::NotActive`]). If any
    /// of `waiting` has a `Completed` record (a signal or timer resolved it
    /// during the run), or `waiting` is empty, answers
    /// [`ParkOutcome::Woken`] without writing. Otherwise sets the instance
    /// `Suspended { key: waiting[0], status }` with `updated_at = now_ms`.
    Park {
        /// Instance.
        key: InstanceKey,
        /// Every point the run waits at, in the order it reached them.
        waiting: Vec<String>,
        /// Status message.
        status: Option<String>,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Signal** (deliver a value to a point). Checks, in order: the
    /// instance exists ([`SignalOutcome::InstanceMissing`]) and is not
    /// terminal ([`SignalOutcome::Finished`]). Then, by the record under
    /// `step_key`:
    /// - a `Suspended` point ([`StepKind::Suspend`]) whose type tag matches
    ///   `payload`'s: the record is replaced by `payload`, its timer row
    ///   removed, and a `Suspended` instance set `Running`
    ///   ([`SignalOutcome::Delivered`]);
    /// - a `Suspended` group member ([`StepKind::Member`]): the same, and
    ///   its group completed (value = this member's key, timer row removed)
    ///   — unless the group is no longer `Suspended`, answered
    ///   [`SignalOutcome::Superseded`];
    /// - a mismatched type tag: [`SignalOutcome::WrongType`];
    /// - a `Completed` point, member or timed-out point:
    ///   [`SignalOutcome::Superseded`];
    /// - anything else (a timer, a regular step, a group's own key):
    ///   [`SignalOutcome::NotAPoint`];
    /// - no record: the payload is buffered under `_signal:<step_key>`
    ///   ([`SignalOutcome::Buffered`]), unless one is buffered already
    ///   ([`SignalOutcome::Superseded`]). The instance is not changed.
    ///
    /// Of any number of concurrent signals to one point (or to the members
    /// of one group), exactly one is answered `Delivered` or `Buffered`.
    Signal {
        /// Instance.
        key: InstanceKey,
        /// The point's key.
        step_key: String,
        /// The completed payload record (kind [`StepKind::Suspend`]).
        payload: StepRecord,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Fire** a due timer row. If the instance is active and the row's
    /// step is `Suspended` with this very deadline, the step is replaced by
    /// `payload` (kind [`StepKind::Timer`]), the row removed and a
    /// `Suspended` instance set `Running` ([`FireOutcome::Fired`]).
    /// Otherwise only the row is removed ([`FireOutcome::Stale`]).
    Fire {
        /// The due timer row.
        timer: TimerEntry,
        /// The completed timer record.
        payload: StepRecord,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Acquire** an instance for a worker's run (see
    /// [`ownership`](crate::Ownership) for the protocol). Refused without
    /// writing if the instance is missing ([`AcquireOutcome::InstanceMissing`]),
    /// cancelled ([`AcquireOutcome::Cancelled`]), or owned by another worker
    /// that the store judges alive ([`AcquireOutcome::Held`];
    /// [`Transaction::owner_is_live`]). Otherwise sets the owner to
    /// `worker` and the epoch to the previous epoch + 1 (1 for an instance
    /// never acquired) and answers [`AcquireOutcome::Acquired`] with it —
    /// whatever the instance's status, which is not changed.
    Acquire {
        /// Instance.
        key: InstanceKey,
        /// The acquiring worker's id.
        worker: String,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Release** an instance at the end of a run that neither parked nor
    /// finished it (a replay that changed nothing, a run whose last write
    /// failed): clears the owner, keeping the epoch, so any worker may
    /// acquire it at once. A run sends it fenced; unfenced it clears
    /// whatever owner there is. Answers whether the instance exists.
    Release {
        /// Instance.
        key: InstanceKey,
    },
    /// **Fenced**: `op`, written by a run that acquired its instance under
    /// `epoch`. If the instance is owned and its epoch is `epoch`, `op` is
    /// applied by its own rule and answered by its own outcome; a `Park`
    /// answered [`ParkOutcome::Parked`] or a `Finish` answered
    /// [`FinishOutcome::Finished`] also releases the ownership (the owner
    /// is cleared, the epoch kept), in the same transaction. Otherwise
    /// nothing is written and the answer is [`WriteOutcome::Stale`]. `op`
    /// must be a write of a run (`Commit`, `Wait`, `Park`, `Finish`,
    /// `Revive`, `Suspend`, `Release`, `StartChild`); any other is refused
    /// with a storage error of kind `Other`.
    Fenced {
        /// The epoch the run acquired.
        epoch: u64,
        /// The run's write.
        op: Box<WriteOp>,
    },
    /// **Start a child** workflow from `parent`'s run (see
    /// [`ChildLink`] for the protocol). Refused without writing if the
    /// parent is missing or terminal ([`ChildStartOutcome::NotActive`]). If
    /// the parent has a link `_child:<step_key>`, answers
    /// [`ChildStartOutcome::Exists`] with its point record, writing
    /// nothing. If an awaited child's `step_key` holds a record of the
    /// parent already, answers [`ChildStartOutcome::KeyInUse`] with its
    /// kind, writing nothing. Otherwise writes together: the link; for an
    /// awaited child, `point` (a `Suspended` record of kind
    /// [`StepKind::Child`]) under `step_key`; and, if no instance `child`
    /// exists, the child (`Running`, `created_at = updated_at = now_ms`),
    /// its `_input` and its `_parent` link
    /// ([`ChildStartOutcome::Started`]). An existing instance under the
    /// child's key with the same `_input` is adopted: its `_parent` is
    /// written, and if it has already ended, an awaited point is completed
    /// from its end at once ([`ChildStartOutcome::Exists`]); with another
    /// input it is answered [`ChildStartOutcome::InputConflict`] without
    /// writing.
    StartChild {
        /// The parent instance.
        parent: InstanceKey,
        /// The parent's step key for the child.
        step_key: String,
        /// The child instance (its id derived from `parent` and `step_key`).
        child: InstanceKey,
        /// The child's `_input` record.
        input: StepRecord,
        /// The parent's point (`Suspended`, kind [`StepKind::Child`]);
        /// `None` for a detached child.
        point: Option<StepRecord>,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Enqueue** an instance in a queue (see
    /// [`QueueTicket`] and the queue protocol in the `queue` module): if
    /// no instance exists under `key` and no active instance holds the
    /// ticket's dedup id, writes together the instance queued
    /// (`Suspended` at `_queue`, its status message the queue's name,
    /// `created_at = updated_at = now_ms`), its `_input`, its ticket under
    /// `_queue` (with its pending key) and, in the queue's reserved instance
    /// (created if missing, `updated_at = now_ms`), the next ticket number,
    /// the pending entry and the dedup entry
    /// ([`EnqueueOutcome::Enqueued`]). An existing instance is answered
    /// [`EnqueueOutcome::Exists`], a held dedup id
    /// [`EnqueueOutcome::Duplicate`], without writing.
    Enqueue {
        /// Instance.
        key: InstanceKey,
        /// `_input` record.
        input: StepRecord,
        /// How it goes through its queue.
        ticket: QueueTicket,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Admit** pending instances of the queue whose reserved instance is
    /// `queue`: takes pending entries in key order (priority, then first
    /// come), at most `max`, while fewer than `limits.concurrency` hold a
    /// slot and the rate window has room; skips (leaving them pending)
    /// entries of workflows not in `workflows` (when given) and entries
    /// whose partition holds `limits.per_partition` slots. Each admitted
    /// instance — still queued, else its entry is dropped — is set
    /// `Running` (`updated_at = now_ms`), its pending entry removed, the
    /// free concurrency and partition slots it takes written (and named in
    /// its ticket, so its end frees exactly them), its admission time added
    /// to the rate window, and with
    /// `worker` it is acquired by that worker (epoch + 1), together; the
    /// queue's `updated_at` is set when anything was admitted. Answers
    /// [`AdmitOutcome`]: the admitted instances (with their epochs), the
    /// entries still pending, and when the rate window opens next if it is
    /// full.
    Admit {
        /// The queue's reserved instance (workflow `_queue`, id its name).
        queue: InstanceKey,
        /// The queue's limits.
        limits: QueueLimits,
        /// Only instances of these workflows (`None`: any).
        workflows: Option<Vec<String>>,
        /// The worker that runs what is admitted (a shared store).
        worker: Option<String>,
        /// At most this many admissions.
        max: u64,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Forget** chosen step results (an operator's repair), so they run
    /// again. Refused without writing if a key of `steps` is the engine's
    /// (starts with `_`) or the instance is a queue's reserved one
    /// ([`ForgetOutcome::Reserved`]), the instance is
    /// missing ([`ForgetOutcome::InstanceMissing`]) or `Running`
    /// ([`ForgetOutcome::Running`]: a run may be in flight; cancel it or
    /// wait until it is suspended or ended). Otherwise removes together
    /// each named record that exists, whatever its state, with its timer
    /// row (a suspended point with a deadline) and, for a child point
    /// ([`StepKind::Child`]), the parent's `_child:<key>` link (the rerun
    /// starts the child again, or adopts the child instance if it is still
    /// there); answers the keys that existed as
    /// [`ForgetOutcome::Forgotten`]. The instance's status and every other
    /// record are unchanged: the forgotten steps run again on its next run
    /// (`Engine::resume`, or a signal or timer that wakes it).
    Forget {
        /// Instance.
        key: InstanceKey,
        /// The step keys to forget.
        steps: Vec<String>,
        /// Clock reading (kept for the journal; the instance's
        /// `updated_at` is not changed).
        now_ms: u64,
    },
    /// **Fork** an instance to a new id of the same workflow (an operator's
    /// repair or experiment). Refused without writing if a key of `without`
    /// is the engine's or `from` is a queue's reserved instance
    /// ([`ForkOutcome::Reserved`]), `to` names another
    /// workflow ([`ForkOutcome::OtherWorkflow`]), `from` is missing
    /// ([`ForkOutcome::SourceMissing`]) or `to` exists
    /// ([`ForkOutcome::TargetExists`]). Otherwise writes together: `to`
    /// `Running` (`created_at = updated_at = now_ms`) and a copy of every
    /// record of `from` except the keys of `without` and the per-run and
    /// engine bookkeeping — `_owner` (the fork is nobody's yet), `_output`,
    /// `_parent` (a fork is no one's child), `_queue` (it runs outside the
    /// queue), the child links `_child:*` and child points still
    /// `Suspended` (the fork starts its own children, whose ids derive from
    /// its id) — with a timer row for each copied suspended record that has
    /// a deadline; `_input` and buffered signals are copied. Answers
    /// [`ForkOutcome::Forked`] with the user keys copied. `from` is not
    /// changed.
    Fork {
        /// The instance copied.
        from: InstanceKey,
        /// The new instance (same workflow).
        to: InstanceKey,
        /// Step keys not copied (they run again in the fork).
        without: Vec<String>,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Resume** an instance for an operator (the `memable resume`
    /// command), so that the application's engine, or any worker, runs it
    /// again as [`Engine::resume`](crate::Engine::resume) would. As
    /// [`Revive`](Self::Revive), and in the same transaction each dead
    /// letter (a [`StepKind::Step`] record in state
    /// [`Failed`](StepState::Failed)) becomes
    /// [`Retrying`](StepState::Retrying) with no attempts counted, its
    /// first start and last error kept: the next run attempts it again with
    /// a fresh retry budget; an [at-most-once](crate::StepBuilder::at_most_once)
    /// attempt of unknown outcome (`Retrying` with no error) becomes a
    /// retry with that attempt counted. A `Running` instance, and a queued one not
    /// admitted yet, are left as they are (a run may be in flight, for
    /// which its dead letters are final). Answers as `Revive`.
    Resume {
        /// Instance.
        key: InstanceKey,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Delete an ended instance** (retention): as [`Delete`](Self::Delete),
    /// but only if the instance is `Completed`, `Failed` or `Cancelled` and
    /// ended strictly before `ended_before` (`completed_at_ms <
    /// ended_before`), checked in the same transaction; otherwise writes
    /// nothing. So an instance resumed, or ended again, after a sweep listed
    /// it is never lost. Answers whether it was deleted.
    DeleteEnded {
        /// Instance.
        key: InstanceKey,
        /// Only an instance that ended before this time (ms).
        ended_before: u64,
    },
}

impl WriteOp {
    /// The store operation name, for error messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{transitions::WriteOp, InstanceKey};
    /// let op = WriteOp::Delete { key: InstanceKey::new("a", "1").unwrap() };
    /// assert_eq!(op.name(), "delete_instance");
    /// ```
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start { .. } => "start_instance",
            Self::Commit { .. } => "commit_step",
            Self::Suspend { .. } => "suspend_step",
            Self::Claim { .. } => "claim_step",
            Self::Finish { .. } => "finish_instance",
            Self::Revive { .. } => "revive_instance",
            Self::Cancel { .. } => "cancel_instance",
            Self::Delete { .. } => "delete_instance",
            Self::Wait { .. } => "wait_at",
            Self::Park { .. } => "park_instance",
            Self::Signal { .. } => "deliver_signal",
            Self::Fire { .. } => "fire_timer",
            Self::Acquire { .. } => "acquire_instance",
            Self::Release { .. } => "release_instance",
            Self::StartChild { .. } => "start_child",
            Self::Enqueue { .. } => "enqueue",
            Self::Admit { .. } => "admit",
            Self::Forget { .. } => "forget_steps",
            Self::Fork { .. } => "fork_instance",
            Self::Resume { .. } => "resume_instance",
            Self::DeleteEnded { .. } => "delete_ended",
            Self::Fenced { op, .. } => op.name(),
        }
    }

    /// The instance the op writes to (for a [`Fork`](Self::Fork), the
    /// new instance).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{transitions::WriteOp, InstanceKey};
    /// let key = InstanceKey::new("a", "1").unwrap();
    /// assert_eq!(WriteOp::Delete { key: key.clone() }.key(), &key);
    /// ```
    #[must_use]
    pub fn key(&self) -> &InstanceKey {
        match self {
            Self::Start { key, .. }
            | Self::Commit { key, .. }
            | Self::Suspend { key, .. }
            | Self::Claim { key, .. }
            | Self::Finish { key, .. }
            | Self::Revive { key, .. }
            | Self::Cancel { key, .. }
            | Self::Delete { key }
            | Self::Wait { key, .. }
            | Self::Park { key, .. }
            | Self::Signal { key, .. }
            | Self::Acquire { key, .. }
            | Self::Release { key }
            | Self::StartChild { parent: key, .. }
            | Self::Enqueue { key, .. }
            | Self::Admit { queue: key, .. }
            | Self::Forget { key, .. }
            | Self::Resume { key, .. }
            | Self::DeleteEnded { key, .. }
            | Self::Fork { to: key, .. } => key,
            Self::Fire { timer, .. } => &timer.instance,
            Self::Fenced { op, .. } => op.key(),
        }
    }

    /// The op itself, or for a [`Fenced`](Self::Fenced) op the write it
    /// carries (for tools that look at what is written, not how it is
    /// fenced).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{transitions::WriteOp, InstanceKey};
    /// let key = InstanceKey::new("a", "1").unwrap();
    /// let op = WriteOp::Fenced { epoch: 1, op: Box::new(WriteOp::Revive { key, now_ms: 0 }) };
    /// assert!(matches!(op.unfenced(), WriteOp::Revive { .. }));
    /// ```
    #[must_use]
    pub fn unfenced(&self) -> &WriteOp {
        match self {
            Self::Fenced { op, .. } => op.unfenced(),
            other => other,
        }
    }
}

/// The answer to one [`WriteOp`]: the variant of the same name.
///
/// # Examples
///
/// ```
/// use memable_core::{WriteOutcome, StartOutcome};
/// assert_eq!(WriteOutcome::Start(StartOutcome::Started).name(), "start");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Answer to [`WriteOp::Start`].
    Start(StartOutcome),
    /// Answer to [`WriteOp::Commit`].
    Commit(CommitOutcome),
    /// Answer to [`WriteOp::Suspend`].
    Suspend(SuspendOutcome),
    /// Answer to [`WriteOp::Claim`].
    Claim(ClaimOutcome),
    /// Answer to [`WriteOp::Finish`].
    Finish(FinishOutcome),
    /// Answer to [`WriteOp::Revive`].
    Revive(ReviveOutcome),
    /// Answer to [`WriteOp::Cancel`].
    Cancel(CancelOutcome),
    /// Answer to [`WriteOp::Delete`]: whether the instance existed.
    Delete(bool),
    /// Answer to [`WriteOp::Wait`].
    Wait(WaitOutcome),
    /// Answer to [`WriteOp::Park`].
    Park(ParkOutcome),
    /// Answer to [`WriteOp::Signal`].
    Signal(SignalOutcome),
    /// Answer to [`WriteOp::Fire`].
    Fire(FireOutcome),
    /// Answer to [`WriteOp::Acquire`].
    Acquire(AcquireOutcome),
    /// Answer to [`WriteOp::Release`]: whether the instance exists.
    Release(bool),
    /// Answer to [`WriteOp::StartChild`].
    StartChild(ChildStartOutcome),
    /// Answer to [`WriteOp::Enqueue`].
    Enqueue(EnqueueOutcome),
    /// Answer to [`WriteOp::Admit`].
    Admit(AdmitOutcome),
    /// Answer to [`WriteOp::Forget`].
    Forget(ForgetOutcome),
    /// Answer to [`WriteOp::Fork`].
    Fork(ForkOutcome),
    /// Answer to [`WriteOp::Resume`].
    Resume(ReviveOutcome),
    /// Answer to [`WriteOp::DeleteEnded`]: whether it was deleted.
    DeleteEnded(bool),
    /// Answer to a [`WriteOp::Fenced`] op whose epoch is not current:
    /// nothing was written. (A current one is answered by its op's own
    /// outcome.)
    Stale(StaleEpoch),
}

impl WriteOutcome {
    /// The variant's name in lowercase, for messages.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_core::WriteOutcome::Delete(true).name(), "delete");
    /// ```
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start(_) => "start",
            Self::Commit(_) => "commit",
            Self::Suspend(_) => "suspend",
            Self::Claim(_) => "claim",
            Self::Finish(_) => "finish",
            Self::Revive(_) => "revive",
            Self::Cancel(_) => "cancel",
            Self::Delete(_) => "delete",
            Self::Wait(_) => "wait",
            Self::Park(_) => "park",
            Self::Signal(_) => "signal",
            Self::Fire(_) => "fire",
            Self::Acquire(_) => "acquire",
            Self::Release(_) => "release",
            Self::StartChild(_) => "start_child",
            Self::Enqueue(_) => "enqueue",
            Self::Admit(_) => "admit",
            Self::Forget(_) => "forget",
            Self::Fork(_) => "fork",
            Self::Resume(_) => "resume",
            Self::DeleteEnded(_) => "delete_ended",
            Self::Stale(_) => "stale",
        }
    }
}

/// Applies one transition inside `txn`, following the rules documented on
/// each [`WriteOp`] variant. Reads happen before writes, so an op that
/// is refused writes nothing. The op is borrowed: a journaled writer keeps
/// the batch to append it after applying it.
#[allow(clippy::too_many_lines)] // one arm per op, each only unpacking it
pub fn apply(op: &WriteOp, txn: &mut impl Transaction) -> Result<WriteOutcome, EngineError> {
    Ok(match op {
        WriteOp::Start { key, input, now_ms } => {
            WriteOutcome::Start(start(txn, key, input, *now_ms)?)
        }
        WriteOp::Commit {
            key,
            step_key,
            record,
        } => WriteOutcome::Commit(commit(txn, key, step_key, record)?),
        WriteOp::Suspend {
            key,
            step_key,
            record,
            status,
            now_ms,
        } => WriteOutcome::Suspend(suspend(
            txn,
            key,
            step_key,
            record,
            status.as_ref(),
            *now_ms,
        )?),
        WriteOp::Claim {
            key,
            step_key,
            payload,
            now_ms,
        } => WriteOutcome::Claim(claim(txn, key, step_key, payload, *now_ms)?),
        WriteOp::Finish {
            key,
            finish,
            now_ms,
        } => WriteOutcome::Finish(finish_instance(txn, key, finish, *now_ms)?),
        WriteOp::Revive { key, now_ms } => WriteOutcome::Revive(revive(txn, key, *now_ms)?),
        WriteOp::Resume { key, now_ms } => WriteOutcome::Resume(resume(txn, key, *now_ms)?),
        WriteOp::Cancel { key, now_ms } => WriteOutcome::Cancel(cancel(txn, key, *now_ms)?),
        WriteOp::Delete { key } => WriteOutcome::Delete(delete(txn, key)?),
        WriteOp::DeleteEnded { key, ended_before } => {
            WriteOutcome::DeleteEnded(delete_ended(txn, key, *ended_before)?)
        }
        WriteOp::Wait {
            key,
            step_key,
            record,
            members,
            now_ms,
        } => WriteOutcome::Wait(wait(txn, key, step_key, record, members, *now_ms)?),
        WriteOp::Park {
            key,
            waiting,
            status,
            now_ms,
        } => WriteOutcome::Park(park(txn, key, waiting, status.as_ref(), *now_ms)?),
        WriteOp::Signal {
            key,
            step_key,
            payload,
            now_ms,
        } => WriteOutcome::Signal(signal(txn, key, step_key, payload, *now_ms)?),
        WriteOp::Fire {
            timer,
            payload,
            now_ms,
        } => WriteOutcome::Fire(fire(txn, timer, payload, *now_ms)?),
        WriteOp::Acquire {
            key,
            worker,
            now_ms: _,
        } => WriteOutcome::Acquire(acquire(txn, key, worker)?),
        WriteOp::Release { key } => WriteOutcome::Release(release(txn, key)?),
        WriteOp::StartChild {
            parent,
            step_key,
            child,
            input,
            point,
            now_ms,
        } => WriteOutcome::StartChild(start_child(
            txn,
            parent,
            step_key,
            child,
            input,
            point.as_ref(),
            *now_ms,
        )?),
        WriteOp::Enqueue {
            key,
            input,
            ticket,
            now_ms,
        } => WriteOutcome::Enqueue(queue::enqueue(txn, key, input, ticket, *now_ms)?),
        WriteOp::Admit {
            queue,
            limits,
            workflows,
            worker,
            max,
            now_ms,
        } => WriteOutcome::Admit(queue::admit(
            txn,
            queue.instance(),
            limits,
            workflows.as_deref(),
            worker.as_deref(),
            usize::try_from(*max).unwrap_or(usize::MAX),
            *now_ms,
        )?),
        WriteOp::Forget {
            key,
            steps,
            now_ms: _,
        } => WriteOutcome::Forget(repair::forget(txn, key, steps)?),
        WriteOp::Fork {
            from,
            to,
            without,
            now_ms,
        } => WriteOutcome::Fork(repair::fork(txn, from, to, without, *now_ms)?),
        WriteOp::Fenced { epoch, op } => fenced(txn, *epoch, op)?,
    })
}

fn release(txn: &mut impl Transaction, key: &InstanceKey) -> Result<bool, EngineError> {
    if txn.metadata(key)?.is_none() {
        return Ok(false);
    }
    if let Some(current) = txn.ownership(key)?
        && current.is_owned()
    {
        txn.put_ownership(
            key,
            &Ownership {
                worker: None,
                epoch: current.epoch,
            },
        )?;
    }
    Ok(true)
}

fn acquire(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    worker: &str,
) -> Result<AcquireOutcome, EngineError> {
    let Some(meta) = txn.metadata(key)? else {
        return Ok(AcquireOutcome::InstanceMissing);
    };
    if !acquirable(&meta.status) {
        return Ok(AcquireOutcome::Cancelled);
    }
    let current = txn.ownership(key)?;
    if let Some(Ownership {
        worker: Some(holder),
        ..
    }) = &current
        && holder != worker
        && txn.owner_is_live(holder)?
    {
        return Ok(AcquireOutcome::Held {
            worker: holder.clone(),
        });
    }
    let epoch = current.map_or(0, |o| o.epoch) + 1;
    txn.put_ownership(
        key,
        &Ownership {
            worker: Some(worker.to_owned()),
            epoch,
        },
    )?;
    Ok(AcquireOutcome::Acquired { epoch })
}

fn fenced(
    txn: &mut impl Transaction,
    epoch: u64,
    op: &WriteOp,
) -> Result<WriteOutcome, EngineError> {
    let key = op.key();
    if !matches!(
        op,
        WriteOp::Commit { .. }
            | WriteOp::Wait { .. }
            | WriteOp::Park { .. }
            | WriteOp::Finish { .. }
            | WriteOp::Revive { .. }
            | WriteOp::Suspend { .. }
            | WriteOp::Release { .. }
            | WriteOp::StartChild { .. }
    ) {
        return Err(crate::StorageError::new(
            crate::StorageErrorKind::Other,
            op.name(),
            "only a run's writes (commit, wait, park, finish, revive, suspend, release, start_child) can be fenced",
        )
        .into());
    }
    let current = txn.ownership(key)?;
    let owner = match current {
        Some(o) if o.epoch == epoch && o.is_owned() => o,
        other => {
            let current = match other {
                Some(o) => Some(o.epoch),
                None => txn.metadata(key)?.map(|_| 0),
            };
            return Ok(WriteOutcome::Stale(StaleEpoch { epoch, current }));
        }
    };
    let outcome = apply(op, txn)?;
    if matches!(
        outcome,
        WriteOutcome::Park(ParkOutcome::Parked) | WriteOutcome::Finish(FinishOutcome::Finished)
    ) {
        txn.put_ownership(
            key,
            &Ownership {
                worker: None,
                epoch: owner.epoch,
            },
        )?;
    }
    Ok(outcome)
}

fn start(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    input: &StepRecord,
    now_ms: u64,
) -> Result<StartOutcome, EngineError> {
    if let Some(existing) = txn.metadata(key)? {
        return Ok(StartOutcome::Exists(existing));
    }
    txn.put_metadata(key, &WorkflowMetadata::running(key, now_ms), None)?;
    txn.put_step(key, INPUT_KEY, input)?;
    Ok(StartOutcome::Started)
}

fn commit(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    step_key: &str,
    record: &StepRecord,
) -> Result<CommitOutcome, EngineError> {
    match txn.metadata(key)? {
        None => return Ok(CommitOutcome::InstanceMissing),
        Some(meta) if meta.status == MetadataStatus::Cancelled => {
            return Ok(CommitOutcome::Cancelled);
        }
        Some(_) => {}
    }
    if let Some(existing) = txn.step(key, step_key)?
        && existing.state.is_final()
    {
        return Ok(CommitOutcome::Kept(existing));
    }
    txn.put_step(key, step_key, record)?;
    Ok(CommitOutcome::Committed)
}

fn timer_of(key: &InstanceKey, step_key: &str, record: &StepRecord) -> Option<TimerEntry> {
    record.deadline_ms.map(|deadline_ms| TimerEntry {
        deadline_ms,
        instance: key.clone(),
        step_key: step_key.to_owned(),
    })
}

fn suspend(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    step_key: &str,
    record: &StepRecord,
    status: Option<&String>,
    now_ms: u64,
) -> Result<SuspendOutcome, EngineError> {
    let Some(meta) = txn.metadata(key)? else {
        return Ok(SuspendOutcome::NotActive(None));
    };
    if !matches!(
        meta.status,
        MetadataStatus::Running | MetadataStatus::Suspended { .. }
    ) {
        return Ok(SuspendOutcome::NotActive(Some(meta.status)));
    }
    let existing = txn.step(key, step_key)?;
    if let Some(existing) = existing.as_ref()
        && existing.state == StepState::Completed
    {
        return Ok(SuspendOutcome::AlreadyCompleted(existing.clone()));
    }
    // A re-suspension with another deadline replaces the old timer row.
    if let Some(old_timer) = existing
        .as_ref()
        .and_then(|old| timer_of(key, step_key, old))
    {
        txn.remove_timer(&old_timer)?;
    }
    txn.put_step(key, step_key, record)?;
    if let Some(timer) = timer_of(key, step_key, record) {
        txn.put_timer(&timer)?;
    }
    let updated = WorkflowMetadata {
        status: MetadataStatus::Suspended {
            key: step_key.to_owned(),
            status: status.cloned(),
        },
        updated_at_ms: now_ms,
        ..meta.clone()
    };
    txn.put_metadata(key, &updated, Some(&meta))?;
    Ok(SuspendOutcome::Suspended)
}

fn claim(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    step_key: &str,
    payload: &StepRecord,
    now_ms: u64,
) -> Result<ClaimOutcome, EngineError> {
    let Some(existing) = txn.step(key, step_key)? else {
        return Ok(ClaimOutcome::StepMissing);
    };
    if existing.state != StepState::Suspended {
        return Ok(ClaimOutcome::StepNotSuspended(existing));
    }
    let Some(meta) = txn.metadata(key)? else {
        return Ok(ClaimOutcome::StepMissing);
    };
    if !matches!(meta.status, MetadataStatus::Suspended { .. }) {
        return Ok(ClaimOutcome::InstanceNotSuspended(meta.status));
    }
    if let Some(timer) = timer_of(key, step_key, &existing) {
        txn.remove_timer(&timer)?;
    }
    txn.put_step(key, step_key, payload)?;
    let updated = WorkflowMetadata {
        status: MetadataStatus::Running,
        updated_at_ms: now_ms,
        ..meta.clone()
    };
    txn.put_metadata(key, &updated, Some(&meta))?;
    Ok(ClaimOutcome::Claimed)
}

fn finish_instance(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    finish: &Finish,
    now_ms: u64,
) -> Result<FinishOutcome, EngineError> {
    let Some(meta) = txn.metadata(key)? else {
        return Ok(FinishOutcome::NotRunning(None));
    };
    if meta.status != MetadataStatus::Running {
        return Ok(FinishOutcome::NotRunning(Some(meta.status)));
    }
    let status = match finish {
        Finish::Completed { status, output } => {
            txn.put_step(key, OUTPUT_KEY, output)?;
            MetadataStatus::Completed(status.clone())
        }
        Finish::Failed(message) => MetadataStatus::Failed(message.clone()),
    };
    let updated = WorkflowMetadata {
        status,
        updated_at_ms: now_ms,
        completed_at_ms: Some(now_ms),
        ..meta.clone()
    };
    txn.put_metadata(key, &updated, Some(&meta))?;
    let end = match finish {
        Finish::Completed { output, .. } => ChildEnd::Completed(output),
        Finish::Failed(message) => ChildEnd::Failed(message),
    };
    deliver_to_parent(txn, key, &end, now_ms)?;
    queue::leave(txn, key)?;
    Ok(FinishOutcome::Finished)
}

/// How a child ended, for its parent's point.
enum ChildEnd<'a> {
    Completed(&'a StepRecord),
    Failed(&'a str),
    Cancelled,
}

impl ChildEnd<'_> {
    /// The completed point record for this end.
    fn point(&self, waiting: &StepRecord) -> StepRecord {
        match self {
            Self::Completed(output) => StepRecord {
                kind: StepKind::Child,
                status: waiting.status.clone(),
                ..(*output).clone()
            },
            Self::Failed(message) => StepRecord {
                error: Some((*message).to_owned()),
                ..StepRecord::completed(
                    StepKind::Child,
                    waiting.type_tag.clone(),
                    CHILD_FAILED.to_vec(),
                    waiting.status.clone(),
                )
            },
            Self::Cancelled => StepRecord {
                error: Some("the child workflow was cancelled".to_owned()),
                ..StepRecord::completed(
                    StepKind::Child,
                    waiting.type_tag.clone(),
                    CHILD_CANCELLED.to_vec(),
                    waiting.status.clone(),
                )
            },
        }
    }
}

/// The end of an ended instance, if it has ended.
fn end_of(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    status: &MetadataStatus,
) -> Result<Option<StepRecord>, EngineError> {
    let waiting = StepRecord::suspended(StepKind::Child, "", None, None);
    Ok(match status {
        MetadataStatus::Completed(_) => txn
            .step(key, OUTPUT_KEY)?
            .map(|output| ChildEnd::Completed(&output).point(&waiting)),
        MetadataStatus::Failed(message) => Some(ChildEnd::Failed(message).point(&waiting)),
        MetadataStatus::Cancelled => Some(ChildEnd::Cancelled.point(&waiting)),
        MetadataStatus::Running | MetadataStatus::Suspended { .. } => None,
    })
}

/// An awaited child's end completes its parent's point and wakes the
/// parent (see [`ChildLink`]); anything else is left alone.
fn deliver_to_parent(
    txn: &mut impl Transaction,
    child: &InstanceKey,
    end: &ChildEnd<'_>,
    now_ms: u64,
) -> Result<(), EngineError> {
    let Some(record) = txn.step(child, PARENT_KEY)? else {
        return Ok(());
    };
    let link = ParentLink::from_record(&record)?;
    if link.detached {
        return Ok(());
    }
    let Ok(parent_meta) = active(txn, &link.parent)? else {
        return Ok(());
    };
    let Some(waiting) = txn
        .step(&link.parent, &link.step_key)?
        .filter(|r| r.state == StepState::Suspended && r.kind == StepKind::Child)
    else {
        return Ok(());
    };
    let point = end
        .point(&waiting)
        .with_times(waiting.started_at_ms, Some(now_ms));
    txn.put_step(&link.parent, &link.step_key, &point)?;
    wake(txn, &link.parent, &parent_meta, now_ms)
}

#[allow(clippy::too_many_arguments)]
fn start_child(
    txn: &mut impl Transaction,
    parent: &InstanceKey,
    step_key: &str,
    child: &InstanceKey,
    input: &StepRecord,
    point: Option<&StepRecord>,
    now_ms: u64,
) -> Result<ChildStartOutcome, EngineError> {
    if let Err(status) = active(txn, parent)? {
        return Ok(ChildStartOutcome::NotActive(status));
    }
    let link_key = child_link_key(step_key);
    if txn.step(parent, &link_key)?.is_some() {
        let point = txn.step(parent, step_key)?;
        return Ok(ChildStartOutcome::Exists { point });
    }
    if point.is_some()
        && let Some(existing) = txn.step(parent, step_key)?
    {
        return Ok(ChildStartOutcome::KeyInUse(existing.kind));
    }
    let detached = point.is_none();
    let existing = txn.metadata(child)?;
    if existing.is_some()
        && txn.step(child, INPUT_KEY)?.is_some_and(|stored| {
            (&stored.type_tag, &stored.value) != (&input.type_tag, &input.value)
        })
    {
        return Ok(ChildStartOutcome::InputConflict);
    }
    txn.put_step(
        parent,
        &link_key,
        &ChildLink {
            child: child.clone(),
            detached,
        }
        .to_record(),
    )?;
    let parent_link = ParentLink {
        parent: parent.clone(),
        step_key: step_key.to_owned(),
        detached,
    }
    .to_record();
    let Some(existing) = existing else {
        if let Some(point) = point {
            txn.put_step(
                parent,
                step_key,
                &point.clone().with_times(Some(now_ms), None),
            )?;
        }
        txn.put_metadata(child, &WorkflowMetadata::running(child, now_ms), None)?;
        txn.put_step(child, INPUT_KEY, input)?;
        txn.put_step(child, PARENT_KEY, &parent_link)?;
        return Ok(ChildStartOutcome::Started);
    };
    // Adopt the instance already under the child's id.
    txn.put_step(child, PARENT_KEY, &parent_link)?;
    let Some(point) = point else {
        return Ok(ChildStartOutcome::Exists { point: None });
    };
    let written = match end_of(txn, child, &existing.status)? {
        Some(ended) => StepRecord {
            type_tag: if ended.error.is_some() {
                point.type_tag.clone()
            } else {
                ended.type_tag
            },
            status: point.status.clone(),
            ..ended
        }
        .with_times(Some(now_ms), Some(now_ms)),
        None => point.clone().with_times(Some(now_ms), None),
    };
    txn.put_step(parent, step_key, &written)?;
    Ok(ChildStartOutcome::Exists {
        point: Some(written),
    })
}

fn revive(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    now_ms: u64,
) -> Result<ReviveOutcome, EngineError> {
    let Some(meta) = txn.metadata(key)? else {
        return Ok(ReviveOutcome::InstanceMissing);
    };
    if queue::is_queued(&meta.status) {
        // Not admitted yet: it runs when its queue admits it.
        return Ok(ReviveOutcome::Revived(meta.status));
    }
    match meta.status {
        MetadataStatus::Cancelled => Ok(ReviveOutcome::Cancelled),
        MetadataStatus::Running => Ok(ReviveOutcome::Revived(meta.status)),
        MetadataStatus::Suspended { .. }
        | MetadataStatus::Completed(_)
        | MetadataStatus::Failed(_) => {
            let updated = WorkflowMetadata {
                status: MetadataStatus::Running,
                updated_at_ms: now_ms,
                completed_at_ms: None,
                ..meta.clone()
            };
            txn.put_metadata(key, &updated, Some(&meta))?;
            Ok(ReviveOutcome::Revived(meta.status))
        }
    }
}

/// The error a resumed at-most-once attempt of unknown outcome records.
const AMBIGUOUS_RESUMED: &str =
    "an attempt of unknown outcome (at most once) was interrupted; resumed by an operator";

fn resume(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    now_ms: u64,
) -> Result<ReviveOutcome, EngineError> {
    let Some(meta) = txn.metadata(key)? else {
        return Ok(ReviveOutcome::InstanceMissing);
    };
    if queue::is_queued(&meta.status) || meta.status == MetadataStatus::Running {
        return Ok(ReviveOutcome::Revived(meta.status));
    }
    let outcome = revive(txn, key, now_ms)?;
    if let ReviveOutcome::Revived(_) = outcome {
        for (step_key, record) in txn.steps(key)? {
            if record.kind != StepKind::Step {
                continue;
            }
            let retry = match record.state {
                StepState::Failed => StepRecord {
                    state: StepState::Retrying,
                    attempts: 0,
                    completed_at_ms: None,
                    ..record
                },
                // An at-most-once attempt of unknown outcome: the operator
                // decided to retry it (the interrupted attempt counts).
                StepState::Retrying if record.error.is_none() => StepRecord {
                    attempts: record.attempts.saturating_add(1),
                    error: Some(AMBIGUOUS_RESUMED.to_owned()),
                    ..record
                },
                _ => continue,
            };
            txn.put_step(key, &step_key, &retry)?;
        }
    }
    Ok(outcome)
}

fn remove_timers(txn: &mut impl Transaction, key: &InstanceKey) -> Result<(), EngineError> {
    for (step_key, record) in txn.steps(key)? {
        if record.state == StepState::Suspended
            && let Some(timer) = timer_of(key, &step_key, &record)
        {
            txn.remove_timer(&timer)?;
        }
    }
    Ok(())
}

fn cancel(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    now_ms: u64,
) -> Result<CancelOutcome, EngineError> {
    let Some(meta) = txn.metadata(key)? else {
        return Ok(CancelOutcome::NotActive(None));
    };
    if meta.status.is_terminal() {
        return Ok(CancelOutcome::NotActive(Some(meta.status)));
    }
    // The instance, then every child it awaits, and theirs: a worklist, so
    // a deep tree is no deep recursion. A parent is cancelled before its
    // children, so they find it ended and leave its points alone.
    let mut pending = vec![(key.clone(), meta)];
    while let Some((key, meta)) = pending.pop() {
        let steps = txn.steps(&key)?;
        for (step_key, record) in &steps {
            if record.state == StepState::Suspended
                && let Some(timer) = timer_of(&key, step_key, record)
            {
                txn.remove_timer(&timer)?;
            }
        }
        let updated = WorkflowMetadata {
            status: MetadataStatus::Cancelled,
            updated_at_ms: now_ms,
            completed_at_ms: Some(now_ms),
            ..meta.clone()
        };
        txn.put_metadata(&key, &updated, Some(&meta))?;
        deliver_to_parent(txn, &key, &ChildEnd::Cancelled, now_ms)?;
        queue::leave(txn, &key)?;
        for (step_key, record) in &steps {
            if child_step_of(step_key).is_none() {
                continue;
            }
            let link = ChildLink::from_record(record)?;
            if link.detached {
                continue;
            }
            if let Ok(child_meta) = active(txn, &link.child)? {
                pending.push((link.child, child_meta));
            }
        }
    }
    Ok(CancelOutcome::Cancelled)
}

fn delete(txn: &mut impl Transaction, key: &InstanceKey) -> Result<bool, EngineError> {
    let Some(meta) = txn.metadata(key)? else {
        return Ok(false);
    };
    remove_timers(txn, key)?;
    queue::leave(txn, key)?;
    txn.remove_instance(key, &meta)?;
    Ok(true)
}

fn delete_ended(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    ended_before: u64,
) -> Result<bool, EngineError> {
    match txn.metadata(key)? {
        Some(meta)
            if meta.status.is_terminal()
                && meta.completed_at_ms.is_some_and(|end| end < ended_before) =>
        {
            delete(txn, key)
        }
        _ => Ok(false),
    }
}

/// The instance's metadata if it exists and is not terminal, else its
/// status (`None`: missing).
fn active(
    txn: &mut impl Transaction,
    key: &InstanceKey,
) -> Result<Result<WorkflowMetadata, Option<MetadataStatus>>, EngineError> {
    Ok(match txn.metadata(key)? {
        None => Err(None),
        Some(meta) if meta.status.is_terminal() => Err(Some(meta.status)),
        Some(meta) => Ok(meta),
    })
}

/// Sets a `Suspended` instance `Running` (a point of it was resolved).
fn wake(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    meta: &WorkflowMetadata,
    now_ms: u64,
) -> Result<(), EngineError> {
    if matches!(meta.status, MetadataStatus::Suspended { .. }) {
        let updated = WorkflowMetadata {
            status: MetadataStatus::Running,
            updated_at_ms: now_ms,
            ..meta.clone()
        };
        txn.put_metadata(key, &updated, Some(meta))?;
    }
    Ok(())
}

/// A completed group record naming the member that won.
fn group_won_by(member: &str, status: Option<String>) -> StepRecord {
    StepRecord::completed(StepKind::Select, "", member.as_bytes().to_vec(), status)
}

/// The group key a member record points at.
fn group_of(member: &StepRecord) -> Option<String> {
    String::from_utf8(member.value.clone()).ok()
}

/// A resolved wait: the record, and for a group won by a member, the
/// member's key and record.
fn resolution(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    record: StepRecord,
) -> Result<WaitOutcome, EngineError> {
    let winner = if record.kind == StepKind::Select {
        match std::str::from_utf8(&record.value) {
            Ok(member) => txn.step(key, member)?.map(|won| (member.to_owned(), won)),
            Err(_) => None,
        }
    } else {
        None
    };
    Ok(WaitOutcome::Resolved { record, winner })
}

fn wait(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    step_key: &str,
    record: &StepRecord,
    members: &[(String, StepRecord)],
    now_ms: u64,
) -> Result<WaitOutcome, EngineError> {
    if let Err(status) = active(txn, key)? {
        return Ok(WaitOutcome::NotActive(status));
    }
    let existing = txn.step(key, step_key)?;
    if let Some(done) = existing.as_ref()
        && done.state == StepState::Completed
    {
        return resolution(txn, key, done.clone());
    }
    // Waiting since the first run that reached the point.
    let since = existing
        .as_ref()
        .filter(|old| old.state == StepState::Suspended)
        .and_then(|old| old.started_at_ms)
        .unwrap_or(now_ms);
    let waiting = |record: &StepRecord| record.clone().with_times(Some(since), None);
    // A signal that arrived before the workflow got here.
    // A timer is resolved by its deadline only: a signal sent to its key
    // before it was reached stays buffered.
    let candidates: Vec<(&str, &str)> = if matches!(record.kind, StepKind::Timer | StepKind::Child)
    {
        Vec::new()
    } else if members.is_empty() {
        vec![(step_key, record.type_tag.as_str())]
    } else {
        members
            .iter()
            .map(|(member, rec)| (member.as_str(), rec.type_tag.as_str()))
            .collect()
    };
    for (point, type_tag) in candidates {
        let buffered_key = buffered_signal_key(point);
        let Some(buffered) = txn.step(key, &buffered_key)? else {
            continue;
        };
        if buffered.type_tag != type_tag {
            tracing::warn!(instance = %key, point, expected = type_tag, found = %buffered.type_tag, "a buffered signal has another type than its point; it stays buffered");
            continue;
        }
        let payload = StepRecord {
            kind: StepKind::Suspend,
            status: record.status.clone(),
            ..buffered
        }
        .with_times(Some(since), Some(now_ms));
        txn.remove_step(key, &buffered_key)?;
        if let Some(old_timer) = existing
            .as_ref()
            .and_then(|old| timer_of(key, step_key, old))
        {
            txn.remove_timer(&old_timer)?;
        }
        txn.put_step(key, point, &payload)?;
        if members.is_empty() {
            return Ok(WaitOutcome::Resolved {
                record: payload,
                winner: None,
            });
        }
        // The other members are written too, so a later signal to one of
        // them finds the group won (superseded) instead of being buffered.
        for (member, member_record) in members {
            if member != point
                && txn
                    .step(key, member)?
                    .is_none_or(|r| r.state != StepState::Completed)
            {
                txn.put_step(key, member, &waiting(member_record))?;
            }
        }
        let group =
            group_won_by(point, record.status.clone()).with_times(Some(since), Some(now_ms));
        txn.put_step(key, step_key, &group)?;
        return Ok(WaitOutcome::Resolved {
            record: group,
            winner: Some((point.to_owned(), payload)),
        });
    }
    if let Some(old_timer) = existing
        .as_ref()
        .and_then(|old| timer_of(key, step_key, old))
        && Some(old_timer.deadline_ms) != record.deadline_ms
    {
        txn.remove_timer(&old_timer)?;
    }
    txn.put_step(key, step_key, &waiting(record))?;
    if let Some(timer) = timer_of(key, step_key, record) {
        txn.put_timer(&timer)?;
    }
    for (member, member_record) in members {
        let kept = txn
            .step(key, member)?
            .is_some_and(|r| r.state == StepState::Completed);
        if !kept {
            txn.put_step(key, member, &waiting(member_record))?;
        }
    }
    Ok(WaitOutcome::Waiting)
}

fn park(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    waiting: &[String],
    status: Option<&String>,
    now_ms: u64,
) -> Result<ParkOutcome, EngineError> {
    let meta = match active(txn, key)? {
        Ok(meta) => meta,
        Err(status) => return Ok(ParkOutcome::NotActive(status)),
    };
    let Some(first) = waiting.first() else {
        return Ok(ParkOutcome::Woken);
    };
    for point in waiting {
        if txn
            .step(key, point)?
            .is_none_or(|r| r.state == StepState::Completed)
        {
            return Ok(ParkOutcome::Woken);
        }
    }
    let updated = WorkflowMetadata {
        status: MetadataStatus::Suspended {
            key: first.clone(),
            status: status.cloned(),
        },
        updated_at_ms: now_ms,
        ..meta.clone()
    };
    txn.put_metadata(key, &updated, Some(&meta))?;
    Ok(ParkOutcome::Parked)
}

fn signal(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    step_key: &str,
    payload: &StepRecord,
    now_ms: u64,
) -> Result<SignalOutcome, EngineError> {
    let Some(meta) = txn.metadata(key)? else {
        return Ok(SignalOutcome::InstanceMissing);
    };
    let existing = txn.step(key, step_key)?;
    let resolved_point = |r: &StepRecord| {
        r.state == StepState::Completed
            && matches!(
                r.kind,
                StepKind::Suspend | StepKind::Member | StepKind::Timer
            )
    };
    if meta.status.is_terminal() {
        // A late duplicate of a delivered signal, or a signal to a point of
        // a group another point won, is still "superseded".
        let superseded = match &existing {
            Some(r) if resolved_point(r) => true,
            Some(r) if r.kind == StepKind::Member => group_of(r)
                .map(|group| txn.step(key, &group))
                .transpose()?
                .flatten()
                .is_some_and(|g| g.state == StepState::Completed),
            _ => false,
        };
        return Ok(if superseded {
            SignalOutcome::Superseded
        } else {
            SignalOutcome::Finished(meta.status)
        });
    }
    let Some(existing) = existing else {
        let buffered_key = buffered_signal_key(step_key);
        if txn.step(key, &buffered_key)?.is_some() {
            return Ok(SignalOutcome::Superseded);
        }
        let buffered = StepRecord {
            kind: StepKind::Engine,
            ..payload.clone()
        }
        .with_times(Some(now_ms), Some(now_ms));
        txn.put_step(key, &buffered_key, &buffered)?;
        return Ok(SignalOutcome::Buffered);
    };
    if resolved_point(&existing) {
        return Ok(SignalOutcome::Superseded);
    }
    match (existing.state, existing.kind) {
        (StepState::Suspended, StepKind::Suspend | StepKind::Member) => {}
        (_, kind) => return Ok(SignalOutcome::NotAPoint(kind)),
    }
    if existing.type_tag != payload.type_tag {
        return Ok(SignalOutcome::WrongType(existing.type_tag));
    }
    let delivered = StepRecord {
        kind: StepKind::Suspend,
        status: existing.status.clone(),
        ..payload.clone()
    }
    .with_times(existing.started_at_ms, Some(now_ms));
    if existing.kind == StepKind::Member {
        let Some(group_key) = group_of(&existing) else {
            return Ok(SignalOutcome::NotAPoint(StepKind::Member));
        };
        let Some(group) = txn
            .step(key, &group_key)?
            .filter(|g| g.state == StepState::Suspended)
        else {
            return Ok(SignalOutcome::Superseded);
        };
        if let Some(timer) = timer_of(key, &group_key, &group) {
            txn.remove_timer(&timer)?;
        }
        txn.put_step(
            key,
            &group_key,
            &group_won_by(step_key, group.status.clone())
                .with_times(group.started_at_ms, Some(now_ms)),
        )?;
    } else if let Some(timer) = timer_of(key, step_key, &existing) {
        txn.remove_timer(&timer)?;
    }
    txn.put_step(key, step_key, &delivered)?;
    wake(txn, key, &meta, now_ms)?;
    Ok(SignalOutcome::Delivered)
}

fn fire(
    txn: &mut impl Transaction,
    timer: &TimerEntry,
    payload: &StepRecord,
    now_ms: u64,
) -> Result<FireOutcome, EngineError> {
    let key = &timer.instance;
    txn.remove_timer(timer)?;
    let Ok(meta) = active(txn, key)? else {
        return Ok(FireOutcome::Stale);
    };
    let waiting = txn
        .step(key, &timer.step_key)?
        .filter(|r| r.state == StepState::Suspended && r.deadline_ms == Some(timer.deadline_ms));
    let Some(waiting) = waiting else {
        return Ok(FireOutcome::Stale);
    };
    let fired = StepRecord {
        kind: StepKind::Timer,
        status: waiting.status.clone(),
        ..payload.clone()
    }
    .with_times(waiting.started_at_ms, Some(now_ms));
    txn.put_step(key, &timer.step_key, &fired)?;
    wake(txn, key, &meta, now_ms)?;
    Ok(FireOutcome::Fired)
}
