//! [`Context`]: what a workflow uses to run steps, suspend, sleep and report
//! status.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::Inner;
use crate::engine::live::LiveInstance;
use crate::key::INPUT_KEY;
use crate::memo::{Entered, Memo};
use crate::{
    CommitOutcome, EngineError, InstanceKey, InstanceSnapshot, MetadataStatus, RetryPolicy,
    ReviveOutcome, StepError, StepKind, StepRecord, StepState, SuspendOutcome, WorkflowState,
    decode_value, encode_value, type_tag, validate_user_key,
};

/// The handle a workflow receives: runs [`step`](Context::step)s, suspends
/// at [`SuspendPoint`]s, sleeps on durable [`timer`](Context::timer)s, reads
/// its [`input`](Context::input) and reports [`set_status`](Context::set_status).
///
/// Methods take `&self`, so a workflow may run several steps at once
/// (`tokio::join!`): results are found by key, so parallel steps recover
/// correctly whatever order they finished in. Cloning is cheap.
///
/// # Keys
///
/// A step key names a result. Within one run, a key used twice returns the
/// first result (and logs a warning, or fails with
/// [`KeyReused`](EngineError::KeyReused) under
/// [`strict_keys`](crate::EngineBuilder::strict_keys)): loops need distinct
/// keys, such as `format!("item:{i}")`. Changing a key (`"fetch:v1"` →
/// `"fetch:v2"`) makes the step run again.
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, StepError};
///
/// async fn etl(ctx: Context) -> Result<usize, memable_core::EngineError> {
///     ctx.set_status("extracting");
///     let rows: Vec<u32> = ctx.step("extract").run(|| async { Ok::<_, StepError>(vec![1, 2, 3]) }).await?;
///     ctx.set_status("loading");
///     let mut loaded = 0;
///     for (i, row) in rows.iter().enumerate() {
///         loaded += ctx.step(format!("load:{i}")).run(|| async move { Ok::<_, StepError>(*row as usize) }).await?;
///     }
///     Ok(loaded)
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// engine.register("etl", etl)?;
/// engine.start().await?;
/// assert_eq!(engine.invoke("etl").await?.wait_output::<usize>().await?, 6);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Context {
    run: Arc<RunState>,
}

