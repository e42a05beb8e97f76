//! The store as one run on a shared store sees it: every write fenced by
//! the epoch the run acquired.
//!
//! # Protocol
//!
//! A run on a store with [`workers`](crate::StepStore::workers) acquires its
//! instance before it calls the workflow (or was given the epoch by the
//! worker loop that acquired it), so no step closure runs in a worker that
//! does not own the instance. It then writes only through a
//! [`FencedStore`], which holds the run's epoch; reads go straight to the
//! store.
//!
//! - Each write is sent as [`WriteOp::Fenced`] with that epoch.
//! - A write answered [`WriteOutcome::Stale`] is
//!   [`EngineError::LostOwnership`]: nothing of it landed, and the run stops
//!   (its caller publishes nothing; the instance goes on elsewhere).
//! - A write that parks or finishes the instance releases it (the store
//!   does that in the same transaction); a run that ends otherwise — a
//!   replay that changed nothing, a failed write — releases it with
//!   [`WriteOp::Release`] at its end, so any worker may acquire it again.
//! - A storage error is passed on as it is (outcome unknown).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use crate::{
    EngineError, EngineSlot, FinishOutcome, InstanceFilter, InstanceKey, InstanceSnapshot,
    ParkOutcome, StepRecord, StepStore, TimerEntry, Workers, WorkflowMetadata, WriteOp,
    WriteOutcome,
};

/// One run's fenced view of a shared store.
pub(crate) struct FencedStore {
    store: Arc<dyn StepStore>,
    key: InstanceKey,
    epoch: u64,
    /// The instance is no longer this run's: parked, finished, or taken.
    released: AtomicBool,
}

impl FencedStore {
    /// A view for the run of `key` that acquired it under `epoch`.
    pub(crate) fn new(store: Arc<dyn StepStore>, key: InstanceKey, epoch: u64) -> Self {
        Self {
            store,
            key,
            epoch,
            released: AtomicBool::new(false),
        }
    }

    /// Releases the instance unless a write of the run did (or it was
    /// taken). Failures are logged: the instance is then acquired again
    /// once this worker's lease ends.
    pub(crate) async fn release_if_held(&self) {
        if self.released.load(Ordering::Acquire) {
            return;
        }
        let op = WriteOp::Release {
            key: self.key.clone(),
        };
        match self.write(op).await {
            Ok(_) | Err(EngineError::LostOwnership { .. }) => {}
            Err(error) => {
                tracing::warn!(instance = %self.key, %error, "could not release the instance; other workers take it after this worker's lease");
            }
        }
    }
}

#[async_trait]
impl StepStore for FencedStore {
    fn name(&self) -> &'static str {
        self.store.name()
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        let epoch = self.epoch;
        let releases = matches!(op, WriteOp::Release { .. });
        let fenced = WriteOp::Fenced {
            epoch,
            op: Box::new(op),
        };
        match self.store.write(fenced).await? {
            WriteOutcome::Stale(stale) => {
                self.released.store(true, Ordering::Release);
                tracing::warn!(
                    instance = %self.key,
                    epoch,
                    current = ?stale.current,
                    "another worker owns this instance now; this run's write was refused and the run stops"
                );
                Err(EngineError::LostOwnership {
                    key: self.key.clone(),
                    epoch,
                })
            }
            outcome => {
                if releases
                    || matches!(
                        outcome,
                        WriteOutcome::Park(ParkOutcome::Parked)
                            | WriteOutcome::Finish(FinishOutcome::Finished)
                    )
                {
                    self.released.store(true, Ordering::Release);
                }
                Ok(outcome)
            }
        }
    }

    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        self.store.load_instance(key).await
    }

    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.store.get_step(key, step_key).await
    }

    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.store.get_metadata(key).await
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        self.store.list_instances(filter).await
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        self.store.due_timers(now_ms, limit).await
    }

    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        self.store.next_timer_deadline().await
    }

    fn engine_slot(&self) -> &EngineSlot {
        self.store.engine_slot()
    }

    fn workers(&self) -> Option<&dyn Workers> {
        self.store.workers()
    }
}
