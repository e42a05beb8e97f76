//! [`MemoryStore`]: the in-memory reference store.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::transitions::{self, Transaction, WriteOp, WriteOutcome};
use super::{EngineSlot, InstanceFilter, InstanceSnapshot, StepStore, TimerEntry};
use crate::{EngineError, InstanceKey, StatusKind, StepRecord, WorkflowMetadata};

/// A [`StepStore`] that keeps everything in process memory.
///
/// It implements every contract of the trait and is what
/// `Engine::builder().in_memory()` uses: meant for tests and for workflows
/// that need memoisation and signals but not crash safety. Clones share the
/// same data, so a clone stands for "the same store, reopened" in tests.
///
/// # Examples
///
/// ```
/// use memable_core::{InstanceKey, MemoryStore, StepKind, StepRecord, StepStore, StepStoreExt, StartOutcome};
///
/// # tokio_test_block_on(async {
/// let store = MemoryStore::new();
/// let key = InstanceKey::new("etl", "1").unwrap();
/// let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
/// assert_eq!(store.start_instance(key.clone(), input, 0).await.unwrap(), StartOutcome::Started);
/// assert!(store.get_metadata(&key).await.unwrap().is_some());
/// # });
/// # fn tokio_test_block_on(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<MemoryState>>,
    slot: EngineSlot,
}

#[derive(Debug, Default)]
struct MemoryState {
    instances: BTreeMap<InstanceKey, InstanceRows>,
    by_status: BTreeSet<(StatusKind, InstanceKey)>,
    timers: BTreeSet<TimerEntry>,
}

#[derive(Debug)]
struct InstanceRows {
    meta: WorkflowMetadata,
    steps: BTreeMap<String, StepRecord>,
}

impl MemoryStore {
    /// An empty store.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_core::MemoryStore::new();
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // The state is only mutated through `apply`, which never panics
        // half-way, so a poisoned lock still guards consistent data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Transaction for MemoryState {
    fn metadata(&mut self, key: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError> {
        Ok(self.instances.get(key).map(|rows| rows.meta.clone()))
    }

    fn put_metadata(
        &mut self,
        key: &InstanceKey,
        meta: &WorkflowMetadata,
        previous: Option<&WorkflowMetadata>,
    ) -> Result<(), EngineError> {
        if let Some(previous) = previous {
            self.by_status
                .remove(&(previous.status.kind(), key.clone()));
        }
        self.by_status.insert((meta.status.kind(), key.clone()));
        self.instances
            .entry(key.clone())
            .and_modify(|rows| rows.meta = meta.clone())
            .or_insert_with(|| InstanceRows {
                meta: meta.clone(),
                steps: BTreeMap::new(),
            });
        Ok(())
    }

    fn step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        Ok(self
            .instances
            .get(key)
            .and_then(|rows| rows.steps.get(step_key).cloned()))
    }

    fn put_step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
        record: &StepRecord,
    ) -> Result<(), EngineError> {
        let rows = self
            .instances
            .get_mut(key)
            .ok_or_else(|| EngineError::storage("put_step", format!("no instance {key}")))?;
        rows.steps.insert(step_key.to_owned(), record.clone());
        Ok(())
    }

    fn remove_step(&mut self, key: &InstanceKey, step_key: &str) -> Result<(), EngineError> {
        if let Some(rows) = self.instances.get_mut(key) {
            rows.steps.remove(step_key);
        }
        Ok(())
    }

    fn steps(&mut self, key: &InstanceKey) -> Result<Vec<(String, StepRecord)>, EngineError> {
        Ok(self
            .instances
            .get(key)
            .map(|rows| {
                rows.steps
                    .iter()
                    .map(|(k, r)| (k.clone(), r.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn put_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError> {
        self.timers.insert(timer.clone());
        Ok(())
    }

    fn remove_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError> {
        self.timers.remove(timer);
        Ok(())
    }

    fn remove_instance(
        &mut self,
        key: &InstanceKey,
        meta: &WorkflowMetadata,
    ) -> Result<(), EngineError> {
        self.by_status.remove(&(meta.status.kind(), key.clone()));
        self.instances.remove(key);
        Ok(())
    }
}

#[async_trait]
impl StepStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn engine_slot(&self) -> &EngineSlot {
        &self.slot
    }

    /// Applies `op` with [`transitions::apply`] under the store's lock:
    /// every transition is atomic because nothing else runs meanwhile.
    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        transitions::apply(&op, &mut *self.lock())
    }

    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        let state = self.lock();
        Ok(state.instances.get(key).map(|rows| InstanceSnapshot {
            metadata: rows.meta.clone(),
            steps: rows
                .steps
                .iter()
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect(),
        }))
    }

    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.lock().step(key, step_key)
    }

    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.lock().metadata(key)
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        let state = self.lock();
        let limit = filter.limit.unwrap_or(usize::MAX);
        let lower = filter
            .after
            .clone()
            .map_or(Bound::Unbounded, Bound::Excluded);
        let found: Vec<WorkflowMetadata> = if let Some(kind) = filter.status {
            let lower = match lower {
                Bound::Excluded(k) => Bound::Excluded((kind, k)),
                _ => Bound::Included((kind, InstanceKey::min())),
            };
            state
                .by_status
                .range((lower, Bound::Unbounded))
                .take_while(|(k, _)| *k == kind)
                .filter_map(|(_, key)| state.instances.get(key).map(|rows| &rows.meta))
                .filter(|meta| filter.matches(meta))
                .take(limit)
                .cloned()
                .collect()
        } else {
            state
                .instances
                .range((lower, Bound::Unbounded))
                .map(|(_, rows)| &rows.meta)
                .filter(|meta| filter.matches(meta))
                .take(limit)
                .cloned()
                .collect()
        };
        Ok(found)
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        Ok(self
            .lock()
            .timers
            .iter()
            .take_while(|t| t.deadline_ms <= now_ms)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        Ok(self.lock().timers.first().map(|t| t.deadline_ms))
    }
}
