//! The engine's metrics through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`): whatever recorder the application installs
//! (Prometheus exporter, `metrics-util`'s debugging recorder, …) receives
//! them. Without the feature every function here is an empty inline
//! function and the timers are zero-sized: nothing is measured, nothing
//! linked.
//!
//! The table of every metric (name, type, labels, meaning) is in
//! `docs/observability.md`, section *Metrics*; the names are the constants
//! below. Labels are bounded: workflow and queue names (registered and
//! declared by the application), fixed outcome words — never an instance
//! id or a step key.

/// `memable_runs_started_total` (counter; `workflow`).
#[cfg(feature = "metrics")]
pub(crate) const RUNS_STARTED: &str = "memable_runs_started_total";
/// `memable_runs_finished_total` (counter; `workflow`, `outcome`).
#[cfg(feature = "metrics")]
pub(crate) const RUNS_FINISHED: &str = "memable_runs_finished_total";
/// `memable_run_duration_seconds` (histogram; `workflow`, `outcome`).
#[cfg(feature = "metrics")]
pub(crate) const RUN_DURATION: &str = "memable_run_duration_seconds";
/// `memable_step_attempt_duration_seconds` (histogram; `workflow`,
/// `outcome`).
#[cfg(feature = "metrics")]
pub(crate) const STEP_ATTEMPT: &str = "memable_step_attempt_duration_seconds";
/// `memable_steps_committed_total` (counter; `workflow`).
#[cfg(feature = "metrics")]
pub(crate) const STEPS_COMMITTED: &str = "memable_steps_committed_total";
/// `memable_step_retries_total` (counter; `workflow`).
#[cfg(feature = "metrics")]
pub(crate) const STEP_RETRIES: &str = "memable_step_retries_total";
/// `memable_step_dead_letters_total` (counter; `workflow`).
#[cfg(feature = "metrics")]
pub(crate) const STEP_DEAD_LETTERS: &str = "memable_step_dead_letters_total";
/// `memable_timers_fired_total` (counter; `workflow`).
#[cfg(feature = "metrics")]
pub(crate) const TIMERS_FIRED: &str = "memable_timers_fired_total";
/// `memable_queue_depth` (gauge; `queue`).
#[cfg(feature = "metrics")]
pub(crate) const QUEUE_DEPTH: &str = "memable_queue_depth";
/// `memable_queue_admitted_total` (counter; `queue`).
#[cfg(feature = "metrics")]
pub(crate) const QUEUE_ADMITTED: &str = "memable_queue_admitted_total";
/// `memable_retention_deleted_total` (counter).
#[cfg(feature = "metrics")]
pub(crate) const RETENTION_DELETED: &str = "memable_retention_deleted_total";

#[cfg(feature = "metrics")]
mod on {
    use std::time::Instant;

    use crate::StepError;

    /// A run of `workflow` began; finish it with [`RunMetric::finished`].
    pub(crate) struct RunMetric {
        workflow: String,
        started: Instant,
    }

    #[inline]
    pub(crate) fn run_started(workflow: &str) -> RunMetric {
        metrics::counter!(super::RUNS_STARTED, "workflow" => workflow.to_owned()).increment(1);
        RunMetric {
            workflow: workflow.to_owned(),
            started: Instant::now(),
        }
    }

    impl RunMetric {
        /// The run ended with `outcome` (`completed`, `failed`,
        /// `suspended`, `cancelled`, `stopped`, `unrecorded`,
        /// `lost_ownership`).
        #[inline]
        pub(crate) fn finished(self, outcome: &'static str) {
            let seconds = self.started.elapsed().as_secs_f64();
            metrics::counter!(
                super::RUNS_FINISHED,
                "workflow" => self.workflow.clone(),
                "outcome" => outcome
            )
            .increment(1);
            metrics::histogram!(
                super::RUN_DURATION,
                "workflow" => self.workflow,
                "outcome" => outcome
            )
            .record(seconds);
        }
    }

    impl RunMetric {
        /// The run ended with `outcome`, about to be recorded: `completed`,
        /// `cancelled` (the workflow saw its cancel), `unrecorded` (a write
        /// failed under it: it runs again) or `failed`.
        #[inline]
        pub(crate) fn finished_with(
            self,
            outcome: &Result<crate::StepRecord, crate::EngineError>,
            entry: &crate::engine::live::LiveInstance,
        ) {
            self.finished(match outcome {
                Ok(_) => "completed",
                Err(crate::EngineError::Cancelled { .. }) if entry.is_cancelled() => "cancelled",
                Err(crate::EngineError::Storage(_)) => "unrecorded",
                Err(_) => "failed",
            });
        }
    }

