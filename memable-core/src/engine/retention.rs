//! Retention: deleting ended instances once they are old enough, in the
//! background, in bounded batches.
//!
//! # The protocol
//!
//! A [`RetentionPolicy`] holds rules ([`RetentionRule`]: a workflow or all
//! of them, the terminal statuses it applies to, an age). A started engine
//! with a policy runs one task that repeats a **sweep**:
//!
//! 1. Read the engine's clock once (`now`). For each rule and each of its
//!    statuses, list (`InstanceFilter::status(s).ended_before(now - age)`,
//!    with the rule's workflow) at most what is left of the batch
//!    ([`RetentionPolicy::batch_size`] instances in all, across rules).
//! 2. Delete each listed instance with `WriteOp::DeleteEnded` (metadata,
//!    step records, buffered signals, timers, its queue entries, in one
//!    transition) that checks in the same transaction that it is still
//!    ended, and ended before the cutoff: one gone, resumed or ended since
//!    is left. Skipped beforehand if a run of it is in progress in this
//!    engine (a [`resume`](crate::Engine::resume) replay, which revives it
//!    only when it reaches new work). Deletes of one batch are issued
//!    together, so a group-committing store writes them in few
//!    transactions.
//! 3. Emit one `tracing` event for the batch, update the counters
//!    ([`RetentionStats`]), then yield: sleep on the engine's clock for
//!    [`RetentionPolicy::backlog_pause`] if the batch was full (more may be
//!    due), else for [`RetentionPolicy::interval`].
//!
//! The first sweep runs at [`start`](crate::Engine::start). The task ends
//! with the engine ([`stop`](crate::Engine::stop) /
//! [`shutdown`](crate::Engine::shutdown), which waits for a batch in
//! flight); it holds only a weak reference, so dropping the engine ends it
//! too. While a batch is in flight it counts in the engine's busy count, so
//! a test clock that moves time by itself waits for it.
//!
//! # Why this is safe
//!
//! - Only ended instances are listed (`ended_before` never matches an
//!   instance without an end time); `Running`, `Suspended` and queued
//!   instances are never deleted.
//! - An awaited child's end completes its parent's point in the same
//!   transaction (see the family protocol in `store::family`), so a parent
//!   never waits on a child that has ended: deleting an ended child loses
//!   nothing its parent still needs (the parent's point already holds the
//!   child's output or error).
//! - A detached child does not report to its parent: an ended parent whose
//!   detached children still run is deleted like any other instance, and
//!   the children run on (their `_parent` link then names a missing
//!   instance; nothing reads it for a detached child).
//! - Many engines (PostgreSQL workers) may apply the same policy to one
//!   database: a delete of an instance another engine deleted first answers
//!   "did not exist" and counts nothing; no error is raised.
//!
//! - A resume through the store (`memable resume`, any engine's revive)
//!   that lands before the delete's transaction makes the instance
//!   `Running`, and the delete leaves it; one that lands after finds it
//!   missing.
//!
//! What stays racy: [`resume`](crate::Engine::resume) in *another* engine
//! replays an ended instance without reviving it until the replay reaches
//! new work; a sweep can delete it during that replay (the run then finds
//! it missing and ends, `InstanceNotFound`). Resume instances that a
//! policy is about to delete only with retention disabled for them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::Inner;
use crate::{EngineError, InstanceFilter, StatusKind, StepStoreExt, WorkflowMetadata};

/// A status an instance ends in, for [`RetentionRule::statuses`].
///
/// # Examples
///
/// ```
/// use memable_core::{StatusKind, TerminalStatus};
/// assert_eq!(StatusKind::from(TerminalStatus::Failed), StatusKind::Failed);
/// assert_eq!(TerminalStatus::ALL.len(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TerminalStatus {
    /// The workflow returned `Ok`.
    Completed,
    /// The workflow returned an error (or panicked).
    Failed,
    /// The instance was cancelled.
    Cancelled,
}

impl TerminalStatus {
    /// Every terminal status.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memable_core::TerminalStatus::ALL.contains(&memable_core::TerminalStatus::Cancelled));
    /// ```
    pub const ALL: [TerminalStatus; 3] = [Self::Completed, Self::Failed, Self::Cancelled];
}

