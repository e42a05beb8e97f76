//! The suite catches broken stores: for each family, a `MemoryStore`
//! wrapper with one deliberate bug makes a case of that family fail, while
//! the same case passes on the unbroken wrapper.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use memable_core::{
    ClaimOutcome, CommitOutcome, EngineError, Finish, FinishOutcome, FireOutcome, InstanceFilter,
    InstanceKey, InstanceSnapshot, MemoryStore, SignalOutcome, StartOutcome, StepKind, StepRecord,
    StepStore, StepStoreExt, SuspendOutcome, TimerEntry, WorkflowMetadata, WriteOp, WriteOutcome,
};
use memable_testkit::{Capabilities, StoreFactory, StoreFixture, cases};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    None,
    /// start: an existing instance is overwritten (deleted and started again).
    StartOverwrites,
    /// steps: `Retrying` records are acknowledged but not written.
    DropRetrying,
    /// snapshot: steps come back in reverse order.
    SnapshotUnsorted,
    /// isolation / model: deleting `w/1` also deletes `w/10` (prefix range delete).
    PrefixDelete,
    /// suspend: the suspend status message is dropped.
    SuspendDropsStatus,
    /// claim: a lost compare-and-set is reported as a win.
    ClaimAlwaysWins,
    /// timers: due means `deadline < now` instead of `<=`.
    DueExclusive,
    /// lifecycle: a completed finish loses its status message.
    FinishDropsStatus,
    /// listing: `after` is ignored when filtering by status.
    StatusListIgnoresAfter,
    /// delete: deleting a missing instance reports `true`.
    DeleteMissingTrue,
    /// values: values are truncated to 1 MiB.
    TruncateValues,
    /// concurrency: every 50th commit is acknowledged but lost.
    LoseEvery50thCommit,
    /// persistence: reopening gives an empty store.
    LoseOnReopen,
    /// atomicity: a commit to a missing instance creates the instance.
    CommitCreatesInstance,
    /// signals: a second signal to a point not reached is answered
    /// `Buffered` instead of `Superseded`.
    SignalBuffersTwice,
    /// signals: a losing signal to a group member is answered `Delivered`.
    MemberSignalAlwaysWins,
    /// signals: `Fire` ignores the deadline check (a row of an old deadline
    /// fires the point).
    FireIgnoresDeadline,
    /// ownership: a fenced write is applied whatever its epoch.
    FenceIgnoresEpoch,
    /// ownership: an acquisition by the same worker keeps the epoch.
    AcquireKeepsEpochForSameWorker,
    /// children: an awaited child is started without its parent's point.
    ChildStartDropsPoint,
    /// children: a repeated start deletes the child and starts it afresh.
    ChildStartRestarts,
}

struct Broken {
    inner: MemoryStore,
    bug: Bug,
    commits: AtomicU64,
    last_acquired: std::sync::Mutex<Option<(InstanceKey, String, u64)>>,
}

