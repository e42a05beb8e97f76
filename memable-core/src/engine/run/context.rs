//! [`Context`]: what a workflow receives — its identity, its input, status
//! reports, and the entry points of steps ([`step`](super::step)),
//! suspensions and timers ([`suspend`](super::suspend)).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;

use super::super::check::{CheckKind, CheckStop, DryRun, TypeMismatchReport};
use super::RunEnv;
use super::memo::{Entered, Memo};
use super::step::StepBuilder;
use super::suspend::{SuspendBuilder, SuspendPoint};
use crate::key::{INPUT_KEY, OUTPUT_KEY, PARENT_KEY, QUEUE_KEY, buffered_signal_key};
use crate::{
    EngineError, InstanceKey, InstanceSnapshot, MetadataStatus, ParentLink, ReviveOutcome,
    StepRecord, StepStoreExt, WorkflowState, decode_record, type_tag, validate_user_key,
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
    pub(super) run: Arc<RunState>,
}

/// One run's state, shared by the clones of its [`Context`].
pub(super) struct RunState {
    /// What the run may reach outside itself.
    pub(super) env: RunEnv,
    pub(super) key: InstanceKey,
    /// The snapshot the run loaded, with the keys it used so far.
    pub(super) steps: Memo,
    /// The instance's persisted status when the run started.
    pub(super) metadata_status: MetadataStatus,
    /// `Engine::resume`: dead letters get a fresh retry budget.
    pub(super) retry_dead_letters: bool,
    /// A resumed `Completed`/`Failed` instance is set `Running` only when the
    /// run reaches new work, so a replay that changes nothing writes nothing.
    pending_revive: AtomicBool,
    /// Set once the run reaches new work (or suspends): from then on status
    /// messages are published.
    pub(super) live: AtomicBool,
    /// The snapshot holds no user step (a fresh instance, not a resumed
    /// finished one): nothing can be replayed, so status messages are
    /// published from the first one.
    fresh_run: bool,
    /// Set once the run waits at a point (or a timer, or a group): it ends
    /// parked there.
    pub(super) suspended: AtomicBool,
    /// The points this run waits at, in the order it reached them, with
    /// their status messages: [`park`](super::park) writes them.
    pub(super) waiting: Mutex<Vec<(String, Option<String>)>>,
    /// Set when the workflow's future is over (returned, panicked, was
    /// cancelled): a clone of the context that outlived it cannot run or
    /// commit a step.
    ended: AtomicBool,
    status: Mutex<Option<String>>,
    /// Results (and dead letters) committed by this run, so a key reused in
    /// the same run returns the first result instead of running again.
    pub(super) committed: Mutex<HashMap<String, StepRecord>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("instance", &self.run.key)
            .finish_non_exhaustive()
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Context {
    pub(crate) fn new(
        env: RunEnv,
        key: InstanceKey,
        snapshot: InstanceSnapshot,
        retry_dead_letters: bool,
    ) -> Self {
        let revive_finished = retry_dead_letters && snapshot.metadata.status.is_terminal();
        // A resumed finished instance, and a suspended one whose run reaches
        // new work (changed code, or a resume), are set `Running` before the
        // run writes anything else.
        let pending_revive =
            revive_finished || matches!(snapshot.metadata.status, MetadataStatus::Suspended { .. });
        let fresh_run =
            !revive_finished && snapshot.steps.iter().all(|(step, _)| step.starts_with('_'));
        Self {
            run: Arc::new(RunState {
                env,
                key,
                steps: Memo::new(snapshot.steps),
                pending_revive: AtomicBool::new(pending_revive),
                fresh_run,
                metadata_status: snapshot.metadata.status,
                retry_dead_letters,
                live: AtomicBool::new(false),
                suspended: AtomicBool::new(false),
                waiting: Mutex::new(Vec::new()),
                ended: AtomicBool::new(false),
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
        let input = match self.run.steps.get(INPUT_KEY) {
            Some(record) => decode_record(INPUT_KEY, record),
            None => Err(EngineError::TypeMismatch {
                key: INPUT_KEY.to_owned(),
                expected: type_tag::<T>().to_owned(),
                found: "no input record".to_owned(),
            }),
        };
        if let (Some(dry), Err(error)) = (self.dry(), &input) {
            let stored = self
                .run
                .steps
                .get(INPUT_KEY)
                .map(|record| record.type_tag.clone())
                .unwrap_or_default();
            dry.mismatch(TypeMismatchReport {
                key: INPUT_KEY.to_owned(),
                stored: stored.clone(),
                expected: type_tag::<T>().to_owned(),
                error: error.to_string(),
            });
            dry.stop(CheckStop::InputMismatch {
                stored,
                expected: type_tag::<T>().to_owned(),
                error: error.to_string(),
            });
        }
        input
    }

    /// Sets the status message observers see (`Invocation::status`,
    /// `Engine::subscribe`).
    ///
    /// It is published at once unless the run is replaying. The rule: a run
    /// is replaying from its start until it reaches a step (or suspension,
    /// or timer) with no committed result; while it does, messages are
    /// recorded silently and observers see the latest one when the run
    /// reaches new work, so replays do not flood them. A run whose snapshot
    /// holds no user step at all (a fresh instance) has nothing to replay:
    /// every message is published at once, even before its first step.
    ///
    /// # Examples
    ///
    /// See [`Context`].
    pub fn set_status(&self, message: impl Into<String>) {
        let message = message.into();
        *lock(&self.run.status) = Some(message.clone());
        if self.run.fresh_run || self.run.live.load(Ordering::Acquire) {
            self.run.env.entry.publish(WorkflowState::Running {
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
        StepBuilder::new(self, key.into())
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
        SuspendBuilder::new(self, point.key())
    }

    /// Validates a user key, checks for cancellation and key reuse; returns
    /// whether the key is fresh in this run and its snapshot record.
    pub(super) fn enter_step(&self, key: &str) -> Result<Entered<'_>, EngineError> {
        validate_user_key("step_key", key)?;
        self.check_boundary()?;
        let entered = self.run.steps.enter(key);
        if let Some(dry) = self.dry()
            && entered.fresh
            && entered.record.is_some()
        {
            dry.reach(key);
        }
        if !entered.fresh {
            if self.run.env.strict_keys {
                return Err(EngineError::KeyReused {
                    key: key.to_owned(),
                });
            }
            tracing::warn!(instance = %self.run.key, step = key, "step key used twice in one run; returning the first result (use distinct keys in loops)");
        }
        Ok(entered)
    }

    /// `Err` once the instance is cancelled or the run is over: a step may
    /// not start or commit.
    pub(super) fn check_active(&self) -> Result<(), EngineError> {
        if self.run.ended.load(Ordering::Acquire) {
            return Err(EngineError::RunEnded {
                key: self.run.key.clone(),
            });
        }
        if self.run.env.entry.is_cancelled() {
            return Err(self.cancelled());
        }
        Ok(())
    }

    /// [`check_active`](Self::check_active) at a step boundary (a step, an
    /// attempt, a wait, a child about to start), where a shutdown past its
    /// deadline also stops the run ([`EngineError::Stopped`]). A step in
    /// flight still commits.
    pub(super) fn check_boundary(&self) -> Result<(), EngineError> {
        self.check_active()?;
        if self.is_halted() {
            return Err(EngineError::Stopped);
        }
        Ok(())
    }

    /// Whether a shutdown's deadline passed: the run stops at this boundary.
    pub(super) fn is_halted(&self) -> bool {
        *self.run.env.halt.borrow()
    }

    /// Marks the run over: later uses of any clone of this context fail
    /// with [`EngineError::RunEnded`].
    pub(crate) fn end(&self) {
        self.run.ended.store(true, Ordering::Release);
    }

    /// Records that the run waits at `key` (once per key).
    pub(super) fn note_waiting(&self, key: &str, status: Option<String>) {
        if let Some(dry) = self.dry() {
            let kind = self
                .run
                .steps
                .get(key)
                .map_or(CheckKind::Suspend, |record| CheckKind::of(record.kind));
            dry.stop(CheckStop::Waiting {
                key: key.to_owned(),
                kind,
            });
        }
        let mut waiting = lock(&self.run.waiting);
        if !waiting.iter().any(|(at, _)| at == key) {
            waiting.push((key.to_owned(), status));
        }
        self.run.suspended.store(true, Ordering::Release);
    }

    /// The points the run waits at, in order, with their statuses.
    pub(super) fn waiting(&self) -> Vec<(String, Option<String>)> {
        lock(&self.run.waiting).clone()
    }

    /// [`EngineError::Cancelled`] for this instance.
    pub(super) fn cancelled(&self) -> EngineError {
        EngineError::Cancelled {
            key: self.run.key.clone(),
        }
    }

    /// [`EngineError::InstanceNotFound`] for this instance (deleted while
    /// the run was in progress).
    pub(super) fn not_found(&self) -> EngineError {
        EngineError::InstanceNotFound {
            key: self.run.key.clone(),
        }
    }

    /// The run reaches new work: revive a finished instance being resumed,
    /// then publish the running state once.
    pub(super) async fn go_live(&self) -> Result<(), EngineError> {
        if self.dry().is_some() || self.run.live.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.revive_if_pending().await?;
        self.run.env.entry.publish(WorkflowState::Running {
            status: self.current_status(),
        });
        Ok(())
    }

    /// Sets a resumed `Completed`/`Failed` instance `Running` in the store,
    /// once, before the run writes anything else.
    pub(super) async fn revive_if_pending(&self) -> Result<(), EngineError> {
        if self.dry().is_some() || !self.run.pending_revive.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let env = &self.run.env;
        let now = env.clock.now_ms();
        match env.store.revive_instance(self.run.key.clone(), now).await? {
            ReviveOutcome::Revived(_) => Ok(()),
            ReviveOutcome::Cancelled => Err(self.cancelled()),
            ReviveOutcome::InstanceMissing => Err(self.not_found()),
        }
    }

    /// For a resumed finished instance that never reached new work: whether
    /// `outcome` is exactly what is already stored, so nothing needs writing.
    pub(super) fn replay_changed_nothing(&self, outcome: &Result<StepRecord, EngineError>) -> bool {
        if !self.run.pending_revive.load(Ordering::Acquire) {
            return false;
        }
        match (&self.run.metadata_status, outcome) {
            (MetadataStatus::Completed(status), Ok(output)) => {
                *status == self.current_status()
                    && self.run.steps.get(OUTPUT_KEY).is_some_and(|stored| {
                        stored.type_tag == output.type_tag && stored.value == output.value
                    })
            }
            (MetadataStatus::Failed(message), Err(error)) => *message == error.to_string(),
            _ => false,
        }
    }

    /// The instance's persisted status when this run started.
    pub(super) fn initial_status(&self) -> &MetadataStatus {
        &self.run.metadata_status
    }

    pub(super) fn current_status(&self) -> Option<String> {
        lock(&self.run.status).clone()
    }

    pub(super) fn is_suspended(&self) -> bool {
        self.run.suspended.load(Ordering::Acquire)
    }

    /// The queue this instance went through, if any.
    pub(super) fn queue(&self) -> Option<String> {
        let record = self.run.steps.get(QUEUE_KEY)?;
        crate::QueueTicket::from_record(record)
            .ok()
            .map(|ticket| ticket.queue)
    }

    /// The dry run this context serves, if it is one (see
    /// [`check`](super::super::check)).
    pub(super) fn dry(&self) -> Option<&DryRun> {
        self.run.env.dry.as_deref()
    }

    /// In a dry run, the code reached new work at `key` (nothing is
    /// stored for it, or only failed attempts): the dry run stops there
    /// ([`EngineError::Suspended`] for the workflow). Outside one, `Ok`.
    pub(super) fn dry_new_work(
        &self,
        key: &str,
        kind: CheckKind,
        attempts: u32,
    ) -> Result<(), EngineError> {
        let Some(dry) = self.dry() else {
            return Ok(());
        };
        let signal_buffered =
            kind == CheckKind::Suspend && self.run.steps.get(&buffered_signal_key(key)).is_some();
        dry.stop(CheckStop::NewWork {
            key: key.to_owned(),
            kind,
            attempts,
            signal_buffered,
        });
        Err(EngineError::Suspended {
            key: key.to_owned(),
        })
    }

    /// In a dry run, a stored value of `key` that does not decode as
    /// `expected` is recorded as a mismatch and stops the dry run; the
    /// result is returned as it is.
    pub(super) fn dry_checked<V>(
        &self,
        key: &str,
        expected: &str,
        result: Result<V, EngineError>,
    ) -> Result<V, EngineError> {
        if let (Some(dry), Err(error)) = (self.dry(), &result)
            && matches!(error,
                EngineError::TypeMismatch { key: at, .. } | EngineError::Serialization { key: at, .. }
                    if at == key)
        {
            let stored = self
                .run
                .steps
                .get(key)
                .map(|record| record.type_tag.clone())
                .unwrap_or_default();
            dry.mismatch(TypeMismatchReport {
                key: key.to_owned(),
                stored,
                expected: expected.to_owned(),
                error: error.to_string(),
            });
            dry.stop(CheckStop::TypeMismatch {
                key: key.to_owned(),
            });
        }
        result
    }

    /// In a dry run, marks the stored ones of `keys` reached (the points
    /// of a `first_of` group).
    pub(super) fn dry_reach_all<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        if let Some(dry) = self.dry() {
            for key in keys {
                if self.run.steps.get(key).is_some() {
                    dry.reach(key);
                }
            }
        }
    }

    /// The parent that awaits this instance (a child not started detached).
    pub(super) fn awaiting_parent(&self) -> Option<InstanceKey> {
        let record = self.run.steps.get(PARENT_KEY)?;
        match ParentLink::from_record(record) {
            Ok(link) if !link.detached => Some(link.parent),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(instance = %self.run.key, %error, "the parent link does not decode");
                None
            }
        }
    }
}
