//! [`FaultyStore`]: a wrapper that makes chosen store operations fail or
//! slow down, deterministically from a seed.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use memable_core::{
    EngineError, InstanceFilter, InstanceKey, InstanceSnapshot, StepRecord, StepStore,
    StorageError, StorageErrorKind, TimerEntry, WorkflowMetadata, WriteOp, WriteOutcome,
};

/// One store operation — a write transition (a [`WriteOp`] kind) or a
/// [`StepStore`] read — for fault rules and call counters.
///
/// # Examples
///
/// ```
/// use memable_testkit::StoreOp;
/// assert_eq!(StoreOp::CommitStep.name(), "commit_step");
/// assert!(StoreOp::CommitStep.is_write());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreOp {
    /// `start_instance`.
    StartInstance,
    /// `commit_step`.
    CommitStep,
    /// `suspend_step`.
    SuspendStep,
    /// `claim_step`.
    ClaimStep,
    /// `finish_instance`.
    FinishInstance,
    /// `revive_instance`.
    ReviveInstance,
    /// `cancel_instance`.
    CancelInstance,
    /// `delete_instance`.
    DeleteInstance,
    /// `wait_at`.
    WaitAt,
    /// `park_instance`.
    ParkInstance,
    /// `deliver_signal`.
    DeliverSignal,
    /// `fire_timer`.
    FireTimer,
    /// `load_instance`.
    LoadInstance,
    /// `get_step`.
    GetStep,
    /// `get_metadata`.
    GetMetadata,
    /// `list_instances`.
    ListInstances,
    /// `due_timers`.
    DueTimers,
    /// `next_timer_deadline`.
    NextTimerDeadline,
    /// `acquire_instance`.
    AcquireInstance,
    /// `release_instance`.
    ReleaseInstance,
    /// `start_child`.
    StartChild,
    /// `enqueue`.
    Enqueue,
    /// `admit`.
    Admit,
    /// `forget_steps`.
    ForgetSteps,
    /// `fork_instance`.
    ForkInstance,
    /// `resume_instance`.
    ResumeInstance,
    /// `delete_ended`.
    DeleteEnded,
}

impl StoreOp {
    /// Every operation, writes first.
    pub const ALL: [StoreOp; 27] = [
        Self::StartInstance,
        Self::CommitStep,
        Self::SuspendStep,
        Self::ClaimStep,
        Self::FinishInstance,
        Self::ReviveInstance,
        Self::CancelInstance,
        Self::DeleteInstance,
        Self::WaitAt,
        Self::ParkInstance,
        Self::DeliverSignal,
        Self::FireTimer,
        Self::LoadInstance,
        Self::GetStep,
        Self::GetMetadata,
        Self::ListInstances,
        Self::DueTimers,
        Self::NextTimerDeadline,
        Self::AcquireInstance,
        Self::ReleaseInstance,
        Self::StartChild,
        Self::Enqueue,
        Self::Admit,
        Self::ForgetSteps,
        Self::ForkInstance,
        Self::ResumeInstance,
        Self::DeleteEnded,
    ];

    /// The write transitions.
    pub const WRITES: [StoreOp; 21] = [
        Self::StartInstance,
        Self::CommitStep,
        Self::SuspendStep,
        Self::ClaimStep,
        Self::FinishInstance,
        Self::ReviveInstance,
        Self::CancelInstance,
        Self::DeleteInstance,
        Self::WaitAt,
        Self::ParkInstance,
        Self::DeliverSignal,
        Self::FireTimer,
        Self::AcquireInstance,
        Self::ReleaseInstance,
        Self::StartChild,
        Self::Enqueue,
        Self::Admit,
        Self::ForgetSteps,
        Self::ForkInstance,
        Self::ResumeInstance,
        Self::DeleteEnded,
    ];

