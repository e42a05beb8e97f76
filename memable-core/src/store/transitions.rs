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

use crate::key::{INPUT_KEY, OUTPUT_KEY};
use crate::{
    CancelOutcome, ClaimOutcome, CommitOutcome, EngineError, Finish, FinishOutcome, InstanceKey,
    MetadataStatus, ReviveOutcome, StartOutcome, StepRecord, StepState, SuspendOutcome, TimerEntry,
    WorkflowMetadata,
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
    /// instance does not exist. Instance metadata is not touched.
    Commit {
        /// Instance.
        key: InstanceKey,
        /// Step key.
        step_key: String,
        /// Record to write.
        record: StepRecord,
    },
    /// **Suspend.** If the instance is `Running` or `Suspended` and the step
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
    /// **Claim** (signal delivery / timer firing), a compare-and-set.
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
    /// `updated_at = completed_at = now_ms`, together. Otherwise writes
    /// nothing and answers [`FinishOutcome::NotRunning`].
    Finish {
        /// Instance.
        key: InstanceKey,
        /// How it finishes.
        finish: Finish,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Revive** (before `Engine::resume` runs an instance again).
    /// `Completed` or `Failed` → `Running` (clearing `completed_at`, setting
    /// `updated_at = now_ms`; `_output` is kept until the next finish);
    /// `Running` and `Suspended` are left as they are. Answers the status
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
    /// timer row of the instance, together; step records are kept. A missing
    /// or terminal instance is answered [`CancelOutcome::NotActive`].
    Cancel {
        /// Instance.
        key: InstanceKey,
        /// Clock reading.
        now_ms: u64,
    },
    /// **Delete** (retention): removes the instance's metadata, every step
    /// record (including `_input` and `_output`) and every timer row,
    /// together. Answers whether the instance existed.
    Delete {
        /// Instance.
        key: InstanceKey,
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
        }
    }

    /// The instance the op writes to.
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
            | Self::Delete { key } => key,
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
        }
    }
}

/// Applies one transition inside `txn`, following the rules documented on
/// each [`WriteOp`] variant. Reads happen before writes, so an op that
/// is refused writes nothing. The op is borrowed: a journaled writer keeps
/// the batch to append it after applying it.
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
        WriteOp::Cancel { key, now_ms } => WriteOutcome::Cancel(cancel(txn, key, *now_ms)?),
        WriteOp::Delete { key } => WriteOutcome::Delete(delete(txn, key)?),
    })
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
    if txn.metadata(key)?.is_none() {
        return Ok(CommitOutcome::InstanceMissing);
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
    Ok(FinishOutcome::Finished)
}

fn revive(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    now_ms: u64,
) -> Result<ReviveOutcome, EngineError> {
    let Some(meta) = txn.metadata(key)? else {
        return Ok(ReviveOutcome::InstanceMissing);
    };
    match meta.status {
        MetadataStatus::Cancelled => Ok(ReviveOutcome::Cancelled),
        MetadataStatus::Running | MetadataStatus::Suspended { .. } => {
            Ok(ReviveOutcome::Revived(meta.status))
        }
        MetadataStatus::Completed(_) | MetadataStatus::Failed(_) => {
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
    remove_timers(txn, key)?;
    let updated = WorkflowMetadata {
        status: MetadataStatus::Cancelled,
        updated_at_ms: now_ms,
        completed_at_ms: Some(now_ms),
        ..meta.clone()
    };
    txn.put_metadata(key, &updated, Some(&meta))?;
    Ok(CancelOutcome::Cancelled)
}

fn delete(txn: &mut impl Transaction, key: &InstanceKey) -> Result<bool, EngineError> {
    let Some(meta) = txn.metadata(key)? else {
        return Ok(false);
    };
    remove_timers(txn, key)?;
    txn.remove_instance(key, &meta)?;
    Ok(true)
}
