//! `check` before a deploy: run the code registered now against stored
//! instances without executing anything, and report what a deploy of that
//! code would meet ([`Engine::check_instance`], [`Engine::check_workflow`],
//! [`Engine::check_active`]).
//!
//! # The protocol of a dry run
//!
//! 1. **One read.** The instance's metadata and records are loaded in one
//!    read ([`StepStore::load_instance`]); nothing else of the store is
//!    read or written afterwards. The engine need not be started, and its
//!    store's engine slot is not taken, so a check may run beside another
//!    engine (or many workers) running the same instances: it sees the
//!    snapshot it loaded.
//! 2. **The registered code runs** with the stored `_input`, in its own task
//!    (a panic is caught and reported), over a read-only view of the store
//!    (every write is refused) and a [`Context`] in dry mode:
//!    - a step, suspend point, timer, `first_of` group or child whose key
//!      has a completed record returns its stored value, decoded to the
//!      type the code asks for now. A value that does not decode is a
//!      [`TypeMismatchReport`] and stops the dry run
//!      ([`CheckStop::TypeMismatch`]); so is an input that does not decode
//!      ([`CheckStop::InputMismatch`]).
//!    - the first key with no completed record — a step to run (also one
//!      with failed attempts recorded), a point, timer or group not reached
//!      before, a child not started — stops the dry run
//!      ([`CheckStop::NewWork`]): the workflow gets
//!      [`EngineError::Suspended`] there, no closure is called, no child is
//!      started.
//!    - a point, timer, group or child the instance already waits at stops
//!      it too ([`CheckStop::Waiting`]): a deploy changes nothing there
//!      until its signal, deadline or child's end comes.
//!    - `set_status` is kept in the dry run only; nothing is published.
//! 3. **The code ends** — it returns, its stop error propagates, it
//!    panics, or the bound passes. The first stop recorded is the report's
//!    [`stop`](InstanceCheck::stop); if none was recorded the code ran to
//!    its end with every step memoised ([`CheckStop::Completed`],
//!    [`CheckStop::Failed`]).
//!
//! **Bounded.** Workflow code may await something that is no step (a
//! channel, a sleep): each dry run is bounded by a timeout of the tokio
//! clock ([`DEFAULT_CHECK_TIMEOUT`], or the one given to
//! [`Engine::check_instance_within`]); past it the workflow's task is
//! dropped and the report says [`CheckStop::TimedOut`].
//!
//! A finished instance is checked as `Engine::resume` would run it: a
//! dead-lettered step is new work. Every other instance as its next run
//! after a deploy would: a dead letter is returned to the code as its error.
//!
//! What a dry run cannot see: a value decoded by the workflow itself later
//! ([`FirstOf::value`](crate::FirstOf::value)) fails the workflow
//! ([`CheckStop::Failed`]) instead of being a mismatch; code after a
//! stopped step that swallows its error runs on (keys it reaches are still
//! reported as reached, the stop stays the first one).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::watch;

use super::activity::{Activity, RunActivity};
use super::live::LiveInstance;
use super::run::{Context, RunEnv};
use super::scheduler::TimerWakeup;
use super::{Engine, Inner};
use crate::key::OUTPUT_KEY;
use crate::{
    EngineError, EngineSlot, InstanceFilter, InstanceKey, InstanceSnapshot, MetadataStatus,
    StatusKind, StepKind, StepRecord, StepStore, StorageError, StorageErrorKind, TimerEntry,
    WorkflowMetadata, WorkflowState, WriteOp, WriteOutcome,
};

/// How long one dry run may take before it is reported
/// [`TimedOut`](CheckStop::TimedOut): 5 seconds.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::DEFAULT_CHECK_TIMEOUT.as_secs(), 5);
/// ```
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the code registered now would do with one stored instance; see
/// [`Engine::check_instance`].
///
/// # Examples
///
/// ```
/// use memable_core::{CheckStop, Context, Engine, StepError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// engine.register("etl", |ctx: Context| async move {
///     ctx.step("extract").run(|| async { Ok::<_, StepError>(3u32) }).await
/// })?;
/// engine.start().await?;
/// engine.invoke("etl").id("e1").await?.wait().await?;
///
/// let report = engine.check_instance("etl", "e1").await?;
/// assert_eq!(report.reached, vec!["extract".to_string()]);
/// assert_eq!(report.stop, CheckStop::Completed { output_unchanged: Some(true) });
/// assert!(report.orphaned.is_empty() && report.mismatches.is_empty());
/// assert!(report.is_clean());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstanceCheck {
    /// The workflow's name.
    pub workflow: String,
    /// The instance's id.
    pub instance_id: String,
    /// The instance's status in the store.
    pub status: StatusKind,
    /// The point a suspended instance waits at (`_queue` while queued).
    pub suspended_at: Option<String>,
    /// Stored step keys the code reached, in the order it reached them.
    pub reached: Vec<String>,
    /// Where the dry run stopped.
    pub stop: CheckStop,
    /// Stored step keys (not the engine's `_…` keys) the code never
    /// reached, sorted: their results stay stored and unused.
    pub orphaned: Vec<String>,
    /// Stored values that do not decode as the type the code asks for.
    pub mismatches: Vec<TypeMismatchReport>,
}

