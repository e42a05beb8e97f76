//! The instances that are live in this process: one entry per instance with a
//! run in progress or a status subscriber, and nothing for any other
//! instance (suspended and finished instances cost no memory).
//!
//! Each entry serialises runs: a trigger that arrives while a run is in
//! progress is queued behind it (several queued triggers coalesce into one
//! rerun, which starts from a fresh snapshot), so two runs of one instance
//! never execute at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use foldhash::fast::RandomState;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::{InstanceKey, StepRecord, StorageError, WorkflowState};

/// Why a run was requested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RunRequest {
    /// `Engine::resume`: dead-lettered steps get a fresh retry budget and a
    /// finished instance is replayed.
    pub resume: bool,
    /// On a shared store: the epoch under which this worker acquired the
    /// instance already (`None`: the run acquires it at its first write).
    pub epoch: Option<u64>,
}

impl RunRequest {
    fn merge(self, other: Self) -> Self {
        Self {
            resume: self.resume || other.resume,
            epoch: self.epoch.max(other.epoch),
        }
    }
}

/// What a handle needs of a run's end beyond its published state.
#[derive(Clone, Debug)]
pub(crate) enum RunEnd {
    /// The run completed with this output record (so `wait_output` needs no
    /// store read).
    Completed(StepRecord),
    /// The workflow panicked with this message.
    Panicked(String),
    /// The run's end could not be recorded: this storage error.
    Unrecorded(StorageError),
}

/// One live instance.
pub(crate) struct LiveInstance {
    pub state: watch::Sender<WorkflowState>,
    /// How the last run that ended on this entry ended, beyond its state.
    ended: Mutex<Option<RunEnd>>,
    cancelled: AtomicBool,
    cancel_wakeup: tokio::sync::Notify,
    slot: Mutex<RunSlot>,
}

#[derive(Default)]
struct RunSlot {
    running: bool,
    rerun: Option<RunRequest>,
    /// The workflow task of the run in progress: cancel drops it (and
    /// `Engine::abort` under `test-util`).
    abort: Option<AbortHandle>,
}

impl LiveInstance {
    pub(crate) fn new(initial: WorkflowState) -> Self {
        Self {
            state: watch::Sender::new(initial),
            ended: Mutex::new(None),
            cancelled: AtomicBool::new(false),
            cancel_wakeup: tokio::sync::Notify::new(),
            slot: Mutex::new(RunSlot::default()),
        }
    }

    fn slot(&self) -> MutexGuard<'_, RunSlot> {
        self.slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes `state` to subscribers if it differs from the current one.
    /// Once the instance is cancelled, only `Cancelled` is published.
    pub fn publish(&self, state: WorkflowState) {
        let state = if self.is_cancelled() {
            WorkflowState::Cancelled
        } else {
            state
        };
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            if changed {
                *current = state;
            }
            changed
        });
    }

    /// Publishes how a run ended: `end` is kept for the handles before
    /// `state` reaches them.
    pub fn publish_end(&self, end: Option<RunEnd>, state: WorkflowState) {
        *self
            .ended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = end;
        self.publish(state);
    }

    /// Publishes a run whose end could not be recorded because of `error`.
    pub fn publish_unrecorded(&self, error: StorageError) {
        let state = WorkflowState::OutcomeUnknown {
            kind: error.kind(),
            error: error.to_string(),
        };
        self.publish_end(Some(RunEnd::Unrecorded(error)), state);
    }

    /// How the last run that ended on this entry ended, if it said more
    /// than its state.
    pub fn run_end(&self) -> Option<RunEnd> {
        self.ended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn is_running(&self) -> bool {
        self.slot().running
    }

    /// Whether a run is in progress that has not ended yet: a run that
    /// published an end it could not record
    /// ([`WorkflowState::OutcomeUnknown`]) is over even while its task
    /// still holds the entry.
    pub fn has_run_in_progress(&self) -> bool {
        self.is_running() && !matches!(*self.state.borrow(), WorkflowState::OutcomeUnknown { .. })
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Marks the instance cancelled, drops the workflow task of the run in
    /// progress (its step futures with it), wakes anything waiting on the
    /// cancel and publishes `Cancelled`.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        if let Some(abort) = self.slot().abort.as_ref() {
            abort.abort();
        }
        self.cancel_wakeup.notify_waiters();
        self.publish(WorkflowState::Cancelled);
    }

    /// Keeps the handle that drops the run's workflow task; if the instance
    /// was cancelled before the task existed, drops it at once.
    pub fn set_abort(&self, abort: AbortHandle) {
        if self.is_cancelled() {
            abort.abort();
        }
        self.slot().abort = Some(abort);
    }

    /// Asks for one more run after the run in progress (coalesced with any
    /// queued trigger).
    pub fn queue_rerun(&self, request: RunRequest) {
        let mut slot = self.slot();
        slot.rerun = Some(slot.rerun.map_or(request, |queued| queued.merge(request)));
    }

    /// Completes when [`cancel`](Self::cancel) is called (or at once if it was).
    pub async fn cancelled(&self) {
        let mut notified = std::pin::pin!(self.cancel_wakeup.notified());
        // Registered before the check, so a cancel between the two still wakes us.
        notified.as_mut().enable();
        if self.is_cancelled() {
            return;
        }
        notified.await;
    }
}

