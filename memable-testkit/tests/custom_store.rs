//! A store written from scratch against the small contract — `name`,
//! `write` and the six reads, over its own rows with
//! `memable_core::transitions::apply` — passes the whole conformance suite
//! through the `StepStoreExt` methods; a store that answers a write with
//! the wrong outcome is a typed storage error, not a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use memable_core::transitions::{Transaction, apply};
use memable_core::{
    CancelOutcome, Engine, EngineError, InstanceFilter, InstanceKey, InstanceSnapshot, MemoryStore,
    StepKind, StepRecord, StepStore, StepStoreExt, StorageErrorKind, TimerEntry, WorkflowMetadata,
    WriteOp, WriteOutcome,
};
use memable_testkit::{Capabilities, StoreFactory, StoreFixture};

/// Every row of the custom store.
#[derive(Debug, Default)]
struct Rows {
    meta: BTreeMap<InstanceKey, WorkflowMetadata>,
    steps: BTreeMap<InstanceKey, BTreeMap<String, StepRecord>>,
    timers: BTreeSet<TimerEntry>,
}

impl Transaction for Rows {
    fn metadata(&mut self, key: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError> {
        Ok(self.meta.get(key).cloned())
    }
    fn put_metadata(
        &mut self,
        key: &InstanceKey,
        meta: &WorkflowMetadata,
        _previous: Option<&WorkflowMetadata>,
    ) -> Result<(), EngineError> {
        self.meta.insert(key.clone(), meta.clone());
        Ok(())
    }
    fn step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        Ok(self.steps.get(key).and_then(|s| s.get(step_key)).cloned())
    }
    fn remove_step(&mut self, key: &InstanceKey, step_key: &str) -> Result<(), EngineError> {
        if let Some(steps) = self.steps.get_mut(key) {
            steps.remove(step_key);
        }
        Ok(())
    }
    fn put_step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
        record: &StepRecord,
    ) -> Result<(), EngineError> {
        self.steps
            .entry(key.clone())
            .or_default()
            .insert(step_key.to_owned(), record.clone());
        Ok(())
    }
    fn steps(&mut self, key: &InstanceKey) -> Result<Vec<(String, StepRecord)>, EngineError> {
        Ok(self
            .steps
            .get(key)
            .map(|s| s.iter().map(|(k, r)| (k.clone(), r.clone())).collect())
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
        _meta: &WorkflowMetadata,
    ) -> Result<(), EngineError> {
        self.meta.remove(key);
        self.steps.remove(key);
        Ok(())
    }
}

/// The custom store: eight methods, no typed transitions of its own.
#[derive(Clone, Debug, Default)]
struct RowStore {
    rows: Arc<Mutex<Rows>>,
    slot: memable_core::EngineSlot,
}

impl RowStore {
    fn rows(&self) -> MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl StepStore for RowStore {
    fn name(&self) -> &'static str {
        "rows"
    }
    fn engine_slot(&self) -> &memable_core::EngineSlot {
        &self.slot
    }
    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        apply(&op, &mut *self.rows())
    }
    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        let mut rows = self.rows();
        let Some(metadata) = rows.metadata(key)? else {
            return Ok(None);
        };
        let steps = rows.steps(key)?;
        Ok(Some(InstanceSnapshot { metadata, steps }))
    }
    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.rows().step(key, step_key)
    }
    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.rows().metadata(key)
    }
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        Ok(self
            .rows()
            .meta
            .values()
            .filter(|meta| filter.matches(meta))
            .take(filter.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        Ok(self
            .rows()
            .timers
            .iter()
            .take_while(|t| t.deadline_ms <= now_ms)
            .take(limit)
            .cloned()
            .collect())
    }
    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        Ok(self.rows().timers.first().map(|t| t.deadline_ms))
    }
}

struct RowFactory;

struct RowFixture {
    store: RowStore,
}

#[async_trait]
impl StoreFactory for RowFactory {
    fn name(&self) -> &'static str {
        "rows"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reopen: true,
            survives_process_exit: false,
        }
    }
    async fn create(&self) -> Result<Box<dyn StoreFixture>, EngineError> {
        Ok(Box::new(RowFixture {
            store: RowStore::default(),
        }))
    }
}

#[async_trait]
impl StoreFixture for RowFixture {
    fn store(&self) -> Arc<dyn StepStore> {
        Arc::new(self.store.clone())
    }
    async fn reopen(&mut self) -> Result<(), EngineError> {
        // A reopened store shares the rows, as a file reopened would.
        Ok(())
    }
}

memable_testkit::conformance_tests!(RowFactory);

/// Answers every write with a `Delete` outcome, whatever the op.
struct WrongAnswers(MemoryStore);

#[async_trait]
impl StepStore for WrongAnswers {
    fn name(&self) -> &'static str {
        "wrong-answers"
    }
    fn engine_slot(&self) -> &memable_core::EngineSlot {
        self.0.engine_slot()
    }
    async fn write(&self, _op: WriteOp) -> Result<WriteOutcome, EngineError> {
        Ok(WriteOutcome::Delete(true))
    }
    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        self.0.load_instance(key).await
    }
    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.0.get_step(key, step_key).await
    }
    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.0.get_metadata(key).await
    }
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        self.0.list_instances(filter).await
    }
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        self.0.due_timers(now_ms, limit).await
    }
    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        self.0.next_timer_deadline().await
    }
}

#[test]
fn a_wrong_outcome_is_a_storage_error_naming_the_operation() {
    memable_testkit::__private::block_on(async {
        let store = WrongAnswers(MemoryStore::new());
        let key = InstanceKey::new("wf", "1").unwrap();
        let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
        let err = store
            .start_instance(key.clone(), input, 0)
            .await
            .unwrap_err();
        let EngineError::Storage(storage) = &err else {
            panic!("expected a storage error, got {err:?}");
        };
        assert_eq!(storage.kind(), StorageErrorKind::Other);
        assert_eq!(storage.operation(), "start_instance");
        // The op whose outcome matches passes.
        assert!(store.delete_instance(key.clone()).await.unwrap());
        // Through `Arc<dyn StepStore>`, as the engine holds it.
        let shared: Arc<dyn StepStore> = Arc::new(store);
        let err = shared.cancel_instance(key, 0).await.unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::Other));
    });
}

#[test]
fn an_engine_on_a_wrong_store_reports_errors_and_does_not_panic() {
    memable_testkit::__private::block_on(async {
        let engine = Engine::builder()
            .store(WrongAnswers(MemoryStore::new()))
            .build();
        engine
            .register("wf", |_ctx: memable_core::Context| async { Ok(()) })
            .unwrap();
        engine.start().await.unwrap();
        let err = engine.invoke("wf").id("1").await.unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::Other));
        let err = engine.cancel("wf", "1").await.unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::Other));
        // A correct store gives the typed outcome through the same method.
        let fine = MemoryStore::new();
        let outcome = fine
            .cancel_instance(InstanceKey::new("wf", "1").unwrap(), 0)
            .await
            .unwrap();
        assert_eq!(outcome, CancelOutcome::NotActive(None));
    });
}