impl From<TerminalStatus> for StatusKind {
    fn from(status: TerminalStatus) -> Self {
        match status {
            TerminalStatus::Completed => StatusKind::Completed,
            TerminalStatus::Failed => StatusKind::Failed,
            TerminalStatus::Cancelled => StatusKind::Cancelled,
        }
    }
}

/// One rule of a [`RetentionPolicy`]: instances of a workflow (or of every
/// workflow) that ended in one of some statuses (default: any) at least
/// `age` ago.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::{RetentionRule, TerminalStatus};
///
/// // Completed `etl` instances after a day; failed ones are kept longer by another rule.
/// let rule = RetentionRule::new(Duration::from_secs(86_400))
///     .workflow("etl")
///     .statuses([TerminalStatus::Completed]);
/// assert_eq!(rule.age(), Duration::from_secs(86_400));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionRule {
    workflow: Option<String>,
    statuses: Vec<TerminalStatus>,
    age: Duration,
}

impl RetentionRule {
    /// Instances of every workflow, ended in any status, `age` or longer
    /// ago (on the engine's clock).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let rule = memable_core::RetentionRule::new(Duration::from_secs(3600));
    /// assert_eq!(rule.workflow_name(), None);
    /// ```
    #[must_use]
    pub fn new(age: Duration) -> Self {
        Self {
            workflow: None,
            statuses: TerminalStatus::ALL.to_vec(),
            age,
        }
    }

    /// Only instances of workflow `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let rule = memable_core::RetentionRule::new(Duration::ZERO).workflow("etl");
    /// assert_eq!(rule.workflow_name(), Some("etl"));
    /// ```
    #[must_use]
    pub fn workflow(mut self, name: impl Into<String>) -> Self {
        self.workflow = Some(name.into());
        self
    }

    /// Only instances that ended in one of `statuses` (replacing the
    /// default, every terminal status). An empty list matches nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{RetentionRule, TerminalStatus};
    /// let rule = RetentionRule::new(Duration::ZERO).statuses([TerminalStatus::Cancelled]);
    /// assert_eq!(rule.status_list(), [TerminalStatus::Cancelled]);
    /// ```
    #[must_use]
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = TerminalStatus>) -> Self {
        self.statuses.clear();
        for status in statuses {
            if !self.statuses.contains(&status) {
                self.statuses.push(status);
            }
        }
        self
    }

    /// The workflow the rule applies to (`None`: every workflow).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(memable_core::RetentionRule::new(Duration::ZERO).workflow_name(), None);
    /// ```
    #[must_use]
    pub fn workflow_name(&self) -> Option<&str> {
        self.workflow.as_deref()
    }

    /// The statuses the rule applies to.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{RetentionRule, TerminalStatus};
    /// assert_eq!(RetentionRule::new(Duration::ZERO).status_list(), TerminalStatus::ALL);
    /// ```
    #[must_use]
    pub fn status_list(&self) -> &[TerminalStatus] {
        &self.statuses
    }

    /// How long after its end an instance is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(memable_core::RetentionRule::new(Duration::from_secs(1)).age(), Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn age(&self) -> Duration {
        self.age
    }
}

/// What an engine deletes in the background, and at what pace; set with
/// [`EngineBuilder::retention`](crate::EngineBuilder::retention).
///
/// An ended instance is deleted once **any** rule matches it. A sweep
/// deletes at most [`batch_size`](Self::batch_size) instances; after a full
/// batch the next follows after [`backlog_pause`](Self::backlog_pause),
/// otherwise after [`interval`](Self::interval). Defaults: batch 500,
/// interval 60 s, backlog pause 100 ms.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::{Engine, RetentionPolicy, RetentionRule, TerminalStatus};
///
/// let day = Duration::from_secs(86_400);
/// let policy = RetentionPolicy::new()
///     .rule(RetentionRule::new(day).statuses([TerminalStatus::Completed]))
///     .rule(RetentionRule::new(30 * day))
///     .batch_size(1_000)
///     .interval(Duration::from_secs(300));
/// let engine = Engine::builder().retention(policy).build();
/// # let _ = engine;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    rules: Vec<RetentionRule>,
    batch_size: usize,
    interval: Duration,
    backlog_pause: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            batch_size: 500,
            interval: Duration::from_secs(60),
            backlog_pause: Duration::from_millis(100),
        }
    }
}

