//! Blocking reads. [`crate::RedbStore`] serves them on its reader threads
//! ([`memable_store::readers::ReaderPool`]): each batch of queued reads is
//! served from one read transaction ([`Snapshot`]).

use std::ops::Bound;
use std::sync::Arc;

use memable_core::{
    EngineError, InstanceFilter, InstanceKey, InstanceSnapshot, StepRecord, TimerEntry,
    WorkflowMetadata,
};
use memable_store::readers::{ReadSession, Visibility};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};

use crate::tables::{BY_STATUS, INSTANCES, STEPS, TIMERS, instance_key, status_code};

type StepsKey = (&'static str, &'static str, &'static str);

/// Every step record of `key`, sorted by step key: a range scan starting at
/// `(workflow, instance, "")` that stops at the first row of another
/// instance.
pub(crate) fn instance_steps(
    steps: &impl ReadableTable<StepsKey, &'static [u8]>,
    key: &InstanceKey,
) -> Result<Vec<(String, StepRecord)>, EngineError> {
    let op = "read steps";
    let (w, i) = (key.workflow(), key.instance());
    let mut out = Vec::new();
    for row in steps
        .range((w, i, "")..)
        .map_err(|e| EngineError::storage(op, e))?
    {
        let (k, v) = row.map_err(|e| EngineError::storage(op, e))?;
        let (rw, ri, step) = k.value();
        if (rw, ri) != (w, i) {
            break;
        }
        out.push((step.to_owned(), StepRecord::decode(v.value())?));
    }
    Ok(out)
}

type Table<K, V> = redb::ReadOnlyTable<K, V>;

/// The four tables of one read snapshot, opened once for a whole batch of
/// reads.
pub(crate) struct Snapshot {
    instances: Table<(&'static str, &'static str), &'static [u8]>,
    by_status: Table<(u8, &'static str, &'static str), ()>,
    steps: Table<StepsKey, &'static [u8]>,
    timers: Table<(u64, &'static str, &'static str, &'static str), ()>,
}

fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Table<K, V>, EngineError> {
    txn.open_table(table)
        .map_err(|e| EngineError::storage("open read snapshot", e))
}

/// One reader thread's handle: the database, and the snapshot of the batch
/// it is serving.
pub(crate) struct Reader {
    db: Arc<Database>,
    /// For a journaled store: batches answered before their commit.
    visibility: Option<Arc<Visibility>>,
    snapshot: Option<Snapshot>,
}

impl Reader {
    pub(crate) fn new(db: Arc<Database>, visibility: Option<Arc<Visibility>>) -> Self {
        Self {
            db,
            visibility,
            snapshot: None,
        }
    }

    /// The batch's snapshot.
    pub(crate) fn snapshot(&self, op: &'static str) -> Result<&Snapshot, EngineError> {
        self.snapshot
            .as_ref()
            .ok_or_else(|| EngineError::storage(op, "read outside a read batch"))
    }
}

impl ReadSession for Reader {
    fn begin_batch(&mut self) -> Result<(), EngineError> {
        // Every write answered so far must be in the snapshot.
        if let Some(visibility) = &self.visibility {
            visibility.wait()?;
        }
        let txn = self
            .db
            .begin_read()
            .map_err(|e| EngineError::storage("open read snapshot", e))?;
        // The tables keep the snapshot alive after `txn` is dropped.
        self.snapshot = Some(Snapshot {
            instances: open(&txn, INSTANCES)?,
            by_status: open(&txn, BY_STATUS)?,
            steps: open(&txn, STEPS)?,
            timers: open(&txn, TIMERS)?,
        });
        Ok(())
    }

    fn end_batch(&mut self) {
        self.snapshot = None;
    }
}

/// Where a listing starts in `(workflow, instance)` order: just after
/// `filter.after`, or at the first instance of `filter.workflow`, whichever
/// is later.
fn lower_bound(filter: &InstanceFilter) -> Bound<(&str, &str)> {
    let after = filter.after.as_ref().map(|k| (k.workflow(), k.instance()));
    let first = filter.workflow.as_deref().map(|w| (w, ""));
    match (after, first) {
        (Some(a), Some(f)) if a < f => Bound::Included(f),
        (Some(a), _) => Bound::Excluded(a),
        (None, Some(f)) => Bound::Included(f),
        (None, None) => Bound::Unbounded,
    }
}

impl Snapshot {
    /// Metadata and steps of one instance.
    pub(crate) fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        let Some(metadata) = self.get_metadata(key)? else {
            return Ok(None);
        };
        let steps = instance_steps(&self.steps, key)?;
        Ok(Some(InstanceSnapshot { metadata, steps }))
    }

    /// One instance's metadata.
    pub(crate) fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.instances
            .get((key.workflow(), key.instance()))
            .map_err(|e| EngineError::storage("get_metadata", e))?
            .map(|v| WorkflowMetadata::decode(v.value()))
            .transpose()
    }

    /// One step record.
    pub(crate) fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.steps
            .get((key.workflow(), key.instance(), step_key))
            .map_err(|e| EngineError::storage("get_step", e))?
            .map(|v| StepRecord::decode(v.value()))
            .transpose()
    }
    /// Metadata matching `filter`. With a status, walks only that status's
    /// slice of the index; with a workflow, stops at the first other workflow.
    pub(crate) fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        let op = "list_instances";
        let err = |e: redb::StorageError| EngineError::storage(op, e);
        let limit = filter.limit.unwrap_or(usize::MAX);
        let instances = &self.instances;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let in_workflow = |w: &str| filter.workflow.as_deref().is_none_or(|f| f == w);
        if let Some(kind) = filter.status {
            let code = status_code(kind);
            let index = &self.by_status;
            let lower = match lower_bound(filter) {
                Bound::Included((w, i)) => Bound::Included((code, w, i)),
                Bound::Excluded((w, i)) => Bound::Excluded((code, w, i)),
                Bound::Unbounded => Bound::Included((code, "", "")),
            };
            for row in index
                .range::<(u8, &str, &str)>((lower, Bound::Unbounded))
                .map_err(err)?
            {
                let (k, ()) = row.map(|(k, v)| (k, v.value())).map_err(err)?;
                let (c, w, i) = k.value();
                if c != code || !in_workflow(w) {
                    break;
                }
                let meta = instances.get((w, i)).map_err(err)?.ok_or_else(|| {
                    EngineError::storage(op, format!("status index names missing instance {w}/{i}"))
                })?;
                let meta = WorkflowMetadata::decode(meta.value())?;
                if filter.matches(&meta) {
                    out.push(meta);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        } else {
            for row in instances
                .range::<(&str, &str)>((lower_bound(filter), Bound::Unbounded))
                .map_err(err)?
            {
                let (k, v) = row.map_err(err)?;
                if !in_workflow(k.value().0) {
                    break;
                }
                let meta = WorkflowMetadata::decode(v.value())?;
                if filter.matches(&meta) {
                    out.push(meta);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Timers due at `now_ms`, earliest first.
    pub(crate) fn due_timers(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<TimerEntry>, EngineError> {
        let op = "due_timers";
        let err = |e: redb::StorageError| EngineError::storage(op, e);
        let timers = &self.timers;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for row in timers
            .range::<(u64, &str, &str, &str)>((0, "", "", "")..)
            .map_err(err)?
        {
            let (k, _) = row.map_err(err)?;
            let (deadline_ms, w, i, step) = k.value();
            if deadline_ms > now_ms {
                break;
            }
            out.push(TimerEntry {
                deadline_ms,
                instance: instance_key(op, w, i)?,
                step_key: step.to_owned(),
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The earliest timer deadline.
    pub(crate) fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        let op = "next_timer_deadline";
        Ok(self
            .timers
            .first()
            .map_err(|e| EngineError::storage(op, e))?
            .map(|(k, _)| k.value().0))
    }
}
