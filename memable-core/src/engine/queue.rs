//! Queues in the engine: declaring them ([`Queue`]), and admitting their
//! pending instances.
//!
//! # The protocol
//!
//! A [`Queue`] is declared on the [`EngineBuilder`](crate::EngineBuilder)
//! with its limits, and optionally as the default queue of workflows. An
//! invocation through a queue is *enqueued* (see the store's queue
//! protocol on [`QueueTicket`](crate::QueueTicket)): the instance exists,
//! queued, and nothing runs it until the queue **admits** it. The limits
//! are enforced there — in the store's admit transition, never by a
//! workflow sleeping.
//!
//! Each queue this engine listens to has one admission task, started with
//! the engine. It admits whatever the limits let in (at most the free
//! capacity of a shared store's worker, which acquires what it admits),
//! runs what it admitted, and then sleeps until it is *kicked* or, when
//! the rate limit holds pending instances back, until the window opens
//! (by the engine's clock). Kicks coalesce; they come from an enqueue, the
//! end in this process of an instance that held a slot, a cancel or
//! delete, the engine's start, and on a shared store every turn of the
//! worker loop (where other processes' ends show up). A failed admission
//! is logged and tried again a second later. The task ends when the
//! engine stops.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::Inner;
use super::live::RunRequest;
use super::run::ActiveRun;
use crate::{EngineError, QueueLimits, StepStoreExt, validate_key};

/// How many instances one admission takes at most on a store that serves
/// one engine (the runs still wait for the engine's capacity).
const ADMIT_BATCH: usize = 256;

/// How long after a failed admission it is tried again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// A named queue and its limits, declared with
/// [`EngineBuilder::queue`](crate::EngineBuilder::queue). Every engine that
/// shares a store must declare a queue alike.
///
/// An instance holds one of the queue's slots from its admission until it
/// ends (completed, failed, cancelled, deleted) — also while it is
/// suspended.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::{Context, Engine, EngineError, Queue};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), EngineError> {
/// let engine = Engine::builder()
///     .queue(
///         Queue::new("emails")
///             .concurrency(10)
///             .per_partition(1)
///             .rate(100, Duration::from_secs(60))
///             .default_for("send"),
///     )
///     .build();
/// engine.register("send", |ctx: Context| async move { ctx.input::<String>() })?;
/// engine.start().await?;
/// // Through the queue, one at a time per customer.
/// let run = engine.invoke("send").input("hi".to_string()).partition("customer-7").await?;
/// assert_eq!(run.wait_output::<String>().await?, "hi");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    name: String,
    limits: QueueLimits,
    workflows: Vec<String>,
}

impl Queue {
    /// A queue named `name` with no limits.
    ///
    /// # Examples
    ///
    /// See [`Queue`].
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            limits: QueueLimits::default(),
            workflows: Vec::new(),
        }
    }

    /// At most `k` instances of the queue hold a slot at once, across
    /// every worker (at least 1).
    ///
    /// # Examples
    ///
    /// See [`Queue`].
    #[must_use]
    pub fn concurrency(mut self, k: usize) -> Self {
        self.limits.concurrency = Some(k.max(1));
        self
    }

    /// At most `k` instances with one partition key
    /// ([`InvokeBuilder::partition`](crate::InvokeBuilder::partition)) hold
    /// a slot at once (at least 1).
    ///
    /// # Examples
    ///
    /// See [`Queue`].
    #[must_use]
    pub fn per_partition(mut self, k: usize) -> Self {
        self.limits.per_partition = Some(k.max(1));
        self
    }

    /// At most `n` admissions in any window of `period` (by the engine's
    /// clock; at least 1 per at least 1 ms).
    ///
    /// # Examples
    ///
    /// See [`Queue`].
    #[must_use]
    pub fn rate(mut self, n: u32, period: Duration) -> Self {
        let period = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        self.limits.rate = Some((n.max(1), period));
        self
    }

    /// Makes this queue the default of workflow `name`: its invocations go
    /// through it unless they name another.
    ///
    /// # Examples
    ///
    /// See [`Queue`].
    #[must_use]
    pub fn default_for(mut self, workflow: impl Into<String>) -> Self {
        self.workflows.push(workflow.into());
        self
    }

    /// The queue's name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_core::Queue::new("emails").name(), "emails");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue's limits.
    ///
    /// # Examples
    ///
    /// ```
    /// let q = memable_core::Queue::new("emails").concurrency(3);
    /// assert_eq!(q.limits().concurrency, Some(3));
    /// ```
    #[must_use]
    pub fn limits(&self) -> QueueLimits {
        self.limits
    }
}

/// The queues an engine declared and listens to.
pub(crate) struct Queues {
    declared: HashMap<String, QueueLimits>,
    defaults: HashMap<String, String>,
    /// The queues this engine admits from, each with its kick.
    listening: HashMap<String, Arc<Kick>>,
}

/// A queue's pending kick. While one is owed, the engine counts it as
/// work in progress (`wait_all` waits for the admission it asks for, and
/// for the runs that admission starts).
#[derive(Default)]
struct Kick {
    notify: Notify,
    /// The owed admission's guard; `closed` once the task ended.
    owed: std::sync::Mutex<(Option<ActiveRun>, bool)>,
}

impl Kick {
    fn ask(&self, inner: &Inner) {
        let mut owed = self
            .owed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (guard, closed) = &mut *owed;
        // Only a started engine owes admissions: before `start` no task
        // would ever take the guard (its first round is owed at start).
        if *closed || inner.ensure_started().is_err() {
            return;
        }
        if guard.is_none() {
            *guard = Some(ActiveRun::begin(inner));
        }
        drop(owed);
        self.notify.notify_one();
    }

