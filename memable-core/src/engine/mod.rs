//! The [`Engine`]: registers workflows, starts, signals, resumes, cancels and
//! observes instances.
//!
//! Its parts: [`builder`] (configuration), [`registry`] (workflow functions
//! by name), [`live`] (the instances live in this process, which serialise
//! runs and carry published states), [`run`] (one run of an instance and
//! the [`Context`] it gives the workflow), [`scheduler`] (fires due timers),
//! [`invocation`] (starting an instance and following it) and [`status`]
//! (the states observers see). Only the engine's own modules reach its
//! shared state ([`Inner`]); a run reaches exactly what its
//! [`RunEnv`](run::RunEnv) holds.

mod activity;
mod builder;
mod check;
mod family;
mod history;
mod invocation;
mod lease;
mod live;
pub(crate) mod metrics;
mod queue;
mod registry;
mod repair;
mod retention;
mod run;
mod scheduler;
mod status;
pub mod telemetry;
mod typed;
mod worker;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

pub use builder::EngineBuilder;
pub use check::{CheckKind, CheckStop, DEFAULT_CHECK_TIMEOUT, InstanceCheck, TypeMismatchReport};
pub use family::ChildInfo;
pub use history::{BufferedSignal, PendingTimer, StepEntry, StepHistory};
pub use retention::{RetentionPolicy, RetentionRule, RetentionStats, TerminalStatus};

/// What [`Engine::shutdown_timeout`] did.
///
/// # Examples
///
/// See [`Engine::shutdown_timeout`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Runs still in progress at the deadline, stopped at their next step
    /// boundary (their instances run again on the next start); 0 if every
    /// run ended in time.
    pub interrupted: usize,
}
pub use invocation::{Invocation, InvokeBuilder};
pub use queue::Queue;
pub use run::{
    ChildBuilder, ChildHandle, Context, FanOutBuilder, FirstOf, FirstOfBuilder, StepBuilder,
    SuspendBuilder, SuspendPoint, SuspendTimeout,
};
pub use status::{StatusStream, WorkflowState};
pub use typed::{TypedInvocation, TypedInvokeBuilder, Workflow, WorkflowHandle};

use crate::key::{OUTPUT_KEY, SIGNAL_PREFIX};
use crate::{
    CancelOutcome, Clock, EngineError, InstanceFilter, InstanceKey, MetadataStatus, RetryPolicy,
    SignalOutcome, StatusKind, StepKind, StepRecord, StepStore, StepStoreExt, StorageError,
    StorageErrorKind, WorkflowMetadata, decode_record, encode_value, type_tag, validate_user_key,
};
use live::{LiveInstances, RunRequest, Triggered};
use registry::Registry;
use scheduler::TimerWakeup;
use telemetry::{RunOrigin, RunReason};

const NOT_STARTED: u8 = 0;
const STARTED: u8 = 1;
const STOPPED: u8 = 2;

/// Shared state behind every [`Engine`] clone, the run loops and the
/// scheduler. Its fields are private to the engine's modules; a workflow's
/// [`Context`] never sees it.
struct Inner {
    store: Arc<dyn StepStore>,
    clock: Arc<dyn Clock>,
    default_retry: RetryPolicy,
    strict_keys: bool,
    resume_on_start: bool,
    lifecycle: AtomicU8,
    /// Set by `Engine::abort` (feature `test-util`): runs write nothing more.
    aborted: AtomicBool,
    registry: Registry,
    live: Arc<LiveInstances>,
    active_runs: Arc<watch::Sender<usize>>,
    /// `true` once [`Engine::stop`] was called: waits on suspended
    /// instances end.
    stopped: watch::Sender<bool>,
    /// The store's slot (see [`lease`]): one engine per store handle.
    lease: Arc<lease::StoreLease>,
    /// What the clock sees of this engine's work (see [`activity`]).
    activity: Arc<activity::Activity>,
    timers: Arc<TimerWakeup>,
    scheduler: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// This engine as a worker of a shared store (see [`worker`]).
    worker: worker::WorkerConfig,
    /// Bounds the runs at once to the worker's capacity (`None`: no bound).
    permits: Option<Arc<tokio::sync::Semaphore>>,
    worker_loop: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set by [`Engine::shutdown_timeout`] once its deadline passed: runs
    /// stop at their next step boundary, writing nothing more.
    halted: watch::Sender<bool>,
    /// The queues declared here (see [`queue`]) and their admission tasks.
    queues: queue::Queues,
    queue_tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The retention policy and its counters (see [`retention`]); `None`
    /// without a policy.
    retention: Option<Arc<retention::Retention>>,
    /// Counters of an engine without a policy (they stay zero).
    no_retention: watch::Sender<RetentionStats>,
    retention_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.timers.shut_down();
    }
}

