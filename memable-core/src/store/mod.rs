//! The storage contract: [`StepStore`] (one write entry point, six reads, the engine slot),
//! the typed transitions on top of it ([`StepStoreExt`]), their outcomes,
//! and the in-memory reference store.
//!
//! # The contract
//!
//! Every write is one [`WriteOp`]: one of the atomic transitions of the
//! engine's state machine (start, commit, suspend, claim, finish, revive,
//! cancel, delete; [`transitions`] holds the rules of each, once, over any
//! backend's transaction). A store applies it in **one** transaction: either
//! all of its effects are durable when [`StepStore::write`] returns `Ok`, or
//! none are. Expected refusals (a lost compare-and-set, an instance that does
//! not exist) are `Ok` outcome values, never errors; `Err` means storage
//! failed and nothing was written (or, for a lost acknowledgement, the caller
//! cannot know: the engine treats every `Err` as "outcome unknown" and
//! recovers by re-reading).
//!
//! Ops carry their data by value so a backend can move them to a writer
//! thread and group-commit many concurrent calls into one transaction.
//! Timestamps come from the engine's clock inside the op; stores never read
//! a clock.
//!
//! Who calls what: the engine calls only the [`StepStoreExt`] methods and
//! the reads; a backend implements only [`StepStore`]. The typed methods
//! unpack the [`WriteOutcome`] in one place: a store that answers an op with
//! the wrong outcome variant gets a [`StorageError`](crate::StorageError) of
//! kind [`Other`](crate::StorageErrorKind::Other), never a panic.

mod ext;
mod family;
mod memory;
mod ownership;
mod queue;
mod repair;
mod slot;
pub mod transitions;

use async_trait::async_trait;

pub use ext::StepStoreExt;
pub(crate) use family::{CHILD_CANCELLED, child_step_of};
pub use family::{ChildLink, ParentLink, child_instance_id, child_link_key};
pub use memory::MemoryStore;
pub use ownership::{AcquireOutcome, Acquired, Ownership, StaleEpoch, Workers};
pub(crate) use queue::is_queued;
pub use queue::{
    AdmitOutcome, EnqueueOutcome, QUEUE_WORKFLOW, QueueLimits, QueueTicket, queue_admission_keys,
};
pub use repair::{ForgetOutcome, ForkOutcome};
pub use slot::{EngineLease, EngineSlot};

use crate::{
    EngineError, InstanceKey, MetadataStatus, StatusKind, StepKind, StepRecord, WorkflowMetadata,
    transitions::{WriteOp, WriteOutcome},
};

/// All step records of one instance plus its metadata, read in one
/// transaction.
///
/// # Examples
///
/// ```
/// use memable_core::{InstanceKey, InstanceSnapshot, WorkflowMetadata};
///
/// let key = InstanceKey::new("a", "1").unwrap();
/// let snap = InstanceSnapshot { metadata: WorkflowMetadata::running(&key, 0), steps: vec![] };
/// assert!(snap.step("fetch").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceSnapshot {
    /// The instance's metadata.
    pub metadata: WorkflowMetadata,
    /// Every step record of the instance (including `_input` / `_output`),
    /// sorted by key.
    pub steps: Vec<(String, StepRecord)>,
}

impl InstanceSnapshot {
    /// Looks up one step record by key.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, InstanceSnapshot, StepKind, StepRecord, WorkflowMetadata};
    ///
    /// let key = InstanceKey::new("a", "1").unwrap();
    /// let rec = StepRecord::completed(StepKind::Step, "()", vec![], None);
    /// let snap = InstanceSnapshot {
    ///     metadata: WorkflowMetadata::running(&key, 0),
    ///     steps: vec![("fetch".into(), rec.clone())],
    /// };
    /// assert_eq!(snap.step("fetch"), Some(&rec));
    /// ```
    #[must_use]
    pub fn step(&self, key: &str) -> Option<&StepRecord> {
        self.steps
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.steps[i].1)
    }
}

