//! One run of an instance: load its snapshot, call the workflow with a
//! [`Context`], record how it ended.
//!
//! # The protocol of a run
//!
//! A run is spawned by the engine for one instance when its live entry
//! ([`LiveInstance`]) says no run is in progress; triggers that arrive
//! meanwhile queue behind it and start one rerun from a fresh snapshot, so
//! at most one run of an instance executes at any time in this process.
//!
//! 1. **Load.** One read of the instance's metadata and step records. A
//!    cancelled instance, a queued one its queue has not admitted, or a
//!    finished one that is not being resumed, ends the run at once with its
//!    stored state.
//! 2. **Replay.** The workflow is called from the top; every step whose key
//!    has a committed record returns it from the snapshot ([`memo`]) without
//!    touching the store, and nothing is published (a run whose snapshot
//!    holds no user step has nothing to replay: its status messages are
//!    published at once).
//! 3. **Live.** At the first step with no committed result the run goes
//!    live: a resumed finished instance is revived (`Running` again) and
//!    `Running` is published. Each step commits its result (or its retry
//!    state) before the workflow moves on.
//! 4. **End.** A run that wrote a suspension (or awaits a child) ends
//!    suspended, whatever the workflow returned. Otherwise its output (or
//!    error) is written by one finish transition and published; the finish
//!    of a child completes its parent's point in that transition, and the
//!    run then runs the parent here if its workflow is registered here; the
//!    finish of an instance that held a queue slot frees it, and the run
//!    kicks the queue's admission.
//!
//! Who touches what: the run reaches the store, the clock and the timer
//! scheduler only through its [`RunEnv`]; the engine's other parts (signals,
//! timers, cancel) change the instance only through store transitions and
//! the live entry (cancel flag, queued reruns).
//!
//! What each failure does:
//!
//! - **A step's error** is the workflow's to handle; if it returns it, the
//!   instance is finished `Failed` with its message
//!   ([`EngineError::WorkflowFailed`] for waiters).
//! - **A panic** in the workflow is caught (the workflow runs as its own
//!   task): the instance is finished `Failed` with the panic message and
//!   waiters get [`EngineError::WorkflowPanicked`].
//! - **A storage error while loading, reviving or finishing** means the
//!   run's end could not be recorded: the store still says what it said
//!   (usually `Running`), waiters get that [`StorageError`](crate::StorageError) (the outcome is
//!   unknown; streams see [`WorkflowState::OutcomeUnknown`]), and the
//!   instance is run again on the next start, resume or invoke of its id.
//! - **Cancel** stops the run at its next step boundary (or backoff); it
//!   writes nothing more.
//! - **A shutdown past its deadline** (`Engine::shutdown_timeout`) stops the
//!   run at its next step boundary (or backoff) with `Stopped`: the step in
//!   flight commits, nothing after it is written, and the instance stays
//!   `Running` for the next start.
//! - **Abort** (a simulated crash, for tests) drops the run at its next
//!   await point; it writes nothing more.

mod child;
mod context;
mod fence;
mod memo;
mod step;
mod suspend;
mod upgrade;

use std::sync::Arc;

use tokio::sync::watch;
use tracing::Instrument;

pub use child::{ChildBuilder, ChildHandle, FanOutBuilder};
pub use context::Context;
pub use step::StepBuilder;
pub use suspend::{FirstOf, FirstOfBuilder, SuspendBuilder, SuspendPoint, SuspendTimeout};

use super::Inner;
use super::activity::{Activity, RunActivity};
use super::lease::StoreLease;
use super::live::{LiveInstance, RunEnd, RunRequest};
use super::metrics;
use super::scheduler::TimerWakeup;
use super::telemetry::{self, RunOrigin};
use crate::{
    AcquireOutcome, Clock, EngineError, Finish, FinishOutcome, InstanceKey, MetadataStatus,
    ParkOutcome, RetryPolicy, StepRecord, StepStore, StepStoreExt, WorkflowState,
};