struct RunState {
    inner: Arc<Inner>,
    key: InstanceKey,
    entry: Arc<LiveInstance>,
    steps: Memo,
    metadata_status: MetadataStatus,
    retry_dead_letters: bool,
    /// A resumed `Completed`/`Failed` instance is set `Running` only when the
    /// run reaches new work, so a replay that changes nothing writes nothing.
    pending_revive: AtomicBool,
    live: AtomicBool,
    suspended: AtomicBool,
    status: Mutex<Option<String>>,
    /// Results (and dead letters) committed by this run, so a key reused in
    /// the same run returns the first result instead of running again.
    committed: Mutex<HashMap<String, StepRecord>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("instance", &self.run.key)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Context {
    pub(crate) fn new(
        inner: Arc<Inner>,
        key: InstanceKey,
        entry: Arc<LiveInstance>,
        snapshot: InstanceSnapshot,
        retry_dead_letters: bool,
    ) -> Self {
        Self {
            run: Arc::new(RunState {
                inner,
                key,
                entry,
                steps: Memo::new(snapshot.steps),
                pending_revive: AtomicBool::new(
                    retry_dead_letters && snapshot.metadata.status.is_terminal(),
                ),
                metadata_status: snapshot.metadata.status,
                retry_dead_letters,
                live: AtomicBool::new(false),
                suspended: AtomicBool::new(false),
                status: Mutex::new(None),
                committed: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The workflow's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("who", |ctx: Context| async move { Ok(format!("{}/{}", ctx.workflow_name(), ctx.instance_id())) })?;
    /// engine.start().await?;
    /// assert_eq!(engine.invoke("who").id("7").await?.wait_output::<String>().await?, "who/7");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn workflow_name(&self) -> &str {
        self.run.key.workflow()
    }

    /// The instance id.
    ///
    /// # Examples
    ///
    /// See [`workflow_name`](Self::workflow_name).
    #[must_use]
    pub fn instance_id(&self) -> &str {
        self.run.key.instance()
    }

    /// The instance's input, as given to `invoke(..).input(..)`.
    /// An instance started without input has input `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("square", |ctx: Context| async move { let n: i64 = ctx.input()?; Ok(n * n) })?;
    /// engine.start().await?;
    /// assert_eq!(engine.invoke("square").input(9i64).await?.wait_output::<i64>().await?, 81);
    /// // The wrong type is a TypeMismatch, which fails the workflow.
    /// let err = engine.invoke("square").input("nine").await?.wait_output::<i64>().await.unwrap_err();
    /// assert!(err.to_string().contains("type mismatch"));
    /// # Ok(()) }
    /// ```
    pub fn input<T: DeserializeOwned + 'static>(&self) -> Result<T, EngineError> {
        match self.run.steps.get(INPUT_KEY) {
            Some(record) => decode_value(INPUT_KEY, &record.type_tag, &record.value),
            None => Err(EngineError::TypeMismatch {
                key: INPUT_KEY.to_owned(),
                expected: type_tag::<T>().to_owned(),
                found: "no input record".to_owned(),
            }),
        }
    }

    /// Sets the status message observers see (`Invocation::status`,
    /// `Engine::subscribe`). While the run is replaying committed steps, the
    /// message is recorded silently; observers see the latest one when the
    /// run reaches new work, so replays do not flood them.
    ///
    /// # Examples
    ///
    /// See [`Context`].
    pub fn set_status(&self, message: impl Into<String>) {
        let message = message.into();
        *lock(&self.run.status) = Some(message.clone());
        if self.run.live.load(Ordering::Acquire) {
            self.run.entry.publish(WorkflowState::Running {
                status: Some(message),
            });
        }
    }

    /// Starts a step named `key`; see [`StepBuilder`].
    ///
    /// # Examples
    ///
    /// See [`Context`].
    pub fn step(&self, key: impl Into<String>) -> StepBuilder<'_> {
        StepBuilder {
            ctx: self,
            key: key.into(),
            retry: None,
            timeout: None,
        }
    }

    /// Suspends the workflow at `point` until [`Engine::signal`](crate::Engine::signal)
    /// delivers a value of type `T`, which this returns when the workflow
    /// runs again. Until then it returns [`EngineError::Suspended`]:
    /// propagate it with `?` so the run ends. To wait with a deadline, use
    /// [`SuspendBuilder::timeout`] (not `tokio::select!`: a suspension
    /// resolves at once, so racing two of them picks an arbitrary one).
    ///
    /// A run that suspended anywhere ends suspended, even if the workflow
    /// swallowed the error; it runs again when the suspension is resolved.
    ///
    /// # Examples
    ///
    /// See [`Engine::signal`](crate::Engine::signal).
    pub fn suspend<'a, T>(&'a self, point: &SuspendPoint<T>) -> SuspendBuilder<'a, T> {
        SuspendBuilder {
            ctx: self,
            key: point.key,
            status: None,
            _value: PhantomData,
        }
    }

    /// A durable timer: suspends the workflow until `duration` has passed
    /// (measured from the first time this key is reached, by the engine's
    /// clock), surviving restarts. Returns [`EngineError::Suspended`] until
    /// then; propagate it with `?`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, ManualClock, WorkflowState};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let clock = ManualClock::new(0);
    /// let engine = Engine::builder().clock(clock.clone()).build();
    /// engine.register("remind", |ctx: Context| async move {
    ///     ctx.timer("wait-a-day", Duration::from_secs(86_400)).await?;
    ///     Ok("reminded")
    /// })?;
    /// engine.start().await?;
    /// let run = engine.invoke("remind").id("r").await?;
    /// assert!(matches!(run.wait().await?, WorkflowState::Suspended { .. }));
    /// clock.advance(Duration::from_secs(86_400));
    /// let mut states = engine.subscribe("remind", "r").await.unwrap();
    /// while states.next().await.is_some() {}
    /// assert_eq!(engine.output::<String>("remind", "r").await?, "reminded");
    /// # Ok(()) }
    /// ```
    pub async fn timer(
        &self,
        key: impl Into<String>,
        duration: Duration,
    ) -> Result<(), EngineError> {
        let key = key.into();
        let deadline = match self.enter_step(&key)?.record {
            Some(record) if record.state == StepState::Completed => {
                return decode_value(&key, &record.type_tag, &record.value);
            }
            Some(record)
                if record.state == StepState::Suspended && record.deadline_ms.is_some() =>
            {
                record.deadline_ms.unwrap_or_default()
            }
            _ => {
                if duration.is_zero() {
                    return Ok(());
                }
                let wait = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
                self.run.inner.clock.now_ms().saturating_add(wait)
            }
        };
        let status = self.current_status();
        let record = StepRecord::suspended(
            StepKind::Timer,
            type_tag::<()>(),
            status.clone(),
            Some(deadline),
        );
        if let Some(completed) = self.suspend_at(&key, record, status).await? {
            return decode_value(&key, &completed.type_tag, &completed.value);
        }
        self.run.inner.timers.scheduled(deadline);
        Err(EngineError::Suspended { key })
    }