impl Broken {
    async fn start_child(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        let WriteOp::StartChild {
            parent,
            step_key,
            child,
            input,
            point,
            now_ms,
        } = op
        else {
            return self.inner.write(op).await;
        };
        let point = if self.bug == Bug::ChildStartDropsPoint {
            None
        } else {
            point
        };
        if self.bug == Bug::ChildStartRestarts {
            self.inner.delete_instance(child.clone()).await?;
        }
        let outcome = self
            .inner
            .start_child(parent, step_key, child, input, point, now_ms)
            .await?;
        Ok(WriteOutcome::StartChild(outcome))
    }
    async fn start(
        &self,
        key: InstanceKey,
        input: StepRecord,
        now_ms: u64,
    ) -> Result<StartOutcome, EngineError> {
        if self.bug == Bug::StartOverwrites {
            self.inner.delete_instance(key.clone()).await?;
        }
        self.inner.start_instance(key, input, now_ms).await
    }
    async fn commit(
        &self,
        key: InstanceKey,
        step_key: String,
        mut record: StepRecord,
    ) -> Result<CommitOutcome, EngineError> {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        match self.bug {
            Bug::DropRetrying if record.state == memable_core::StepState::Retrying => {
                return Ok(CommitOutcome::Committed);
            }
            Bug::LoseEvery50thCommit if n.is_multiple_of(50) => {
                return Ok(CommitOutcome::Committed);
            }
            Bug::TruncateValues => record.value.truncate(1 << 20),
            Bug::CommitCreatesInstance if self.inner.get_metadata(&key).await?.is_none() => {
                let input = StepRecord::completed(StepKind::Engine, "", vec![], None);
                self.inner.start_instance(key.clone(), input, 0).await?;
                self.inner.commit_step(key, step_key, record).await?;
                return Ok(CommitOutcome::InstanceMissing);
            }
            _ => {}
        }
        self.inner.commit_step(key, step_key, record).await
    }
    async fn suspend(
        &self,
        key: InstanceKey,
        step_key: String,
        record: StepRecord,
        status: Option<String>,
        now_ms: u64,
    ) -> Result<SuspendOutcome, EngineError> {
        let status = if self.bug == Bug::SuspendDropsStatus {
            None
        } else {
            status
        };
        self.inner
            .suspend_step(key, step_key, record, status, now_ms)
            .await
    }
    async fn claim(
        &self,
        key: InstanceKey,
        step_key: String,
        payload: StepRecord,
        now_ms: u64,
    ) -> Result<ClaimOutcome, EngineError> {
        let outcome = self
            .inner
            .claim_step(key, step_key, payload, now_ms)
            .await?;
        Ok(if self.bug == Bug::ClaimAlwaysWins {
            ClaimOutcome::Claimed
        } else {
            outcome
        })
    }
    async fn finish(
        &self,
        key: InstanceKey,
        finish: Finish,
        now_ms: u64,
    ) -> Result<FinishOutcome, EngineError> {
        let finish = match finish {
            Finish::Completed { output, .. } if self.bug == Bug::FinishDropsStatus => {
                Finish::Completed {
                    status: None,
                    output,
                }
            }
            other => other,
        };
        self.inner.finish_instance(key, finish, now_ms).await
    }
    async fn signal(
        &self,
        key: InstanceKey,
        step_key: String,
        payload: StepRecord,
        now_ms: u64,
    ) -> Result<SignalOutcome, EngineError> {
        let existing = self.inner.get_step(&key, &step_key).await?;
        let outcome = self
            .inner
            .deliver_signal(key, step_key, payload, now_ms)
            .await?;
        Ok(match (self.bug, outcome, existing) {
            (Bug::SignalBuffersTwice, SignalOutcome::Superseded, None) => SignalOutcome::Buffered,
            (Bug::MemberSignalAlwaysWins, SignalOutcome::Superseded, Some(rec))
                if rec.kind == StepKind::Member =>
            {
                SignalOutcome::Delivered
            }
            (_, outcome, _) => outcome,
        })
    }
    async fn fire(
        &self,
        mut timer: TimerEntry,
        payload: StepRecord,
        now_ms: u64,
    ) -> Result<FireOutcome, EngineError> {
        if self.bug == Bug::FireIgnoresDeadline
            && let Some(deadline) = self
                .inner
                .get_step(&timer.instance, &timer.step_key)
                .await?
                .and_then(|rec| rec.deadline_ms)
            && deadline != timer.deadline_ms
        {
            // The row of the old deadline is removed, and the point fired
            // as if it were due.
            self.inner
                .fire_timer(timer.clone(), payload.clone(), now_ms)
                .await?;
            timer.deadline_ms = deadline;
        }
        self.inner.fire_timer(timer, payload, now_ms).await
    }
    async fn delete(&self, key: InstanceKey) -> Result<bool, EngineError> {
        if self.bug == Bug::PrefixDelete {
            let all = self
                .inner
                .list_instances(&InstanceFilter::new().workflow(key.workflow()))
                .await?;
            for meta in all {
                if meta.instance_id.starts_with(key.instance())
                    && meta.instance_id != key.instance()
                {
                    self.inner.delete_instance(meta.key()?).await?;
                }
            }
        }
        let existed = self.inner.delete_instance(key).await?;
        Ok(existed || self.bug == Bug::DeleteMissingTrue)
    }
}

#[async_trait]
impl StepStore for Broken {
    fn engine_slot(&self) -> &memable_core::EngineSlot {
        self.inner.engine_slot()
    }