/// Everything a run reaches outside itself, and nothing more.
pub(crate) struct RunEnv {
    /// The engine's store.
    pub store: Arc<dyn StepStore>,
    /// The engine's clock (timer deadlines, backoff, timestamps).
    pub clock: Arc<dyn Clock>,
    /// The retry policy of steps that set none.
    pub default_retry: RetryPolicy,
    /// Whether a step key reused in one run is an error.
    pub strict_keys: bool,
    /// The instance's live entry: published states, cancel flag.
    pub entry: Arc<LiveInstance>,
    /// Tells the timer scheduler about a new deadline.
    pub timers: Arc<TimerWakeup>,
    /// This run's share of the engine's busy count (steps in flight, steps
    /// in a retry backoff).
    pub activity: Arc<RunActivity>,
    /// Runs another instance in this process if its workflow is
    /// registered here: a child this run started, a parent its end woke.
    pub spawn: Arc<dyn Fn(&InstanceKey) + Send + Sync>,
    /// Tells the engine a slot of a queue may be free.
    pub kick: Arc<dyn Fn(&str) + Send + Sync>,
    /// `true` once a shutdown's deadline passed: stop at the next step
    /// boundary, record nothing more.
    pub halt: watch::Receiver<bool>,
    /// Set for a dry run ([`Engine::check_instance`](crate::Engine::check_instance)):
    /// nothing is written, no step closure is called, and what the code
    /// reaches is recorded here.
    pub dry: Option<Arc<crate::engine::check::DryRun>>,
}

/// Decrements the engine's active-run and busy counts when the run task
/// ends, even when it is dropped. It holds the counters, not the engine, so
/// the engine (and its store) can be released before `wait_all` returns.
pub(crate) struct ActiveRun(Arc<watch::Sender<usize>>, Arc<Activity>, Arc<StoreLease>);

impl ActiveRun {
    /// Counts work that is not a run but must keep `wait_all` waiting (an
    /// admission a queue owes), until the guard is dropped.
    pub(crate) fn begin(inner: &Inner) -> Self {
        inner.active_runs.send_modify(|n| *n += 1);
        inner.activity.enter();
        Self(inner.active_runs(), inner.activity(), inner.lease())
    }
}

impl Drop for ActiveRun {
    fn drop(&mut self) {
        self.1.leave();
        let mut idle = false;
        self.0.send_modify(|n| {
            *n = n.saturating_sub(1);
            idle = *n == 0;
        });
        if idle {
            self.2.release_if_idle();
        }
    }
}

/// Runs `key` until no rerun is queued behind it; each run in a span (see
/// [`telemetry`]) whose parent is `origin`'s, reruns as roots.
pub(crate) async fn run_loop(
    inner: Arc<Inner>,
    key: InstanceKey,
    entry: Arc<LiveInstance>,
    mut request: RunRequest,
    mut origin: RunOrigin,
) {
    let _active = ActiveRun(inner.active_runs(), inner.activity(), inner.lease());
    // At most the worker's capacity of runs at once; the rest wait here.
    let _permit = match &inner.permits {
        Some(permits) => Arc::clone(permits).acquire_owned().await.ok(),
        None => None,
    };
    loop {
        if !inner.is_aborted() {
            let span = telemetry::run_span(&key, &origin);
            run_once(&inner, &key, &entry, request)
                .instrument(span)
                .await;
        }
        match inner.live.run_finished(&key, &entry) {
            Some(next) => {
                request = next;
                origin = RunOrigin::rerun();
            }
            None => break,
        }
    }
    // Release the engine before the counter drops, so a caller of
    // `wait_all` that then drops the engine really closes the store.
    drop(entry);
    drop(inner);
}

async fn run_once(
    inner: &Arc<Inner>,
    key: &InstanceKey,
    entry: &Arc<LiveInstance>,
    request: RunRequest,
) {
    if !inner.worker.shared {
        let outcome = run_with(inner, key, entry, request, Arc::clone(&inner.store)).await;
        telemetry::run_outcome(outcome);
        return;
    }
    // A shared store: own the instance before any workflow code runs, and
    // fence every write by the acquisition's epoch.
    let epoch = if let Some(epoch) = request.epoch {
        epoch
    } else if let Some(epoch) = acquire(inner, key, entry).await {
        epoch
    } else {
        telemetry::run_outcome("skipped");
        return;
    };
    let fenced = Arc::new(fence::FencedStore::new(
        Arc::clone(&inner.store),
        key.clone(),
        epoch,
    ));
    let outcome = run_with(
        inner,
        key,
        entry,
        request,
        Arc::clone(&fenced) as Arc<dyn StepStore>,
    )
    .await;
    telemetry::run_outcome(outcome);
    if !inner.is_aborted() {
        // (An aborted run is a simulated crash: it writes nothing more.)
        fenced.release_if_held().await;
    }
}