    /// Validates a user key, checks for cancellation and key reuse; returns
    /// whether the key is fresh in this run and its snapshot record.
    fn enter_step(&self, key: &str) -> Result<Entered<'_>, EngineError> {
        validate_user_key("step_key", key)?;
        self.check_cancelled()?;
        let entered = self.run.steps.enter(key);
        if !entered.fresh {
            if self.run.inner.strict_keys {
                return Err(EngineError::KeyReused {
                    key: key.to_owned(),
                });
            }
            tracing::warn!(instance = %self.run.key, step = key, "step key used twice in one run; returning the first result (use distinct keys in loops)");
        }
        Ok(entered)
    }

    fn check_cancelled(&self) -> Result<(), EngineError> {
        if self.run.entry.is_cancelled() {
            return Err(EngineError::Cancelled {
                workflow_name: self.run.key.workflow().to_owned(),
                instance_id: self.run.key.instance().to_owned(),
            });
        }
        Ok(())
    }

    /// The run reaches new work: revive a finished instance being resumed,
    /// then publish the running state once.
    async fn go_live(&self) -> Result<(), EngineError> {
        if self.run.live.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.revive_if_pending().await?;
        self.run.entry.publish(WorkflowState::Running {
            status: self.current_status(),
        });
        Ok(())
    }

    /// Sets a resumed `Completed`/`Failed` instance `Running` in the store,
    /// once, before the run writes anything else.
    pub(crate) async fn revive_if_pending(&self) -> Result<(), EngineError> {
        if !self.run.pending_revive.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let now = self.run.inner.clock.now_ms();
        match self
            .run
            .inner
            .store
            .revive_instance(self.run.key.clone(), now)
            .await?
        {
            ReviveOutcome::Revived(_) => Ok(()),
            ReviveOutcome::Cancelled => Err(EngineError::Cancelled {
                workflow_name: self.run.key.workflow().to_owned(),
                instance_id: self.run.key.instance().to_owned(),
            }),
            ReviveOutcome::InstanceMissing => Err(crate::engine::not_found(&self.run.key)),
        }
    }

    /// For a resumed finished instance that never reached new work: whether
    /// `outcome` is exactly what is already stored, so nothing needs writing.
    pub(crate) fn replay_changed_nothing(&self, outcome: &Result<StepRecord, EngineError>) -> bool {
        if !self.run.pending_revive.load(Ordering::Acquire) {
            return false;
        }
        match (&self.run.metadata_status, outcome) {
            (MetadataStatus::Completed(status), Ok(output)) => {
                *status == self.current_status()
                    && self
                        .run
                        .steps
                        .get(crate::key::OUTPUT_KEY)
                        .is_some_and(|stored| {
                            stored.type_tag == output.type_tag && stored.value == output.value
                        })
            }
            (MetadataStatus::Failed(message), Err(error)) => *message == error.to_string(),
            _ => false,
        }
    }

    /// The instance's persisted status when this run started.
    pub(crate) fn initial_status(&self) -> &MetadataStatus {
        &self.run.metadata_status
    }

    pub(crate) fn current_status(&self) -> Option<String> {
        lock(&self.run.status).clone()
    }

    pub(crate) fn is_suspended(&self) -> bool {
        self.run.suspended.load(Ordering::Acquire)
    }

    /// Writes a suspension; `Ok(Some(record))` if the step was completed in
    /// the meantime (a signal won the race), `Ok(None)` once suspended.
    async fn suspend_at(
        &self,
        key: &str,
        record: StepRecord,
        status: Option<String>,
    ) -> Result<Option<StepRecord>, EngineError> {
        let already_suspended_here = matches!(
            &self.run.metadata_status,
            MetadataStatus::Suspended { key: at, .. } if at == key
        ) && self
            .run
            .steps
            .get(key)
            .is_some_and(|r| r.state == StepState::Suspended);
        if !already_suspended_here {
            self.revive_if_pending().await?;
            let now = self.run.inner.clock.now_ms();
            match self
                .run
                .inner
                .store
                .suspend_step(
                    self.run.key.clone(),
                    key.to_owned(),
                    record,
                    status.clone(),
                    now,
                )
                .await?
            {
                SuspendOutcome::Suspended => {}
                SuspendOutcome::AlreadyCompleted(completed) => return Ok(Some(completed)),
                SuspendOutcome::NotActive(Some(MetadataStatus::Cancelled)) => {
                    return Err(EngineError::Cancelled {
                        workflow_name: self.run.key.workflow().to_owned(),
                        instance_id: self.run.key.instance().to_owned(),
                    });
                }
                SuspendOutcome::NotActive(Some(other)) => {
                    return Err(crate::engine::invalid_state(
                        "suspend",
                        &self.run.key,
                        &other,
                    ));
                }
                SuspendOutcome::NotActive(None) => {
                    return Err(crate::engine::not_found(&self.run.key));
                }
            }
        }
        self.run.suspended.store(true, Ordering::Release);
        self.run.live.store(true, Ordering::Release);
        self.run.entry.publish(WorkflowState::Suspended {
            key: key.to_owned(),
            status,
        });
        Ok(None)
    }

    /// The memoised outcome of step `key`, if it has one: a result committed
    /// earlier in this run (a reused key) or in the snapshot, a dead letter,
    /// or a conflict. Sets `attempts` from a recorded retry sequence.
    fn memoised<T: DeserializeOwned + 'static>(
        &self,
        key: &str,
        entered: &Entered<'_>,
        attempts: &mut u32,
    ) -> Option<Result<T, EngineError>> {
        // Only a key used before in this run can have a result of this run.
        let this_run = if entered.fresh {
            None
        } else {
            lock(&self.run.committed).get(key).cloned()
        };
        let record = this_run.as_ref().or(entered.record)?;
        let dead_letter = || {
            Err(EngineError::retries_exhausted(
                key,
                record.attempts,
                record.error.clone().unwrap_or_default(),
            ))
        };
        match record.state {
            StepState::Completed => Some(decode_value(key, &record.type_tag, &record.value)),
            StepState::Suspended => Some(Err(EngineError::SuspendedStepConflict {
                key: key.to_owned(),
            })),
            StepState::Retrying => {
                *attempts = record.attempts;
                None
            }
            // A dead letter written by this run is final for this run.
            StepState::Failed if this_run.is_some() || !self.run.retry_dead_letters => {
                Some(dead_letter())
            }
            StepState::Failed => None,
        }
    }

    async fn commit(&self, key: &str, record: StepRecord) -> Result<CommitOutcome, EngineError> {
        let remember = matches!(record.state, StepState::Completed | StepState::Failed)
            .then(|| record.clone());
        let outcome = self
            .run
            .inner
            .store
            .commit_step(self.run.key.clone(), key.to_owned(), record)
            .await?;
        if let (CommitOutcome::Committed, Some(record)) = (&outcome, remember) {
            lock(&self.run.committed).insert(key.to_owned(), record);
        }
        Ok(outcome)
    }
}

