//! The repair transitions an operator uses on stored instances:
//! [`Forget`](crate::WriteOp::Forget) (drop chosen step results so they run
//! again) and [`Fork`](crate::WriteOp::Fork) (copy an instance to a new id
//! without chosen steps), with their outcomes and rules.
//!
//! # The protocol
//!
//! Both are single transitions, so a crash leaves all of one or none of it.
//!
//! - **Forget** never touches a `Running` instance (a run may be in flight
//!   and would commit the forgotten key again, or replay from a snapshot
//!   that still holds it): the operator cancels it, or waits until it is
//!   suspended or ended. The instance's status is not changed; the
//!   forgotten steps run again on its next run (`Engine::resume`, a signal
//!   or timer that wakes it).
//! - **Fork** writes a new instance `Running`, as a start does: an engine
//!   that has the workflow runs it like an instance recovered after a
//!   crash, replaying what was copied and running the rest.
//!
//! Keys starting with `_` are the engine's: neither op accepts one in its
//! list (answered as `Reserved`, nothing written).

use super::family::child_step_of;
use super::ownership::OWNER_KEY;
use super::queue::QUEUE_WORKFLOW;
use super::transitions::Transaction;
use crate::key::{OUTPUT_KEY, PARENT_KEY, QUEUE_KEY};
use crate::{
    EngineError, InstanceKey, MetadataStatus, StepKind, StepState, TimerEntry, WorkflowMetadata,
};

/// Outcome of [`StepStoreExt::forget_steps`](crate::StepStoreExt::forget_steps).
///
/// # Examples
///
/// ```
/// use memable_core::ForgetOutcome;
/// assert_ne!(ForgetOutcome::InstanceMissing, ForgetOutcome::Running);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForgetOutcome {
    /// The named steps that had a record, in the order given (each once):
    /// those records and their timer rows are gone.
    Forgotten(Vec<String>),
    /// No such instance; nothing was written.
    InstanceMissing,
    /// The instance is `Running` (a run may be in flight); nothing was
    /// written.
    Running,
    /// The key is the engine's (it starts with `_`), or the instance is a
    /// queue's reserved one (workflow `_queue`); nothing was written.
    Reserved(String),
}

/// Outcome of [`StepStoreExt::fork_instance`](crate::StepStoreExt::fork_instance).
///
/// # Examples
///
/// ```
/// use memable_core::ForkOutcome;
/// assert_ne!(ForkOutcome::SourceMissing, ForkOutcome::OtherWorkflow);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForkOutcome {
    /// The fork exists, `Running`; the keys of the step records copied
    /// (user steps and points, sorted; engine records such as `_input` are
    /// copied too but not listed).
    Forked(Vec<String>),
    /// No instance `from`; nothing was written.
    SourceMissing,
    /// An instance exists under `to` (its metadata is returned); nothing
    /// was written.
    TargetExists(WorkflowMetadata),
    /// `to` names another workflow than `from`; nothing was written.
    OtherWorkflow,
    /// A key of `without` is the engine's (it starts with `_`), or `from`
    /// is a queue's reserved instance (workflow `_queue`); nothing was
    /// written.
    Reserved(String),
}

/// The rule of [`WriteOp::Forget`](crate::WriteOp::Forget).
pub(crate) fn forget(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    steps: &[String],
) -> Result<ForgetOutcome, EngineError> {
    if let Some(reserved) = steps.iter().find(|s| s.starts_with('_')) {
        return Ok(ForgetOutcome::Reserved(reserved.clone()));
    }
    if key.workflow() == QUEUE_WORKFLOW {
        return Ok(ForgetOutcome::Reserved(QUEUE_WORKFLOW.to_owned()));
    }
    let Some(meta) = txn.metadata(key)? else {
        return Ok(ForgetOutcome::InstanceMissing);
    };
    if meta.status == MetadataStatus::Running {
        return Ok(ForgetOutcome::Running);
    }
    let mut forgotten: Vec<String> = Vec::new();
    for step_key in steps {
        if forgotten.contains(step_key) {
            continue;
        }
        let Some(record) = txn.step(key, step_key)? else {
            continue;
        };
        if record.state == StepState::Suspended
            && let Some(deadline_ms) = record.deadline_ms
        {
            txn.remove_timer(&TimerEntry {
                deadline_ms,
                instance: key.clone(),
                step_key: step_key.clone(),
            })?;
        }
        if record.kind == StepKind::Child {
            // The link goes with its point: the rerun starts (or adopts)
            // the child again instead of finding a point that is gone.
            txn.remove_step(key, &super::child_link_key(step_key))?;
        }
        txn.remove_step(key, step_key)?;
        forgotten.push(step_key.clone());
    }
    Ok(ForgetOutcome::Forgotten(forgotten))
}

/// Whether a record of the source is left out of a fork: the run's and
/// the engine's bookkeeping (ownership, output, parent link, queue ticket,
/// child links) and children still awaited (the fork starts its own).
fn left_out_of_fork(step_key: &str, kind: StepKind, state: StepState) -> bool {
    matches!(step_key, OWNER_KEY | OUTPUT_KEY | PARENT_KEY | QUEUE_KEY)
        || child_step_of(step_key).is_some()
        || (kind == StepKind::Child && state == StepState::Suspended)
}

/// The rule of [`WriteOp::Fork`](crate::WriteOp::Fork).
pub(crate) fn fork(
    txn: &mut impl Transaction,
    from: &InstanceKey,
    to: &InstanceKey,
    without: &[String],
    now_ms: u64,
) -> Result<ForkOutcome, EngineError> {
    if let Some(reserved) = without.iter().find(|s| s.starts_with('_')) {
        return Ok(ForkOutcome::Reserved(reserved.clone()));
    }
    if from.workflow() == QUEUE_WORKFLOW {
        return Ok(ForkOutcome::Reserved(QUEUE_WORKFLOW.to_owned()));
    }
    if from.workflow() != to.workflow() {
        return Ok(ForkOutcome::OtherWorkflow);
    }
    if txn.metadata(from)?.is_none() {
        return Ok(ForkOutcome::SourceMissing);
    }
    if let Some(existing) = txn.metadata(to)? {
        return Ok(ForkOutcome::TargetExists(existing));
    }
    let records = txn.steps(from)?;
    txn.put_metadata(to, &WorkflowMetadata::running(to, now_ms), None)?;
    let mut copied = Vec::new();
    for (step_key, record) in records {
        if without.contains(&step_key) || left_out_of_fork(&step_key, record.kind, record.state) {
            continue;
        }
        if record.state == StepState::Suspended
            && let Some(deadline_ms) = record.deadline_ms
        {
            txn.put_timer(&TimerEntry {
                deadline_ms,
                instance: to.clone(),
                step_key: step_key.clone(),
            })?;
        }
        txn.put_step(to, &step_key, &record)?;
        if !step_key.starts_with('_') {
            copied.push(step_key);
        }
    }
    copied.sort();
    Ok(ForkOutcome::Forked(copied))
}