    fn name(&self) -> &'static str {
        "broken"
    }
    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        Ok(match op {
            WriteOp::Start { key, input, now_ms } => {
                WriteOutcome::Start(self.start(key, input, now_ms).await?)
            }
            WriteOp::Commit {
                key,
                step_key,
                record,
            } => WriteOutcome::Commit(self.commit(key, step_key, record).await?),
            WriteOp::Suspend {
                key,
                step_key,
                record,
                status,
                now_ms,
            } => WriteOutcome::Suspend(self.suspend(key, step_key, record, status, now_ms).await?),
            WriteOp::Claim {
                key,
                step_key,
                payload,
                now_ms,
            } => WriteOutcome::Claim(self.claim(key, step_key, payload, now_ms).await?),
            WriteOp::Finish {
                key,
                finish,
                now_ms,
            } => WriteOutcome::Finish(self.finish(key, finish, now_ms).await?),
            WriteOp::Signal {
                key,
                step_key,
                payload,
                now_ms,
            } => WriteOutcome::Signal(self.signal(key, step_key, payload, now_ms).await?),
            WriteOp::Fire {
                timer,
                payload,
                now_ms,
            } => WriteOutcome::Fire(self.fire(timer, payload, now_ms).await?),
            WriteOp::Delete { key } => WriteOutcome::Delete(self.delete(key).await?),
            WriteOp::Fenced { op, .. } if self.bug == Bug::FenceIgnoresEpoch => {
                self.inner.write(*op).await?
            }
            WriteOp::Acquire {
                key,
                worker,
                now_ms,
            } if self.bug == Bug::AcquireKeepsEpochForSameWorker => {
                let last = self.last_acquired.lock().expect("lock").clone();
                match last {
                    Some((k, w, epoch)) if k == key && w == worker => {
                        WriteOutcome::Acquire(memable_core::AcquireOutcome::Acquired { epoch })
                    }
                    _ => {
                        let outcome = self
                            .inner
                            .write(WriteOp::Acquire {
                                key: key.clone(),
                                worker: worker.clone(),
                                now_ms,
                            })
                            .await?;
                        if let WriteOutcome::Acquire(memable_core::AcquireOutcome::Acquired {
                            epoch,
                        }) = outcome
                        {
                            *self.last_acquired.lock().expect("lock") = Some((key, worker, epoch));
                        }
                        outcome
                    }
                }
            }
            op @ WriteOp::StartChild { .. } => self.start_child(op).await?,
            // These have no bug of their own here.
            op @ (WriteOp::Revive { .. }
            | WriteOp::Cancel { .. }
            | WriteOp::Wait { .. }
            | WriteOp::Park { .. }
            | WriteOp::Fenced { .. }
            | WriteOp::Acquire { .. }
            | WriteOp::Release { .. }
            | WriteOp::Enqueue { .. }
            | WriteOp::Admit { .. }
            | WriteOp::Forget { .. }
            | WriteOp::Fork { .. }
            | WriteOp::Resume { .. }
            | WriteOp::DeleteEnded { .. }) => self.inner.write(op).await?,
        })
    }
    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        let mut snap = self.inner.load_instance(key).await?;
        if self.bug == Bug::SnapshotUnsorted
            && let Some(snap) = snap.as_mut()
        {
            snap.steps.reverse();
        }
        Ok(snap)
    }
    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.inner.get_step(key, step_key).await
    }
    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.inner.get_metadata(key).await
    }
    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        let mut filter = filter.clone();
        if self.bug == Bug::StatusListIgnoresAfter && filter.status.is_some() {
            filter.after = None;
        }
        self.inner.list_instances(&filter).await
    }
    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        let mut due = self.inner.due_timers(now_ms, usize::MAX).await?;
        if self.bug == Bug::DueExclusive {
            due.retain(|t| t.deadline_ms < now_ms);
        }
        due.truncate(limit);
        Ok(due)
    }
    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        self.inner.next_timer_deadline().await
    }
}

struct BrokenFactory(Bug);

struct BrokenFixture {
    store: Arc<Broken>,
}

#[async_trait]
impl StoreFactory for BrokenFactory {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reopen: true,
            survives_process_exit: false,
        }
    }
    async fn create(&self) -> Result<Box<dyn StoreFixture>, EngineError> {
        let store = Broken {
            inner: MemoryStore::new(),
            bug: self.0,
            commits: AtomicU64::new(0),
            last_acquired: std::sync::Mutex::default(),
        };
        Ok(Box::new(BrokenFixture {
            store: Arc::new(store),
        }))
    }
}