/// A typed suspend point: a step key and the type of value that resumes it.
/// Declare it once as a `static` or `const` and use it both in the workflow
/// (`ctx.suspend(&POINT)`) and to signal (`engine.signal(.., &POINT, value)`).
///
/// # Examples
///
/// ```
/// use memable_core::SuspendPoint;
///
/// static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval:v1");
/// assert_eq!(APPROVAL.key(), "approval:v1");
/// ```
pub struct SuspendPoint<T> {
    key: &'static str,
    _value: PhantomData<fn() -> T>,
}

impl<T> SuspendPoint<T> {
    /// A suspend point named `key`, resumed by a value of type `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// const REPLY: memable_core::SuspendPoint<String> = memable_core::SuspendPoint::new("reply");
    /// # let _ = REPLY;
    /// ```
    #[must_use]
    pub const fn new(key: &'static str) -> Self {
        Self {
            key,
            _value: PhantomData,
        }
    }

    /// The step key.
    ///
    /// # Examples
    ///
    /// See [`SuspendPoint`].
    #[must_use]
    pub const fn key(&self) -> &'static str {
        self.key
    }
}

impl<T> std::fmt::Debug for SuspendPoint<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SuspendPoint({:?}: {})",
            self.key,
            std::any::type_name::<T>()
        )
    }
}

