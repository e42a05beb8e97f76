//! The timer scheduler: sleeps until the earliest deadline (or until told of
//! an earlier one), then fires every due timer by claiming its step.
//!
//! It holds only a weak reference to the engine, so dropping every engine
//! handle ends it and releases the store.
//!
//! It counts in the engine's busy count (see [`activity`](super::activity))
//! while awake, and not while it sleeps on the clock or waits for a timer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::Inner;
use super::activity::{Activity, SchedulerAwake};
use super::live::RunRequest;
use crate::{
    EngineError, FireOutcome, StepKind, StepRecord, StepStoreExt, TimerEntry, encode_value,
    type_tag,
};

/// Due timers fired per store read.
const BATCH: usize = 4096;
/// How long to wait before retrying after a storage error, or before
/// re-checking timers whose claim was refused.
const RECHECK: Duration = Duration::from_secs(1);

/// Wakes the scheduler when a timer earlier than its current target appears.
pub(crate) struct TimerWakeup {
    notify: Notify,
    /// The deadline the scheduler sleeps until; 0 while it is computing one
    /// (every new timer then wakes it).
    target_ms: AtomicU64,
    shut_down: AtomicBool,
    /// The engine's busy count: the scheduler counts while awake.
    activity: Arc<Activity>,
}

impl TimerWakeup {
    pub fn new(activity: Arc<Activity>) -> Self {
        Self {
            notify: Notify::new(),
            target_ms: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
            activity,
        }
    }

    /// A timer with `deadline_ms` was just committed.
    pub fn scheduled(&self, deadline_ms: u64) {
        if deadline_ms < self.target_ms.load(Ordering::Acquire)
            || self.target_ms.load(Ordering::Acquire) == 0
        {
            // Counted busy before the caller (a run) stops counting, so the
            // engine never looks idle between this timer and the sleep until it.
            if !self.is_shut_down() {
                self.activity.scheduler_awake(true);
            }
            self.notify.notify_one();
        }
    }

    pub fn shut_down(&self) {
        self.shut_down.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }
}

/// Spawns the scheduler loop: fire every due timer, then sleep until the
/// next deadline (or until [`TimerWakeup::scheduled`] reports an earlier
/// one, or a failed read's backoff).
pub(crate) fn spawn(inner: &Arc<Inner>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(inner);
    let wakeup = Arc::clone(&inner.timers);
    let clock = Arc::clone(&inner.clock);
    let activity = Arc::clone(&inner.activity);
    activity.scheduler_awake(true);
    // Dropped with the task, even one that never ran.
    let awake = SchedulerAwake(Arc::clone(&activity));
    tokio::spawn(async move {
        let _awake = awake;
        loop {
            wakeup.target_ms.store(0, Ordering::Release);
            let next = match tick(&weak).await {
                Tick::Exit => return,
                Tick::Again => continue,
                Tick::SleepUntil(next) => next,
                Tick::Backoff => Some(clock.now_ms().saturating_add(millis(RECHECK))),
            };
            let target = next.unwrap_or(u64::MAX);
            wakeup.target_ms.store(target.max(1), Ordering::Release);
            if wakeup.is_shut_down() {
                return;
            }
            activity.scheduler_awake(false);
            tokio::select! {
                () = clock.sleep_until(target), if next.is_some() => {}
                () = wakeup.notify.notified() => {}
            }
            activity.scheduler_awake(true);
            if wakeup.is_shut_down() {
                return;
            }
        }
    })
}

enum Tick {
    /// The engine is gone or stopped.
    Exit,
    /// Timers fired; look again at once.
    Again,
    /// Nothing is due; sleep until this deadline (`None`: no timer).
    SleepUntil(Option<u64>),
    /// A store read or a fire failed; try again after [`RECHECK`].
    Backoff,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn tick(weak: &Weak<Inner>) -> Tick {
    let Some(inner) = weak.upgrade() else {
        return Tick::Exit;
    };
    if inner.is_stopped() {
        return Tick::Exit;
    }
    let now = inner.clock.now_ms();
    let due = match inner.store.due_timers(now, BATCH).await {
        Ok(due) => due,
        Err(error) => {
            tracing::error!(%error, "timer scheduler could not read due timers");
            return Tick::Backoff;
        }
    };
    if due.is_empty() {
        return match inner.store.next_timer_deadline().await {
            Ok(next) => Tick::SleepUntil(next),
            Err(error) => {
                tracing::error!(%error, "timer scheduler could not read the next deadline");
                Tick::Backoff
            }
        };
    }
    let mut fires = JoinSet::new();
    for timer in due {
        let inner = Arc::clone(&inner);
        fires.spawn(async move {
            let outcome = fire(&inner, &timer).await;
            (timer, outcome)
        });
    }
    let mut failed = false;
    while let Some(joined) = fires.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((timer, Err(error))) => {
                tracing::error!(instance = %timer.instance, step = %timer.step_key, %error, "timer could not fire");
                failed = true;
            }
            Err(join_error) => {
                tracing::error!(%join_error, "timer task ended abnormally");
                failed = true;
            }
        }
    }
    if failed { Tick::Backoff } else { Tick::Again }
}

/// Fires one due timer row: the compare-and-set completes its point (or
/// finds it stale and removes the row), then the instance runs.
async fn fire(inner: &Arc<Inner>, timer: &TimerEntry) -> Result<(), EngineError> {
    let payload = StepRecord::completed(
        StepKind::Timer,
        type_tag::<()>(),
        encode_value(&timer.step_key, &())?,
        None,
    );
    let now = inner.clock.now_ms();
    let _in_flight = inner.live.claiming(&timer.instance);
    match inner.store.fire_timer(timer.clone(), payload, now).await? {
        FireOutcome::Fired => {
            super::telemetry::timer_fired(&timer.instance, &timer.step_key);
            super::metrics::timer_fired(timer.instance.workflow());
            inner.trigger_run_from(
                &timer.instance,
                RunRequest::default(),
                super::telemetry::RunReason::Timer,
            );
        }
        FireOutcome::Stale => {
            tracing::debug!(instance = %timer.instance, step = %timer.step_key, "stale timer row removed");
        }
    }
    Ok(())
}