impl RetentionPolicy {
    /// A policy without rules (it deletes nothing until one is added).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memable_core::RetentionPolicy::new().rules().is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{RetentionPolicy, RetentionRule};
    /// let policy = RetentionPolicy::new().rule(RetentionRule::new(Duration::from_secs(60)));
    /// assert_eq!(policy.rules().len(), 1);
    /// ```
    #[must_use]
    pub fn rule(mut self, rule: RetentionRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// At most `n` instances per sweep (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_core::RetentionPolicy::new().batch_size(0).batch(), 1);
    /// ```
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Time between sweeps when the last one did not fill its batch (at
    /// least 1 ms).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = memable_core::RetentionPolicy::new().interval(Duration::from_secs(5));
    /// assert_eq!(policy.sweep_interval(), Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn interval(mut self, every: Duration) -> Self {
        self.interval = every.max(Duration::from_millis(1));
        self
    }

    /// Time between a full batch and the next sweep (at least 1 ms): the
    /// pause that lets other writes through while a backlog is worked off.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = memable_core::RetentionPolicy::new().backlog_pause(Duration::ZERO);
    /// assert_eq!(policy.pause(), Duration::from_millis(1));
    /// ```
    #[must_use]
    pub fn backlog_pause(mut self, pause: Duration) -> Self {
        self.backlog_pause = pause.max(Duration::from_millis(1));
        self
    }

    /// The rules.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memable_core::RetentionPolicy::default().rules().is_empty());
    /// ```
    #[must_use]
    pub fn rules(&self) -> &[RetentionRule] {
        &self.rules
    }

    /// Instances per sweep.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_core::RetentionPolicy::default().batch(), 500);
    /// ```
    #[must_use]
    pub fn batch(&self) -> usize {
        self.batch_size
    }

    /// Time between sweeps without a backlog.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(memable_core::RetentionPolicy::default().sweep_interval(), Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn sweep_interval(&self) -> Duration {
        self.interval
    }

    /// Time between a full batch and the next sweep.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(memable_core::RetentionPolicy::default().pause(), Duration::from_millis(100));
    /// ```
    #[must_use]
    pub fn pause(&self) -> Duration {
        self.backlog_pause
    }
}

/// What an engine's retention has done so far (see
/// [`Engine::retention_stats`](crate::Engine::retention_stats)).
///
/// # Examples
///
/// ```
/// let stats = memable_core::RetentionStats::default();
/// assert_eq!((stats.sweeps, stats.deleted, stats.last_sweep_at_ms), (0, 0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionStats {
    /// Sweeps finished (batches, empty ones and failed ones included).
    pub sweeps: u64,
    /// Instances deleted, in all.
    pub deleted: u64,
    /// Instances deleted by the last sweep.
    pub last_deleted: usize,
    /// When the last sweep started (ms since the Unix epoch, engine clock;
    /// 0 before the first).
    pub last_sweep_at_ms: u64,
    /// Sweeps that ended with a storage error (retried after the
    /// interval).
    pub failed_sweeps: u64,
}

/// One engine's retention: its policy and counters.
pub(crate) struct Retention {
    policy: RetentionPolicy,
    stats: watch::Sender<RetentionStats>,
}

/// One sweep's result.
struct Batch {
    /// Instances listed (at most the batch size).
    listed: usize,
    deleted: usize,
    /// The first storage error; the sweep stopped listing there.
    error: Option<EngineError>,
}