/// A pending timer: the suspended timer step it wakes.
///
/// Timers are ordered by `(deadline_ms, instance, step_key)`.
///
/// # Examples
///
/// ```
/// use memable_core::{InstanceKey, TimerEntry};
///
/// let t = TimerEntry { deadline_ms: 10, instance: InstanceKey::new("a", "1").unwrap(), step_key: "nap".into() };
/// assert_eq!(t.deadline_ms, 10);
/// ```
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TimerEntry {
    /// When the timer fires (ms since the Unix epoch).
    pub deadline_ms: u64,
    /// The instance it belongs to.
    pub instance: InstanceKey,
    /// The timer step's key.
    pub step_key: String,
}

/// Which instances [`StepStore::list_instances`] returns.
///
/// Results are ordered by `(workflow name, instance id)`; `after` and `limit`
/// page through them. Every condition set must hold; `limit` counts only
/// matching instances, so a page is full unless the listing ended. Times are
/// ms since the Unix epoch on the engine's clock (the stored
/// [`WorkflowMetadata`] timestamps); the age bounds are half-open:
/// `created_since(a).created_before(b)` is `a <= created_at_ms < b`.
///
/// # Examples
///
/// ```
/// use memable_core::{InstanceFilter, StatusKind};
///
/// let filter = InstanceFilter::new().workflow("etl").status(StatusKind::Running).limit(100);
/// assert_eq!(filter.workflow.as_deref(), Some("etl"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceFilter {
    /// Only instances of this workflow.
    pub workflow: Option<String>,
    /// Only instances in this status.
    pub status: Option<StatusKind>,
    /// Only instances ordered strictly after this key.
    pub after: Option<InstanceKey>,
    /// At most this many instances.
    pub limit: Option<usize>,
    /// Only instances created strictly before this time
    /// (`created_at_ms < t`).
    pub created_before: Option<u64>,
    /// Only instances created at or after this time (`created_at_ms >= t`).
    pub created_since: Option<u64>,
    /// Only instances that ended (reached a terminal status) strictly
    /// before this time (`completed_at_ms < t`); instances that have not
    /// ended never match.
    pub ended_before: Option<u64>,
}

impl InstanceFilter {
    /// A filter that matches every instance.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_core::InstanceFilter::new(), Default::default());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Only instances of workflow `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = memable_core::InstanceFilter::new().workflow("etl");
    /// assert_eq!(f.workflow.as_deref(), Some("etl"));
    /// ```
    #[must_use]
    pub fn workflow(mut self, name: impl Into<String>) -> Self {
        self.workflow = Some(name.into());
        self
    }

    /// Only instances whose status is `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceFilter, StatusKind};
    /// assert_eq!(InstanceFilter::new().status(StatusKind::Failed).status, Some(StatusKind::Failed));
    /// ```
    #[must_use]
    pub fn status(mut self, kind: StatusKind) -> Self {
        self.status = Some(kind);
        self
    }

    /// Only instances after `key` in `(workflow, instance)` order: pass the
    /// last key of the previous page.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceFilter, InstanceKey};
    /// let key = InstanceKey::new("etl", "41").unwrap();
    /// assert_eq!(InstanceFilter::new().after(key.clone()).after, Some(key));
    /// ```
    #[must_use]
    pub fn after(mut self, key: InstanceKey) -> Self {
        self.after = Some(key);
        self
    }

