//! [`Transaction`] over one redb write transaction, so that
//! [`memable_core::transitions::apply`] runs every transition's logic here.

use memable_core::transitions::Transaction;
use memable_core::{EngineError, InstanceKey, StepRecord, TimerEntry, WorkflowMetadata};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use crate::tables::{BY_STATUS, INSTANCES, STEPS, TIMERS, status_code};

type InstancesTable<'t> = Table<'t, (&'static str, &'static str), &'static [u8]>;
type ByStatusTable<'t> = Table<'t, (u8, &'static str, &'static str), ()>;
type StepsTable<'t> = Table<'t, (&'static str, &'static str, &'static str), &'static [u8]>;
type TimersTable<'t> = Table<'t, (u64, &'static str, &'static str, &'static str), ()>;

/// The four tables of one write transaction, each opened the first time a
/// transition of the transaction needs it (opening a redb table looks it up
/// and checks its definition: a step commit, the most frequent transition,
/// never needs the status index or the timers).
pub(crate) struct RedbTxn<'t> {
    txn: &'t WriteTransaction,
    instances: Option<InstancesTable<'t>>,
    by_status: Option<ByStatusTable<'t>>,
    steps: Option<StepsTable<'t>>,
    timers: Option<TimersTable<'t>>,
}

fn err(operation: &'static str) -> impl FnOnce(redb::StorageError) -> EngineError {
    move |e| EngineError::storage(operation, e)
}

/// The table in `slot`, opened in `txn` if it is not yet.
fn opened<'a, 't, K: redb::Key + 'static, V: redb::Value + 'static>(
    slot: &'a mut Option<Table<'t, K, V>>,
    txn: &'t WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<&'a mut Table<'t, K, V>, EngineError> {
    if slot.is_none() {
        *slot = Some(
            txn.open_table(table)
                .map_err(|e| EngineError::storage("open tables", e))?,
        );
    }
    slot.as_mut()
        .ok_or_else(|| EngineError::storage("open tables", "table not open"))
}

impl<'t> RedbTxn<'t> {
    /// The tables of `txn`, opened as they are needed.
    pub(crate) fn new(txn: &'t WriteTransaction) -> Self {
        Self {
            txn,
            instances: None,
            by_status: None,
            steps: None,
            timers: None,
        }
    }

    fn instances(&mut self) -> Result<&mut InstancesTable<'t>, EngineError> {
        opened(&mut self.instances, self.txn, INSTANCES)
    }

    fn by_status(&mut self) -> Result<&mut ByStatusTable<'t>, EngineError> {
        opened(&mut self.by_status, self.txn, BY_STATUS)
    }

    fn steps(&mut self) -> Result<&mut StepsTable<'t>, EngineError> {
        opened(&mut self.steps, self.txn, STEPS)
    }

    fn timers(&mut self) -> Result<&mut TimersTable<'t>, EngineError> {
        opened(&mut self.timers, self.txn, TIMERS)
    }

    fn step_keys(&mut self, key: &InstanceKey) -> Result<Vec<String>, EngineError> {
        let (w, i) = (key.workflow(), key.instance());
        let mut keys = Vec::new();
        for row in self
            .steps()?
            .range((w, i, "")..)
            .map_err(err("scan steps"))?
        {
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
        self.instances()?
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
                self.by_status()?
                    .remove((old, w, i))
                    .map_err(err("update status index"))?;
            }
        }
        self.by_status()?
            .insert((code, w, i), ())
            .map_err(err("update status index"))?;
        self.instances()?
            .insert((w, i), meta.encode().as_slice())
            .map_err(err("write instance metadata"))?;
        Ok(())
    }

    fn step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.steps()?
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
        self.steps()?
            .insert(
                (key.workflow(), key.instance(), step_key),
                record.encode().as_slice(),
            )
            .map_err(err("write step"))?;
        Ok(())
    }

    fn remove_step(&mut self, key: &InstanceKey, step_key: &str) -> Result<(), EngineError> {
        self.steps()?
            .remove((key.workflow(), key.instance(), step_key))
            .map_err(err("remove step"))?;
        Ok(())
    }

    fn steps(&mut self, key: &InstanceKey) -> Result<Vec<(String, StepRecord)>, EngineError> {
        crate::read::instance_steps(self.steps()?, key)
    }

    fn put_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError> {
        self.timers()?
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
        self.timers()?
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
            self.steps()?
                .remove((w, i, step.as_str()))
                .map_err(err("remove step"))?;
        }
        self.by_status()?
            .remove((status_code(meta.status.kind()), w, i))
            .map_err(err("update status index"))?;
        self.instances()?
            .remove((w, i))
            .map_err(err("remove instance metadata"))?;
        Ok(())
    }
}