/// Acquires `key` for this worker; `None` (with what to publish published)
/// if it cannot run here.
async fn acquire(inner: &Arc<Inner>, key: &InstanceKey, entry: &Arc<LiveInstance>) -> Option<u64> {
    let now = inner.clock.now_ms();
    match inner
        .store
        .acquire(key.clone(), inner.worker.id.to_string(), now)
        .await
    {
        Ok(AcquireOutcome::Acquired { epoch }) => Some(epoch),
        Ok(AcquireOutcome::Held { worker }) => {
            tracing::debug!(instance = %key, holder = %worker, "another worker runs it");
            None
        }
        Ok(AcquireOutcome::Cancelled) => {
            entry.publish(WorkflowState::Cancelled);
            None
        }
        Ok(AcquireOutcome::InstanceMissing) => {
            entry.publish(WorkflowState::Failed {
                error: "the instance no longer exists".to_owned(),
            });
            None
        }
        Err(error) => {
            tracing::warn!(instance = %key, %error, "could not acquire the instance");
            publish_error(entry, error);
            None
        }
    }
}

/// One run over `store` (the engine's store, or a fenced view of it);
/// returns its outcome for the run's span (see [`telemetry`]).
async fn run_with(
    inner: &Arc<Inner>,
    key: &InstanceKey,
    entry: &Arc<LiveInstance>,
    request: RunRequest,
    store: Arc<dyn StepStore>,
) -> &'static str {
    let snapshot = match store.load_instance(key).await {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => {
            tracing::warn!(instance = %key, "run skipped: the instance no longer exists");
            entry.publish(WorkflowState::Failed {
                error: "the instance no longer exists".to_owned(),
            });
            return "skipped";
        }
        Err(error) => {
            tracing::error!(instance = %key, %error, "run could not load its instance");
            publish_error(entry, error);
            return "unrecorded";
        }
    };
    match &snapshot.metadata.status {
        status if crate::store::is_queued(status) => {
            // Not admitted yet: its queue runs it.
            entry.publish(WorkflowState::from(status));
            return "skipped";
        }
        MetadataStatus::Cancelled => {
            entry.publish(WorkflowState::Cancelled);
            return "skipped";
        }
        status @ (MetadataStatus::Completed(_) | MetadataStatus::Failed(_)) if !request.resume => {
            // A stale trigger: nothing to run.
            entry.publish(WorkflowState::from(status));
            return "skipped";
        }
        _ => {}
    }
    let Some(workflow) = inner.registry.get(key.workflow()) else {
        tracing::warn!(instance = %key, "run skipped: workflow is not registered");
        entry.publish(WorkflowState::from(&snapshot.metadata.status));
        return "skipped";
    };
    let env = RunEnv {
        store: Arc::clone(&store),
        clock: Arc::clone(&inner.clock),
        default_retry: inner.default_retry,
        strict_keys: inner.strict_keys,
        entry: Arc::clone(entry),
        timers: Arc::clone(&inner.timers),
        activity: RunActivity::new(inner.activity()),
        spawn: inner.spawner(),
        kick: inner.kicker(),
        halt: inner.halt(),
        dry: None,
    };
    let run_metric = metrics::run_started(key.workflow());
    let ctx = Context::new(env, key.clone(), snapshot, request.resume);
    // The workflow runs as its own task so a panic in user code is caught
    // and reported instead of tearing down the run loop, and so a cancel
    // can drop it (with every step future in it) at once.
    let task = tokio::spawn(workflow(ctx.clone()).instrument(tracing::Span::current()));
    entry.set_abort(task.abort_handle());
    if inner.is_aborted() {
        // `Engine::abort` ran between the check in `run_loop` and the
        // handle being set: it could not reach this task.
        task.abort();
    }
    let joined = task.await;
    ctx.end();
    if let Ok(Err(EngineError::LostOwnership { .. })) = &joined {
        // Another worker runs the instance now; nothing of this run lands.
        run_metric.finished("lost_ownership");
        return "lost_ownership";
    }
    let outcome = match joined {
        Ok(outcome) => outcome,
        Err(join_error) if join_error.is_panic() => {
            let message = panic_message(join_error);
            tracing::error!(instance = %key, panic = %message, "workflow panicked");
            Err(EngineError::WorkflowPanicked {
                key: key.clone(),
                message,
            })
        }
        Err(_) if entry.is_cancelled() => {
            // Cancelled: the store already says so; the run's step futures
            // were dropped and nothing more is written.
            entry.publish(WorkflowState::Cancelled);
            run_metric.finished("cancelled");
            return "cancelled";
        }
        Err(_) => return "aborted", // a simulated crash writes nothing more
    };
    let panicked = matches!(outcome, Err(EngineError::WorkflowPanicked { .. }));
    if ctx.is_halted() && matches!(outcome, Err(EngineError::Stopped)) {
        // Stopped at a step boundary by a shutdown past its deadline: it
        // writes nothing more, and the instance stays `Running` in the store
        // for the next start.
        tracing::info!(instance = %key, "run stopped by the shutdown deadline; it runs again on the next start");
        run_metric.finished("stopped");
        "stopped"
    } else if entry.is_cancelled() {
        entry.publish(WorkflowState::Cancelled);
        run_metric.finished("cancelled");
        "cancelled"
    } else if ctx.is_suspended() {
        park(inner, &store, key, entry, &ctx).await;
        run_metric.finished("suspended");
        ended_as(entry, false)
    } else {
        run_metric.finished_with(&outcome, entry);
        record_outcome(inner, &store, key, entry, &ctx, outcome).await;
        ended_as(entry, panicked)
    }
}