    /// At most `n` results.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_core::InstanceFilter::new().limit(5).limit, Some(5));
    /// ```
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Only instances created strictly before `at_ms` (ms since the Unix
    /// epoch).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceFilter, InstanceKey, WorkflowMetadata};
    /// let meta = WorkflowMetadata::running(&InstanceKey::new("etl", "1").unwrap(), 100);
    /// assert!(InstanceFilter::new().created_before(101).matches(&meta));
    /// assert!(!InstanceFilter::new().created_before(100).matches(&meta));
    /// ```
    #[must_use]
    pub fn created_before(mut self, at_ms: u64) -> Self {
        self.created_before = Some(at_ms);
        self
    }

    /// Only instances created at or after `at_ms` (ms since the Unix
    /// epoch).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceFilter, InstanceKey, WorkflowMetadata};
    /// let meta = WorkflowMetadata::running(&InstanceKey::new("etl", "1").unwrap(), 100);
    /// assert!(InstanceFilter::new().created_since(100).matches(&meta));
    /// assert!(!InstanceFilter::new().created_since(101).matches(&meta));
    /// ```
    #[must_use]
    pub fn created_since(mut self, at_ms: u64) -> Self {
        self.created_since = Some(at_ms);
        self
    }

    /// Only instances that ended (completed, failed or were cancelled)
    /// strictly before `at_ms` (ms since the Unix epoch). An instance that
    /// has not ended never matches. Retention lists with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceFilter, InstanceKey, WorkflowMetadata};
    /// let mut meta = WorkflowMetadata::running(&InstanceKey::new("etl", "1").unwrap(), 100);
    /// assert!(!InstanceFilter::new().ended_before(1_000).matches(&meta));
    /// meta.completed_at_ms = Some(500);
    /// assert!(InstanceFilter::new().ended_before(501).matches(&meta));
    /// assert!(!InstanceFilter::new().ended_before(500).matches(&meta));
    /// ```
    #[must_use]
    pub fn ended_before(mut self, at_ms: u64) -> Self {
        self.ended_before = Some(at_ms);
        self
    }

    /// Whether `meta` passes the workflow, status, age and `after`
    /// conditions (`limit` is applied by the caller).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceFilter, InstanceKey, StatusKind, WorkflowMetadata};
    /// let meta = WorkflowMetadata::running(&InstanceKey::new("etl", "1").unwrap(), 0);
    /// assert!(InstanceFilter::new().status(StatusKind::Running).matches(&meta));
    /// assert!(!InstanceFilter::new().workflow("other").matches(&meta));
    /// ```
    #[must_use]
    pub fn matches(&self, meta: &WorkflowMetadata) -> bool {
        self.workflow
            .as_deref()
            .is_none_or(|w| w == meta.workflow_name)
            && self.status.is_none_or(|s| s == meta.status.kind())
            && self.created_before.is_none_or(|t| meta.created_at_ms < t)
            && self.created_since.is_none_or(|t| meta.created_at_ms >= t)
            && self
                .ended_before
                .is_none_or(|t| meta.completed_at_ms.is_some_and(|end| end < t))
            && self.after.as_ref().is_none_or(|after| {
                (meta.workflow_name.as_str(), meta.instance_id.as_str())
                    > (after.workflow(), after.instance())
            })
    }
}

/// Outcome of [`StepStoreExt::start_instance`].
///
/// # Examples
///
/// ```
/// use memable_core::StartOutcome;
/// assert!(matches!(StartOutcome::Started, StartOutcome::Started));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// The instance was created.
    Started,
    /// An instance with this key already exists; nothing was written.
    Exists(WorkflowMetadata),
}

/// Outcome of [`StepStoreExt::start_child`].
///
/// # Examples
///
/// ```
/// use memable_core::ChildStartOutcome;
/// assert_ne!(ChildStartOutcome::Started, ChildStartOutcome::Exists { point: None });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildStartOutcome {
    /// The child instance was created, linked to the parent (and the
    /// parent's point written): it must run.
    Started,
    /// The parent had already started a child under this key, or an
    /// instance under the child's id existed and was adopted; `point` is
    /// the parent's point record now (`None` for a detached child). An
    /// adopted child that had already ended has completed the point.
    Exists {
        /// The parent's point for the child.
        point: Option<StepRecord>,
    },
    /// The parent is missing (`None`) or finished or cancelled; nothing was
    /// written.
    NotActive(Option<MetadataStatus>),
    /// The step key holds a record of another kind (the code changed a
    /// step, point or timer into a child); nothing was written.
    KeyInUse(StepKind),
    /// An instance exists under the child's id with another input (an
    /// earlier parent under this id, deleted, started it with other input);
    /// nothing was written.
    InputConflict,
}