    /// The method name, as used in storage errors.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_testkit::StoreOp::DueTimers.name(), "due_timers");
    /// ```
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::StartInstance => "start_instance",
            Self::CommitStep => "commit_step",
            Self::SuspendStep => "suspend_step",
            Self::ClaimStep => "claim_step",
            Self::FinishInstance => "finish_instance",
            Self::ReviveInstance => "revive_instance",
            Self::CancelInstance => "cancel_instance",
            Self::DeleteInstance => "delete_instance",
            Self::WaitAt => "wait_at",
            Self::ParkInstance => "park_instance",
            Self::DeliverSignal => "deliver_signal",
            Self::FireTimer => "fire_timer",
            Self::LoadInstance => "load_instance",
            Self::GetStep => "get_step",
            Self::GetMetadata => "get_metadata",
            Self::ListInstances => "list_instances",
            Self::DueTimers => "due_timers",
            Self::NextTimerDeadline => "next_timer_deadline",
            Self::AcquireInstance => "acquire_instance",
            Self::ReleaseInstance => "release_instance",
            Self::StartChild => "start_child",
            Self::Enqueue => "enqueue",
            Self::Admit => "admit",
            Self::ForgetSteps => "forget_steps",
            Self::ForkInstance => "fork_instance",
            Self::ResumeInstance => "resume_instance",
            Self::DeleteEnded => "delete_ended",
        }
    }

    /// The operation of a write transition (of the write a
    /// [`WriteOp::Fenced`] carries, for a fenced one).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, WriteOp};
    /// use memable_testkit::StoreOp;
    ///
    /// let op = WriteOp::Delete { key: InstanceKey::new("a", "1").unwrap() };
    /// assert_eq!(StoreOp::of(&op), StoreOp::DeleteInstance);
    /// ```
    #[must_use]
    pub fn of(op: &WriteOp) -> Self {
        match op {
            WriteOp::Start { .. } => Self::StartInstance,
            WriteOp::Commit { .. } => Self::CommitStep,
            WriteOp::Suspend { .. } => Self::SuspendStep,
            WriteOp::Claim { .. } => Self::ClaimStep,
            WriteOp::Finish { .. } => Self::FinishInstance,
            WriteOp::Revive { .. } => Self::ReviveInstance,
            WriteOp::Cancel { .. } => Self::CancelInstance,
            WriteOp::Delete { .. } => Self::DeleteInstance,
            WriteOp::Wait { .. } => Self::WaitAt,
            WriteOp::Park { .. } => Self::ParkInstance,
            WriteOp::Signal { .. } => Self::DeliverSignal,
            WriteOp::Fire { .. } => Self::FireTimer,
            WriteOp::Acquire { .. } => Self::AcquireInstance,
            WriteOp::Release { .. } => Self::ReleaseInstance,
            WriteOp::StartChild { .. } => Self::StartChild,
            WriteOp::Enqueue { .. } => Self::Enqueue,
            WriteOp::Admit { .. } => Self::Admit,
            WriteOp::Forget { .. } => Self::ForgetSteps,
            WriteOp::Fork { .. } => Self::ForkInstance,
            WriteOp::Resume { .. } => Self::ResumeInstance,
            WriteOp::DeleteEnded { .. } => Self::DeleteEnded,
            WriteOp::Fenced { op, .. } => Self::of(op),
        }
    }

    /// `true` for the write transitions.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!memable_testkit::StoreOp::GetStep.is_write());
    /// ```
    #[must_use]
    pub fn is_write(self) -> bool {
        Self::WRITES.contains(&self)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How an injected fault behaves.
///
/// # Examples
///
/// ```
/// use memable_testkit::FaultKind;
/// assert_ne!(FaultKind::Fail, FaultKind::AckLost);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The call fails **without reaching the inner store**: nothing is
    /// written, the caller gets a storage error of kind `Io` naming the op.
    /// This is the atomicity every backend guarantees (`Err` = no effect).
    Fail,
    /// The inner store runs the call and its write is durable, then the
    /// caller gets a storage error of kind `Io` naming the op,
    /// as when a commit succeeds but its acknowledgement is lost. Code that
    /// retries after an error must cope with the write having happened.
    AckLost,
}

#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// The Nth call (1-based) of the operation.
    Nth(u64),
    /// Every call from the Nth on.
    From(u64),
    /// Each call with this probability.
    Probability(f64),
}

