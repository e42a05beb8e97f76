//! [`Transaction`] over one redb write transaction, so that
//! [`memable_core::txn::apply`] runs every transition's logic here.

use memable_core::txn::Transaction;
use memable_core::{EngineError, InstanceKey, StepRecord, TimerEntry, WorkflowMetadata};
use redb::{ReadableTable, Table, WriteTransaction};

use crate::tables::{BY_STATUS, INSTANCES, STEPS, TIMERS, status_code};

/// The four tables of one write transaction, opened once per transaction.
pub(crate) struct RedbTxn<'t> {
    instances: Table<'t, (&'static str, &'static str), &'static [u8]>,
    by_status: Table<'t, (u8, &'static str, &'static str), ()>,
    steps: Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>,
    timers: Table<'t, (u64, &'static str, &'static str, &'static str), ()>,
}

fn err(operation: &'static str) -> impl FnOnce(redb::StorageError) -> EngineError {
    move |e| EngineError::storage(operation, e)
}

impl<'t> RedbTxn<'t> {
    /// Opens the tables inside `txn`.
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self, EngineError> {
        let open = |e: redb::TableError| EngineError::storage("open tables", e);
        Ok(Self {
            instances: txn.open_table(INSTANCES).map_err(open)?,
            by_status: txn.open_table(BY_STATUS).map_err(open)?,
            steps: txn.open_table(STEPS).map_err(open)?,
            timers: txn.open_table(TIMERS).map_err(open)?,
        })
    }

    fn step_keys(&self, key: &InstanceKey) -> Result<Vec<String>, EngineError> {
        let (w, i) = (key.workflow(), key.instance());
        let mut keys = Vec::new();
        for row in self.steps.range((w, i, "")..).map_err(err("scan steps"))? {
            let (k, _) = row.map_err(err("scan steps"))?;
            let (rw, ri, step) = k.value();
            if (rw, ri) != (w, i) {
                break;
            }
            keys.push(step.to_owned());
        }
        Ok(keys)
    }
}

impl Transaction for RedbTxn<'_> {
    fn metadata(&mut self, key: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.instances
            .get((key.workflow(), key.instance()))
            .map_err(err("read instance metadata"))?
            .map(|v| WorkflowMetadata::decode(v.value()))
            .transpose()
    }

    fn put_metadata(
        &mut self,
        key: &InstanceKey,
        meta: &WorkflowMetadata,
        previous: Option<&WorkflowMetadata>,
    ) -> Result<(), EngineError> {
        let (w, i) = (key.workflow(), key.instance());
        let code = status_code(meta.status.kind());
        if let Some(previous) = previous {
            let old = status_code(previous.status.kind());
            if old != code {
                self.by_status
                    .remove((old, w, i))
                    .map_err(err("update status index"))?;
            }
        }
        self.by_status
            .insert((code, w, i), ())
            .map_err(err("update status index"))?;
        self.instances
            .insert((w, i), meta.encode().as_slice())
            .map_err(err("write instance metadata"))?;
        Ok(())
    }

    fn step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.steps
            .get((key.workflow(), key.instance(), step_key))
            .map_err(err("read step"))?
            .map(|v| StepRecord::decode(v.value()))
            .transpose()
    }

    fn put_step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
        record: &StepRecord,
    ) -> Result<(), EngineError> {
        self.steps
            .insert(
                (key.workflow(), key.instance(), step_key),
                record.encode().as_slice(),
            )
            .map_err(err("write step"))?;
        Ok(())
    }

    fn steps(&mut self, key: &InstanceKey) -> Result<Vec<(String, StepRecord)>, EngineError> {
        crate::read::instance_steps(&self.steps, key)
    }

    fn put_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError> {
        self.timers
            .insert(
                (
                    timer.deadline_ms,
                    timer.instance.workflow(),
                    timer.instance.instance(),
                    timer.step_key.as_str(),
                ),
                (),
            )
            .map_err(err("write timer"))?;
        Ok(())
    }

    fn remove_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError> {
        self.timers
            .remove((
                timer.deadline_ms,
                timer.instance.workflow(),
                timer.instance.instance(),
                timer.step_key.as_str(),
            ))
            .map_err(err("remove timer"))?;
        Ok(())
    }

    fn remove_instance(
        &mut self,
        key: &InstanceKey,
        meta: &WorkflowMetadata,
    ) -> Result<(), EngineError> {
        let (w, i) = (key.workflow(), key.instance());
        for step in self.step_keys(key)? {
            self.steps
                .remove((w, i, step.as_str()))
                .map_err(err("remove step"))?;
        }
        self.by_status
            .remove((status_code(meta.status.kind()), w, i))
            .map_err(err("update status index"))?;
        self.instances
            .remove((w, i))
            .map_err(err("remove instance metadata"))?;
        Ok(())
    }
}