impl<T> Clone for SuspendPoint<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SuspendPoint<T> {}

/// A pending suspension; await it. See [`Context::suspend`].
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, SuspendPoint, WorkflowState};
///
/// static REPLY: SuspendPoint<String> = SuspendPoint::new("reply");
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// engine.register("ask", |ctx: Context| async move {
///     ctx.suspend(&REPLY).status("waiting for a reply").await
/// })?;
/// engine.start().await?;
/// let state = engine.invoke("ask").id("q").await?.wait().await?;
/// assert_eq!(state, WorkflowState::Suspended { key: "reply".into(), status: Some("waiting for a reply".into()) });
/// # Ok(()) }
/// ```
#[must_use = "a suspension does nothing until it is awaited"]
pub struct SuspendBuilder<'a, T> {
    ctx: &'a Context,
    key: &'static str,
    status: Option<String>,
    _value: PhantomData<fn() -> T>,
}

impl<T> SuspendBuilder<'_, T> {
    /// The status message shown while suspended.
    ///
    /// # Examples
    ///
    /// See [`SuspendBuilder`].
    pub fn status(mut self, message: impl Into<String>) -> Self {
        self.status = Some(message.into());
        self
    }
}

impl<'a, T: DeserializeOwned + Send + 'static> SuspendBuilder<'a, T> {
    /// Waits at most `duration` (from the first time this point is reached,
    /// by the engine's clock, surviving restarts): resolves to `Some(value)`
    /// if a signal arrives first, `None` if the deadline passes first. The
    /// signal and the timer race through the same compare-and-set, so
    /// exactly one of them wins.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, ManualClock, SuspendPoint};
    ///
    /// static ANSWER: SuspendPoint<String> = SuspendPoint::new("answer");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let clock = ManualClock::new(0);
    /// let engine = Engine::builder().clock(clock.clone()).build();
    /// engine.register("ask", |ctx: Context| async move {
    ///     let answer = ctx.suspend(&ANSWER).timeout(Duration::from_secs(60)).await?;
    ///     Ok(answer.unwrap_or_else(|| "no answer".to_string()))
    /// })?;
    /// engine.start().await?;
    /// engine.invoke("ask").id("q").await?.wait().await?;
    /// let mut states = engine.subscribe("ask", "q").await?;
    /// clock.advance(Duration::from_secs(60));
    /// while states.next().await.is_some() {}
    /// assert_eq!(engine.output::<String>("ask", "q").await?, "no answer");
    /// # Ok(()) }
    /// ```
    pub fn timeout(self, duration: Duration) -> SuspendTimeout<'a, T> {
        SuspendTimeout {
            suspension: self,
            duration,
        }
    }

    /// `Some(value)` once signalled, `None` once timed out.
    async fn resolve(self, timeout: Option<Duration>) -> Result<Option<T>, EngineError> {
        let ctx = self.ctx;
        let key = self.key;
        let existing = ctx.enter_step(key)?.record;
        if let Some(record) = existing
            && record.state == StepState::Completed
        {
            return resolved(key, record);
        }
        let deadline = timeout.map(|duration| match existing {
            Some(record)
                if record.state == StepState::Suspended && record.deadline_ms.is_some() =>
            {
                record.deadline_ms.unwrap_or_default()
            }
            _ => ctx
                .run
                .inner
                .clock
                .now_ms()
                .saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
        });
        let status = self.status.or_else(|| ctx.current_status());
        let record =
            StepRecord::suspended(StepKind::Suspend, type_tag::<T>(), status.clone(), deadline);
        if let Some(completed) = ctx.suspend_at(key, record, status).await? {
            return resolved(key, &completed);
        }
        if let Some(deadline) = deadline {
            ctx.run.inner.timers.scheduled(deadline);
        }
        Err(EngineError::Suspended {
            key: key.to_owned(),
        })
    }
}