#[derive(Clone, Debug)]
enum Effect {
    Fault(FaultKind),
    Delay(Duration),
}

#[derive(Clone, Debug)]
struct Rule {
    op: StoreOp,
    trigger: Trigger,
    effect: Effect,
}

/// Builds a [`FaultyStore`] from per-operation rules.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::MemoryStore;
/// use memable_testkit::{FaultyStore, StoreOp};
///
/// let store = FaultyStore::builder(MemoryStore::new())
///     .seed(7)
///     .fail_nth(StoreOp::CommitStep, 3)
///     .fail_with_probability(StoreOp::ClaimStep, 0.25)
///     .delay(StoreOp::LoadInstance, Duration::from_millis(5))
///     .build();
/// assert!(store.is_enabled());
/// ```
#[derive(Debug)]
pub struct FaultyStoreBuilder<S> {
    inner: S,
    seed: u64,
    rules: Vec<Rule>,
}

impl<S: StepStore> FaultyStoreBuilder<S> {
    /// Seeds the random source of probability rules (default 0).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_testkit::FaultyStore;
    /// let _ = FaultyStore::builder(memable_core::MemoryStore::new()).seed(42).build();
    /// ```
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn rule(mut self, op: StoreOp, trigger: Trigger, effect: Effect) -> Self {
        self.rules.push(Rule {
            op,
            trigger,
            effect,
        });
        self
    }

    /// Fails the `n`th call (1-based) of `op` before it reaches the store.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_testkit::{FaultyStore, StoreOp};
    /// let _ = FaultyStore::builder(memable_core::MemoryStore::new()).fail_nth(StoreOp::StartInstance, 1).build();
    /// ```
    #[must_use]
    pub fn fail_nth(self, op: StoreOp, n: u64) -> Self {
        self.rule(op, Trigger::Nth(n), Effect::Fault(FaultKind::Fail))
    }

    /// Fails every call of `op` from the `n`th (1-based) on.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_testkit::{FaultyStore, StoreOp};
    /// let _ = FaultyStore::builder(memable_core::MemoryStore::new()).fail_from(StoreOp::CommitStep, 1).build();
    /// ```
    #[must_use]
    pub fn fail_from(self, op: StoreOp, n: u64) -> Self {
        self.rule(op, Trigger::From(n), Effect::Fault(FaultKind::Fail))
    }

    /// Fails each call of `op` with probability `p` (drawn from the seed).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_testkit::{FaultyStore, StoreOp};
    /// let _ = FaultyStore::builder(memable_core::MemoryStore::new()).fail_with_probability(StoreOp::CommitStep, 0.1).build();
    /// ```
    #[must_use]
    pub fn fail_with_probability(self, op: StoreOp, p: f64) -> Self {
        self.rule(op, Trigger::Probability(p), Effect::Fault(FaultKind::Fail))
    }

    /// Lets the `n`th call of `op` reach the store, then reports an error
    /// (see [`FaultKind::AckLost`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_testkit::{FaultyStore, StoreOp};
    /// let _ = FaultyStore::builder(memable_core::MemoryStore::new()).ack_lost_nth(StoreOp::CommitStep, 2).build();
    /// ```
    #[must_use]
    pub fn ack_lost_nth(self, op: StoreOp, n: u64) -> Self {
        self.rule(op, Trigger::Nth(n), Effect::Fault(FaultKind::AckLost))
    }

    /// Like [`ack_lost_nth`](Self::ack_lost_nth), with probability `p` per call.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_testkit::{FaultyStore, StoreOp};
    /// let _ = FaultyStore::builder(memable_core::MemoryStore::new()).ack_lost_with_probability(StoreOp::ClaimStep, 0.5).build();
    /// ```
    #[must_use]
    pub fn ack_lost_with_probability(self, op: StoreOp, p: f64) -> Self {
        self.rule(
            op,
            Trigger::Probability(p),
            Effect::Fault(FaultKind::AckLost),
        )
    }

