//! The engine as one worker among many on a shared store.
//!
//! # Protocol
//!
//! On a store with [`workers`](crate::StepStore::workers) (PostgreSQL),
//! several engines in several processes share the instances. Each engine
//! is a **worker** with an id, a capacity (runs at once) and a lease.
//! [`spawn`] starts its loop, which until the engine stops:
//!
//! 1. **Heartbeats** every third of the lease
//!    ([`Workers::heartbeat`](crate::Workers::heartbeat)): the store keeps
//!    the worker alive until a lease from now by its own clock. A worker
//!    that misses its heartbeats for a lease (paused, cut off, killed) is
//!    dead to the others, who take over its instances; every write it then
//!    tries is refused (see `run::fence`).
//! 2. **Acquires** runnable instances of the workflows this engine has
//!    registered — `Running` with no live owner: started by any process,
//!    signalled, fired, resumed, or left by a dead worker — up to its free
//!    capacity, and runs each under the epoch it acquired.
//! 3. **Refreshes** the instances this process watches without running
//!    them (an [`Invocation`](crate::Invocation) or a status stream of an
//!    instance that another worker runs) from the store, so `wait`,
//!    `wait_output` and streams see what other processes did.
//! 4. **Sleeps** until the store reports new work
//!    ([`Workers::wait_for_work`](crate::Workers::wait_for_work): LISTEN/NOTIFY
//!    on PostgreSQL) or the poll interval passes, whichever is first.
//!
//! Real time drives this loop (the database judges the lease), not the
//! engine's [`Clock`](crate::Clock). At shutdown the engine retires its
//! worker row once its runs are done, so others need not wait a lease.
//!
//! What each failure does: a failed heartbeat or acquisition is logged and
//! tried again at the next poll; the runs in progress go on, and if the
//! lease ran out meanwhile their writes are refused and they stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Inner;
use super::live::RunRequest;
use crate::WorkflowState;

/// How an engine works as a worker of a shared store.
#[derive(Clone, Debug)]
pub(crate) struct WorkerConfig {
    /// The worker's id: unique among every engine on the store.
    pub id: Arc<str>,
    /// At most this many runs at once (`None`: no limit; on a shared store
    /// [`DEFAULT_CAPACITY`]).
    pub capacity: Option<usize>,
    /// How long the store keeps a silent worker alive.
    pub lease: Duration,
    /// The longest sleep between two looks for work.
    pub poll: Duration,
    /// Whether the store is shared (has workers): set at build.
    pub shared: bool,
}

/// Runs at once of a worker that sets no capacity.
pub(crate) const DEFAULT_CAPACITY: usize = 256;

/// The lease of a worker that sets none.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The poll interval of a worker that sets none.
pub(crate) const DEFAULT_POLL: Duration = Duration::from_millis(500);

impl WorkerConfig {
    /// The capacity that applies on this store.
    pub(crate) fn effective_capacity(&self) -> Option<usize> {
        match (self.capacity, self.shared) {
            (Some(n), _) => Some(n),
            (None, true) => Some(DEFAULT_CAPACITY),
            (None, false) => None,
        }
    }
}

/// Starts the worker loop of `inner` (a shared store only).
pub(crate) fn spawn(inner: &Arc<Inner>) -> Option<tokio::task::JoinHandle<()>> {
    inner.store.workers()?;
    let inner = Arc::clone(inner);
    Some(tokio::spawn(async move { work(&inner).await }))
}

async fn work(inner: &Arc<Inner>) {
    let Some(workers) = inner.store.workers() else {
        return;
    };
    let config = &inner.worker;
    let capacity = config.effective_capacity().unwrap_or(DEFAULT_CAPACITY);
    let mut stopped = inner.stopped.subscribe();
    let mut next_heartbeat = Instant::now();
    loop {
        if inner.is_stopped() || inner.is_aborted() {
            return;
        }
        if Instant::now() >= next_heartbeat {
            match workers.heartbeat(&config.id, config.lease).await {
                Ok(()) => next_heartbeat = Instant::now() + config.lease / 3,
                Err(error) => {
                    tracing::warn!(worker = %config.id, %error, "heartbeat failed; trying again");
                    next_heartbeat = Instant::now() + config.poll.min(config.lease / 3);
                }
            }
        }
        let more = acquire(inner, capacity).await;
        // Other processes' ends free queue slots this worker may fill.
        inner.queues.kick_all(inner);
        refresh_watched(inner).await;
        if more {
            continue;
        }
        let until_heartbeat = next_heartbeat.saturating_duration_since(Instant::now());
        tokio::select! {
            () = workers.wait_for_work(config.poll.min(until_heartbeat)) => {}
            _ = stopped.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Acquires runnable work up to the free capacity and runs it. Returns
/// whether it took a full batch (more may be waiting).
async fn acquire(inner: &Arc<Inner>, capacity: usize) -> bool {
    let Some(workers) = inner.store.workers() else {
        return false;
    };
    let running = *inner.active_runs.borrow();
    let free = capacity.saturating_sub(running);
    let workflows = inner.registry.names();
    if free == 0 || workflows.is_empty() {
        return false;
    }
    match workers
        .acquire_runnable(&inner.worker.id, &workflows, free)
        .await
    {
        Ok(acquired) => {
            let full = acquired.len() == free;
            for one in acquired {
                tracing::debug!(instance = %one.key, epoch = one.epoch, "acquired runnable work");
                inner.trigger_run(
                    &one.key,
                    RunRequest {
                        resume: false,
                        epoch: Some(one.epoch),
                    },
                );
            }
            full
        }
        Err(error) => {
            tracing::warn!(worker = %inner.worker.id, %error, "could not acquire work; trying again");
            false
        }
    }
}

/// Publishes the stored state of every watched instance that has no run in
/// this process.
async fn refresh_watched(inner: &Arc<Inner>) {
    for (key, entry) in inner.live.watched_without_run() {
        match inner.store.get_metadata(&key).await {
            Ok(Some(meta)) => entry.publish(WorkflowState::from(&meta.status)),
            Ok(None) => entry.publish(WorkflowState::Failed {
                error: "the instance no longer exists".to_owned(),
            }),
            Err(error) => {
                tracing::debug!(instance = %key, %error, "could not refresh a watched instance");
            }
        }
    }
}