/// Outcome of [`StepStoreExt::commit_step`].
///
/// # Examples
///
/// ```
/// use memable_core::CommitOutcome;
/// assert_ne!(CommitOutcome::Committed, CommitOutcome::InstanceMissing);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The record was written.
    Committed,
    /// A `Completed` or `Suspended` record already exists under this key; it
    /// was kept and is returned (first writer wins).
    Kept(StepRecord),
    /// The instance does not exist; nothing was written.
    InstanceMissing,
    /// The instance is cancelled: nothing commits into it any more.
    Cancelled,
}

/// Outcome of [`StepStoreExt::wait_at`]: a workflow reached a suspend point,
/// a durable timer or a group of either-or points.
///
/// # Examples
///
/// ```
/// use memable_core::WaitOutcome;
/// assert_eq!(WaitOutcome::Waiting, WaitOutcome::Waiting);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built once per wait and moved once
pub enum WaitOutcome {
    /// The point is registered (its record `Suspended`, its timer row
    /// written); the instance's status is unchanged until
    /// [`StepStoreExt::park`].
    Waiting,
    /// The point already has its value, returned; nothing else changed
    /// unless a buffered signal was consumed into it.
    Resolved {
        /// The point's completed record (for a group: the group's record,
        /// whose value names the winning member, or a timer record).
        record: StepRecord,
        /// For a group resolved by a signal: the winning member's key and
        /// completed record.
        winner: Option<(String, StepRecord)>,
    },
    /// The instance is missing (`None`) or finished or cancelled; nothing
    /// was written.
    NotActive(Option<MetadataStatus>),
}

/// Outcome of [`StepStoreExt::park`]: a run that waits ends.
///
/// # Examples
///
/// ```
/// use memable_core::ParkOutcome;
/// assert_ne!(ParkOutcome::Parked, ParkOutcome::Woken);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParkOutcome {
    /// The instance is `Suspended` at the first waited key.
    Parked,
    /// One of the waited points was resolved meanwhile: the instance stays
    /// `Running` and must run again. Nothing was written.
    Woken,
    /// The instance is missing (`None`) or finished or cancelled; nothing
    /// was written.
    NotActive(Option<MetadataStatus>),
}

/// Outcome of [`StepStoreExt::deliver_signal`].
///
/// # Examples
///
/// ```
/// use memable_core::SignalOutcome;
/// assert_ne!(SignalOutcome::Delivered, SignalOutcome::Buffered);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignalOutcome {
    /// The waiting point is completed with the payload and the instance is
    /// `Running` (it must run).
    Delivered,
    /// The workflow has not reached the point yet: the payload is stored
    /// with the instance and consumed when it gets there.
    Buffered,
    /// The point already has its value, or a signal for it is already
    /// buffered; nothing was written.
    Superseded,
    /// The point waits for a value of another type (its tag is returned);
    /// nothing was written.
    WrongType(String),
    /// The key belongs to something a signal cannot resolve (a durable
    /// timer, a regular step, a group's own key); its kind is returned.
    NotAPoint(StepKind),
    /// No such instance.
    InstanceMissing,
    /// The instance is finished or cancelled; its status is returned.
    Finished(MetadataStatus),
}

/// Outcome of [`StepStoreExt::fire_timer`].
///
/// # Examples
///
/// ```
/// use memable_core::FireOutcome;
/// assert_ne!(FireOutcome::Fired, FireOutcome::Stale);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FireOutcome {
    /// The timer's point is completed by the timer and the instance is
    /// `Running` (it must run); the timer row is gone.
    Fired,
    /// The row no longer matches a waiting point of an active instance (a
    /// signal won, the instance finished, the deadline moved): the row was
    /// removed and nothing else changed.
    Stale,
}

/// Outcome of [`StepStoreExt::suspend_step`].
///
/// # Examples
///
/// ```
/// use memable_core::SuspendOutcome;
/// assert_eq!(SuspendOutcome::Suspended, SuspendOutcome::Suspended);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SuspendOutcome {
    /// The step is suspended and the instance is `Suspended` at this key.
    Suspended,
    /// The step already has a `Completed` record (for example a signal won
    /// the race); it is returned and nothing was written.
    AlreadyCompleted(StepRecord),
    /// The instance is missing (`None`) or not `Running`/`Suspended`;
    /// nothing was written.
    NotActive(Option<MetadataStatus>),
}