/// Keeps a live entry alive for a subscriber and removes it, when the last
/// subscriber goes and no run is in progress.
pub(crate) struct LiveGuard {
    live: Weak<LiveInstances>,
    key: InstanceKey,
    entry: Arc<LiveInstance>,
}

impl LiveGuard {
    pub fn key(&self) -> &InstanceKey {
        &self.key
    }

    pub fn entry(&self) -> &Arc<LiveInstance> {
        &self.entry
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Some(live) = self.live.upgrade() {
            // The subscriber's own receiver is still alive here.
            live.release(&self.key, &self.entry, 1);
        }
    }
}

/// Live entries by instance (hashed with `foldhash`: every trigger, run end
/// and subscription goes through this map).
type LiveMap = HashMap<InstanceKey, Arc<LiveInstance>, RandomState>;

/// The map of live instances.
#[derive(Default)]
pub(crate) struct LiveInstances {
    map: Mutex<LiveMap>,
    /// Claims (signals, timers) in flight per instance: between a claim's
    /// commit and its run's start the store says `Running` with no run yet.
    claims: Mutex<HashMap<InstanceKey, usize, RandomState>>,
}

/// Marks a claim in flight until dropped (after its run was triggered).
pub(crate) struct ClaimInFlight<'a> {
    live: &'a LiveInstances,
    key: InstanceKey,
}

impl Drop for ClaimInFlight<'_> {
    fn drop(&mut self) {
        let mut claims = self
            .live
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = claims.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                claims.remove(&self.key);
            }
        }
    }
}

/// What [`LiveInstances::trigger`] decided.
pub(crate) enum Triggered {
    /// A new run must be spawned by the caller with this request.
    Spawn(Arc<LiveInstance>),
    /// A run is in progress; the request was queued behind it.
    Queued(Arc<LiveInstance>),
}