/// The durable execution engine.
///
/// Cheap to clone: clones share one engine. Build it with
/// [`Engine::builder`], [`register`](Engine::register) workflows, then
/// [`start`](Engine::start) it (on a tokio runtime).
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, EngineError, StepError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), EngineError> {
/// let engine = Engine::builder().in_memory().build();
/// engine.register("double", |ctx: Context| async move {
///     let n: u64 = ctx.input()?;
///     ctx.step("double").run(|| async move { Ok::<_, StepError>(n * 2) }).await
/// })?;
/// engine.start().await?;
///
/// let run = engine.invoke("double").id("job-1").input(21u64).await?;
/// assert_eq!(run.wait_output::<u64>().await?, 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.inner.store.name())
            .field("clock", &self.inner.clock)
            .field("live_instances", &self.inner.live.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder; see [`EngineBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = memable_core::Engine::builder().in_memory().build();
    /// # let _ = engine;
    /// ```
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    #[allow(clippy::too_many_arguments)] // the builder's fields, passed once
    fn from_parts(
        store: Arc<dyn StepStore>,
        clock: Arc<dyn Clock>,
        default_retry: RetryPolicy,
        resume_on_start: bool,
        strict_keys: bool,
        mut worker: worker::WorkerConfig,
        queues: queue::Queues,
        retention: Option<RetentionPolicy>,
    ) -> Self {
        worker.shared = store.workers().is_some();
        let permits = worker
            .effective_capacity()
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1))));
        let activity = activity::Activity::new();
        clock.attach(activity.subscribe());
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                default_retry,
                strict_keys,
                resume_on_start,
                lifecycle: AtomicU8::new(NOT_STARTED),
                aborted: AtomicBool::new(false),
                registry: Registry::default(),
                live: Arc::default(),
                active_runs: Arc::new(watch::Sender::new(0)),
                stopped: watch::Sender::new(false),
                lease: Arc::default(),
                timers: Arc::new(TimerWakeup::new(Arc::clone(&activity))),
                activity,
                scheduler: std::sync::Mutex::new(None),
                worker,
                permits,
                worker_loop: std::sync::Mutex::new(None),
                halted: watch::Sender::new(false),
                queues,
                queue_tasks: std::sync::Mutex::new(Vec::new()),
                retention: retention.map(retention::Retention::new),
                no_retention: watch::Sender::new(RetentionStats::default()),
                retention_task: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Registers `workflow` under `name` (replacing any earlier registration).
    ///
    /// A workflow is an async function of its [`Context`] returning
    /// `Result<O, EngineError>`; `O` is committed as the instance's output.
    /// It may be called many times for one instance (after a crash, a signal,
    /// a timer): every step whose result is committed returns it instead of
    /// running again.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    ///
    /// let engine = Engine::builder().build();
    /// engine.register("noop", |_ctx: Context| async { Ok(()) }).unwrap();
    /// assert!(engine.register("bad/name", |_ctx: Context| async { Ok(()) }).is_err());
    /// ```
    pub fn register<F, Fut, O>(&self, name: &str, workflow: F) -> Result<(), EngineError>
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, EngineError>> + Send + 'static,
        O: Serialize + Send + 'static,
    {
        self.register_with_error(name, workflow)
    }

    /// [`register`](Engine::register) for a workflow that returns its own
    /// error type `E` (anything that is `Display`: an error enum, a
    /// `Box<dyn Error + Send + Sync>`, `anyhow::Error`). When it returns
    /// `Err(e)`, the instance fails with `e.to_string()` as its message
    /// (waiters get [`WorkflowFailed`](EngineError::WorkflowFailed) with
    /// it). An `E` that is [`EngineError`] is kept as it is, so `?` on a
    /// suspension or a cancellation still suspends or cancels; for
    /// `E = EngineError` this is exactly `register`.
    ///
    /// `register` itself stays specific to `EngineError` so that a workflow
    /// ending in `Ok(value)` needs no type annotation.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError};
    ///
    /// #[derive(Debug)]
    /// enum RefundError { TooLarge(u32), Engine(EngineError) }
    /// impl std::fmt::Display for RefundError {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         match self {
    ///             Self::TooLarge(n) => write!(f, "refund of {n} is too large"),
    ///             Self::Engine(e) => e.fmt(f),
    ///         }
    ///     }
    /// }
    /// impl From<EngineError> for RefundError {
    ///     fn from(e: EngineError) -> Self { Self::Engine(e) }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register_with_error("refund", |ctx: Context| async move {
    ///     let amount: u32 = ctx.input()?;
    ///     if amount > 100 { return Err(RefundError::TooLarge(amount)); }
    ///     Ok(amount)
    /// })?;
    /// engine.start().await?;
    /// let err = engine.invoke("refund").input(500u32).await?.wait_output::<u32>().await.unwrap_err();
    /// assert!(matches!(err, EngineError::WorkflowFailed { error, .. } if error == "refund of 500 is too large"));
    /// # Ok(()) }
    /// ```
    pub fn register_with_error<F, Fut, O, E>(
        &self,
        name: &str,
        workflow: F,
    ) -> Result<(), EngineError>
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: Serialize + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        validate_user_key("workflow_name", name)?;
        if self.inner.registry.insert(name, registry::erase(workflow)) {
            tracing::debug!(workflow = name, "workflow registration replaced");
        }
        Ok(())
    }

    /// Starts the engine: launches the timer scheduler (due timers fire at
    /// once) and, unless [`EngineBuilder::resume_on_start`] is `false`,
    /// re-runs every instance left `Running` by a crash. Calling it again is
    /// a no-op; after [`stop`](Engine::stop) it fails with
    /// [`EngineError::Stopped`]. The engine holds its store handle from here
    /// until it is shut down, dropped, or stopped with no run in progress: another
    /// engine started on the same handle or a clone of it fails with
    /// [`EngineError::StoreInUse`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = memable_core::Engine::builder().build();
    /// engine.start().await?;
    /// engine.start().await?; // no-op
    /// # Ok(()) }
    /// ```
    pub async fn start(&self) -> Result<(), EngineError> {
        if self.inner.lifecycle.load(Ordering::Acquire) == NOT_STARTED
            && !self.inner.lease.take(self.inner.store.engine_slot())
        {
            return Err(EngineError::StoreInUse {
                store: self.inner.store.name(),
            });
        }
        match self.inner.lifecycle.compare_exchange(
            NOT_STARTED,
            STARTED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {}
            Err(STARTED) => return Ok(()),
            Err(_) => return Err(EngineError::Stopped),
        }
        let scheduler = scheduler::spawn(&self.inner);
        *self
            .inner
            .scheduler
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(scheduler);
        if let Some(workers) = self.inner.store.workers() {
            // What this worker id owned belongs to an earlier process that
            // used it: release it before anything runs here.
            workers.retire(&self.inner.worker.id).await?;
            // Among many workers, instances left running by a dead worker
            // are acquired by the worker loop like any runnable work.
            *self
                .inner
                .worker_loop
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = worker::spawn(&self.inner);
        } else if self.inner.resume_on_start {
            self.recover_running().await?;
        }
        *self
            .inner
            .queue_tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = queue::spawn(&self.inner);
        if let Some(retention) = &self.inner.retention {
            *self
                .inner
                .retention_task
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(retention::spawn(&self.inner, Arc::clone(retention)));
        }
        Ok(())
    }

    async fn recover_running(&self) -> Result<(), EngineError> {
        const PAGE: usize = 1_000;
        let mut filter = InstanceFilter::new()
            .status(crate::StatusKind::Running)
            .limit(PAGE);
        let mut recovered = 0usize;
        loop {
            let page = self.inner.store.list_instances(&filter).await?;
            for meta in &page {
                let key = meta.key()?;
                if self.inner.registry.get(key.workflow()).is_none() {
                    tracing::warn!(instance = %key, "not recovering: workflow is not registered");
                    continue;
                }
                self.inner
                    .trigger_run_from(&key, RunRequest::default(), RunReason::Recovery);
                recovered += 1;
            }
            match page.last() {
                Some(last) if page.len() == PAGE => filter = filter.after(last.key()?),
                _ => break,
            }
        }
        if recovered > 0 {
            tracing::info!(recovered, "re-running instances left running");
        }
        Ok(())
    }

    /// Stops accepting work: `invoke`, `signal` and `resume` fail with
    /// [`EngineError::Stopped`] and timers stop firing. Runs in progress go
    /// on; [`wait_all`](Engine::wait_all) waits for them.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = memable_core::Engine::builder().build();
    /// engine.start().await?;
    /// engine.stop();
    /// engine.wait_all().await;
    /// assert!(engine.start().await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn stop(&self) {
        self.inner.lifecycle.store(STOPPED, Ordering::Release);
        self.inner.timers.shut_down();
        self.inner.stopped.send_replace(true);
        self.inner.lease.stop();
        if *self.inner.active_runs.borrow() == 0 {
            self.inner.lease.release_if_idle();
        }
    }

    /// Simulates a crash: stops the engine and aborts every run at its next
    /// await point, writing nothing more. What was committed stays; the next
    /// engine on the same store recovers the rest. For tests (feature
    /// `test-util`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let engine = memable_core::Engine::builder().build();
    /// engine.abort();
    /// # }
    /// ```
    #[cfg(feature = "test-util")]
    pub fn abort(&self) {
        self.inner.aborted.store(true, Ordering::Release);
        self.stop();
        self.inner.live.abort_all();
        self.inner.lease.release();
    }

    /// Stops the engine and waits until every run and the timer scheduler
    /// have ended. Once every clone of the engine is dropped afterwards, the
    /// store is released (a file store can be opened again at once).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = memable_core::Engine::builder().build();
    /// engine.start().await?;
    /// engine.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) {
        self.stop();
        self.wait_all().await;
        self.release_all().await;
    }

    /// Shuts down within `deadline` (by the engine's clock): stops taking
    /// new work at once, lets the runs in progress finish for up to
    /// `deadline`, then stops the rest at their next step boundary — a step
    /// in flight finishes and commits, the next one does not start, and
    /// the run ends without recording an end, so the instance stays
    /// `Running` in the store and is run again by the next engine's
    /// [`start`](Engine::start) (on a shared store, by another worker at
    /// once: this worker's row is retired). Then shuts down as
    /// [`shutdown`](Engine::shutdown) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = memable_core::Engine::builder().build();
    /// engine.start().await?;
    /// let report = engine.shutdown_timeout(Duration::from_secs(30)).await;
    /// assert_eq!(report.interrupted, 0);
    /// # Ok(()) }
    /// ```
    pub async fn shutdown_timeout(&self, deadline: Duration) -> ShutdownReport {
        let wait = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        let at = self.inner.clock.now_ms().saturating_add(wait);
        // No time at all: the runs are told before the engine stops taking
        // work, so nothing may start a step in between; the runs in
        // progress are counted first (told to halt, they end at once).
        let at_halt = (wait == 0).then(|| {
            let running = *self.inner.active_runs.borrow();
            self.inner.halted.send_replace(true);
            running
        });
        self.stop();
        let in_time = wait > 0
            && tokio::select! {
                () = self.wait_all() => true,
                () = self.inner.clock.sleep_until(at) => false,
            };
        let mut interrupted = 0;
        if !in_time {
            interrupted = at_halt.unwrap_or_else(|| *self.inner.active_runs.borrow());
            tracing::info!(
                runs = interrupted,
                "shutdown deadline passed; the runs in progress stop at their next step boundary"
            );
            self.inner.halted.send_replace(true);
            self.wait_all().await;
        }
        self.release_all().await;
        ShutdownReport { interrupted }
    }

    /// The end of a shutdown once no run is in progress: the scheduler,
    /// the queues' tasks and the worker loop end, the worker row is
    /// retired, the store released.
    async fn release_all(&self) {
        let scheduler = self
            .inner
            .scheduler
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(scheduler) = scheduler {
            // It ends at its next wake-up, which `stop` triggered.
            let _ = scheduler.await;
        }
        let queue_tasks = std::mem::take(
            &mut *self
                .inner
                .queue_tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in queue_tasks {
            // Each ends at `stop`.
            let _ = task.await;
        }
        let retention_task = self
            .inner
            .retention_task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = retention_task {
            // It ends at `stop`, after a batch in flight.
            let _ = task.await;
        }
        let worker_loop = self
            .inner
            .worker_loop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(worker_loop) = worker_loop {
            let _ = worker_loop.await;
            if let Some(workers) = self.inner.store.workers()
                && let Err(error) = workers.retire(&self.inner.worker.id).await
            {
                tracing::warn!(worker = %self.inner.worker.id, %error, "could not retire the worker; others take over after its lease");
            }
        }
        self.inner.lease.release();
    }

    /// Waits until no run is in progress (suspended instances are not
    /// waited for).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// memable_core::Engine::builder().build().wait_all().await;
    /// # }
    /// ```
    pub async fn wait_all(&self) {
        let mut rx = self.inner.active_runs.subscribe();
        // The sender lives in `inner`, which `self` keeps alive.
        let _ = rx.wait_for(|active| *active == 0).await;
    }

    /// Starts building an invocation of workflow `name`; see [`InvokeBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("noop", |_ctx: Context| async { Ok(()) })?;
    /// engine.start().await?;
    /// let run = engine.invoke("noop").await?;
    /// assert!(run.wait_idle().await?.is_terminal());
    /// # Ok(()) }
    /// ```
    pub fn invoke(&self, name: &str) -> InvokeBuilder {
        InvokeBuilder::new(self.clone(), name)
    }

    /// Runs an instance again from the top: every committed step replays and
    /// dead-lettered steps get a fresh retry budget. A `Completed` or `Failed`
    /// instance becomes `Running` again as soon as the run reaches new work;
    /// a replay that ends exactly as before writes nothing. If a run is in
    /// progress the resume queues behind it. A cancelled instance cannot be
    /// resumed ([`EngineError::Cancelled`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("noop", |_ctx: Context| async { Ok(()) })?;
    /// engine.start().await?;
    /// engine.invoke("noop").id("a").await?.wait_idle().await?;
    /// let again = engine.resume("noop", "a").await?;
    /// assert!(again.wait_idle().await?.is_terminal());
    /// # Ok(()) }
    /// ```
    pub async fn resume(
        &self,
        workflow: &str,
        instance_id: &str,
    ) -> Result<Invocation, EngineError> {
        self.inner.ensure_started()?;
        let key = InstanceKey::new(workflow, instance_id)?;
        self.inner.registry.ensure(workflow)?;
        match self.inner.store.get_metadata(&key).await? {
            None => Err(not_found(&key)),
            Some(meta) if meta.status == MetadataStatus::Cancelled => {
                Err(EngineError::Cancelled { key })
            }
            Some(_) => {
                let (entry, rx) = self.inner.trigger_run_from(
                    &key,
                    RunRequest {
                        resume: true,
                        epoch: None,
                    },
                    RunReason::Resume,
                );
                Ok(Invocation::for_entry(self, key, entry, rx, false))
            }
        }
    }

    /// Delivers `value` to the instance's point `point`.
    ///
    /// If the workflow waits there, the point is completed with the value
    /// in one compare-and-set and the instance runs again; the returned
    /// [`Invocation`] follows that run. If the workflow has not reached the
    /// point yet, the value is **buffered** durably with the instance and
    /// returned by `ctx.suspend(&point)` when the workflow gets there (the
    /// invocation then follows the instance as it is). One delivery per
    /// point: a second signal before the first is consumed, or after it,
    /// is [`SignalSuperseded`](EngineError::SignalSuperseded). Buffered
    /// signals are listed by [`buffered_signals`](Engine::buffered_signals)
    /// and deleted with the instance.
    ///
    /// Errors: [`InstanceNotFound`](EngineError::InstanceNotFound);
    /// [`SignalRejected`](EngineError::SignalRejected) when the instance is
    /// finished or cancelled, or the key is a durable timer or a regular
    /// step; [`TypeMismatch`](EngineError::TypeMismatch) when the point
    /// waits for another type than `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, SuspendPoint};
    ///
    /// static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("review", |ctx: Context| async move { ctx.suspend(&APPROVAL).await })?;
    /// engine.start().await?;
    /// engine.invoke("review").id("r1").await?.wait_idle().await?;
    /// let run = engine.signal("review", "r1", &APPROVAL, true).await?;
    /// assert!(run.wait_output::<bool>().await?);
    /// # Ok(()) }
    /// ```
    pub async fn signal<T: Serialize + 'static>(
        &self,
        workflow: &str,
        instance_id: &str,
        point: &SuspendPoint<T>,
        value: T,
    ) -> Result<Invocation, EngineError> {
        self.inner.ensure_started()?;
        let key = InstanceKey::new(workflow, instance_id)?;
        let step_key = point.key();
        validate_user_key("step_key", step_key)?;
        let runs_here = self.inner.registry.get(workflow).is_some();
        if !self.inner.worker.shared {
            self.inner.registry.ensure(workflow)?;
        }
        let rejected = |reason: String| EngineError::SignalRejected {
            key: step_key.to_owned(),
            reason,
        };
        let payload = StepRecord::completed(
            StepKind::Suspend,
            type_tag::<T>(),
            encode_value(step_key, &value)?,
            None,
        );
        let now = self.inner.clock.now_ms();
        let _in_flight = self.inner.live.claiming(&key);
        match self
            .inner
            .store
            .deliver_signal(key.clone(), step_key.to_owned(), payload, now)
            .await?
        {
            SignalOutcome::Delivered if runs_here => {
                telemetry::signal(&key, step_key, false);
                let (entry, rx) =
                    self.inner
                        .trigger_run_from(&key, RunRequest::default(), RunReason::Signal);
                Ok(Invocation::for_entry(self, key, entry, rx, false))
            }
            // A shared store: a worker that has the workflow runs it.
            SignalOutcome::Delivered => {
                telemetry::signal(&key, step_key, false);
                self.follow(key).await
            }
            SignalOutcome::Buffered => {
                telemetry::signal(&key, step_key, true);
                tracing::debug!(instance = %key, point = step_key, "signal buffered until the workflow reaches its point");
                self.follow(key).await
            }
            SignalOutcome::Superseded => Err(EngineError::SignalSuperseded {
                key: step_key.to_owned(),
            }),
            SignalOutcome::WrongType(expected) => Err(EngineError::TypeMismatch {
                key: step_key.to_owned(),
                expected,
                found: type_tag::<T>().to_owned(),
            }),
            SignalOutcome::NotAPoint(StepKind::Timer) => Err(rejected(
                "the step is a durable timer; it fires on its own".to_owned(),
            )),
            SignalOutcome::NotAPoint(StepKind::Select) => Err(rejected(
                "the key names a group of points; signal one of its points".to_owned(),
            )),
            SignalOutcome::NotAPoint(StepKind::Child) => Err(rejected(
                "the key is where the workflow awaits a child workflow; it resumes when the child ends"
                    .to_owned(),
            )),
            SignalOutcome::NotAPoint(_) => Err(rejected(
                "the step is a regular step, never suspended".to_owned(),
            )),
            SignalOutcome::InstanceMissing => Err(not_found(&key)),
            SignalOutcome::Finished(status) => Err(rejected(format!(
                "the instance is {}",
                WorkflowState::from(&status)
            ))),
        }
    }

    /// The signals buffered for an instance: sent before its workflow
    /// reached their points, consumed when it does. Each is the point's key
    /// and its stored record (type tag and value).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, SuspendPoint};
    ///
    /// static LATER: SuspendPoint<u8> = SuspendPoint::new("later");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("slow", |ctx: Context| async move {
    ///     ctx.timer("first", std::time::Duration::from_secs(60)).await?;
    ///     ctx.suspend(&LATER).await
    /// })?;
    /// engine.start().await?;
    /// engine.invoke("slow").id("s").await?.wait_idle().await?;
    /// engine.signal("slow", "s", &LATER, 9).await?;
    /// let buffered = engine.buffered_signals("slow", "s").await?;
    /// assert_eq!(buffered[0].0, "later");
    /// # Ok(()) }
    /// ```
    pub async fn buffered_signals(
        &self,
        workflow: &str,
        instance_id: &str,
    ) -> Result<Vec<(String, StepRecord)>, EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        let Some(snapshot) = self.inner.store.load_instance(&key).await? else {
            return Err(not_found(&key));
        };
        Ok(snapshot
            .steps
            .into_iter()
            .filter_map(|(step_key, record)| {
                step_key
                    .strip_prefix(SIGNAL_PREFIX)
                    .map(|point| (point.to_owned(), record))
            })
            .collect())
    }

    /// An [`Invocation`] following an instance as it is (no new run).
    async fn follow(&self, key: InstanceKey) -> Result<Invocation, EngineError> {
        if let Some(entry) = self.inner.live.get(&key)
            && entry.has_run_in_progress()
        {
            let rx = entry.state.subscribe();
            return Ok(Invocation::for_entry(self, key, entry, rx, false));
        }
        let Some(meta) = self.inner.store.get_metadata(&key).await? else {
            return Err(not_found(&key));
        };
        let (guard, rx) = self
            .inner
            .live
            .subscribe(&key, || WorkflowState::from(&meta.status));
        Ok(Invocation::from_stream(
            self,
            key,
            StatusStream::new(guard, rx),
        ))
    }

    /// Cancels an instance: it becomes `Cancelled` at once; a run in progress
    /// stops at once (its in-flight step futures are dropped, and nothing
    /// commits into the instance any more — not even a step closure that
    /// was spawned elsewhere), a suspended instance's timers are dropped,
    /// and later signals are rejected. Cancelling a cancelled
    /// instance is a no-op; a completed or failed one is an
    /// [`InvalidState`](EngineError::InvalidState) error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, WorkflowState};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("nap", |ctx: Context| async move { ctx.timer("nap", Duration::from_secs(3600)).await })?;
    /// engine.start().await?;
    /// engine.invoke("nap").id("n1").await?.wait_idle().await?;
    /// engine.cancel("nap", "n1").await?;
    /// assert_eq!(engine.state("nap", "n1").await.unwrap(), WorkflowState::Cancelled);
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, workflow: &str, instance_id: &str) -> Result<(), EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        let now = self.inner.clock.now_ms();
        match self.inner.store.cancel_instance(key.clone(), now).await? {
            CancelOutcome::Cancelled => {
                if let Some(entry) = self.inner.live.get(&key) {
                    entry.cancel();
                }
                family::after_cancel(&self.inner, &key).await;
                // A slot it (or a cancelled child) held may be free now.
                self.inner.queues.kick_all(&self.inner);
                Ok(())
            }
            CancelOutcome::NotActive(Some(MetadataStatus::Cancelled)) => {
                if let Some(entry) = self.inner.live.get(&key) {
                    entry.cancel();
                }
                Ok(())
            }
            CancelOutcome::NotActive(None) => Err(not_found(&key)),
            CancelOutcome::NotActive(Some(status)) => Err(invalid_state("cancel", key, &status)),
        }
    }

    /// Deletes every record of a finished, suspended or cancelled instance
    /// (retention). Returns whether it existed. An instance with a run in
    /// progress is an [`InvalidState`](EngineError::InvalidState) error. A
    /// suspended (or queued) one is cancelled first, in its own
    /// transition: a parent that awaits it gets
    /// [`ChildCancelled`](EngineError::ChildCancelled), and the children it
    /// awaits are cancelled; its children are not deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("noop", |_ctx: Context| async { Ok(()) })?;
    /// engine.start().await?;
    /// engine.invoke("noop").id("x").await?.wait_idle().await?;
    /// assert!(engine.delete("noop", "x").await?);
    /// assert!(engine.get_metadata("noop", "x").await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, workflow: &str, instance_id: &str) -> Result<bool, EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        if self.inner.live.get(&key).is_some_and(|e| e.is_running()) {
            return Err(EngineError::InvalidState {
                operation: "delete",
                key,
                state: StatusKind::Running,
            });
        }
        // An instance still waiting is cancelled first: a parent awaiting
        // it gets `ChildCancelled` (instead of waiting for an instance that
        // is gone), and the children it awaits are cancelled.
        if let Some(meta) = self.inner.store.get_metadata(&key).await?
            && !meta.status.is_terminal()
        {
            let now = self.inner.clock.now_ms();
            if let CancelOutcome::Cancelled =
                self.inner.store.cancel_instance(key.clone(), now).await?
            {
                family::after_cancel(&self.inner, &key).await;
            }
        }
        let existed = self.inner.store.delete_instance(key).await?;
        self.inner.queues.kick_all(&self.inner);
        Ok(existed)
    }

    /// Runs one retention sweep now, with the policy set by
    /// [`EngineBuilder::retention`] (see [`RetentionPolicy`]): deletes at
    /// most one batch of ended instances old enough, and returns how many it
    /// deleted (0 without a policy). The background sweeps of a started
    /// engine go on as before; this one counts in
    /// [`retention_stats`](Engine::retention_stats) too. After
    /// [`stop`](Engine::stop) it fails with [`EngineError::Stopped`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, ManualClock, RetentionPolicy, RetentionRule};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let clock = ManualClock::new(0);
    /// let policy = RetentionPolicy::new()
    ///     .rule(RetentionRule::new(Duration::from_secs(60)))
    ///     .interval(Duration::from_secs(3600)); // background sweeps: at start, then hourly
    /// let engine = Engine::builder().clock(clock.clone()).retention(policy).build();
    /// engine.register("noop", |_ctx: Context| async { Ok(()) })?;
    /// engine.start().await?;
    /// engine.invoke("noop").id("x").await?.wait_idle().await?;
    /// assert_eq!(engine.sweep_retention().await?, 0); // ended just now
    /// engine.wait_all().await; // (an instance whose run is still winding down waits a sweep)
    /// clock.advance(Duration::from_secs(61));
    /// assert_eq!(engine.sweep_retention().await?, 1);
    /// assert!(engine.get_metadata("noop", "x").await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn sweep_retention(&self) -> Result<usize, EngineError> {
        if self.inner.lifecycle.load(Ordering::Acquire) == STOPPED {
            return Err(EngineError::Stopped);
        }
        match &self.inner.retention {
            Some(retention) => Ok(retention.sweep_and_record(&self.inner).await?.0),
            None => Ok(0),
        }
    }

    /// What retention has done so far, as a watch of [`RetentionStats`]
    /// (sweeps, instances deleted) that changes after every sweep; await
    /// `changed` or `wait_for` on it to follow the background sweeps.
    /// Without a policy the counters stay zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Engine, ManualClock, RetentionPolicy, RetentionRule};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let policy = RetentionPolicy::new().rule(RetentionRule::new(Duration::from_secs(60)));
    /// let engine = Engine::builder().clock(ManualClock::new(0)).retention(policy).build();
    /// let mut stats = engine.retention_stats();
    /// engine.start().await?; // the first sweep runs at once
    /// stats.wait_for(|s| s.sweeps >= 1).await.unwrap();
    /// assert_eq!(stats.borrow().deleted, 0);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn retention_stats(&self) -> watch::Receiver<RetentionStats> {
        match &self.inner.retention {
            Some(retention) => retention.subscribe(),
            None => self.inner.no_retention.subscribe(),
        }
    }

    /// The instance's live state: the in-process state while a run is in
    /// progress (with its status message), else the persisted status.
    ///
    /// `Running` always means a run may be in progress. An instance the
    /// store says is `Running` whose workflow is not registered in this
    /// engine (a crash left it, and no run of it can start here) is not
    /// reported `Running`: it is the error
    /// [`StaleRunning`](EngineError::StaleRunning), as
    /// [`subscribe`](Engine::subscribe) reports it; register the workflow
    /// and [`resume`](Engine::resume) it (or restart the engine).
    ///
    /// Errors: [`InstanceNotFound`](EngineError::InstanceNotFound),
    /// [`StaleRunning`](EngineError::StaleRunning), key errors, storage
    /// errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Engine, EngineError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let engine = Engine::builder().build();
    /// assert!(matches!(engine.state("etl", "404").await, Err(EngineError::InstanceNotFound { .. })));
    /// # }
    /// ```
    pub async fn state(
        &self,
        workflow: &str,
        instance_id: &str,
    ) -> Result<WorkflowState, EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        if let Some(entry) = self.inner.live.get(&key)
            && entry.is_running()
        {
            return Ok(entry.state.borrow().clone());
        }
        match self.inner.store.get_metadata(&key).await? {
            // (On a shared store `Running` without a run here is another
            // worker's run, or pending work for one.)
            Some(meta)
                if meta.status == MetadataStatus::Running
                    && !self.inner.worker.shared
                    && self.inner.registry.get(key.workflow()).is_none()
                    && !self.inner.live.is_active(&key) =>
            {
                Err(EngineError::StaleRunning { key })
            }
            Some(meta) => Ok(WorkflowState::from(&meta.status)),
            None => Err(EngineError::InstanceNotFound { key }),
        }
    }

    /// Follows an instance's states; see [`StatusStream`].
    ///
    /// Errors: [`InstanceNotFound`](EngineError::InstanceNotFound);
    /// [`StaleRunning`](EngineError::StaleRunning) when the store says
    /// `Running` but no run is in progress in this process (a crash left it;
    /// call [`resume`](Engine::resume)); key errors, storage errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Engine, EngineError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let engine = Engine::builder().build();
    /// assert!(matches!(engine.subscribe("etl", "404").await, Err(EngineError::InstanceNotFound { .. })));
    /// # }
    /// ```
    pub async fn subscribe(
        &self,
        workflow: &str,
        instance_id: &str,
    ) -> Result<StatusStream, EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        if let Some(entry) = self.inner.live.get(&key)
            && entry.has_run_in_progress()
        {
            let rx = entry.state.subscribe();
            let guard = self.inner.live.guard_for(&key, entry);
            return Ok(StatusStream::new(guard, rx));
        }
        let Some(meta) = self.inner.store.get_metadata(&key).await? else {
            return Err(EngineError::InstanceNotFound { key });
        };
        let (guard, rx) = self
            .inner
            .live
            .subscribe(&key, || WorkflowState::from(&meta.status));
        if !guard.entry().has_run_in_progress() {
            // Re-read: a run may have finished between the read and the subscription.
            let fresh = self.inner.store.get_metadata(&key).await?;
            if let Some(fresh) = fresh {
                if fresh.status == MetadataStatus::Running
                    && !self.inner.worker.shared
                    && !self.inner.live.is_active(&key)
                {
                    return Err(EngineError::StaleRunning { key });
                }
                if !guard.entry().has_run_in_progress() {
                    guard.entry().publish(WorkflowState::from(&fresh.status));
                }
            }
        }
        Ok(StatusStream::new(guard, rx))
    }

    /// The persisted metadata of one instance.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = memable_core::Engine::builder().build();
    /// assert!(engine.get_metadata("etl", "1").await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn get_metadata(
        &self,
        workflow: &str,
        instance_id: &str,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        self.inner.store.get_metadata(&key).await
    }

    /// Lists instances, filtered by workflow, status and age (created
    /// before / since, ended before), paged by `after` / `limit`; see
    /// [`InstanceFilter`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Engine, InstanceFilter, StatusKind};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// let running = engine.list_instances(&InstanceFilter::new().status(StatusKind::Running)).await?;
    /// assert!(running.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        // The queues' own records live in reserved instances, which are no
        // workflow's: they are left out, and a page that lost some is
        // filled up from the next one, so `limit` still means a full page.
        let mut listed = Vec::new();
        let mut page = filter.clone();
        loop {
            let found = self.inner.store.list_instances(&page).await?;
            let full = page.limit.is_some_and(|limit| found.len() >= limit);
            let last = found.last().map(WorkflowMetadata::key).transpose()?;
            listed.extend(
                found
                    .into_iter()
                    .filter(|meta| meta.workflow_name != crate::QUEUE_WORKFLOW),
            );
            match (filter.limit, last) {
                (Some(limit), Some(last)) if full && listed.len() < limit => {
                    page.after = Some(last);
                    page.limit = Some(limit - listed.len());
                }
                _ => break,
            }
        }
        Ok(listed)
    }

    /// The committed output of a completed instance, decoded as `O`.
    ///
    /// Errors: [`InstanceNotFound`](EngineError::InstanceNotFound),
    /// [`WorkflowFailed`](EngineError::WorkflowFailed) for a failed instance,
    /// [`Cancelled`](EngineError::Cancelled),
    /// [`InvalidState`](EngineError::InvalidState) while it is running or
    /// suspended, [`TypeMismatch`](EngineError::TypeMismatch) for a wrong `O`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("answer", |_ctx: Context| async { Ok(42u8) })?;
    /// engine.start().await?;
    /// engine.invoke("answer").id("a").await?.wait_idle().await?;
    /// assert_eq!(engine.output::<u8>("answer", "a").await?, 42);
    /// # Ok(()) }
    /// ```
    pub async fn output<O: DeserializeOwned + 'static>(
        &self,
        workflow: &str,
        instance_id: &str,
    ) -> Result<O, EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        let Some(meta) = self.inner.store.get_metadata(&key).await? else {
            return Err(EngineError::InstanceNotFound { key });
        };
        match &meta.status {
            MetadataStatus::Completed(_) => {}
            MetadataStatus::Failed(error) => {
                return Err(EngineError::WorkflowFailed {
                    key,
                    error: error.clone(),
                });
            }
            MetadataStatus::Cancelled => return Err(EngineError::Cancelled { key }),
            other => return Err(invalid_state("read the output of", key, other)),
        }
        let Some(record) = self.inner.store.get_step(&key, OUTPUT_KEY).await? else {
            return Err(StorageError::new(
                StorageErrorKind::Corrupt,
                "output",
                format!("{key} is completed but has no _output record"),
            )
            .into());
        };
        decode_record(OUTPUT_KEY, &record)
    }
}

