//! [`StepStoreExt`]: the typed transitions, built on
//! [`StepStore::write`] for every store.

use std::future::Future;

use super::queue::queue_instance;
use super::{
    AcquireOutcome, AdmitOutcome, CancelOutcome, ChildStartOutcome, ClaimOutcome, CommitOutcome,
    EnqueueOutcome, Finish, FinishOutcome, FireOutcome, ForgetOutcome, ForkOutcome, ParkOutcome,
    QueueLimits, QueueTicket, ReviveOutcome, SignalOutcome, StartOutcome, StepStore,
    SuspendOutcome, TimerEntry, WaitOutcome,
};
use crate::transitions::{WriteOp, WriteOutcome};
use crate::{EngineError, InstanceKey, StepRecord, StorageError, StorageErrorKind};

/// The typed write transitions, for every [`StepStore`] (blanket
/// implemented; a store never implements it itself).
///
/// Each method builds its [`WriteOp`], calls [`StepStore::write`] and
/// unpacks the answer. The rules of each transition are documented on its
/// [`WriteOp`] variant. A store that answers with another outcome variant
/// than the op's gets a [`StorageError`] of kind
/// [`StorageErrorKind::Other`] naming the operation.
///
/// # Examples
///
/// ```
/// use memable_core::{InstanceKey, MemoryStore, StartOutcome, StepKind, StepRecord, StepStoreExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let key = InstanceKey::new("etl", "1").unwrap();
/// let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
/// assert_eq!(store.start_instance(key, input, 0).await.unwrap(), StartOutcome::Started);
/// # });
/// ```
pub trait StepStoreExt: StepStore {
    /// **Start** an instance; see [`WriteOp::Start`].
    ///
    /// # Examples
    ///
    /// See [`StepStoreExt`].
    fn start_instance(
        &self,
        key: InstanceKey,
        input: StepRecord,
        now_ms: u64,
    ) -> impl Future<Output = Result<StartOutcome, EngineError>> + Send {
        transition(self, WriteOp::Start { key, input, now_ms }, |o| match o {
            WriteOutcome::Start(o) => Some(o),
            _ => None,
        })
    }