    /// Takes the owed admission's guard (drop it once the round is done).
    fn take(&self) -> Option<ActiveRun> {
        self.owed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .take()
    }

    /// The task ends: nothing is owed any more.
    fn close(&self) {
        let mut owed = self
            .owed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        owed.1 = true;
        owed.0 = None;
    }
}

impl Queues {
    /// `declared` queues; this engine listens to `listen` (`None`: all).
    pub(crate) fn new(declared: Vec<Queue>, listen: Option<Vec<String>>) -> Self {
        let mut queues = Self {
            declared: HashMap::new(),
            defaults: HashMap::new(),
            listening: HashMap::new(),
        };
        for queue in declared {
            for workflow in &queue.workflows {
                queues.defaults.insert(workflow.clone(), queue.name.clone());
            }
            queues.declared.insert(queue.name, queue.limits);
        }
        let listen = listen.unwrap_or_else(|| queues.declared.keys().cloned().collect());
        for name in listen {
            if queues.declared.contains_key(&name) {
                queues.listening.insert(name, Arc::default());
            } else {
                tracing::warn!(queue = %name, "not listening to a queue that is not declared");
            }
        }
        queues
    }

    /// The queue an invocation of `workflow` goes through by default.
    pub(crate) fn default_for(&self, workflow: &str) -> Option<&str> {
        self.defaults.get(workflow).map(String::as_str)
    }

    /// Checks that `queue` is declared here.
    pub(crate) fn check(&self, queue: &str) -> Result<(), EngineError> {
        validate_key("queue", queue)?;
        if self.declared.contains_key(queue) {
            Ok(())
        } else {
            Err(EngineError::UnknownQueue {
                queue: queue.to_owned(),
            })
        }
    }

    /// Asks the admission task of `queue` (if this engine listens to it)
    /// for a round.
    pub(crate) fn kick(&self, inner: &Inner, queue: &str) {
        if let Some(kick) = self.listening.get(queue) {
            kick.ask(inner);
        }
    }

    /// Kicks every queue this engine listens to.
    pub(crate) fn kick_all(&self, inner: &Inner) {
        for kick in self.listening.values() {
            kick.ask(inner);
        }
    }
}

/// Starts the admission task of every queue `inner` listens to.
pub(crate) fn spawn(inner: &Arc<Inner>) -> Vec<tokio::task::JoinHandle<()>> {
    inner
        .queues
        .listening
        .iter()
        .map(|(name, kick)| {
            let weak = Arc::downgrade(inner);
            let name = name.clone();
            let kick = Arc::clone(kick);
            // The first round is owed from the start.
            kick.ask(inner);
            let mut stopped = inner.stopped.subscribe();
            tokio::spawn(async move {
                let _closed = Closed(Arc::clone(&kick));
                loop {
                    let owed = kick.take();
                    let Some(retry_at) = round(&weak, &name).await else {
                        return;
                    };
                    drop(owed);
                    let Some(clock) = weak.upgrade().map(|inner| Arc::clone(&inner.clock)) else {
                        return;
                    };
                    let sleep = retry_at.map(|at| clock.sleep_until(at));
                    tokio::select! {
                        () = kick.notify.notified() => {}
                        () = async move {
                            match sleep {
                                Some(sleep) => sleep.await,
                                None => std::future::pending().await,
                            }
                        } => {}
                        _ = stopped.wait_for(|stopped| *stopped) => return,
                    }
                }
            })
        })
        .collect()
}

/// Closes a queue's kick when its task ends, however it ends.
struct Closed(Arc<Kick>);

impl Drop for Closed {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// One admission round of `queue`: `None` once the engine is gone or
/// stopped, else when to try again unkicked (`Some(None)`: only when
/// kicked).
async fn round(weak: &Weak<Inner>, queue: &str) -> Option<Option<u64>> {
    loop {
        let inner = weak.upgrade()?;
        if inner.is_stopped() || inner.is_aborted() {
            return None;
        }
        let limits = inner.queues.declared.get(queue).copied()?;
        let max = if inner.worker.shared {
            let capacity = inner
                .worker
                .effective_capacity()
                .unwrap_or(super::worker::DEFAULT_CAPACITY);
            capacity.saturating_sub(*inner.active_runs.borrow())
        } else {
            ADMIT_BATCH
        };
        let workflows = inner.registry.names();
        if max == 0 || workflows.is_empty() {
            return Some(None);
        }
        let worker = inner.worker.shared.then(|| inner.worker.id.to_string());
        let now = inner.clock.now_ms();
        match inner
            .store
            .admit(queue, limits, Some(workflows), worker, max, now)
            .await
        {
            Ok(outcome) => {
                let full = outcome.admitted.len() == max && outcome.pending > 0;
                super::metrics::queue_admission(queue, outcome.admitted.len(), outcome.pending);
                for (key, epoch) in outcome.admitted {
                    tracing::debug!(instance = %key, queue, "admitted");
                    inner.trigger_run(
                        &key,
                        RunRequest {
                            resume: false,
                            epoch,
                        },
                    );
                }
                if !full {
                    return Some(outcome.retry_at_ms);
                }
            }
            Err(error) => {
                tracing::warn!(queue, %error, "admission failed; trying again");
                let wait = u64::try_from(RETRY_AFTER_ERROR.as_millis()).unwrap_or(1_000);
                return Some(Some(now.saturating_add(wait)));
            }
        }
    }
}