#[async_trait]
impl StoreFixture for BrokenFixture {
    fn store(&self) -> Arc<dyn StepStore> {
        self.store.clone()
    }
    async fn reopen(&mut self) -> Result<(), EngineError> {
        let inner = if self.store.bug == Bug::LoseOnReopen {
            MemoryStore::new()
        } else {
            self.store.inner.clone()
        };
        self.store = Arc::new(Broken {
            inner,
            bug: self.store.bug,
            commits: AtomicU64::new(0),
            last_acquired: std::sync::Mutex::default(),
        });
        Ok(())
    }
}

/// Runs `case` on a store with `bug` (must panic) and without (must pass).
macro_rules! catches {
    ($($test:ident: $bug:expr => $family:ident::$case:ident;)*) => {$(
        #[test]
        fn $test() {
            memable_testkit::__private::block_on(async {
                let broken = tokio::spawn(async { cases::$family::$case(&BrokenFactory($bug)).await }).await;
                assert!(
                    broken.as_ref().is_err_and(tokio::task::JoinError::is_panic),
                    "{} did not catch {:?}", stringify!($case), $bug
                );
                cases::$family::$case(&BrokenFactory(Bug::None)).await;
            });
        }
    )*};
}

catches! {
    start_catches_overwrite: Bug::StartOverwrites => start::start_existing_is_reported_never_overwrites;
    steps_catch_dropped_retrying: Bug::DropRetrying => steps::commit_overwrites_retrying;
    snapshot_catches_unsorted_steps: Bug::SnapshotUnsorted => snapshot::snapshot_has_every_step_sorted;
    isolation_catches_prefix_delete: Bug::PrefixDelete => isolation::instance_prefixes_do_not_bleed;
    suspend_catches_dropped_status: Bug::SuspendDropsStatus => suspend::suspend_writes_step_timer_and_status;
    claim_catches_two_winners: Bug::ClaimAlwaysWins => claim::claim_exactly_one_winner_of_32;
    timers_catch_exclusive_boundary: Bug::DueExclusive => timers::due_set_exact_at_boundary;
    lifecycle_catches_dropped_status: Bug::FinishDropsStatus => lifecycle::finish_completed_writes_output_and_status;
    listing_catches_ignored_after: Bug::StatusListIgnoresAfter => listing::list_pages_with_after_and_limit;
    delete_catches_wrong_existed: Bug::DeleteMissingTrue => delete::delete_missing_returns_false;
    values_catch_truncation: Bug::TruncateValues => values::sixteen_mib_value_round_trips;
    concurrency_catches_lost_writes: Bug::LoseEvery50thCommit => concurrency::concurrent_writers_lose_nothing;
    persistence_catches_lost_data: Bug::LoseOnReopen => persistence::reopen_keeps_everything;
    atomicity_catches_refused_write: Bug::CommitCreatesInstance => atomicity::refused_transitions_write_nothing;
    model_catches_prefix_delete: Bug::PrefixDelete => model::model_random_sequences;
    model_catches_exclusive_boundary: Bug::DueExclusive => model::model_random_sequences;
    model_catches_claim_lies: Bug::ClaimAlwaysWins => model::model_random_sequences;
    model_catches_lost_status: Bug::SuspendDropsStatus => model::model_random_sequences;
    signals_catch_second_buffered: Bug::SignalBuffersTwice => signals::signal_before_wait_is_buffered_once;
    signals_catch_two_buffered_of_32: Bug::SignalBuffersTwice => signals::buffered_exactly_one_of_32;
    signals_catch_two_group_winners: Bug::MemberSignalAlwaysWins => signals::group_exactly_one_winner_of_32;
    signals_catch_superseded_member_reported_won: Bug::MemberSignalAlwaysWins => signals::group_first_member_signal_wins;
    signals_catch_fire_ignoring_deadline: Bug::FireIgnoresDeadline => signals::fire_stale_row_only_removes_it;
    ownership_catches_ignored_epoch: Bug::FenceIgnoresEpoch => ownership::stale_epoch_writes_land_nothing;
    ownership_catches_kept_epoch: Bug::AcquireKeepsEpochForSameWorker => ownership::acquire_bumps_the_epoch_every_time;
    children_catch_a_dropped_point: Bug::ChildStartDropsPoint => children::start_child_writes_link_point_and_child;
    children_catch_a_restart: Bug::ChildStartRestarts => children::start_child_twice_writes_nothing;
    engine_children_catch_a_dropped_point: Bug::ChildStartDropsPoint => children::engine_child_output_and_failure_reach_the_parent;
}