impl InstanceCheck {
    /// `true` when a deploy of the code meets nothing surprising here: no
    /// mismatch, no orphaned key, and the dry run stopped at new work, at a
    /// point the instance waits at, or completed.
    ///
    /// # Examples
    ///
    /// See [`InstanceCheck`].
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
            && self.orphaned.is_empty()
            && matches!(
                self.stop,
                CheckStop::NewWork { .. } | CheckStop::Waiting { .. } | CheckStop::Completed { .. }
            )
    }
}

/// Where a dry run stopped; see [`InstanceCheck::stop`]. Serialized with a
/// `"stop"` tag in snake case (`{"stop":"new_work","key":"pay",…}`).
///
/// # Examples
///
/// ```
/// use memable_core::{CheckKind, CheckStop};
///
/// let stop = CheckStop::NewWork { key: "pay".into(), kind: CheckKind::Step, attempts: 0, signal_buffered: false };
/// assert_eq!(
///     serde_json::to_string(&stop).unwrap(),
///     r#"{"stop":"new_work","key":"pay","kind":"step","attempts":0,"signal_buffered":false}"#,
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "stop", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckStop {
    /// The first key the code would do new work at: a step to run, a point
    /// or timer to wait at, a child to start. Nothing is stored for it,
    /// or (a step) only failed attempts.
    NewWork {
        /// The step key.
        key: String,
        /// What the code does there.
        kind: CheckKind,
        /// Failed attempts already recorded for the step (its retry budget
        /// is partly spent).
        attempts: u32,
        /// A signal for this point is buffered: the next run consumes it
        /// and goes on.
        signal_buffered: bool,
    },
    /// A point, timer, group or child the instance already waits at: a
    /// deploy changes nothing before its signal, deadline or child's end.
    Waiting {
        /// The step key.
        key: String,
        /// What waits there.
        kind: CheckKind,
    },
    /// The code returned its output with every step memoised.
    Completed {
        /// Whether the output equals the stored `_output` (`None` if none
        /// is stored).
        output_unchanged: Option<bool>,
    },
    /// The code returned an error with every step it reached memoised (its
    /// own error, a dead letter it propagated, a key conflict).
    Failed {
        /// The error's message.
        error: String,
    },
    /// A stored value does not decode as the code's type; see
    /// [`InstanceCheck::mismatches`].
    TypeMismatch {
        /// The step key.
        key: String,
    },
    /// The stored input does not decode as the type the code reads.
    InputMismatch {
        /// The stored input's type tag.
        stored: String,
        /// The type the code reads.
        expected: String,
        /// The decode error.
        error: String,
    },
    /// No workflow of this name is registered on the engine.
    NotRegistered,
    /// The workflow code panicked (caught; nothing else is affected).
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The code awaited something else than a step past the bound.
    TimedOut {
        /// The bound, in milliseconds.
        after_ms: u64,
    },
}

/// What the code does at a key where a dry run stopped.
///
/// # Examples
///
/// ```
/// assert_eq!(serde_json::to_string(&memable_core::CheckKind::FirstOf).unwrap(), r#""first_of""#);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckKind {
    /// `ctx.step(key).run(..)`.
    Step,
    /// `ctx.suspend(&point)`.
    Suspend,
    /// `ctx.timer(key, d)`.
    Timer,
    /// `ctx.first_of(key)`.
    FirstOf,
    /// `ctx.child(..)` awaited (or `fan_out`).
    Child,
    /// `ctx.child(..).detached()`.
    DetachedChild,
}

impl CheckKind {
    /// The kind of a stored record's key.
    pub(crate) fn of(kind: StepKind) -> Self {
        match kind {
            StepKind::Step | StepKind::Engine => Self::Step,
            StepKind::Suspend | StepKind::Member => Self::Suspend,
            StepKind::Timer => Self::Timer,
            StepKind::Select => Self::FirstOf,
            StepKind::Child => Self::Child,
        }
    }
}