impl Inner {
    fn ensure_started(&self) -> Result<(), EngineError> {
        match self.lifecycle.load(Ordering::Acquire) {
            STARTED => Ok(()),
            NOT_STARTED => Err(EngineError::NotStarted),
            _ => Err(EngineError::Stopped),
        }
    }

    fn is_stopped(&self) -> bool {
        self.lifecycle.load(Ordering::Acquire) == STOPPED
    }

    fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// What a run calls to run another instance here: a child it started,
    /// a parent its end woke. Only while the engine is started, and only
    /// for a workflow registered here (on a shared store another worker
    /// takes the rest). It holds the engine weakly, so a run never keeps
    /// it alive.
    /// Whether a shutdown's deadline passed (see [`Engine::shutdown_timeout`]).
    fn halt(&self) -> watch::Receiver<bool> {
        self.halted.subscribe()
    }

    /// What a run calls when its instance, which held a slot of `queue`,
    /// ended: the queue may admit the next one.
    fn kicker(self: &Arc<Self>) -> Arc<dyn Fn(&str) + Send + Sync> {
        let weak = Arc::downgrade(self);
        Arc::new(move |queue: &str| {
            if let Some(inner) = weak.upgrade() {
                inner.queues.kick(&inner, queue);
            }
        })
    }