    /// One attempt of a step's closure, timed from [`AttemptTimer::start`].
    pub(crate) struct AttemptTimer(Instant);

    impl AttemptTimer {
        #[inline]
        pub(crate) fn start() -> Self {
            Self(Instant::now())
        }

        /// Records the attempt's latency under its outcome (`ok`,
        /// `retryable`, `timeout`, `permanent`).
        #[inline]
        pub(crate) fn record<T>(self, workflow: &str, result: &Result<T, StepError>) {
            let outcome = match result {
                Ok(_) => "ok",
                Err(StepError::Retryable(source))
                    if source
                        .downcast_ref::<crate::EngineError>()
                        .is_some_and(|e| matches!(e, crate::EngineError::StepTimeout { .. })) =>
                {
                    "timeout"
                }
                Err(StepError::Retryable(_)) => "retryable",
                Err(StepError::Permanent(_)) => "permanent",
            };
            metrics::histogram!(
                super::STEP_ATTEMPT,
                "workflow" => workflow.to_owned(),
                "outcome" => outcome
            )
            .record(self.0.elapsed().as_secs_f64());
        }
    }

    #[inline]
    pub(crate) fn step_committed(workflow: &str) {
        metrics::counter!(super::STEPS_COMMITTED, "workflow" => workflow.to_owned()).increment(1);
    }

    #[inline]
    pub(crate) fn step_retry(workflow: &str) {
        metrics::counter!(super::STEP_RETRIES, "workflow" => workflow.to_owned()).increment(1);
    }

    #[inline]
    pub(crate) fn step_dead_letter(workflow: &str) {
        metrics::counter!(super::STEP_DEAD_LETTERS, "workflow" => workflow.to_owned()).increment(1);
    }

    #[inline]
    pub(crate) fn timer_fired(workflow: &str) {
        metrics::counter!(super::TIMERS_FIRED, "workflow" => workflow.to_owned()).increment(1);
    }

    /// After an admission round of `queue`: `admitted` let in, `pending`
    /// still waiting.
    #[inline]
    pub(crate) fn queue_admission(queue: &str, admitted: usize, pending: usize) {
        metrics::counter!(super::QUEUE_ADMITTED, "queue" => queue.to_owned())
            .increment(admitted as u64);
        #[allow(clippy::cast_precision_loss)] // a queue's length, far below 2^52
        metrics::gauge!(super::QUEUE_DEPTH, "queue" => queue.to_owned()).set(pending as f64);
    }

    #[inline]
    pub(crate) fn retention_deleted(n: usize) {
        metrics::counter!(super::RETENTION_DELETED).increment(n as u64);
    }
}

#[cfg(not(feature = "metrics"))]
mod on {
    //! The feature is off: nothing is measured.

    use crate::StepError;

    pub(crate) struct RunMetric;

    #[inline]
    pub(crate) fn run_started(_workflow: &str) -> RunMetric {
        RunMetric
    }

    // The same signatures as with the feature, doing nothing.
    #[allow(clippy::unused_self)]
    impl RunMetric {
        #[inline]
        pub(crate) fn finished(self, _outcome: &'static str) {}

        #[inline]
        pub(crate) fn finished_with(
            self,
            _outcome: &Result<crate::StepRecord, crate::EngineError>,
            _entry: &crate::engine::live::LiveInstance,
        ) {
        }
    }

    pub(crate) struct AttemptTimer;

    #[allow(clippy::unused_self)]
    impl AttemptTimer {
        #[inline]
        pub(crate) fn start() -> Self {
            Self
        }

        #[inline]
        pub(crate) fn record<T>(self, _workflow: &str, _result: &Result<T, StepError>) {}
    }

    #[inline]
    pub(crate) fn step_committed(_workflow: &str) {}

    #[inline]
    pub(crate) fn step_retry(_workflow: &str) {}

    #[inline]
    pub(crate) fn step_dead_letter(_workflow: &str) {}

    #[inline]
    pub(crate) fn timer_fired(_workflow: &str) {}

    #[inline]
    pub(crate) fn queue_admission(_queue: &str, _admitted: usize, _pending: usize) {}

    #[inline]
    pub(crate) fn retention_deleted(_n: usize) {}
}

pub(crate) use on::*;
