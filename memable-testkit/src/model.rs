//! A plain reference model of the storage contract, written from the
//! documented contracts of `StepStore` (not from `memable_core::transitions`, which
//! is the logic under test), and the operations the model test applies.

use std::collections::{BTreeMap, BTreeSet};

use memable_core::{
    CancelOutcome, ClaimOutcome, CommitOutcome, Finish, FinishOutcome, InstanceFilter, InstanceKey,
    InstanceSnapshot, MetadataStatus, ReviveOutcome, StartOutcome, StepRecord, StepState,
    SuspendOutcome, TimerEntry, WorkflowMetadata,
};

/// One operation of a model sequence.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Start {
        key: InstanceKey,
        input: StepRecord,
        now: u64,
    },
    Commit {
        key: InstanceKey,
        step: String,
        record: StepRecord,
    },
    Suspend {
        key: InstanceKey,
        step: String,
        record: StepRecord,
        status: Option<String>,
        now: u64,
    },
    Claim {
        key: InstanceKey,
        step: String,
        payload: StepRecord,
        now: u64,
    },
    Finish {
        key: InstanceKey,
        finish: Finish,
        now: u64,
    },
    Revive {
        key: InstanceKey,
        now: u64,
    },
    Cancel {
        key: InstanceKey,
        now: u64,
    },
    Delete {
        key: InstanceKey,
    },
    Reopen,
    Due {
        now: u64,
        limit: usize,
    },
    List(InstanceFilter),
    GetStep {
        key: InstanceKey,
        step: String,
    },
}

/// What an operation answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Start(StartOutcome),
    Commit(CommitOutcome),
    Suspend(SuspendOutcome),
    Claim(ClaimOutcome),
    Finish(FinishOutcome),
    Revive(ReviveOutcome),
    Cancel(CancelOutcome),
    Delete(bool),
    Due(Vec<TimerEntry>),
    List(Vec<WorkflowMetadata>),
    Step(Option<StepRecord>),
    Unit,
}

#[derive(Clone, Debug)]
struct Instance {
    meta: WorkflowMetadata,
    steps: BTreeMap<String, StepRecord>,
}

/// The reference model: instances with their steps, and the timer rows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Model {
    instances: BTreeMap<InstanceKey, Instance>,
    timers: BTreeSet<TimerEntry>,
}

fn timer_row(key: &InstanceKey, step: &str, deadline_ms: u64) -> TimerEntry {
    TimerEntry {
        deadline_ms,
        instance: key.clone(),
        step_key: step.to_owned(),
    }
}

fn filter_matches(filter: &InstanceFilter, key: &InstanceKey, meta: &WorkflowMetadata) -> bool {
    if filter
        .workflow
        .as_deref()
        .is_some_and(|w| w != key.workflow())
    {
        return false;
    }
    if filter.status.is_some_and(|s| s != meta.status.kind()) {
        return false;
    }
    filter.after.as_ref().is_none_or(|after| key > after)
}

impl Model {
    /// Applies `op` following the documented contracts.
    pub(crate) fn apply(&mut self, op: &Op) -> Outcome {
        match op.clone() {
            Op::Start { key, input, now } => Outcome::Start(self.start(key, input, now)),
            Op::Commit { key, step, record } => Outcome::Commit(self.commit(&key, step, record)),
            Op::Suspend {
                key,
                step,
                record,
                status,
                now,
            } => Outcome::Suspend(self.suspend(&key, step, record, status, now)),
            Op::Claim {
                key,
                step,
                payload,
                now,
            } => Outcome::Claim(self.claim(&key, &step, payload, now)),
            Op::Finish { key, finish, now } => Outcome::Finish(self.finish(&key, finish, now)),
            Op::Revive { key, now } => Outcome::Revive(self.revive(&key, now)),
            Op::Cancel { key, now } => Outcome::Cancel(self.cancel(&key, now)),
            Op::Delete { key } => {
                self.timers.retain(|t| t.instance != key);
                Outcome::Delete(self.instances.remove(&key).is_some())
            }
            Op::Reopen => Outcome::Unit,
            Op::Due { now, limit } => Outcome::Due(self.due(now, limit)),
            Op::List(filter) => Outcome::List(self.list(&filter)),
            Op::GetStep { key, step } => Outcome::Step(
                self.instances
                    .get(&key)
                    .and_then(|i| i.steps.get(&step).cloned()),
            ),
        }
    }