/// Outcome of [`StepStoreExt::claim_step`], the compare-and-set that delivers a
/// signal or fires a timer.
///
/// # Examples
///
/// ```
/// use memable_core::ClaimOutcome;
/// assert_ne!(ClaimOutcome::Claimed, ClaimOutcome::StepMissing);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This caller won: the step is `Completed` with the payload, the
    /// instance is `Running`, the step's timer row is gone.
    Claimed,
    /// No record under this key (or no such instance).
    StepMissing,
    /// The record exists but is not `Suspended`; it is returned.
    StepNotSuspended(StepRecord),
    /// The step is suspended but the instance is not `Suspended` (it is
    /// running, finished or cancelled); its status is returned.
    InstanceNotSuspended(MetadataStatus),
}

/// How an instance finishes, for [`StepStoreExt::finish_instance`].
///
/// # Examples
///
/// ```
/// use memable_core::Finish;
/// let f = Finish::Failed("boom".into());
/// assert!(matches!(f, Finish::Failed(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Finish {
    /// Completed with the last status message and the `_output` record.
    Completed {
        /// The last status message.
        status: Option<String>,
        /// The output record, stored under `_output`.
        output: StepRecord,
    },
    /// Failed with an error message.
    Failed(String),
}

/// Outcome of [`StepStoreExt::finish_instance`].
///
/// # Examples
///
/// ```
/// use memable_core::FinishOutcome;
/// assert_eq!(FinishOutcome::Finished, FinishOutcome::Finished);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishOutcome {
    /// The terminal status (and output) was written.
    Finished,
    /// The instance is missing (`None`) or not `Running` (for example it was
    /// cancelled); nothing was written.
    NotRunning(Option<MetadataStatus>),
}

/// Outcome of [`StepStoreExt::revive_instance`].
///
/// # Examples
///
/// ```
/// use memable_core::{MetadataStatus, ReviveOutcome};
/// let o = ReviveOutcome::Revived(MetadataStatus::Running);
/// assert!(matches!(o, ReviveOutcome::Revived(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviveOutcome {
    /// The instance may run; its status before the call is returned.
    Revived(MetadataStatus),
    /// The instance is cancelled; nothing was written.
    Cancelled,
    /// No such instance.
    InstanceMissing,
}

/// Outcome of [`StepStoreExt::cancel_instance`].
///
/// # Examples
///
/// ```
/// use memable_core::CancelOutcome;
/// assert_eq!(CancelOutcome::Cancelled, CancelOutcome::Cancelled);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The instance is now `Cancelled` and its timers are gone.
    Cancelled,
    /// The instance is missing (`None`) or already terminal; nothing was
    /// written.
    NotActive(Option<MetadataStatus>),
}