    /// Delays every call of `op` by `by` (tokio's timer, so paused test time
    /// applies) before it reaches the store.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use memable_testkit::{FaultyStore, StoreOp};
    /// let _ = FaultyStore::builder(memable_core::MemoryStore::new()).delay(StoreOp::GetStep, Duration::from_millis(1)).build();
    /// ```
    #[must_use]
    pub fn delay(self, op: StoreOp, by: Duration) -> Self {
        self.rule(op, Trigger::From(1), Effect::Delay(by))
    }

    /// Like [`delay`](Self::delay), applied to each call with probability `p`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use memable_testkit::{FaultyStore, StoreOp};
    /// let _ = FaultyStore::builder(memable_core::MemoryStore::new()).delay_with_probability(StoreOp::GetStep, 0.5, Duration::from_millis(1)).build();
    /// ```
    #[must_use]
    pub fn delay_with_probability(self, op: StoreOp, p: f64, by: Duration) -> Self {
        self.rule(op, Trigger::Probability(p), Effect::Delay(by))
    }

    /// The wrapped store, faults enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_core::StepStore;
    /// # use memable_testkit::FaultyStore;
    /// let store = FaultyStore::builder(memable_core::MemoryStore::new()).build();
    /// assert_eq!(store.inner().name(), "memory");
    /// ```
    #[must_use]
    pub fn build(self) -> FaultyStore<S> {
        FaultyStore {
            inner: self.inner,
            rules: self.rules,
            enabled: AtomicBool::new(true),
            state: Mutex::new(Counters {
                rng: fastrand::Rng::with_seed(self.seed),
                calls: [0; StoreOp::ALL.len()],
                injected: [0; StoreOp::ALL.len()],
            }),
        }
    }
}

#[derive(Debug)]
struct Counters {
    rng: fastrand::Rng,
    calls: [u64; StoreOp::ALL.len()],
    injected: [u64; StoreOp::ALL.len()],
}

/// A [`StepStore`] wrapper that fails or delays chosen operations, by call
/// count or by probability from a seed, so tests can check how code copes
/// with storage failures.
///
/// Two kinds of fault ([`FaultKind`]): [`Fail`](FaultKind::Fail) returns an
/// error without calling the inner store (nothing is written), and
/// [`AckLost`](FaultKind::AckLost) returns an error after the inner store
/// committed the write. Faults can be switched off and on at runtime with
/// [`set_enabled`](Self::set_enabled); calls are counted either way.
///
/// # Examples
///
/// ```
/// use memable_core::{InstanceKey, MemoryStore, StepKind, StepRecord, StepStore, StepStoreExt};
/// use memable_testkit::{FaultyStore, StoreOp};
///
/// # memable_testkit::__private::block_on(async {
/// let store = FaultyStore::builder(MemoryStore::new()).fail_nth(StoreOp::StartInstance, 1).build();
/// let key = InstanceKey::new("etl", "1").unwrap();
/// let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
/// assert!(store.start_instance(key.clone(), input.clone(), 0).await.unwrap_err().is_storage());
/// assert!(store.get_metadata(&key).await.unwrap().is_none()); // nothing written
/// assert!(store.start_instance(key, input, 0).await.is_ok()); // 2nd call passes
/// assert_eq!(store.calls(StoreOp::StartInstance), 2);
/// assert_eq!(store.injected(StoreOp::StartInstance), 1);
/// # });
/// ```
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    rules: Vec<Rule>,
    enabled: AtomicBool,
    state: Mutex<Counters>,
}

struct Decision {
    delay: Duration,
    fault: Option<FaultKind>,
}

impl<S: StepStore> FaultyStore<S> {
    /// Starts building a wrapper around `inner` with no rules.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_testkit::FaultyStore::builder(memable_core::MemoryStore::new()).build();
    /// # let _ = store;
    /// ```
    pub fn builder(inner: S) -> FaultyStoreBuilder<S> {
        FaultyStoreBuilder {
            inner,
            seed: 0,
            rules: Vec::new(),
        }
    }