    fn spawner(self: &Arc<Self>) -> Arc<dyn Fn(&InstanceKey) + Send + Sync> {
        let weak = Arc::downgrade(self);
        Arc::new(move |key: &InstanceKey| {
            if let Some(inner) = weak.upgrade() {
                inner.run_here(key);
            }
        })
    }

    /// Runs `key` in this process if the engine is started and its
    /// workflow is registered here (see [`spawner`](Self::spawner)).
    fn run_here(self: &Arc<Self>, key: &InstanceKey) {
        if self.ensure_started().is_ok()
            && !self.is_aborted()
            && self.registry.get(key.workflow()).is_some()
        {
            self.trigger_run(key, RunRequest::default());
        }
    }

    /// Runs `key` now, or queues the request behind its run in progress.
    /// Returns the live entry and a receiver subscribed before the run starts.
    /// The run's span has the reason `woken` (see [`telemetry`]).
    fn trigger_run(
        self: &Arc<Self>,
        key: &InstanceKey,
        request: RunRequest,
    ) -> (Arc<live::LiveInstance>, watch::Receiver<WorkflowState>) {
        self.trigger_run_from(key, request, RunReason::Woken)
    }

    /// [`trigger_run`](Self::trigger_run) for `reason`: the run's span is a
    /// child of the span current here (the caller's).
    fn trigger_run_from(
        self: &Arc<Self>,
        key: &InstanceKey,
        request: RunRequest,
        reason: RunReason,
    ) -> (Arc<live::LiveInstance>, watch::Receiver<WorkflowState>) {
        let (triggered, receiver) = self.live.trigger(key, request);
        let entry = match triggered {
            Triggered::Queued(entry) => entry,
            Triggered::Spawn(entry) => {
                self.active_runs.send_modify(|n| *n += 1);
                self.activity.enter();
                tokio::spawn(run::run_loop(
                    Arc::clone(self),
                    key.clone(),
                    Arc::clone(&entry),
                    request,
                    RunOrigin::here(reason),
                ));
                entry
            }
        };
        (entry, receiver)
    }

    fn lease(&self) -> Arc<lease::StoreLease> {
        Arc::clone(&self.lease)
    }

    fn active_runs(&self) -> Arc<watch::Sender<usize>> {
        Arc::clone(&self.active_runs)
    }

    fn activity(&self) -> Arc<activity::Activity> {
        Arc::clone(&self.activity)
    }
}

fn not_found(key: &InstanceKey) -> EngineError {
    EngineError::InstanceNotFound { key: key.clone() }
}

fn invalid_state(
    operation: &'static str,
    key: InstanceKey,
    status: &MetadataStatus,
) -> EngineError {
    EngineError::InvalidState {
        operation,
        key,
        state: status.kind(),
    }
}