/// Ends a run that waits at one or more points: the instance becomes
/// `Suspended` at the first of them — unless one was resolved during the
/// run, in which case it runs again at once.
async fn park(
    inner: &Arc<Inner>,
    store: &Arc<dyn StepStore>,
    key: &InstanceKey,
    entry: &Arc<LiveInstance>,
    ctx: &Context,
) {
    let waiting = ctx.waiting();
    let Some((first, status)) = waiting.first().cloned() else {
        return;
    };
    let parked = MetadataStatus::Suspended { key: first, status };
    if *ctx.initial_status() == parked {
        // Stopped where it stopped before: nothing to write. A signal that
        // resolved a point since the snapshot set the instance `Running`
        // and queued a rerun behind this run.
        telemetry::suspended(key, first_point(&parked), waiting.len());
        entry.publish(WorkflowState::from(&parked));
        return;
    }
    if let Err(error) = ctx.revive_if_pending().await {
        match error {
            EngineError::Cancelled { .. } => entry.publish(WorkflowState::Cancelled),
            other => publish_error(entry, other),
        }
        return;
    }
    let MetadataStatus::Suspended { status, .. } = &parked else {
        return;
    };
    let keys: Vec<String> = waiting.into_iter().map(|(point, _)| point).collect();
    let now = inner.clock.now_ms();
    let points = keys.len();
    match store.park(key.clone(), keys, status.clone(), now).await {
        Ok(ParkOutcome::Parked) => {
            telemetry::suspended(key, first_point(&parked), points);
            entry.publish(WorkflowState::from(&parked));
        }
        Ok(ParkOutcome::Woken) => {
            tracing::debug!(instance = %key, "a point was resolved during the run; running again");
            entry.queue_rerun(RunRequest::default());
        }
        Ok(ParkOutcome::NotActive(Some(status))) => entry.publish(WorkflowState::from(&status)),
        Ok(ParkOutcome::NotActive(None)) => entry.publish(WorkflowState::Failed {
            error: "the instance was deleted while running".to_owned(),
        }),
        Err(error) => {
            tracing::error!(instance = %key, %error, "could not record that the run waits; the instance is run again on the next start or resume");
            publish_error(entry, error);
        }
    }
}

