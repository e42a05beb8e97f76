//! The engine's busy count: how many pieces of work it has in progress, as
//! its clock sees it through [`EngineActivity`](crate::EngineActivity).
//!
//! # Who counts what
//!
//! - **A run** counts from the moment [`Inner::trigger_run`](super::Inner)
//!   decides to spawn it (synchronously, before the task exists, so a run
//!   that was just triggered is already busy) until its task ends (the
//!   `ActiveRun` guard's drop, also when the task is aborted). Queued reruns
//!   belong to the run in progress and add nothing.
//! - **A retry backoff** uncounts its run while it sleeps on the clock, if
//!   every step of that run in flight is sleeping in a backoff too
//!   ([`RunActivity`]: steps in flight and steps backing off, counted by
//!   guards): a run that is only waiting for time is not busy, one whose
//!   parallel step still works is.
//! - **The timer scheduler** counts while it is awake: from its start until
//!   it sleeps on the clock (or waits for a new timer), and again from the
//!   moment a run tells it of a new timer (`TimerWakeup::scheduled`, called
//!   by that run while it still counts) until it sleeps again. So between a
//!   run committing a timer and the scheduler sleeping until it, the count
//!   never drops to zero.
//!
//! Every change goes through the watch channel's lock, so increments and
//! decrements never interleave; decrements saturate at zero.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::EngineActivity;

/// The busy count behind every [`EngineActivity`] of one engine.
pub(crate) struct Activity {
    busy: watch::Sender<usize>,
    /// Whether the scheduler is counted now; changed only inside the
    /// channel's lock.
    scheduler_awake: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            busy: watch::Sender::new(0),
            scheduler_awake: AtomicBool::new(false),
        })
    }

    /// A view for the clock.
    pub fn subscribe(&self) -> EngineActivity {
        EngineActivity::new(self.busy.subscribe())
    }

    /// One more piece of work (a run was triggered).
    pub fn enter(&self) {
        self.busy.send_modify(|n| *n += 1);
    }

    /// One piece of work fewer (a run ended).
    pub fn leave(&self) {
        self.busy.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Counts the scheduler (`true`) or stops counting it (`false`); a
    /// repeated call changes nothing.
    pub fn scheduler_awake(&self, awake: bool) {
        self.busy.send_if_modified(|n| {
            if self.scheduler_awake.swap(awake, Ordering::AcqRel) == awake {
                return false;
            }
            if awake {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
            true
        });
    }
}

/// One run's share of the busy count: the run counts (through its
/// `ActiveRun`) unless it has steps in flight and all of them are sleeping
/// in a retry backoff.
pub(crate) struct RunActivity {
    engine: Arc<Activity>,
    /// (steps in flight, steps backing off); changed only under the lock.
    steps: Mutex<(usize, usize)>,
}

impl RunActivity {
    pub fn new(engine: Arc<Activity>) -> Arc<Self> {
        Arc::new(Self {
            engine,
            steps: Mutex::new((0, 0)),
        })
    }

    /// Applies `change` to (in flight, backing off) and moves the engine's
    /// count when the run turns idle or busy.
    fn update(&self, change: impl FnOnce(&mut (usize, usize))) {
        let mut steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = |&(flight, backoff): &(usize, usize)| flight > 0 && backoff >= flight;
        let was = idle(&steps);
        change(&mut steps);
        match (was, idle(&steps)) {
            (false, true) => self.engine.leave(),
            (true, false) => self.engine.enter(),
            _ => {}
        }
    }

    /// A step of this run executes until the guard drops.
    pub fn step(self: &Arc<Self>) -> StepInFlight {
        self.update(|s| s.0 += 1);
        StepInFlight(Arc::clone(self))
    }

    /// A step of this run sleeps in a retry backoff until the guard drops.
    pub fn backoff(self: &Arc<Self>) -> Backoff {
        self.update(|s| s.1 += 1);
        Backoff(Arc::clone(self))
    }
}

/// See [`RunActivity::step`].
pub(crate) struct StepInFlight(Arc<RunActivity>);

impl Drop for StepInFlight {
    fn drop(&mut self) {
        self.0.update(|s| s.0 = s.0.saturating_sub(1));
    }
}

/// See [`RunActivity::backoff`].
pub(crate) struct Backoff(Arc<RunActivity>);

impl Drop for Backoff {
    fn drop(&mut self) {
        self.0.update(|s| s.1 = s.1.saturating_sub(1));
    }
}

/// Stops counting the scheduler when its task ends, however it ends.
pub(crate) struct SchedulerAwake(pub Arc<Activity>);

impl Drop for SchedulerAwake {
    fn drop(&mut self) {
        self.0.scheduler_awake(false);
    }
}