/// A completed suspend record: the signal's value, or `None` if its timer
/// claimed it.
fn resolved<T: DeserializeOwned + 'static>(
    key: &str,
    record: &StepRecord,
) -> Result<Option<T>, EngineError> {
    if record.kind == StepKind::Timer {
        return Ok(None);
    }
    decode_value(key, &record.type_tag, &record.value).map(Some)
}

impl<'a, T: DeserializeOwned + Send + 'static> IntoFuture for SuspendBuilder<'a, T> {
    type Output = Result<T, EngineError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        let key = self.key;
        Box::pin(async move {
            self.resolve(None)
                .await?
                .ok_or_else(|| EngineError::TypeMismatch {
                    key: key.to_owned(),
                    expected: type_tag::<T>().to_owned(),
                    found: "a timeout (this point was awaited with .timeout() before)".to_owned(),
                })
        })
    }
}

/// A suspension with a deadline; see [`SuspendBuilder::timeout`].
#[must_use = "a suspension does nothing until it is awaited"]
pub struct SuspendTimeout<'a, T> {
    suspension: SuspendBuilder<'a, T>,
    duration: Duration,
}

impl<'a, T: DeserializeOwned + Send + 'static> IntoFuture for SuspendTimeout<'a, T> {
    type Output = Result<Option<T>, EngineError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.suspension.resolve(Some(self.duration)))
    }
}

/// A step being configured; finish with [`run`](StepBuilder::run).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::{Context, Engine, RetryPolicy, StepError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// engine.register("fetch", |ctx: Context| async move {
///     ctx.step("fetch:v1")
///         .retry(RetryPolicy::fixed(3, Duration::from_millis(1)))
///         .timeout(Duration::from_secs(5))
///         .run(|| async { Ok::<_, StepError>("body".to_string()) })
///         .await
/// })?;
/// engine.start().await?;
/// assert_eq!(engine.invoke("fetch").await?.wait_output::<String>().await?, "body");
/// # Ok(()) }
/// ```
#[must_use = "a step does nothing until `run` is awaited"]
pub struct StepBuilder<'a> {
    ctx: &'a Context,
    key: String,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
}

