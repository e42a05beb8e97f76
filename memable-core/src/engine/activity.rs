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
//! - **A retry backoff** uncounts its run while it sleeps on the clock
//!   ([`Activity::pause`], a guard): a run that is only waiting for time is
//!   not busy.
//! - **The timer scheduler** counts while it is awake: from its start until
//!   it sleeps on the clock (or waits for a new timer), and again from the
//!   moment a run tells it of a new timer (`TimerWakeup::scheduled`, called
//!   by that run while it still counts) until it sleeps again. So between a
//!   run committing a timer and the scheduler sleeping until it, the count
//!   never drops to zero.
//!
//! Every change goes through the watch channel's lock, so increments and
//! decrements never interleave; decrements saturate at zero.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

    /// Uncounts one piece of work until the guard drops (a run sleeping in
    /// a retry backoff).
    pub fn pause(self: &Arc<Self>) -> Paused {
        self.leave();
        Paused(Arc::clone(self))
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

/// Counts its piece of work again when dropped; see [`Activity::pause`].
pub(crate) struct Paused(Arc<Activity>);

impl Drop for Paused {
    fn drop(&mut self) {
        self.0.enter();
    }
}

/// Stops counting the scheduler when its task ends, however it ends.
pub(crate) struct SchedulerAwake(pub Arc<Activity>);

impl Drop for SchedulerAwake {
    fn drop(&mut self) {
        self.0.scheduler_awake(false);
    }
}