/// The storage contract: one write entry point, six reads and the engine slot.
///
/// A store implements [`name`](Self::name), [`write`](Self::write) and the
/// reads; the typed transitions the engine calls (`start_instance`,
/// `commit_step`, …) come from [`StepStoreExt`], implemented for every
/// store on top of `write`. The conformance suite (`memable-testkit`)
/// checks an implementation against every rule below.
///
/// # Examples
///
/// A store that delegates to a [`MemoryStore`], counting writes:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use memable_core::{
///     EngineError, InstanceFilter, InstanceKey, InstanceSnapshot, MemoryStore, StepRecord, StepStore,
///     StepStoreExt, TimerEntry, WorkflowMetadata, WriteOp, WriteOutcome,
/// };
///
/// #[derive(Default)]
/// struct Counting { inner: MemoryStore, writes: AtomicU64 }
///
/// #[async_trait::async_trait]
/// impl StepStore for Counting {
///     fn name(&self) -> &'static str { "counting" }
///     async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
///         self.writes.fetch_add(1, Ordering::Relaxed);
///         self.inner.write(op).await
///     }
///     async fn load_instance(&self, key: &InstanceKey) -> Result<Option<InstanceSnapshot>, EngineError> { self.inner.load_instance(key).await }
///     async fn get_step(&self, key: &InstanceKey, step: &str) -> Result<Option<StepRecord>, EngineError> { self.inner.get_step(key, step).await }
///     async fn get_metadata(&self, key: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError> { self.inner.get_metadata(key).await }
///     async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<WorkflowMetadata>, EngineError> { self.inner.list_instances(filter).await }
///     async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> { self.inner.due_timers(now_ms, limit).await }
///     async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> { self.inner.next_timer_deadline().await }
///     fn engine_slot(&self) -> &memable_core::EngineSlot { self.inner.engine_slot() }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = Counting::default();
/// store.delete_instance(InstanceKey::new("etl", "1").unwrap()).await.unwrap();
/// assert_eq!(store.writes.load(Ordering::Relaxed), 1);
/// # });
/// ```
#[async_trait]
pub trait StepStore: Send + Sync + 'static {
    /// A short name for logs and benchmarks (`"memory"`, `"redb"`, `"sqlite"`).
    fn name(&self) -> &'static str;

    /// Applies one write transition (see [`WriteOp`] for the rules of each)
    /// in **one** store transaction: when it returns `Ok`, all of its
    /// effects are durable; when it returns `Err`, none are. Expected
    /// refusals (a lost compare-and-set, a missing instance) are `Ok`
    /// outcomes, never errors. The outcome must be the variant of
    /// [`WriteOutcome`] that answers `op` ([`WriteOutcome::Start`] for
    /// [`WriteOp::Start`], …); [`transitions::apply`] produces exactly that.
    ///
    /// The op is taken by value so a backend can move it to a writer thread
    /// and group-commit many concurrent calls into one transaction.
    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError>;

    /// Reads the metadata and every step record of one instance in one read
    /// transaction; `None` if the instance does not exist. Never returns
    /// records of another instance.
    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError>;

    /// Reads one step record.
    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError>;

    /// Reads one instance's metadata.
    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError>;

    /// Lists instance metadata matching `filter`, ordered by
    /// `(workflow name, instance id)`. Filtering by status must not scan
    /// instances of other statuses (keep an index).
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError>;

    /// Timers with `deadline_ms <= now_ms`, earliest first, at most `limit`.
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError>;

    /// The earliest timer deadline, if any timer is pending.
    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError>;

    /// The slot this handle and its clones share, so only one engine runs
    /// on them at a time (see [`EngineSlot`]). A wrapper store returns the
    /// slot of the store it wraps.
    fn engine_slot(&self) -> &EngineSlot;

    /// The workers of a store that many engines (in many processes) share;
    /// `None` (the default) for a store that serves one engine. With
    /// `Some`, the engine fences every write of a run by the epoch it
    /// acquired, heartbeats its worker row and takes runnable work from
    /// [`Workers::acquire_runnable`] (see [`Ownership`]). A wrapper store
    /// returns the workers of the store it wraps.
    fn workers(&self) -> Option<&dyn Workers> {
        None
    }
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<S: StepStore + ?Sized> StepStore for $ty {
            fn name(&self) -> &'static str {
                (**self).name()
            }
            async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
                (**self).write(op).await
            }
            async fn load_instance(&self, key: &InstanceKey) -> Result<Option<InstanceSnapshot>, EngineError> {
                (**self).load_instance(key).await
            }
            async fn get_step(&self, key: &InstanceKey, step_key: &str) -> Result<Option<StepRecord>, EngineError> {
                (**self).get_step(key, step_key).await
            }
            async fn get_metadata(&self, key: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError> {
                (**self).get_metadata(key).await
            }
            async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<WorkflowMetadata>, EngineError> {
                (**self).list_instances(filter).await
            }
            async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
                (**self).due_timers(now_ms, limit).await
            }
            async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
                (**self).next_timer_deadline().await
            }
            fn engine_slot(&self) -> &EngineSlot {
                (**self).engine_slot()
            }
            fn workers(&self) -> Option<&dyn Workers> {
                (**self).workers()
            }
        }
    )*};
}

// `Arc<dyn StepStore>` and `Box<dyn StepStore>` are stores too.
forward_store!(std::sync::Arc<S>, Box<S>);