/// A stored value the code cannot read as the type it asks for.
///
/// # Examples
///
/// ```
/// use memable_core::{CheckStop, Context, Engine, StepError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let store = memable_core::MemoryStore::new();
/// let old = Engine::builder().store(store.clone()).build();
/// old.register("count", |ctx: Context| async move {
///     ctx.step("n").run(|| async { Ok::<_, StepError>(7u32) }).await
/// })?;
/// old.start().await?;
/// old.invoke("count").id("c").await?.wait().await?;
/// old.shutdown().await;
///
/// // The new code reads the step as a String.
/// let new = Engine::builder().store(store).build();
/// new.register("count", |ctx: Context| async move {
///     ctx.step("n").run(|| async { Ok::<_, StepError>(String::new()) }).await
/// })?;
/// let report = new.check_instance("count", "c").await?;
/// assert_eq!(report.stop, CheckStop::TypeMismatch { key: "n".into() });
/// assert_eq!((report.mismatches[0].stored.as_str(), report.mismatches[0].expected.as_str()), ("u32", "String"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeMismatchReport {
    /// The step key (`_input` for the input).
    pub key: String,
    /// The stored value's type tag.
    pub stored: String,
    /// The type the code asks for.
    pub expected: String,
    /// The decode error.
    pub error: String,
}

/// What a dry run records as the code goes.
pub(crate) struct DryRun {
    state: Mutex<DryState>,
}

#[derive(Default)]
struct DryState {
    reached: Vec<String>,
    stop: Option<CheckStop>,
    mismatches: Vec<TypeMismatchReport>,
}