    fn start(&mut self, key: InstanceKey, input: StepRecord, now: u64) -> StartOutcome {
        if let Some(existing) = self.instances.get(&key) {
            return StartOutcome::Exists(existing.meta.clone());
        }
        let meta = WorkflowMetadata {
            workflow_name: key.workflow().to_owned(),
            instance_id: key.instance().to_owned(),
            status: MetadataStatus::Running,
            created_at_ms: now,
            updated_at_ms: now,
            completed_at_ms: None,
        };
        let steps = BTreeMap::from([("_input".to_owned(), input)]);
        self.instances.insert(key, Instance { meta, steps });
        StartOutcome::Started
    }

    fn commit(&mut self, key: &InstanceKey, step: String, record: StepRecord) -> CommitOutcome {
        let Some(inst) = self.instances.get_mut(key) else {
            return CommitOutcome::InstanceMissing;
        };
        if inst.meta.status == MetadataStatus::Cancelled {
            return CommitOutcome::Cancelled;
        }
        match inst.steps.get(&step) {
            Some(old) if matches!(old.state, StepState::Completed | StepState::Suspended) => {
                CommitOutcome::Kept(old.clone())
            }
            _ => {
                inst.steps.insert(step, record);
                CommitOutcome::Committed
            }
        }
    }

    fn suspend(
        &mut self,
        key: &InstanceKey,
        step: String,
        record: StepRecord,
        status: Option<String>,
        now: u64,
    ) -> SuspendOutcome {
        let Some(inst) = self.instances.get_mut(key) else {
            return SuspendOutcome::NotActive(None);
        };
        if !matches!(
            inst.meta.status,
            MetadataStatus::Running | MetadataStatus::Suspended { .. }
        ) {
            return SuspendOutcome::NotActive(Some(inst.meta.status.clone()));
        }
        if let Some(old) = inst.steps.get(&step) {
            if old.state == StepState::Completed {
                return SuspendOutcome::AlreadyCompleted(old.clone());
            }
            // The previous suspension's timer row is replaced.
            if old.state == StepState::Suspended
                && let Some(d) = old.deadline_ms
            {
                self.timers.remove(&timer_row(key, &step, d));
            }
        }
        if let Some(d) = record.deadline_ms {
            self.timers.insert(timer_row(key, &step, d));
        }
        inst.steps.insert(step.clone(), record);
        inst.meta.status = MetadataStatus::Suspended { key: step, status };
        inst.meta.updated_at_ms = now;
        SuspendOutcome::Suspended
    }

    fn claim(
        &mut self,
        key: &InstanceKey,
        step: &str,
        payload: StepRecord,
        now: u64,
    ) -> ClaimOutcome {
        let Some(inst) = self.instances.get_mut(key) else {
            return ClaimOutcome::StepMissing;
        };
        let Some(old) = inst.steps.get(step) else {
            return ClaimOutcome::StepMissing;
        };
        if old.state != StepState::Suspended {
            return ClaimOutcome::StepNotSuspended(old.clone());
        }
        if !matches!(inst.meta.status, MetadataStatus::Suspended { .. }) {
            return ClaimOutcome::InstanceNotSuspended(inst.meta.status.clone());
        }
        if let Some(d) = old.deadline_ms {
            self.timers.remove(&timer_row(key, step, d));
        }
        inst.steps.insert(step.to_owned(), payload);
        inst.meta.status = MetadataStatus::Running;
        inst.meta.updated_at_ms = now;
        ClaimOutcome::Claimed
    }