    /// The wrapped store (calls on it bypass faults and counters).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::StepStore;
    /// let store = memable_testkit::FaultyStore::builder(memable_core::MemoryStore::new()).build();
    /// assert_eq!(store.inner().name(), "memory");
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Switches fault injection (faults and delays) on or off.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_testkit::FaultyStore::builder(memable_core::MemoryStore::new()).build();
    /// store.set_enabled(false);
    /// assert!(!store.is_enabled());
    /// ```
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
    }

    /// Whether faults are being injected.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_testkit::FaultyStore::builder(memable_core::MemoryStore::new()).build();
    /// assert!(store.is_enabled());
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    /// How many times `op` was called through the wrapper.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_testkit::{FaultyStore, StoreOp};
    /// let store = FaultyStore::builder(memable_core::MemoryStore::new()).build();
    /// assert_eq!(store.calls(StoreOp::GetStep), 0);
    /// ```
    pub fn calls(&self, op: StoreOp) -> u64 {
        self.counters().calls[op.index()]
    }

    /// How many faults were injected into `op` (both kinds).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_testkit::{FaultyStore, StoreOp};
    /// let store = FaultyStore::builder(memable_core::MemoryStore::new()).build();
    /// assert_eq!(store.injected(StoreOp::GetStep), 0);
    /// ```
    pub fn injected(&self, op: StoreOp) -> u64 {
        self.counters().injected[op.index()]
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        // Counters stay consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn decide(&self, op: StoreOp) -> Decision {
        let enabled = self.is_enabled();
        let mut state = self.counters();
        state.calls[op.index()] += 1;
        let call = state.calls[op.index()];
        let mut decision = Decision {
            delay: Duration::ZERO,
            fault: None,
        };
        if !enabled {
            return decision;
        }
        for rule in self.rules.iter().filter(|r| r.op == op) {
            let fires = match rule.trigger {
                Trigger::Nth(n) => call == n,
                Trigger::From(n) => call >= n,
                Trigger::Probability(p) => state.rng.f64() < p,
            };
            if !fires {
                continue;
            }
            match rule.effect {
                Effect::Delay(by) => decision.delay += by,
                Effect::Fault(kind) => {
                    if decision.fault.is_none() {
                        decision.fault = Some(kind);
                    }
                }
            }
        }
        if decision.fault.is_some() {
            state.injected[op.index()] += 1;
        }
        decision
    }

    async fn guarded<T, F, Fut>(&self, op: StoreOp, call: F) -> Result<T, EngineError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, EngineError>> + Send,
    {
        let decision = self.decide(op);
        if !decision.delay.is_zero() {
            tokio::time::sleep(decision.delay).await;
        }
        match decision.fault {
            Some(FaultKind::Fail) => {
                tracing::debug!(op = op.name(), "injected fault before the store");
                Err(StorageError::new(StorageErrorKind::Io, op.name(), "injected fault").into())
            }
            Some(FaultKind::AckLost) => {
                call().await?;
                tracing::debug!(op = op.name(), "injected fault after the store (ack lost)");
                Err(
                    StorageError::new(StorageErrorKind::Io, op.name(), "injected fault: ack lost")
                        .into(),
                )
            }
            None => call().await,
        }
    }
}

#[async_trait]
impl<S: StepStore> StepStore for FaultyStore<S> {
    fn engine_slot(&self) -> &memable_core::EngineSlot {
        self.inner.engine_slot()
    }

    fn workers(&self) -> Option<&dyn memable_core::Workers> {
        self.inner.workers()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// Each transition is ruled and counted as its own [`StoreOp`].
    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        self.guarded(StoreOp::of(&op), || self.inner.write(op))
            .await
    }

    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        self.guarded(StoreOp::LoadInstance, || self.inner.load_instance(key))
            .await
    }

    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.guarded(StoreOp::GetStep, || self.inner.get_step(key, step_key))
            .await
    }

    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.guarded(StoreOp::GetMetadata, || self.inner.get_metadata(key))
            .await
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        self.guarded(StoreOp::ListInstances, || self.inner.list_instances(filter))
            .await
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        self.guarded(StoreOp::DueTimers, || self.inner.due_timers(now_ms, limit))
            .await
    }

    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        self.guarded(StoreOp::NextTimerDeadline, || {
            self.inner.next_timer_deadline()
        })
        .await
    }
}