impl DryRun {
    fn new() -> Self {
        Self {
            state: Mutex::new(DryState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The code reached the stored key `key` (once per key).
    pub(crate) fn reach(&self, key: &str) {
        let mut state = self.state();
        if !state.reached.iter().any(|k| k == key) {
            state.reached.push(key.to_owned());
        }
    }

    /// The dry run stops here, unless it stopped before.
    pub(crate) fn stop(&self, stop: CheckStop) {
        self.state().stop.get_or_insert(stop);
    }

    /// A stored value that does not decode.
    pub(crate) fn mismatch(&self, mismatch: TypeMismatchReport) {
        let mut state = self.state();
        if !state.mismatches.iter().any(|m| m.key == mismatch.key) {
            state.mismatches.push(mismatch);
        }
    }
}

impl Engine {
    /// Runs the workflow code registered now against the stored instance
    /// `(workflow, instance_id)` without executing anything, and reports
    /// the stored keys it reaches, where it stops (the first new key, a
    /// point it waits at, its end), the stored keys it never reaches and
    /// the stored values it cannot decode (the rules are in the header of
    /// `engine/check.rs`). Nothing is written; no step closure is called; the engine
    /// need not be started. Bounded by [`DEFAULT_CHECK_TIMEOUT`].
    ///
    /// Errors: [`InstanceNotFound`](EngineError::InstanceNotFound), key
    /// errors, storage errors of the one read. Whatever the workflow code
    /// does (fail, panic, hang) is in the report, not an error.
    ///
    /// # Examples
    ///
    /// A deploy that adds a step before the point instances wait at:
    ///
    /// ```
    /// use memable_core::{CheckKind, CheckStop, Context, Engine, MemoryStore, StepError, SuspendPoint};
    ///
    /// static OK: SuspendPoint<bool> = SuspendPoint::new("ok");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let store = MemoryStore::new();
    /// let old = Engine::builder().store(store.clone()).build();
    /// old.register("order", |ctx: Context| async move {
    ///     ctx.step("reserve").run(|| async { Ok::<_, StepError>(1u32) }).await?;
    ///     ctx.suspend(&OK).await
    /// })?;
    /// old.start().await?;
    /// old.invoke("order").id("o1").await?.wait_idle().await?;
    /// old.shutdown().await;
    ///
    /// let new = Engine::builder().store(store).build(); // never started
    /// new.register("order", |ctx: Context| async move {
    ///     ctx.step("reserve").run(|| async { Ok::<_, StepError>(1u32) }).await?;
    ///     ctx.step("fraud-check").run(|| async { Ok::<_, StepError>(()) }).await?;
    ///     ctx.suspend(&OK).await
    /// })?;
    /// let report = new.check_instance("order", "o1").await?;
    /// assert_eq!(report.reached, vec!["reserve".to_string()]);
    /// assert_eq!(report.stop, CheckStop::NewWork {
    ///     key: "fraud-check".into(), kind: CheckKind::Step, attempts: 0, signal_buffered: false,
    /// });
    /// assert_eq!(report.orphaned, vec!["ok".to_string()]); // not reached before the new step
    /// # Ok(()) }
    /// ```
    pub async fn check_instance(
        &self,
        workflow: &str,
        instance_id: &str,
    ) -> Result<InstanceCheck, EngineError> {
        self.check_instance_within(workflow, instance_id, DEFAULT_CHECK_TIMEOUT)
            .await
    }

    /// [`check_instance`](Self::check_instance) with another bound for the
    /// dry run (by the tokio clock).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{CheckStop, Context, Engine, MemoryStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let store = MemoryStore::new();
    /// let old = Engine::builder().store(store.clone()).build();
    /// old.register("w", |_ctx: Context| async move { Ok(()) })?;
    /// old.start().await?;
    /// old.invoke("w").id("1").await?.wait().await?;
    /// old.shutdown().await;
    ///
    /// let new = Engine::builder().store(store).build();
    /// new.register("w", |_ctx: Context| async move { std::future::pending::<Result<(), _>>().await })?;
    /// let report = new.check_instance_within("w", "1", Duration::from_millis(20)).await?;
    /// assert_eq!(report.stop, CheckStop::TimedOut { after_ms: 20 });
    /// # Ok(()) }
    /// ```
    pub async fn check_instance_within(
        &self,
        workflow: &str,
        instance_id: &str,
        bound: Duration,
    ) -> Result<InstanceCheck, EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        let snapshot = self
            .inner
            .store
            .load_instance(&key)
            .await?
            .ok_or_else(|| EngineError::InstanceNotFound { key: key.clone() })?;
        Ok(dry_run(&self.inner, key, snapshot, bound).await)
    }

    /// Checks every instance of `workflow` that `filter` matches (its
    /// `workflow` is replaced by `workflow`; `status`, `after` and `limit`
    /// apply, so a caller can page), one after the other, in key order;
    /// see [`check_instance`](Self::check_instance).
    ///
    /// What a deploy affects are the instances that will run again: those
    /// not finished. [`check_active`](Self::check_active) checks exactly
    /// those, and is what a `check` command should run by default; this
    /// method with `InstanceFilter::new()` checks all of them (finished
    /// ones as a resume would run them), with a status filter one status.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, InstanceFilter, StatusKind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("w", |_ctx: Context| async move { Ok(()) })?;
    /// engine.start().await?;
    /// for id in ["a", "b"] {
    ///     engine.invoke("w").id(id).await?.wait().await?;
    /// }
    /// let all = engine.check_workflow("w", &InstanceFilter::new()).await?;
    /// assert_eq!(all.iter().map(|c| c.instance_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    /// let running = engine.check_workflow("w", &InstanceFilter::new().status(StatusKind::Running)).await?;
    /// assert!(running.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn check_workflow(
        &self,
        workflow: &str,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceCheck>, EngineError> {
        crate::validate_user_key("workflow_name", workflow)?;
        let filter = InstanceFilter {
            workflow: Some(workflow.to_owned()),
            ..filter.clone()
        };
        let listed = self.list_instances(&filter).await?;
        self.check_listed(&listed).await
    }

    /// Checks every instance of `workflow` that is not finished (running,
    /// suspended, queued): the instances a deploy of the code registered
    /// now affects. The default of a `check` command.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, SuspendPoint};
    ///
    /// static GO: SuspendPoint<()> = SuspendPoint::new("go");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("w", |ctx: Context| async move { ctx.suspend(&GO).await })?;
    /// engine.start().await?;
    /// engine.invoke("w").id("waits").await?.wait_idle().await?;
    /// engine.invoke("w").id("done").await?.wait_idle().await?;
    /// engine.signal("w", "done", &GO, ()).await?.wait().await?;
    /// let active = engine.check_active("w").await?;
    /// assert_eq!(active.len(), 1);
    /// assert_eq!(active[0].instance_id, "waits");
    /// # Ok(()) }
    /// ```
    pub async fn check_active(&self, workflow: &str) -> Result<Vec<InstanceCheck>, EngineError> {
        crate::validate_user_key("workflow_name", workflow)?;
        let mut listed = Vec::new();
        for status in StatusKind::ALL.into_iter().filter(|s| !s.is_terminal()) {
            let filter = InstanceFilter::new().workflow(workflow).status(status);
            listed.extend(self.list_instances(&filter).await?);
        }
        listed.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        self.check_listed(&listed).await
    }

    async fn check_listed(
        &self,
        listed: &[WorkflowMetadata],
    ) -> Result<Vec<InstanceCheck>, EngineError> {
        let mut reports = Vec::with_capacity(listed.len());
        for meta in listed {
            let key = meta.key()?;
            // An instance deleted since it was listed is not reported.
            if let Some(snapshot) = self.inner.store.load_instance(&key).await? {
                reports.push(dry_run(&self.inner, key, snapshot, DEFAULT_CHECK_TIMEOUT).await);
            }
        }
        Ok(reports)
    }
}

/// One dry run of the registered code over `snapshot`.
async fn dry_run(
    inner: &Arc<Inner>,
    key: InstanceKey,
    snapshot: InstanceSnapshot,
    bound: Duration,
) -> InstanceCheck {
    let status = snapshot.metadata.status.clone();
    let stored_keys: Vec<String> = snapshot
        .steps
        .iter()
        .map(|(step, _)| step.clone())
        .filter(|step| !step.starts_with('_'))
        .collect();
    let stored_output = snapshot.step(OUTPUT_KEY).cloned();
    let report = |reached: Vec<String>, stop, mismatches| {
        let mut orphaned: Vec<String> = stored_keys
            .iter()
            .filter(|step| !reached.contains(step))
            .cloned()
            .collect();
        orphaned.sort_unstable();
        InstanceCheck {
            workflow: key.workflow().to_owned(),
            instance_id: key.instance().to_owned(),
            status: status.kind(),
            suspended_at: match &status {
                MetadataStatus::Suspended { key, .. } => Some(key.clone()),
                _ => None,
            },
            reached,
            stop,
            orphaned,
            mismatches,
        }
    };
    let Some(workflow) = inner.registry.get(key.workflow()) else {
        return report(Vec::new(), CheckStop::NotRegistered, Vec::new());
    };
    let dry = Arc::new(DryRun::new());
    let (_halt, halt) = watch::channel(false);
    let env = RunEnv {
        store: Arc::new(ReadOnly(Arc::clone(&inner.store))),
        clock: Arc::clone(&inner.clock),
        default_retry: inner.default_retry,
        strict_keys: inner.strict_keys,
        entry: Arc::new(LiveInstance::new(WorkflowState::from(&status))),
        // Its own counters and timer wake-up: nothing of the engine's.
        timers: Arc::new(TimerWakeup::new(Activity::new())),
        activity: RunActivity::new(Activity::new()),
        spawn: Arc::new(|_: &InstanceKey| {}),
        kick: Arc::new(|_: &str| {}),
        halt,
        dry: Some(Arc::clone(&dry)),
    };
    // A finished instance is checked as a resume would run it.
    let resume = status.is_terminal();
    let ctx = Context::new(env, key.clone(), snapshot, resume);
    let mut task = tokio::spawn(workflow(ctx.clone()));
    let ended = match tokio::time::timeout(bound, &mut task).await {
        Ok(Ok(returned)) => Ended::Returned(returned),
        Ok(Err(join)) if join.is_panic() => Ended::Panicked(super::run::panic_message(join)),
        Ok(Err(_)) => Ended::Returned(Err(EngineError::Stopped)),
        Err(_) => {
            task.abort();
            Ended::TimedOut(u64::try_from(bound.as_millis()).unwrap_or(u64::MAX))
        }
    };
    ctx.end();
    let state = std::mem::take(&mut *dry.state());
    let stop = state.stop.unwrap_or_else(|| match ended {
        Ended::Returned(Ok(output)) => CheckStop::Completed {
            output_unchanged: stored_output
                .map(|stored| stored.type_tag == output.type_tag && stored.value == output.value),
        },
        Ended::Returned(Err(error)) => CheckStop::Failed {
            error: error.to_string(),
        },
        Ended::Panicked(message) => CheckStop::Panicked { message },
        Ended::TimedOut(after_ms) => CheckStop::TimedOut { after_ms },
    });
    report(state.reached, stop, state.mismatches)
}

/// How the workflow's task of a dry run ended.
enum Ended {
    Returned(Result<StepRecord, EngineError>),
    Panicked(String),
    TimedOut(u64),
}

/// The store a dry run sees: reads pass through, every write is refused
/// (the dry run's hooks stop the code before any write; this makes sure).
struct ReadOnly(Arc<dyn StepStore>);

#[async_trait]
impl StepStore for ReadOnly {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    async fn write(&self, _op: WriteOp) -> Result<WriteOutcome, EngineError> {
        Err(EngineError::Storage(StorageError::new(
            StorageErrorKind::Unsupported,
            "check",
            "a dry run writes nothing",
        )))
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
    fn engine_slot(&self) -> &EngineSlot {
        self.0.engine_slot()
    }
}