impl StepBuilder<'_> {
    /// Retries retryable failures with `policy` instead of the engine default.
    ///
    /// # Examples
    ///
    /// See [`StepBuilder`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// One attempt only: a retryable failure is dead-lettered at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError, StepError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("flaky", |ctx: Context| async move {
    ///     ctx.step("call").no_retry().run(|| async { Err::<(), _>(StepError::retryable("503")) }).await
    /// })?;
    /// engine.start().await?;
    /// let err = engine.invoke("flaky").await?.wait_output::<()>().await.unwrap_err();
    /// assert!(err.to_string().contains("after 1 attempts"));
    /// # Ok(()) }
    /// ```
    pub fn no_retry(self) -> Self {
        self.retry(RetryPolicy::none())
    }

    /// Bounds each attempt to `duration`. An attempt that takes longer fails
    /// the step with [`StepTimeout`](EngineError::StepTimeout) — not
    /// retried, nothing persisted, since whether its side effect happened is
    /// unknown; the workflow decides what to do.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, EngineError, StepError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("slow", |ctx: Context| async move {
    ///     let r = ctx.step("slow").timeout(Duration::from_millis(10))
    ///         .run(|| async { std::future::pending::<Result<(), StepError>>().await }).await;
    ///     Ok(matches!(r, Err(EngineError::StepTimeout { .. })))
    /// })?;
    /// engine.start().await?;
    /// assert!(engine.invoke("slow").await?.wait_output::<bool>().await?);
    /// # Ok(()) }
    /// ```
    pub fn timeout(mut self, duration: Duration) -> Self {
        self.timeout = Some(duration);
        self
    }

    /// Runs the step: returns the committed result if there is one, else
    /// calls `attempt` (retrying per the policy), commits its result and
    /// returns it. The closure runs at least once; once its result is
    /// committed it never runs again for this instance.
    ///
    /// Errors: [`StepFailed`](EngineError::StepFailed) for a permanent
    /// failure, [`RetriesExhausted`](EngineError::RetriesExhausted) (and a
    /// dead-letter record) when retries run out,
    /// [`StepTimeout`](EngineError::StepTimeout),
    /// [`TypeMismatch`](EngineError::TypeMismatch) when the committed result
    /// has another type, [`SuspendedStepConflict`](EngineError::SuspendedStepConflict)
    /// when the key belongs to a suspend point, key errors, storage errors.
    ///
    /// # Examples
    ///
    /// See [`StepBuilder`].
    pub async fn run<T, F, Fut>(self, mut attempt: F) -> Result<T, EngineError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let ctx = self.ctx;
        let key = self.key;
        let entered = ctx.enter_step(&key)?;
        let mut attempts = 0;
        if let Some(memoised) = ctx.memoised(&key, &entered, &mut attempts) {
            return memoised;
        }
        ctx.go_live().await?;
        let policy = self.retry.unwrap_or(ctx.run.inner.default_retry);
        loop {
            let result = match self.timeout {
                Some(limit) => match tokio::time::timeout(limit, attempt()).await {
                    Ok(result) => result,
                    Err(_) => {
                        return Err(EngineError::StepTimeout {
                            key,
                            duration: limit,
                        });
                    }
                },
                None => attempt().await,
            };
            match result {
                Ok(value) => {
                    let bytes = encode_value(&key, &value)?;
                    let record = StepRecord::completed(
                        StepKind::Step,
                        type_tag::<T>(),
                        bytes,
                        ctx.current_status(),
                    );
                    return match ctx.commit(&key, record).await? {
                        CommitOutcome::Committed => Ok(value),
                        CommitOutcome::Kept(existing) if existing.state == StepState::Completed => {
                            decode_value(&key, &existing.type_tag, &existing.value)
                        }
                        CommitOutcome::Kept(_) => Err(EngineError::SuspendedStepConflict { key }),
                        CommitOutcome::InstanceMissing => {
                            Err(crate::engine::not_found(&ctx.run.key))
                        }
                    };
                }
                Err(StepError::Permanent(source)) => {
                    return Err(EngineError::StepFailed {
                        key,
                        source,
                        retryable: false,
                    });
                }
                Err(StepError::Retryable(source)) => {
                    attempts += 1;
                    let exhausted = attempts >= policy.max_attempts();
                    let state = if exhausted {
                        StepState::Failed
                    } else {
                        StepState::Retrying
                    };
                    // Recorded durably so a crash mid-sequence does not grant a fresh budget.
                    ctx.commit(
                        &key,
                        StepRecord::failure(state, attempts, source.to_string()),
                    )
                    .await?;
                    if exhausted {
                        tracing::warn!(instance = %ctx.run.key, step = %key, attempts, error = %source, "retries exhausted; step dead-lettered");
                        return Err(EngineError::RetriesExhausted {
                            key,
                            attempts,
                            source,
                        });
                    }
                    let delay = policy.jittered_delay_for(attempts);
                    tracing::debug!(instance = %ctx.run.key, step = %key, attempts, ?delay, error = %source, "retrying step");
                    let wake = ctx
                        .run
                        .inner
                        .clock
                        .now_ms()
                        .saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                    tokio::select! {
                        () = ctx.run.inner.clock.sleep_until(wake) => {}
                        () = ctx.run.entry.cancelled() => {}
                    }
                    ctx.check_cancelled()?;
                }
            }
        }
    }
}
