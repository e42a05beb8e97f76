//! Tracing spans and events of the engine, for an application's own
//! `tracing` subscriber (a `tracing-opentelemetry` layer exports them
//! unchanged).
//!
//! # Spans
//!
//! | span | level | fields | when |
//! |---|---|---|---|
//! | `memable.run` ([`RUN_SPAN`]) | INFO | `workflow`, `instance`, `reason`, `outcome` | one run of an instance: from loading its records to recording its end |
//! | `memable.step` ([`STEP_SPAN`]) | INFO | `step`, `attempt`, `outcome` | one attempt of a step's closure (a replayed step has no span) |
//!
//! A run's span is a child of the span that was current where the run was
//! asked for: `invoke(..).await`, `signal`, `resume` called inside a span
//! get their run under it, a child's run is under its parent's run, a run
//! woken by a child's end is under that child's run. Runs with no caller —
//! recovery at `start` (unless `start` is called in a span), timers fired by
//! the scheduler, queue admissions, work a worker acquires — are roots. An
//! attempt's span is a child of its run's span; events are emitted in the
//! span that is current where they happen.
//!
//! `reason` (why the run happened): `start` (a new instance), `resume`
//! (`Engine::resume`), `recovery` (an instance left `Running`, run at
//! `start` or by `invoke` of its id), `signal` (a signal resolved a point),
//! `timer` (a due timer fired), `woken` (a child's end woke its parent, a
//! parent started a child, a queue admitted it, a worker acquired it),
//! `rerun` (asked for while a run was in progress, run right after it).
//!
//! A run's `outcome`: `completed`, `failed`, `suspended` (it waits at a
//! point, a timer or a child), `cancelled`, `panicked`, `stopped` (a
//! shutdown's deadline stopped it; it runs again on the next start),
//! `skipped` (nothing to run: finished, queued, not registered, deleted,
//! held by another worker), `unrecorded` (a storage error: its end is
//! unknown), `lost_ownership` (another worker runs it now), `rerun` (a
//! point was resolved during the run: it runs again at once), `aborted`
//! (`Engine::abort`, for tests).
//!
//! An attempt's `outcome`: `committed` (its result is stored), `kept` (a
//! result stored earlier was kept), `retryable` (a retryable failure; a
//! retry is scheduled), `timeout` (the attempt timed out; a retry is
//! scheduled), `permanent` (a permanent failure), `dead_letter` (the last
//! attempt failed: the step is dead-lettered), `interrupted` (the attempt
//! never ended: cancel, a storage error, a shutdown past its deadline).
//!
//! # Events
//!
//! | event | level | fields | where |
//! |---|---|---|---|
//! | `memable.suspend` ([`SUSPEND_EVENT`]) | INFO | `workflow`, `instance`, `point`, `points` | the run ends waiting at `point` (the first of `points` it waits at) |
//! | `memable.signal` ([`SIGNAL_EVENT`]) | INFO | `workflow`, `instance`, `point`, `buffered` | `Engine::signal` delivered a value (`buffered`: the workflow has not reached the point yet) |
//! | `memable.timer` ([`TIMER_EVENT`]) | INFO | `workflow`, `instance`, `step` | the scheduler fired a due timer (or a deadline of a point) |
//! | `memable.retry` ([`RETRY_EVENT`]) | INFO | `step`, `attempt`, `delay_ms`, `error` | a failed attempt will be retried after `delay_ms` (in its attempt's span) |
//! | `memable.dead_letter` ([`DEAD_LETTER_EVENT`]) | WARN | `step`, `attempts`, `error` | a step's attempts ran out (in its last attempt's span) |
//! | `memable.memoised` ([`MEMOISED_EVENT`]) | TRACE | `step` | a step returned its stored result (TRACE: a replay emits one per step) |
//!
//! # Cost
//!
//! With no subscriber interested, a span or an event is one check of a
//! cached interest per call site: nothing is formatted or allocated (fields
//! are `&str` and integers; an error is formatted only for an enabled
//! event).

use std::fmt::Display;

use tracing::Span;
use tracing::field::Empty;

use crate::{CommitOutcome, EngineError, InstanceKey};

/// The name of the span of one run of an instance.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::telemetry::RUN_SPAN, "memable.run");
/// ```
pub const RUN_SPAN: &str = "memable.run";

/// The name of the span of one attempt of a step.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::telemetry::STEP_SPAN, "memable.step");
/// ```
pub const STEP_SPAN: &str = "memable.step";

/// The name of the event of a run that ends waiting.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::telemetry::SUSPEND_EVENT, "memable.suspend");
/// ```
pub const SUSPEND_EVENT: &str = "memable.suspend";

/// The name of the event of a delivered signal.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::telemetry::SIGNAL_EVENT, "memable.signal");
/// ```
pub const SIGNAL_EVENT: &str = "memable.signal";

/// The name of the event of a fired timer.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::telemetry::TIMER_EVENT, "memable.timer");
/// ```
pub const TIMER_EVENT: &str = "memable.timer";

/// The name of the event of a scheduled retry.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::telemetry::RETRY_EVENT, "memable.retry");
/// ```
pub const RETRY_EVENT: &str = "memable.retry";

