//! The timer scheduler: sleeps until the earliest deadline (or until told of
//! an earlier one), then fires every due timer by claiming its step.
//!
//! It holds only a weak reference to the engine, so dropping every engine
//! handle ends it and releases the store.
//!
//! It counts in the engine's busy count (see [`activity`](super::activity))
//! while awake, and not while it sleeps on the clock or waits for a timer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::Inner;
use super::activity::{Activity, SchedulerAwake};
use super::live::RunRequest;
use crate::{
    ClaimOutcome, EngineError, StepKind, StepRecord, StepStoreExt, TimerEntry, encode_value,
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
        // Timers whose claim was refused (their instance is busy elsewhere);
        // retried when a new timer is scheduled or after RECHECK.
        let mut refused: HashSet<TimerEntry> = HashSet::new();
        loop {
            wakeup.target_ms.store(0, Ordering::Release);
            let next = match tick(&weak, &mut refused).await {
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
                () = wakeup.notify.notified() => refused.clear(),
            }
            activity.scheduler_awake(true);
            if wakeup.is_shut_down() {
                return;
            }
        }
    })
}

enum Tick {
    Exit,
    Again,
    SleepUntil(Option<u64>),
    Backoff,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn tick(weak: &Weak<Inner>, refused: &mut HashSet<TimerEntry>) -> Tick {
    let Some(inner) = weak.upgrade() else {
        return Tick::Exit;
    };
    if inner.is_stopped() {
        return Tick::Exit;
    }
    let now = inner.clock.now_ms();
    let due = match inner.store.due_timers(now, BATCH + refused.len()).await {
        Ok(due) => due,
        Err(error) => {
            tracing::error!(%error, "timer scheduler could not read due timers");
            return Tick::Backoff;
        }
    };
    let fresh: Vec<TimerEntry> = due
        .iter()
        .filter(|t| !refused.contains(t))
        .cloned()
        .collect();
    if !fresh.is_empty() {
        let mut claims = JoinSet::new();
        for timer in fresh {
            let inner = Arc::clone(&inner);
            claims.spawn(async move {
                let outcome = fire(&inner, &timer).await;
                (timer, outcome)
            });
        }
        let mut failed = false;
        while let Some(joined) = claims.join_next().await {
            match joined {
                Ok((_, Ok(true))) => {}
                Ok((timer, Ok(false))) => {
                    refused.insert(timer);
                }
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
        return if failed { Tick::Backoff } else { Tick::Again };
    }
    // Every due timer is refused for now: sleep until the first one that is not.
    let pending = match inner.store.due_timers(u64::MAX, refused.len() + 1).await {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(%error, "timer scheduler could not read the next deadline");
            return Tick::Backoff;
        }
    };
    let next = pending
        .iter()
        .find(|t| !refused.contains(t))
        .map(|t| t.deadline_ms);
    if refused.is_empty() {
        Tick::SleepUntil(next)
    } else {
        let recheck = now.saturating_add(millis(RECHECK));
        Tick::SleepUntil(Some(next.map_or(recheck, |n| n.min(recheck))))
    }
}

/// Claims one due timer; `Ok(true)` if it fired or is gone, `Ok(false)` if
/// its instance is not suspended right now.
async fn fire(inner: &Arc<Inner>, timer: &TimerEntry) -> Result<bool, EngineError> {
    let payload = StepRecord::completed(
        StepKind::Timer,
        type_tag::<()>(),
        encode_value(&timer.step_key, &())?,
        None,
    );
    let now = inner.clock.now_ms();
    let _in_flight = inner.live.claiming(&timer.instance);
    match inner
        .store
        .claim_step(timer.instance.clone(), timer.step_key.clone(), payload, now)
        .await?
    {
        ClaimOutcome::Claimed => {
            tracing::debug!(instance = %timer.instance, step = %timer.step_key, "timer fired");
            inner.trigger_run(&timer.instance, RunRequest::default());
            Ok(true)
        }
        ClaimOutcome::InstanceNotSuspended(_) => Ok(false),
        ClaimOutcome::StepMissing | ClaimOutcome::StepNotSuspended(_) => {
            tracing::warn!(instance = %timer.instance, step = %timer.step_key, "timer row without a suspended step");
            Ok(false)
        }
    }
}