/// Commits how a run that did not suspend ended, and publishes it.
async fn record_outcome(
    inner: &Arc<Inner>,
    store: &Arc<dyn StepStore>,
    key: &InstanceKey,
    entry: &Arc<LiveInstance>,
    ctx: &Context,
    outcome: Result<StepRecord, EngineError>,
) {
    if ctx.replay_changed_nothing(&outcome) {
        let state = WorkflowState::from(ctx.initial_status());
        entry.publish_end(run_end(&outcome), state);
        return;
    }
    if let Err(error) = ctx.revive_if_pending().await {
        match error {
            EngineError::Cancelled { .. } => entry.publish(WorkflowState::Cancelled),
            other => publish_error(entry, other),
        }
        return;
    }
    let now = inner.clock.now_ms();
    let end = run_end(&outcome);
    let (finish, finished_state) = match outcome {
        Ok(output) => {
            let status = ctx.current_status();
            (
                Finish::Completed {
                    status: status.clone(),
                    output,
                },
                WorkflowState::Completed { status },
            )
        }
        Err(EngineError::Cancelled { .. }) if entry.is_cancelled() => {
            entry.publish(WorkflowState::Cancelled);
            return;
        }

        Err(EngineError::Storage(error)) => {
            // The store failed under the workflow (a step's commit): that is
            // no failure of the workflow, and the outcome of that write is
            // unknown. The instance stays `Running` and runs again (on the
            // next start, resume or invoke; on a shared store, on any worker
            // once this run released it).
            tracing::error!(instance = %key, %error, "a write of the run failed; the instance is run again later");
            entry.publish_unrecorded(error);
            return;
        }
        Err(error) => {
            let message = error.to_string();
            tracing::warn!(instance = %key, error = %message, "workflow failed");
            (
                Finish::Failed(message.clone()),
                WorkflowState::Failed { error: message },
            )
        }
    };
    match store.finish_instance(key.clone(), finish, now).await {
        Ok(FinishOutcome::Finished) => {
            entry.publish_end(end, finished_state);
            if let Some(parent) = ctx.awaiting_parent() {
                // The finish completed the parent's point and woke it.
                (ctx.run.env.spawn)(&parent);
            }
            if let Some(queue) = ctx.queue() {
                // Its slot is free.
                (ctx.run.env.kick)(&queue);
            }
        }
        Ok(FinishOutcome::NotRunning(Some(status))) => entry.publish(WorkflowState::from(&status)),
        Ok(FinishOutcome::NotRunning(None)) => entry.publish(WorkflowState::Failed {
            error: "the instance was deleted while running".to_owned(),
        }),
        Err(error) => {
            tracing::error!(instance = %key, %error, "could not record how the run ended; the instance stays Running and is recovered on the next start or resume");
            publish_error(entry, error);
        }
    }
}

/// The outcome of a run that parked or recorded its end, for its span: what
/// it published.
fn ended_as(entry: &LiveInstance, panicked: bool) -> &'static str {
    match &*entry.state.borrow() {
        WorkflowState::Completed { .. } => "completed",
        WorkflowState::Failed { .. } if panicked => "panicked",
        WorkflowState::Failed { .. } => "failed",
        WorkflowState::Suspended { .. } | WorkflowState::Queued { .. } => "suspended",
        WorkflowState::Cancelled => "cancelled",
        WorkflowState::OutcomeUnknown { .. } => "unrecorded",
        // A point was resolved during the run: it runs again at once.
        WorkflowState::Running { .. } => "rerun",
    }
}

/// The point a parked status names.
fn first_point(parked: &MetadataStatus) -> &str {
    match parked {
        MetadataStatus::Suspended { key, .. } => key,
        _ => "",
    }
}

/// What the live entry keeps of a run's end for its waiters.
fn run_end(outcome: &Result<StepRecord, EngineError>) -> Option<RunEnd> {
    match outcome {
        Ok(output) => Some(RunEnd::Completed(output.clone())),
        Err(EngineError::WorkflowPanicked { message, .. }) => {
            Some(RunEnd::Panicked(message.clone()))
        }
        Err(_) => None,
    }
}

/// Publishes a run that ended on an error of the engine or the store
/// before its end was recorded: a storage error reaches the waiters as
/// itself (outcome unknown); anything else as a failure message.
fn publish_error(entry: &LiveInstance, error: EngineError) {
    match error {
        // Another worker owns the instance: it publishes what happens next.
        EngineError::LostOwnership { .. } => {}
        EngineError::Storage(error) => entry.publish_unrecorded(error),
        other => entry.publish(WorkflowState::Failed {
            error: other.to_string(),
        }),
    }
}

pub(crate) fn panic_message(error: tokio::task::JoinError) -> String {
    let payload = error.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