impl Retention {
    pub fn new(policy: RetentionPolicy) -> Arc<Self> {
        Arc::new(Self {
            policy,
            stats: watch::Sender::new(RetentionStats::default()),
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<RetentionStats> {
        self.stats.subscribe()
    }

    /// One sweep: at most a batch of ended instances listed and deleted.
    async fn sweep(&self, inner: &Arc<Inner>, now: u64) -> Batch {
        let mut left = self.policy.batch_size;
        let mut batch = Batch {
            listed: 0,
            deleted: 0,
            error: None,
        };
        for rule in &self.policy.rules {
            let age = u64::try_from(rule.age.as_millis()).unwrap_or(u64::MAX);
            let cutoff = now.saturating_sub(age);
            for status in &rule.statuses {
                if left == 0 || batch.error.is_some() {
                    return batch;
                }
                let mut filter = InstanceFilter::new()
                    .status((*status).into())
                    .ended_before(cutoff)
                    .limit(left);
                if let Some(workflow) = &rule.workflow {
                    filter = filter.workflow(workflow.clone());
                }
                let found = match inner.store.list_instances(&filter).await {
                    Ok(found) => found,
                    Err(error) => {
                        batch.error = Some(error);
                        return batch;
                    }
                };
                left = left.saturating_sub(found.len());
                batch.listed += found.len();
                let deletes = found
                    .into_iter()
                    .filter(|meta| meta.workflow_name != crate::QUEUE_WORKFLOW)
                    .map(|meta| delete_if_due(inner, meta, cutoff));
                for outcome in futures_util::future::join_all(deletes).await {
                    match outcome {
                        Ok(true) => batch.deleted += 1,
                        Ok(false) => {}
                        Err(error) => {
                            batch.error.get_or_insert(error);
                        }
                    }
                }
            }
        }
        batch
    }

    /// Runs one sweep and records it: how many it deleted, and whether its
    /// batch was full (more may be due).
    pub async fn sweep_and_record(&self, inner: &Arc<Inner>) -> Result<(usize, bool), EngineError> {
        let started = inner.clock.now_ms();
        let batch = self.sweep(inner, started).await;
        let full = batch.listed >= self.policy.batch_size;
        match &batch.error {
            None if batch.deleted > 0 => tracing::info!(
                listed = batch.listed,
                deleted = batch.deleted,
                full,
                "retention sweep deleted ended instances"
            ),
            None => tracing::debug!(listed = batch.listed, "retention sweep deleted nothing"),
            Some(error) => tracing::warn!(
                %error,
                deleted = batch.deleted,
                "retention sweep failed; retrying after the interval"
            ),
        }
        super::metrics::retention_deleted(batch.deleted);
        self.stats.send_modify(|s| {
            s.sweeps += 1;
            s.last_sweep_at_ms = started;
            s.last_deleted = batch.deleted;
            s.deleted += batch.deleted as u64;
            if batch.error.is_some() {
                s.failed_sweeps += 1;
            }
        });
        match batch.error {
            Some(error) => Err(error),
            None => Ok((batch.deleted, full)),
        }
    }
}

/// Deletes `listed` if it is still ended before `cutoff` and no run of it
/// is in progress here; whether it was deleted by this call.
async fn delete_if_due(
    inner: &Arc<Inner>,
    listed: WorkflowMetadata,
    cutoff: u64,
) -> Result<bool, EngineError> {
    let key = listed.key()?;
    if inner.live.get(&key).is_some_and(|e| e.is_running()) {
        return Ok(false);
    }
    // Checked again in the delete's own transaction: an instance resumed
    // (or ended again) since the listing is kept.
    inner.store.delete_ended(key, cutoff).await
}

/// Spawns the sweep loop (see the module header).
pub(crate) fn spawn(inner: &Arc<Inner>, retention: Arc<Retention>) -> tokio::task::JoinHandle<()> {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let clock = Arc::clone(&inner.clock);
    let activity = Arc::clone(&inner.activity);
    let mut stopped = inner.stopped.subscribe();
    // Counted busy from here, so a self-advancing clock waits for the
    // first sweep.
    activity.enter();
    let busy = Busy(Some(Arc::clone(&activity)));
    tokio::spawn(async move {
        let mut busy = busy;
        loop {
            if *stopped.borrow() {
                return;
            }
            let Some(inner) = weak.upgrade() else {
                return;
            };
            if busy.0.is_none() {
                activity.enter();
                busy.0 = Some(Arc::clone(&activity));
            }
            // The next sweep is timed from this one's start: a fixed
            // cadence, and one that no reading of the clock after the
            // counters changed can shift.
            let started = clock.now_ms();
            let outcome = retention.sweep_and_record(&inner).await;
            drop(inner);
            let wait = match outcome {
                Ok((_, true)) => retention.policy.backlog_pause,
                _ => retention.policy.interval,
            };
            let wait = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            let at = started.saturating_add(wait);
            busy.leave();
            // Even when the next sweep is due at once, other work goes first.
            tokio::task::yield_now().await;
            tokio::select! {
                () = clock.sleep_until(at) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    })
}

/// The sweep loop's share of the busy count, released however the task
/// ends.
struct Busy(Option<Arc<super::activity::Activity>>);

impl Busy {
    fn leave(&mut self) {
        if let Some(activity) = self.0.take() {
            activity.leave();
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.leave();
    }
}