impl LiveInstances {
    fn lock(&self) -> MutexGuard<'_, LiveMap> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks a claim of `key` in flight; hold the guard until the claim's run
    /// is triggered (or the claim lost).
    pub fn claiming(&self, key: &InstanceKey) -> ClaimInFlight<'_> {
        *self
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.clone())
            .or_default() += 1;
        ClaimInFlight {
            live: self,
            key: key.clone(),
        }
    }

    /// Whether `key` has a run in progress or one on its way (a claim in
    /// flight). A run that has published an end it could not record
    /// ([`WorkflowState::OutcomeUnknown`]) is over, though its task has not
    /// let go of the entry yet: the instance is `Running` in the store with
    /// no run behind it, and a new invocation must run it again rather
    /// than report that end as its own.
    pub fn is_active(&self, key: &InstanceKey) -> bool {
        self.get(key).is_some_and(|e| e.has_run_in_progress())
            || self
                .claims
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains_key(key)
    }

    /// The live entry of `key`, if any.
    pub fn get(&self, key: &InstanceKey) -> Option<Arc<LiveInstance>> {
        self.lock().get(key).cloned()
    }

    /// Number of live entries (runs in progress or subscribed instances).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Requests a run of `key`: marks the entry running (caller spawns) or
    /// queues the request behind the run in progress. The receiver is
    /// subscribed before the run can start, so it sees every state after it.
    pub fn trigger(
        &self,
        key: &InstanceKey,
        request: RunRequest,
    ) -> (Triggered, watch::Receiver<WorkflowState>) {
        let mut map = self.lock();
        let entry = map
            .entry(key.clone())
            .or_insert_with(|| Arc::new(LiveInstance::new(WorkflowState::Running { status: None })))
            .clone();
        // Subscribers of an idle entry see the new run start; a handle
        // returned for this trigger must not mistake the previous run's end
        // for its own.
        entry.publish(WorkflowState::Running { status: None });
        let receiver = entry.state.subscribe();
        let mut slot = entry.slot();
        let triggered = if slot.running {
            slot.rerun = Some(slot.rerun.map_or(request, |queued| queued.merge(request)));
            drop(slot);
            Triggered::Queued(entry)
        } else {
            slot.running = true;
            drop(slot);
            Triggered::Spawn(entry)
        };
        (triggered, receiver)
    }

    /// Called when a run ends: returns the queued request to run next, or
    /// marks the entry idle (removing it if nobody watches it).
    pub fn run_finished(&self, key: &InstanceKey, entry: &Arc<LiveInstance>) -> Option<RunRequest> {
        let mut map = self.lock();
        let mut slot = entry.slot();
        if let Some(next) = slot.rerun.take() {
            return Some(next);
        }
        slot.running = false;
        slot.abort = None;
        drop(slot);
        if entry.state.receiver_count() == 0 {
            Self::remove_if_same(&mut map, key, entry);
        }
        None
    }

    /// A subscriber holding `held` receivers is going away: remove the entry
    /// if it is idle and that subscriber was the last.
    pub fn release(&self, key: &InstanceKey, entry: &Arc<LiveInstance>, held: usize) {
        let mut map = self.lock();
        let idle = !entry.slot().running;
        if idle && entry.state.receiver_count() <= held {
            Self::remove_if_same(&mut map, key, entry);
        }
    }

    fn remove_if_same(map: &mut LiveMap, key: &InstanceKey, entry: &Arc<LiveInstance>) {
        if map.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            map.remove(key);
        }
    }

    /// A guard + receiver on `key`'s entry, creating an idle entry with
    /// `initial` if there is none.
    pub fn subscribe(
        self: &Arc<Self>,
        key: &InstanceKey,
        initial: impl FnOnce() -> WorkflowState,
    ) -> (LiveGuard, watch::Receiver<WorkflowState>) {
        let mut map = self.lock();
        let entry = map
            .entry(key.clone())
            .or_insert_with(|| Arc::new(LiveInstance::new(initial())))
            .clone();
        let receiver = entry.state.subscribe();
        drop(map);
        (
            LiveGuard {
                live: Arc::downgrade(self),
                key: key.clone(),
                entry,
            },
            receiver,
        )
    }

    /// A guard for an entry the caller already holds a receiver of.
    pub fn guard_for(self: &Arc<Self>, key: &InstanceKey, entry: Arc<LiveInstance>) -> LiveGuard {
        LiveGuard {
            live: Arc::downgrade(self),
            key: key.clone(),
            entry,
        }
    }

    /// Every entry that someone watches (a handle, a stream) while no run
    /// of it is in progress here and its last known state is not terminal:
    /// on a shared store another worker may be running it.
    pub fn watched_without_run(&self) -> Vec<(InstanceKey, Arc<LiveInstance>)> {
        self.lock()
            .iter()
            .filter(|(_, entry)| {
                entry.state.receiver_count() > 0
                    && !entry.is_running()
                    && !entry.state.borrow().is_terminal()
            })
            .map(|(key, entry)| (key.clone(), Arc::clone(entry)))
            .collect()
    }

    /// Aborts every run in progress (crash simulation).
    #[cfg(feature = "test-util")]
    pub fn abort_all(&self) {
        let map = self.lock();
        for entry in map.values() {
            if let Some(abort) = entry.slot().abort.take() {
                abort.abort();
            }
        }
    }
}