    fn finish(&mut self, key: &InstanceKey, finish: Finish, now: u64) -> FinishOutcome {
        let Some(inst) = self.instances.get_mut(key) else {
            return FinishOutcome::NotRunning(None);
        };
        if inst.meta.status != MetadataStatus::Running {
            return FinishOutcome::NotRunning(Some(inst.meta.status.clone()));
        }
        inst.meta.status = match finish {
            Finish::Completed { status, output } => {
                inst.steps.insert("_output".to_owned(), output);
                MetadataStatus::Completed(status)
            }
            Finish::Failed(message) => MetadataStatus::Failed(message),
        };
        inst.meta.updated_at_ms = now;
        inst.meta.completed_at_ms = Some(now);
        FinishOutcome::Finished
    }

    fn revive(&mut self, key: &InstanceKey, now: u64) -> ReviveOutcome {
        let Some(inst) = self.instances.get_mut(key) else {
            return ReviveOutcome::InstanceMissing;
        };
        let before = inst.meta.status.clone();
        match before {
            MetadataStatus::Cancelled => ReviveOutcome::Cancelled,
            MetadataStatus::Running => ReviveOutcome::Revived(before),
            MetadataStatus::Suspended { .. }
            | MetadataStatus::Completed(_)
            | MetadataStatus::Failed(_) => {
                inst.meta.status = MetadataStatus::Running;
                inst.meta.updated_at_ms = now;
                inst.meta.completed_at_ms = None;
                ReviveOutcome::Revived(before)
            }
        }
    }

    fn cancel(&mut self, key: &InstanceKey, now: u64) -> CancelOutcome {
        let Some(inst) = self.instances.get_mut(key) else {
            return CancelOutcome::NotActive(None);
        };
        if matches!(
            inst.meta.status,
            MetadataStatus::Completed(_) | MetadataStatus::Failed(_) | MetadataStatus::Cancelled
        ) {
            return CancelOutcome::NotActive(Some(inst.meta.status.clone()));
        }
        inst.meta.status = MetadataStatus::Cancelled;
        inst.meta.updated_at_ms = now;
        inst.meta.completed_at_ms = Some(now);
        self.timers.retain(|t| &t.instance != key);
        CancelOutcome::Cancelled
    }

    pub(crate) fn due(&self, now: u64, limit: usize) -> Vec<TimerEntry> {
        self.timers
            .iter()
            .take_while(|t| t.deadline_ms <= now)
            .take(limit)
            .cloned()
            .collect()
    }

    pub(crate) fn list(&self, filter: &InstanceFilter) -> Vec<WorkflowMetadata> {
        self.instances
            .iter()
            .filter(|(k, i)| filter_matches(filter, k, &i.meta))
            .take(filter.limit.unwrap_or(usize::MAX))
            .map(|(_, i)| i.meta.clone())
            .collect()
    }

    pub(crate) fn snapshot(&self, key: &InstanceKey) -> Option<InstanceSnapshot> {
        self.instances.get(key).map(|i| InstanceSnapshot {
            metadata: i.meta.clone(),
            steps: i
                .steps
                .iter()
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect(),
        })
    }

    /// Existing instance keys (for the generator to aim at).
    pub(crate) fn keys(&self) -> Vec<InstanceKey> {
        self.instances.keys().cloned().collect()
    }

    /// Every `(instance, step)` whose record is `Suspended`.
    pub(crate) fn suspended_steps(&self) -> Vec<(InstanceKey, String)> {
        self.instances
            .iter()
            .flat_map(|(k, i)| {
                i.steps
                    .iter()
                    .filter(|(_, r)| r.state == StepState::Suspended)
                    .map(move |(s, _)| (k.clone(), s.clone()))
            })
            .collect()
    }

    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.timers.first().map(|t| t.deadline_ms)
    }
}