    /// **Commit** a step record; see [`WriteOp::Commit`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{CommitOutcome, InstanceKey, MemoryStore, StepKind, StepRecord, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// let rec = StepRecord::completed(StepKind::Step, "u8", vec![1], None);
    /// assert_eq!(store.commit_step(key, "fetch".into(), rec).await.unwrap(), CommitOutcome::InstanceMissing);
    /// # });
    /// ```
    fn commit_step(
        &self,
        key: InstanceKey,
        step_key: String,
        record: StepRecord,
    ) -> impl Future<Output = Result<CommitOutcome, EngineError>> + Send {
        let op = WriteOp::Commit {
            key,
            step_key,
            record,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Commit(o) => Some(o),
            _ => None,
        })
    }

    /// **Suspend** at a step; see [`WriteOp::Suspend`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, MemoryStore, StepKind, StepRecord, StepStoreExt, SuspendOutcome};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// let rec = StepRecord::suspended(StepKind::Suspend, "bool", None, None);
    /// let outcome = store.suspend_step(key, "approval".into(), rec, None, 0).await.unwrap();
    /// assert_eq!(outcome, SuspendOutcome::NotActive(None));
    /// # });
    /// ```
    fn suspend_step(
        &self,
        key: InstanceKey,
        step_key: String,
        record: StepRecord,
        status: Option<String>,
        now_ms: u64,
    ) -> impl Future<Output = Result<SuspendOutcome, EngineError>> + Send {
        let op = WriteOp::Suspend {
            key,
            step_key,
            record,
            status,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Suspend(o) => Some(o),
            _ => None,
        })
    }

    /// **Claim** a suspended step (signal delivery, timer firing); see
    /// [`WriteOp::Claim`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{ClaimOutcome, InstanceKey, MemoryStore, StepKind, StepRecord, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// let payload = StepRecord::completed(StepKind::Suspend, "bool", vec![1], None);
    /// let outcome = store.claim_step(key, "approval".into(), payload, 0).await.unwrap();
    /// assert_eq!(outcome, ClaimOutcome::StepMissing);
    /// # });
    /// ```
    fn claim_step(
        &self,
        key: InstanceKey,
        step_key: String,
        payload: StepRecord,
        now_ms: u64,
    ) -> impl Future<Output = Result<ClaimOutcome, EngineError>> + Send {
        let op = WriteOp::Claim {
            key,
            step_key,
            payload,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Claim(o) => Some(o),
            _ => None,
        })
    }

    /// **Finish** a running instance; see [`WriteOp::Finish`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Finish, FinishOutcome, InstanceKey, MemoryStore, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// let outcome = store.finish_instance(key, Finish::Failed("boom".into()), 0).await.unwrap();
    /// assert_eq!(outcome, FinishOutcome::NotRunning(None));
    /// # });
    /// ```
    fn finish_instance(
        &self,
        key: InstanceKey,
        finish: Finish,
        now_ms: u64,
    ) -> impl Future<Output = Result<FinishOutcome, EngineError>> + Send {
        let op = WriteOp::Finish {
            key,
            finish,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Finish(o) => Some(o),
            _ => None,
        })
    }

    /// **Revive** a finished instance before it runs again; see
    /// [`WriteOp::Revive`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, MemoryStore, ReviveOutcome, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// assert_eq!(store.revive_instance(key, 0).await.unwrap(), ReviveOutcome::InstanceMissing);
    /// # });
    /// ```
    fn revive_instance(
        &self,
        key: InstanceKey,
        now_ms: u64,
    ) -> impl Future<Output = Result<ReviveOutcome, EngineError>> + Send {
        transition(self, WriteOp::Revive { key, now_ms }, |o| match o {
            WriteOutcome::Revive(o) => Some(o),
            _ => None,
        })
    }

    /// **Cancel** an instance; see [`WriteOp::Cancel`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{CancelOutcome, InstanceKey, MemoryStore, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// assert_eq!(store.cancel_instance(key, 0).await.unwrap(), CancelOutcome::NotActive(None));
    /// # });
    /// ```
    fn cancel_instance(
        &self,
        key: InstanceKey,
        now_ms: u64,
    ) -> impl Future<Output = Result<CancelOutcome, EngineError>> + Send {
        transition(self, WriteOp::Cancel { key, now_ms }, |o| match o {
            WriteOutcome::Cancel(o) => Some(o),
            _ => None,
        })
    }

    /// **Delete** every record of an instance; returns whether it existed.
    /// See [`WriteOp::Delete`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, MemoryStore, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// assert!(!store.delete_instance(InstanceKey::new("etl", "1").unwrap()).await.unwrap());
    /// # });
    /// ```
    fn delete_instance(
        &self,
        key: InstanceKey,
    ) -> impl Future<Output = Result<bool, EngineError>> + Send {
        transition(self, WriteOp::Delete { key }, |o| match o {
            WriteOutcome::Delete(existed) => Some(existed),
            _ => None,
        })
    }

    /// **Wait** at a point, a timer or a group; see [`WriteOp::Wait`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, MemoryStore, StepKind, StepRecord, StepStoreExt, WaitOutcome};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// store.start_instance(key.clone(), StepRecord::completed(StepKind::Engine, "()", vec![], None), 0).await.unwrap();
    /// let point = StepRecord::suspended(StepKind::Suspend, "bool", None, None);
    /// let outcome = store.wait_at(key, "approval".into(), point, Vec::new(), 1).await.unwrap();
    /// assert_eq!(outcome, WaitOutcome::Waiting);
    /// # });
    /// ```
    fn wait_at(
        &self,
        key: InstanceKey,
        step_key: String,
        record: StepRecord,
        members: Vec<(String, StepRecord)>,
        now_ms: u64,
    ) -> impl Future<Output = Result<WaitOutcome, EngineError>> + Send {
        let op = WriteOp::Wait {
            key,
            step_key,
            record,
            members,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Wait(o) => Some(o),
            _ => None,
        })
    }

    /// **Park** an instance whose run waits; see [`WriteOp::Park`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, MemoryStore, ParkOutcome, StepKind, StepRecord, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// store.start_instance(key.clone(), StepRecord::completed(StepKind::Engine, "()", vec![], None), 0).await.unwrap();
    /// let point = StepRecord::suspended(StepKind::Suspend, "bool", None, None);
    /// store.wait_at(key.clone(), "approval".into(), point, Vec::new(), 1).await.unwrap();
    /// let parked = store.park(key, vec!["approval".into()], None, 2).await.unwrap();
    /// assert_eq!(parked, ParkOutcome::Parked);
    /// # });
    /// ```
    fn park(
        &self,
        key: InstanceKey,
        waiting: Vec<String>,
        status: Option<String>,
        now_ms: u64,
    ) -> impl Future<Output = Result<ParkOutcome, EngineError>> + Send {
        let op = WriteOp::Park {
            key,
            waiting,
            status,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Park(o) => Some(o),
            _ => None,
        })
    }

    /// **Signal** a point (delivered, or buffered until the workflow gets
    /// there); see [`WriteOp::Signal`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, MemoryStore, SignalOutcome, StepKind, StepRecord, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// store.start_instance(key.clone(), StepRecord::completed(StepKind::Engine, "()", vec![], None), 0).await.unwrap();
    /// let yes = StepRecord::completed(StepKind::Suspend, "bool", b"true".to_vec(), None);
    /// let outcome = store.deliver_signal(key, "approval".into(), yes, 1).await.unwrap();
    /// assert_eq!(outcome, SignalOutcome::Buffered);
    /// # });
    /// ```
    fn deliver_signal(
        &self,
        key: InstanceKey,
        step_key: String,
        payload: StepRecord,
        now_ms: u64,
    ) -> impl Future<Output = Result<SignalOutcome, EngineError>> + Send {
        let op = WriteOp::Signal {
            key,
            step_key,
            payload,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Signal(o) => Some(o),
            _ => None,
        })
    }

    /// **Fire** a due timer row; see [`WriteOp::Fire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{FireOutcome, InstanceKey, MemoryStore, StepKind, StepRecord, StepStoreExt, TimerEntry};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let timer = TimerEntry { deadline_ms: 5, instance: InstanceKey::new("etl", "1").unwrap(), step_key: "nap".into() };
    /// let payload = StepRecord::completed(StepKind::Timer, "()", b"null".to_vec(), None);
    /// assert_eq!(store.fire_timer(timer, payload, 5).await.unwrap(), FireOutcome::Stale);
    /// # });
    /// ```
    fn fire_timer(
        &self,
        timer: TimerEntry,
        payload: StepRecord,
        now_ms: u64,
    ) -> impl Future<Output = Result<FireOutcome, EngineError>> + Send {
        let op = WriteOp::Fire {
            timer,
            payload,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Fire(o) => Some(o),
            _ => None,
        })
    }

    /// **Acquire** an instance for `worker`'s run; see [`WriteOp::Acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{AcquireOutcome, InstanceKey, MemoryStore, StepKind, StepRecord, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// store.start_instance(key.clone(), StepRecord::completed(StepKind::Engine, "()", vec![], None), 0).await.unwrap();
    /// assert_eq!(store.acquire(key.clone(), "w1".into(), 1).await.unwrap(), AcquireOutcome::Acquired { epoch: 1 });
    /// assert_eq!(store.acquire(key, "w1".into(), 2).await.unwrap(), AcquireOutcome::Acquired { epoch: 2 });
    /// # });
    /// ```
    fn acquire(
        &self,
        key: InstanceKey,
        worker: String,
        now_ms: u64,
    ) -> impl Future<Output = Result<AcquireOutcome, EngineError>> + Send {
        let op = WriteOp::Acquire {
            key,
            worker,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Acquire(o) => Some(o),
            _ => None,
        })
    }

    /// **Start a child** workflow from a parent's run; see
    /// [`WriteOp::StartChild`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{ChildStartOutcome, InstanceKey, MemoryStore, StepKind, StepRecord, StepStore, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let parent = InstanceKey::new("order", "1").unwrap();
    /// let unit = StepRecord::completed(StepKind::Engine, "()", b"null".to_vec(), None);
    /// store.start_instance(parent.clone(), unit.clone(), 0).await.unwrap();
    /// let child = InstanceKey::new("pay", "order:1:pay").unwrap();
    /// let point = StepRecord::suspended(StepKind::Child, "u32", None, None);
    /// let outcome = store.start_child(parent, "pay".into(), child.clone(), unit, Some(point), 1).await.unwrap();
    /// assert_eq!(outcome, ChildStartOutcome::Started);
    /// assert!(store.get_metadata(&child).await.unwrap().is_some());
    /// # });
    /// ```
    fn start_child(
        &self,
        parent: InstanceKey,
        step_key: String,
        child: InstanceKey,
        input: StepRecord,
        point: Option<StepRecord>,
        now_ms: u64,
    ) -> impl Future<Output = Result<ChildStartOutcome, EngineError>> + Send {
        let op = WriteOp::StartChild {
            parent,
            step_key,
            child,
            input,
            point,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::StartChild(o) => Some(o),
            _ => None,
        })
    }

    /// **Enqueue** an instance in a queue; see [`WriteOp::Enqueue`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EnqueueOutcome, InstanceKey, MemoryStore, QueueTicket, StepKind, StepRecord, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("email", "1").unwrap();
    /// let input = StepRecord::completed(StepKind::Engine, "()", b"null".to_vec(), None);
    /// let ticket = QueueTicket::new("emails");
    /// assert_eq!(store.enqueue(key, input, ticket, 0).await.unwrap(), EnqueueOutcome::Enqueued);
    /// # });
    /// ```
    fn enqueue(
        &self,
        key: InstanceKey,
        input: StepRecord,
        ticket: QueueTicket,
        now_ms: u64,
    ) -> impl Future<Output = Result<EnqueueOutcome, EngineError>> + Send {
        let op = WriteOp::Enqueue {
            key,
            input,
            ticket,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Enqueue(o) => Some(o),
            _ => None,
        })
    }

    /// **Admit** pending instances of queue `queue`; see [`WriteOp::Admit`].
    /// `queue` is the queue's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, MemoryStore, QueueLimits, QueueTicket, StepKind, StepRecord, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let input = StepRecord::completed(StepKind::Engine, "()", b"null".to_vec(), None);
    /// for id in ["1", "2"] {
    ///     let key = InstanceKey::new("email", id).unwrap();
    ///     store.enqueue(key, input.clone(), QueueTicket::new("emails"), 0).await.unwrap();
    /// }
    /// let limits = QueueLimits { concurrency: Some(1), ..QueueLimits::default() };
    /// let outcome = store.admit("emails", limits, None, None, 10, 1).await.unwrap();
    /// assert_eq!((outcome.admitted.len(), outcome.pending), (1, 1));
    /// # });
    /// ```
    fn admit(
        &self,
        queue: &str,
        limits: QueueLimits,
        workflows: Option<Vec<String>>,
        worker: Option<String>,
        max: usize,
        now_ms: u64,
    ) -> impl Future<Output = Result<AdmitOutcome, EngineError>> + Send {
        let op = queue_instance(queue).map(|queue| WriteOp::Admit {
            queue,
            limits,
            workflows,
            worker,
            max: u64::try_from(max).unwrap_or(u64::MAX),
            now_ms,
        });
        async move {
            transition(self, op?, |o| match o {
                WriteOutcome::Admit(o) => Some(o),
                _ => None,
            })
            .await
        }
    }

    /// **Release** an instance's ownership; see [`WriteOp::Release`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, MemoryStore, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// assert!(!store.release(InstanceKey::new("etl", "1").unwrap()).await.unwrap());
    /// # });
    /// ```
    fn release(&self, key: InstanceKey) -> impl Future<Output = Result<bool, EngineError>> + Send {
        transition(self, WriteOp::Release { key }, |o| match o {
            WriteOutcome::Release(o) => Some(o),
            _ => None,
        })
    }

    /// **Forget** chosen step results of an instance that is not running;
    /// see [`WriteOp::Forget`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{ForgetOutcome, InstanceKey, MemoryStore, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// let outcome = store.forget_steps(key, vec!["fetch".into()], 0).await.unwrap();
    /// assert_eq!(outcome, ForgetOutcome::InstanceMissing);
    /// # });
    /// ```
    fn forget_steps(
        &self,
        key: InstanceKey,
        steps: Vec<String>,
        now_ms: u64,
    ) -> impl Future<Output = Result<ForgetOutcome, EngineError>> + Send {
        let op = WriteOp::Forget { key, steps, now_ms };
        transition(self, op, |o| match o {
            WriteOutcome::Forget(o) => Some(o),
            _ => None,
        })
    }

    /// **Resume** an instance for an operator: revive it and give its dead
    /// letters a fresh retry budget; see [`WriteOp::Resume`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, MemoryStore, ReviveOutcome, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// assert_eq!(store.resume_instance(key, 0).await.unwrap(), ReviveOutcome::InstanceMissing);
    /// # });
    /// ```
    fn resume_instance(
        &self,
        key: InstanceKey,
        now_ms: u64,
    ) -> impl Future<Output = Result<ReviveOutcome, EngineError>> + Send {
        transition(self, WriteOp::Resume { key, now_ms }, |o| match o {
            WriteOutcome::Resume(o) => Some(o),
            _ => None,
        })
    }

    /// **Delete an instance that ended before `ended_before`** (what
    /// retention calls); see [`WriteOp::DeleteEnded`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, MemoryStore, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// assert!(!store.delete_ended(key, 1_000).await.unwrap());
    /// # });
    /// ```
    fn delete_ended(
        &self,
        key: InstanceKey,
        ended_before: u64,
    ) -> impl Future<Output = Result<bool, EngineError>> + Send {
        transition(
            self,
            WriteOp::DeleteEnded { key, ended_before },
            |o| match o {
                WriteOutcome::DeleteEnded(o) => Some(o),
                _ => None,
            },
        )
    }

    /// **Fork** an instance to a new id without chosen steps; see
    /// [`WriteOp::Fork`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{ForkOutcome, InstanceKey, MemoryStore, StepStoreExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let from = InstanceKey::new("etl", "1").unwrap();
    /// let to = InstanceKey::new("etl", "1-retry").unwrap();
    /// let outcome = store.fork_instance(from, to, vec![], 0).await.unwrap();
    /// assert_eq!(outcome, ForkOutcome::SourceMissing);
    /// # });
    /// ```
    fn fork_instance(
        &self,
        from: InstanceKey,
        to: InstanceKey,
        without: Vec<String>,
        now_ms: u64,
    ) -> impl Future<Output = Result<ForkOutcome, EngineError>> + Send {
        let op = WriteOp::Fork {
            from,
            to,
            without,
            now_ms,
        };
        transition(self, op, |o| match o {
            WriteOutcome::Fork(o) => Some(o),
            _ => None,
        })
    }
}

impl<S: StepStore + ?Sized> StepStoreExt for S {}

/// Writes `op` and unpacks its answer with `pick`, which returns `None`
/// for an outcome of another op: the one place a wrong answer becomes an
/// error.
async fn transition<S, T>(
    store: &S,
    op: WriteOp,
    pick: fn(WriteOutcome) -> Option<T>,
) -> Result<T, EngineError>
where
    S: StepStore + ?Sized,
{
    let operation = op.name();
    let outcome = store.write(op).await?;
    let answered = outcome.name();
    pick(outcome).ok_or_else(|| {
        tracing::error!(
            store = store.name(),
            operation,
            answered,
            "store answered a write with the outcome of another op"
        );
        StorageError::new(
            StorageErrorKind::Other,
            operation,
            format!("the store answered {operation} with a {answered} outcome"),
        )
        .into()
    })
}