/// The name of the event of a dead-lettered step.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::telemetry::DEAD_LETTER_EVENT, "memable.dead_letter");
/// ```
pub const DEAD_LETTER_EVENT: &str = "memable.dead_letter";

/// The name of the event of a step served from its stored result.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::telemetry::MEMOISED_EVENT, "memable.memoised");
/// ```
pub const MEMOISED_EVENT: &str = "memable.memoised";

/// Why a run happened (the run span's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunReason {
    Start,
    Resume,
    Recovery,
    Signal,
    Timer,
    Woken,
    Rerun,
}

impl RunReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Resume => "resume",
            Self::Recovery => "recovery",
            Self::Signal => "signal",
            Self::Timer => "timer",
            Self::Woken => "woken",
            Self::Rerun => "rerun",
        }
    }
}

/// Where a run was asked for: why, and the span current there.
pub(crate) struct RunOrigin {
    pub reason: RunReason,
    pub parent: Span,
}

impl RunOrigin {
    /// An origin whose parent is the span current now.
    pub fn here(reason: RunReason) -> Self {
        Self {
            reason,
            parent: Span::current(),
        }
    }

    /// A run queued behind the run in progress: no caller of its own.
    pub fn rerun() -> Self {
        Self {
            reason: RunReason::Rerun,
            parent: Span::none(),
        }
    }
}

/// The span of one run of `key`.
pub(crate) fn run_span(key: &InstanceKey, origin: &RunOrigin) -> Span {
    tracing::info_span!(
        parent: &origin.parent,
        RUN_SPAN,
        workflow = key.workflow(),
        instance = key.instance(),
        reason = origin.reason.as_str(),
        outcome = Empty,
    )
}

/// Records a run's `outcome` on the current span (the run's).
pub(crate) fn run_outcome(outcome: &'static str) {
    Span::current().record("outcome", outcome);
}

/// The span of one attempt of a step; its outcome is recorded once, and
/// `interrupted` if it never is.
pub(crate) struct Attempt {
    span: Span,
    ended: bool,
}

impl Attempt {
    /// Attempt number `attempt` (from 1) of step `step`, a child of the
    /// current span.
    pub fn start(step: &str, attempt: u32) -> Self {
        Self {
            span: tracing::info_span!(STEP_SPAN, step, attempt, outcome = Empty),
            ended: false,
        }
    }

    /// The attempt's span, to instrument the closure's future with.
    pub fn span(&self) -> Span {
        self.span.clone()
    }

    /// Records how the attempt ended.
    pub fn end(&mut self, outcome: &'static str) {
        self.span.record("outcome", outcome);
        self.ended = true;
    }

    /// Records how the commit of the attempt's result went.
    pub fn committed(&mut self, outcome: &CommitOutcome) {
        self.end(match outcome {
            CommitOutcome::Committed => "committed",
            CommitOutcome::Kept(_) => "kept",
            CommitOutcome::InstanceMissing | CommitOutcome::Cancelled => "interrupted",
        });
    }

    /// A retry of `step` after this failed attempt (number `attempt`):
    /// records `timeout` (the attempt timed out) or `retryable`, and the
    /// retry event in its span.
    pub fn retry(
        &mut self,
        step: &str,
        attempt: u32,
        delay_ms: u128,
        error: &(dyn std::error::Error + Send + Sync + 'static),
    ) {
        let timed_out = matches!(
            error.downcast_ref::<EngineError>(),
            Some(EngineError::StepTimeout { .. })
        );
        self.end(if timed_out { "timeout" } else { "retryable" });
        let delay_ms = u64::try_from(delay_ms).unwrap_or(u64::MAX);
        self.span.in_scope(|| {
            tracing::info!(name: RETRY_EVENT, step, attempt, delay_ms, error = %error, "retry scheduled");
        });
    }

    /// The last attempt of `step` failed: records `dead_letter` and the
    /// dead-letter event in its span.
    pub fn dead_letter(&mut self, step: &str, attempts: u32, error: &dyn Display) {
        self.end("dead_letter");
        self.span.in_scope(|| {
            tracing::warn!(name: DEAD_LETTER_EVENT, step, attempts, error = %error, "retries exhausted; step dead-lettered");
        });
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.ended {
            self.span.record("outcome", "interrupted");
        }
    }
}

/// A step returned its stored result.
pub(crate) fn memoised(step: &str) {
    tracing::trace!(name: MEMOISED_EVENT, step, "step memoised");
}

/// A run ends waiting at `point`, the first of `points`.
pub(crate) fn suspended(key: &InstanceKey, point: &str, points: usize) {
    tracing::info!(
        name: SUSPEND_EVENT,
        workflow = key.workflow(),
        instance = key.instance(),
        point,
        points,
        "run suspended"
    );
}

/// A signal reached `point` of `key`.
pub(crate) fn signal(key: &InstanceKey, point: &str, buffered: bool) {
    tracing::info!(
        name: SIGNAL_EVENT,
        workflow = key.workflow(),
        instance = key.instance(),
        point,
        buffered,
        "signal delivered"
    );
}

/// A due timer at `step` of `key` fired.
pub(crate) fn timer_fired(key: &InstanceKey, step: &str) {
    tracing::info!(
        name: TIMER_EVENT,
        workflow = key.workflow(),
        instance = key.instance(),
        step,
        "timer fired"
    );
}
