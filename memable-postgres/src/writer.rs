//! The group-commit writer: one thread, one connection, one transaction per
//! batch of queued writes.
//!
//! # The protocol
//!
//! A [`Writer`] owns a dedicated `std::thread` with its own current-thread
//! tokio runtime and its own [`PgConnection`] (application name
//! `memable-writer`). Callers queue a [`WriteOp`] with a reply channel; the
//! thread blocks for the first request, drains whatever else is queued (up
//! to [`MAX_BATCH`]) and runs the batch:
//!
//! 1. `BEGIN ISOLATION LEVEL REPEATABLE READ`;
//! 2. **prefetch**, one query: the instance rows the ops name
//!    (`FOR UPDATE`) and the step rows they name; rows found and rows known
//!    to be absent go into the batch's cache;
//! 3. **apply** every op through [`memable_core::transitions::apply`] over
//!    [`Batch`], the cache as a [`Transaction`]: reads hit the cache or, on a
//!    miss, run one query (`rt.block_on` at the top level of the thread);
//!    writes only change the cache and mark rows dirty;
//! 4. **flush**: removed instances in one statement (only when there are
//!    any), then every dirty row in one statement (`UNNEST` arrays in
//!    data-modifying CTEs);
//! 5. `COMMIT`, then answer every caller.
//!
//! A batch therefore costs four round trips: `BEGIN`, prefetch, flush,
//! `COMMIT`. A batch of one step commit — a lone workflow's steps — takes a
//! shorter way: one statement in autocommit, one round trip
//! ([`FAST_COMMIT`]); anything unusual there (an error, a conflict) sends it
//! down the general path.
//!
//! # Who may touch what
//!
//! Only the writer thread uses its connection and the cache; a batch's
//! cache lives for one attempt. Readers use the store's pool and see only
//! committed batches. Nothing else in this process writes.
//!
//! # Failures
//!
//! | what fails | what happens |
//! |---|---|
//! | a serialization failure or deadlock (40001, 40P01) before `COMMIT` | rolled back and the batch is run again, up to [`MAX_TRIES`] times |
//! | the connection (refused, dropped, terminated) before `COMMIT` | the connection is dropped, a new one is opened and the batch run again (nothing of it committed), up to [`MAX_TRIES`] times, then every caller gets [`StorageErrorKind::Io`] |
//! | one op's apply, or any other statement error | rolled back; a batch of several ops is run again one op per transaction, so only the failing op's caller gets the error |
//! | `COMMIT` itself | every caller gets the error (kind `Io` if the connection was lost); the batch may or may not have committed — the engine tolerates a lost acknowledgement, a step runs at least once |
//!
//! No acknowledged write is ever lost: a caller is answered `Ok` only after
//! its batch's `COMMIT` succeeded.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use memable_core::queue_admission_keys;
use memable_core::transitions::{Transaction, WriteOp, WriteOutcome, apply};
use memable_core::{
    CommitOutcome, EngineError, FireOutcome, InstanceKey, Ownership, ReviveOutcome, SignalOutcome,
    StaleEpoch, StartOutcome, StepRecord, StorageError, StorageErrorKind, TimerEntry,
    WorkflowMetadata,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::error::{is_connection_lost, is_retryable, storage};
use crate::rows::{self, metadata_columns, step_columns, to_sql_int};

/// Most ops in one batch.
pub const MAX_BATCH: usize = 1024;

/// Most attempts of one batch after serialization failures or lost
/// connections.
pub const MAX_TRIES: usize = 5;

struct Request {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome, EngineError>>,
}

/// The handle to the writer thread; dropping it ends the thread after the
/// queued requests.
pub struct Writer {
    requests: Option<mpsc::UnboundedSender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread, which connects with `options` and checks
    /// and migrates `schema` first (the result is `ready`'s answer).
    pub fn spawn(
        options: PgConnectOptions,
        schema: String,
        backend_pid: Arc<AtomicU32>,
        ready: oneshot::Sender<Result<(), EngineError>>,
    ) -> Result<Self, EngineError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EngineError::storage("connect: start the writer", e))?;
        let (requests, receiver) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("memable-postgres-writer".to_owned())
            .spawn(move || {
                let mut writer = WriterLoop {
                    runtime,
                    // Every statement of the writer looks rows up by the
                    // primary keys of a batch. On fresh or stale statistics
                    // the planner joins such key lists by hashing whole
                    // tables (a sequential scan per batch, its cost growing
                    // with the table); this session asks for index lookups,
                    // planned once per statement (a custom plan of the big
                    // flush costs milliseconds per batch).
                    options: options.application_name("memable-writer").options([
                        ("enable_hashjoin", "off"),
                        ("enable_mergejoin", "off"),
                        ("enable_seqscan", "off"),
                        ("plan_cache_mode", "force_generic_plan"),
                    ]),
                    conn: None,
                    backend_pid,
                    commit_and_notify: format!(
                        "SELECT pg_notify('{}', ''); COMMIT",
                        crate::store::work_channel(&schema)
                    ),
                };
                let migrated = writer.migrate(&schema);
                let ok = migrated.is_ok();
                let _ = ready.send(migrated);
                if ok {
                    writer.run(receiver);
                }
            })
            .map_err(|e| EngineError::storage("connect: start the writer", e))?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Queues `op` and waits for its outcome.
    pub async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        let name = op.name();
        let closed = || -> EngineError {
            StorageError::new(
                StorageErrorKind::Closed,
                name,
                "the store's writer has stopped",
            )
            .into()
        };
        let (reply, answer) = oneshot::channel();
        self.requests
            .as_ref()
            .ok_or_else(closed)?
            .send(Request { op, reply })
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the PostgreSQL writer thread panicked");
        }
    }
}

struct WriterLoop {
    runtime: tokio::runtime::Runtime,
    options: PgConnectOptions,
    conn: Option<PgConnection>,
    /// The server process of the writer's connection: its own
    /// notifications are not news to this store's engine.
    backend_pid: Arc<AtomicU32>,
    /// `COMMIT` for a batch that made an instance runnable: it also wakes
    /// the workers listening on this schema's channel (one round trip).
    commit_and_notify: String,
}

/// Why one attempt of a batch failed.
enum Failure {
    /// Run the batch again (serialization failure, lost connection).
    Retry(StorageError),
    /// An op or a statement failed: the batch is split, or this is the
    /// failing op's error.
    Op(EngineError),
    /// `COMMIT` failed: the batch may have committed; never run again.
    Commit(StorageError),
}

impl WriterLoop {
    /// Connects, and notes the connection's server process.
    fn connect(&self) -> Result<PgConnection, sqlx::Error> {
        let mut conn = self
            .runtime
            .block_on(PgConnection::connect_with(&self.options))?;
        let pid: i32 = self
            .runtime
            .block_on(sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn))?;
        self.backend_pid
            .store(u32::try_from(pid).unwrap_or_default(), Ordering::Relaxed);
        Ok(conn)
    }

    fn migrate(&mut self, schema: &str) -> Result<(), EngineError> {
        let mut conn = self.connect().map_err(crate::error::sql("connect"))?;
        self.runtime
            .block_on(crate::schema::migrate(&mut conn, schema))?;
        self.conn = Some(conn);
        Ok(())
    }

    fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Request>) {
        while let Some(first) = receiver.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.run_batch(batch);
        }
        if let Some(conn) = self.conn.take() {
            // Best effort: the server ends the session either way.
            let _ = self.runtime.block_on(conn.close());
        }
    }

    fn run_batch(&mut self, mut batch: Vec<Request>) {
        if batch.len() == 1
            && let Some(outcome) = self.fast_commit(&batch[0].op)
        {
            if let Some(request) = batch.pop() {
                let _ = request.reply.send(Ok(outcome));
            }
            return;
        }
        let ops: Vec<&WriteOp> = batch.iter().map(|r| &r.op).collect();
        match self.attempt(&ops) {
            Ok(outcomes) => {
                tracing::trace!(ops = batch.len(), "committed a batch");
                #[cfg(feature = "metrics")]
                #[allow(clippy::cast_precision_loss)]
                // a batch is far below 2^52 writes
                metrics::histogram!("memable_commit_batch_ops", "store" => "postgres")
                    .record(batch.len() as f64);
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = request.reply.send(Ok(outcome));
                }
            }
            Err(Failure::Op(_)) if batch.len() > 1 => {
                // One op failed: run each alone so the others still commit.
                for request in batch {
                    let result = self
                        .attempt(&[&request.op])
                        .map(|mut outcomes| outcomes.remove(0))
                        .map_err(|failure| match failure {
                            Failure::Op(error) => error,
                            Failure::Retry(e) | Failure::Commit(e) => e.into(),
                        });
                    let _ = request.reply.send(result);
                }
            }
            Err(Failure::Op(error)) => {
                if let Some(request) = batch.into_iter().next() {
                    let _ = request.reply.send(Err(error));
                }
            }
            Err(Failure::Retry(error) | Failure::Commit(error)) => {
                for request in batch {
                    let _ = request.reply.send(Err(error.clone().into()));
                }
            }
        }
    }

    /// A lone commit (fenced or not) in one round trip; `None` sends it
    /// down the general path (another op, no connection, any error or a
    /// conflict: the general path retries and reports).
    fn fast_commit(&mut self, op: &WriteOp) -> Option<WriteOutcome> {
        let (
            epoch,
            WriteOp::Commit {
                key,
                step_key,
                record,
            },
        ) = (match op {
            WriteOp::Fenced { epoch, op } => (Some(*epoch), &**op),
            other => (None, other),
        })
        else {
            return None;
        };
        let conn = self.conn.as_mut()?;
        let query = sqlx::query(FAST_COMMIT)
            .bind(key.workflow().as_bytes())
            .bind(key.instance().as_bytes())
            .bind(step_key.as_bytes())
            .bind(rows::state_name(record.state))
            .bind(rows::kind_name(record.kind))
            .bind(record.type_tag.as_bytes())
            .bind(record.value.as_slice())
            .bind(record.status.as_deref().map(str::as_bytes))
            .bind(i64::from(record.attempts))
            .bind(record.error.as_deref().map(str::as_bytes))
            .bind(record.deadline_ms.map(rows::deadline_to_sql))
            .bind(i16::from(record.codec.id()))
            .bind(epoch.map(to_sql_int))
            .bind(record.started_at_ms.map(to_sql_int))
            .bind(record.completed_at_ms.map(to_sql_int));
        let row = match self.runtime.block_on(query.fetch_one(&mut *conn)) {
            Ok(row) => row,
            Err(error) => {
                if is_connection_lost(&error) {
                    self.conn = None;
                }
                tracing::debug!(%error, "the one-statement commit failed; the general path retries it");
                return None;
            }
        };
        let verdict: String = row.try_get(0).ok()?;
        let current: Option<i64> = row.try_get(1).ok()?;
        let commit = |outcome| Some(WriteOutcome::Commit(outcome));
        match verdict.as_str() {
            "commit" => commit(CommitOutcome::Committed),
            "missing" => commit(CommitOutcome::InstanceMissing),
            "cancelled" => commit(CommitOutcome::Cancelled),
            "kept" => {
                let (_, existing) = rows::step_at(&row, 2, "commit_step").ok()?;
                commit(CommitOutcome::Kept(existing))
            }
            "stale" => Some(WriteOutcome::Stale(StaleEpoch {
                epoch: epoch.unwrap_or_default(),
                current: current.and_then(|c| u64::try_from(c).ok()),
            })),
            _ => None,
        }
    }

    /// Runs `ops` in one transaction, again after a retryable failure.
    fn attempt(&mut self, ops: &[&WriteOp]) -> Result<Vec<WriteOutcome>, Failure> {
        let mut last = None;
        for _ in 0..MAX_TRIES {
            match self.try_once(ops) {
                Err(Failure::Retry(error)) => {
                    tracing::debug!(%error, "running a batch again");
                    last = Some(error);
                }
                other => return other,
            }
        }
        Err(Failure::Retry(last.unwrap_or_else(|| {
            StorageError::new(StorageErrorKind::Other, "write", "no attempt was made")
        })))
    }

    /// Classifies a statement error; a lost connection is dropped.
    fn failure(&mut self, operation: &'static str, error: sqlx::Error) -> Failure {
        if is_connection_lost(&error) {
            self.conn = None;
            Failure::Retry(storage(operation, error))
        } else if is_retryable(&error) {
            Failure::Retry(storage(operation, error))
        } else {
            Failure::Op(storage(operation, error).into())
        }
    }

    fn try_once(&mut self, ops: &[&WriteOp]) -> Result<Vec<WriteOutcome>, Failure> {
        let name = ops.first().map_or("write", |op| op.name());
        if self.conn.is_none() {
            let conn = self
                .connect()
                .map_err(|e| Failure::Retry(storage(name, e)))?;
            self.conn = Some(conn);
        }
        let Some(mut conn) = self.conn.take() else {
            return Err(Failure::Retry(StorageError::new(
                StorageErrorKind::Io,
                name,
                "no connection",
            )));
        };
        let result = self.in_transaction(&mut conn, ops, name);
        match result {
            Ok(outcomes) => {
                self.conn = Some(conn);
                Ok(outcomes)
            }
            Err((failure, lost)) => {
                if !lost && !matches!(failure, Failure::Commit(_)) {
                    // Roll back; a connection that cannot is dropped.
                    let rolled_back = self
                        .runtime
                        .block_on(sqlx::raw_sql("ROLLBACK").execute(&mut conn))
                        .is_ok();
                    if rolled_back {
                        self.conn = Some(conn);
                    }
                }
                Err(failure)
            }
        }
    }

    /// One transaction over `conn`; on failure also says whether the
    /// connection is lost.
    fn in_transaction(
        &mut self,
        conn: &mut PgConnection,
        ops: &[&WriteOp],
        name: &'static str,
    ) -> Result<Vec<WriteOutcome>, (Failure, bool)> {
        let fail = |this: &mut Self, op: &'static str, e: sqlx::Error| {
            let lost = is_connection_lost(&e);
            (this.failure(op, e), lost)
        };
        if let Err(e) = self
            .runtime
            .block_on(sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ").execute(&mut *conn))
        {
            return Err(fail(self, name, e));
        }
        let mut batch = Batch {
            runtime: &self.runtime,
            conn,
            cache: Cache::default(),
            db_error: None,
        };
        let mut wakes = false;
        if let Err(e) = batch.prefetch(ops) {
            return Err(fail(self, name, e));
        }
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            match apply(op, &mut batch) {
                Ok(outcome) => {
                    wakes |= makes_runnable(&outcome) || batch.cache.woke;
                    outcomes.push(outcome);
                }
                Err(error) => {
                    return Err(match batch.db_error.take() {
                        Some(e) => fail(self, op.name(), e),
                        None => (Failure::Op(error), false),
                    });
                }
            }
        }
        if let Err(e) = batch.flush() {
            return Err(fail(self, name, e));
        }
        let commit = if wakes {
            self.commit_and_notify.as_str()
        } else {
            "COMMIT"
        };
        if let Err(e) = self
            .runtime
            .block_on(sqlx::raw_sql(commit).execute(&mut *conn))
        {
            let lost = is_connection_lost(&e);
            if lost {
                self.conn = None;
            }
            return Err((Failure::Commit(storage(name, e)), true));
        }
        Ok(outcomes)
    }
}

/// Whether `outcome` left an instance runnable by any worker: started,
/// woken by a signal or a timer, revived, released, or a child started.
/// (Any other instance a batch sets `Running`, such as a parent its
/// child's end woke, is caught in [`Batch::put_metadata`].)
fn makes_runnable(outcome: &WriteOutcome) -> bool {
    matches!(
        outcome,
        WriteOutcome::Start(StartOutcome::Started)
            | WriteOutcome::Signal(SignalOutcome::Delivered)
            | WriteOutcome::Fire(FireOutcome::Fired)
            | WriteOutcome::Revive(ReviveOutcome::Revived(_))
            | WriteOutcome::Release(true)
            | WriteOutcome::StartChild(memable_core::ChildStartOutcome::Started)
    )
}

/// What one batch has read and written so far.
#[derive(Default)]
struct Cache {
    /// Known instance rows (`None`: known absent).
    meta: HashMap<InstanceKey, Option<WorkflowMetadata>>,
    /// Known step rows per instance (`None`: known absent).
    steps: HashMap<InstanceKey, HashMap<String, Option<StepRecord>>>,
    /// Instances all of whose step rows are in `steps`.
    complete: HashSet<InstanceKey>,
    /// Instances removed in this batch (their rows go first at flush).
    removed: HashSet<InstanceKey>,
    dirty_meta: HashSet<InstanceKey>,
    dirty_steps: HashSet<(InstanceKey, String)>,
    /// Final state of each timer touched: present or not.
    timers: BTreeMap<TimerEntry, bool>,
    /// Known ownership of instances (`None`: never acquired, or absent).
    owners: HashMap<InstanceKey, Option<Ownership>>,
    dirty_owners: HashSet<InstanceKey>,
    /// Liveness of workers asked about in this batch.
    live: HashMap<String, bool>,
    /// An instance was set `Running` from another status (a parent woken
    /// by its child's end, among others): the batch notifies.
    woke: bool,
}

/// The batch's transaction: the cache over the writer's connection.
struct Batch<'a> {
    runtime: &'a tokio::runtime::Runtime,
    conn: &'a mut PgConnection,
    cache: Cache,
    /// The database error behind the last `Err` a method returned.
    db_error: Option<sqlx::Error>,
}

/// Step keys an op reads, for the prefetch.
fn named_steps(op: &WriteOp) -> Vec<Cow<'_, str>> {
    let borrowed = |keys: &[&'static str]| keys.iter().map(|k| Cow::Borrowed(*k)).collect();
    match op {
        WriteOp::Start { .. } | WriteOp::Enqueue { .. } => borrowed(&["_input"]),
        // A child's finish completes its parent's point (`_parent` says
        // where); an instance that went through a queue leaves it (`_queue`).
        WriteOp::Finish { .. } => borrowed(&["_output", "_parent", "_queue"]),
        WriteOp::Commit { step_key, .. }
        | WriteOp::StartChild { step_key, .. }
        | WriteOp::Suspend { step_key, .. }
        | WriteOp::Claim { step_key, .. }
        | WriteOp::Signal { step_key, .. } => vec![Cow::Borrowed(step_key.as_str())],
        WriteOp::Wait {
            step_key, members, ..
        } => std::iter::once(step_key.as_str())
            .chain(members.iter().map(|(k, _)| k.as_str()))
            .map(Cow::Borrowed)
            .collect(),
        WriteOp::Park { waiting, .. } => {
            waiting.iter().map(|k| Cow::Borrowed(k.as_str())).collect()
        }
        WriteOp::Fire { timer, .. } => vec![Cow::Borrowed(timer.step_key.as_str())],
        // The records to forget (their timers and child links are found
        // from them).
        WriteOp::Forget { steps, .. } => steps.iter().map(|k| Cow::Borrowed(k.as_str())).collect(),
        // The queue's heads and slots.
        WriteOp::Admit { limits, .. } => queue_admission_keys(limits)
            .into_iter()
            .map(Cow::Owned)
            .collect(),
        // Ownership is in the instance row, which the prefetch reads.
        WriteOp::Fenced { op, .. } => named_steps(op),
        WriteOp::Acquire { .. }
        | WriteOp::Release { .. }
        | WriteOp::Revive { .. }
        // The dead letters are found among the instance's records.
        | WriteOp::Resume { .. }
        | WriteOp::Cancel { .. }
        | WriteOp::DeleteEnded { .. }
        | WriteOp::Delete { .. }
        // A fork's key is its new instance, which has no records yet; the
        // source's records are read whole.
        | WriteOp::Fork { .. } => vec![],
    }
}

const PREFETCH: &str = concat!(
    "WITH m AS (SELECT ",
    metadata_columns!(),
    ", owner, epoch FROM instances WHERE (workflow, instance_id) IN (SELECT * FROM UNNEST($1::bytea[], $2::bytea[])) FOR UPDATE) ",
    "SELECT 0::int2, * , NULL::bytea, NULL::text, NULL::text, NULL::bytea, NULL::bytea, NULL::bytea, NULL::int8, NULL::bytea, NULL::int8, NULL::int2, NULL::int8, NULL::int8 FROM m ",
    "UNION ALL SELECT 1::int2, workflow, instance_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL::text, NULL::int8, ",
    step_columns!(),
    " FROM steps WHERE (workflow, instance_id, step_key) IN (SELECT * FROM UNNEST($3::bytea[], $4::bytea[], $5::bytea[]))"
);

/// A lone step commit in one statement and one round trip (autocommit):
/// the instance row locked and checked (its epoch for a fenced commit, then
/// cancelled), the existing record checked (a `completed` or `suspended`
/// one is kept), the record upserted — [`WriteOp::Commit`]'s rule, checked
/// by the conformance suite like the general path. The upsert re-checks
/// the row it conflicts with, so a record finalized by a concurrent
/// transaction after this statement's snapshot is never overwritten:
/// `retry` sends the op down the general path then.
const FAST_COMMIT: &str = concat!(
    "WITH inst AS (SELECT status, owner, epoch FROM instances WHERE workflow = $1 AND instance_id = $2 FOR UPDATE), ",
    "cur AS (SELECT ",
    step_columns!(),
    " FROM steps WHERE workflow = $1 AND instance_id = $2 AND step_key = $3), ",
    "verdict AS (SELECT CASE ",
    "WHEN NOT EXISTS (SELECT 1 FROM inst) THEN CASE WHEN $13::int8 IS NULL THEN 'missing' ELSE 'stale' END ",
    "WHEN $13::int8 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM inst WHERE owner IS NOT NULL AND epoch = $13::int8) THEN 'stale' ",
    "WHEN EXISTS (SELECT 1 FROM inst WHERE status = 'cancelled') THEN 'cancelled' ",
    "WHEN EXISTS (SELECT 1 FROM cur WHERE state IN ('completed', 'suspended')) THEN 'kept' ",
    "ELSE 'commit' END AS v), ",
    "ins AS (INSERT INTO steps (workflow, instance_id, step_key, state, kind, type_tag, value, status, attempts, error, deadline_ms, codec, started_at_ms, completed_at_ms) ",
    "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14, $15 FROM verdict WHERE v = 'commit' ",
    "ON CONFLICT (workflow, instance_id, step_key) DO UPDATE SET state = EXCLUDED.state, kind = EXCLUDED.kind, ",
    "type_tag = EXCLUDED.type_tag, value = EXCLUDED.value, status = EXCLUDED.status, attempts = EXCLUDED.attempts, ",
    "error = EXCLUDED.error, deadline_ms = EXCLUDED.deadline_ms, codec = EXCLUDED.codec, ",
    "started_at_ms = EXCLUDED.started_at_ms, completed_at_ms = EXCLUDED.completed_at_ms ",
    "WHERE steps.state NOT IN ('completed', 'suspended') RETURNING 1) ",
    "SELECT CASE WHEN v = 'commit' AND NOT EXISTS (SELECT 1 FROM ins) THEN 'retry' ELSE v END, ",
    "(SELECT epoch FROM inst), cur.* FROM verdict LEFT JOIN cur ON true"
);

/// Sets the ownership of instances (after the rows are written).
const SET_OWNERS: &str = "UPDATE instances SET owner = u.owner, epoch = u.epoch \
     FROM UNNEST($1::bytea[], $2::bytea[], $3::text[], $4::int8[]) AS u(workflow, instance_id, owner, epoch) \
     WHERE instances.workflow = u.workflow AND instances.instance_id = u.instance_id";

/// Deletes the removed instances' steps and rows.
const REMOVE_INSTANCES: &str = "WITH gone AS (SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) AS g(workflow, instance_id)), \
     s AS (DELETE FROM steps WHERE (workflow, instance_id) IN (SELECT workflow, instance_id FROM gone)) \
     DELETE FROM instances WHERE (workflow, instance_id) IN (SELECT workflow, instance_id FROM gone)";

/// Every other write of a batch; each row appears in at most one CTE.
const FLUSH: &str = "WITH \
 im AS (INSERT INTO instances (workflow, instance_id, status, suspended_key, message, created_at_ms, updated_at_ms, completed_at_ms, owner, epoch) \
   SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::text[], $4::bytea[], $5::bytea[], $6::int8[], $7::int8[], $8::int8[], $32::text[], $33::int8[]) \
   ON CONFLICT (workflow, instance_id) DO UPDATE SET status = EXCLUDED.status, suspended_key = EXCLUDED.suspended_key, \
   message = EXCLUDED.message, created_at_ms = EXCLUDED.created_at_ms, updated_at_ms = EXCLUDED.updated_at_ms, \
   completed_at_ms = EXCLUDED.completed_at_ms, owner = EXCLUDED.owner, epoch = EXCLUDED.epoch), \
 sd AS (DELETE FROM steps WHERE (workflow, instance_id, step_key) IN (SELECT * FROM UNNEST($9::bytea[], $10::bytea[], $11::bytea[]))), \
 su AS (INSERT INTO steps (workflow, instance_id, step_key, state, kind, type_tag, value, status, attempts, error, deadline_ms, codec, started_at_ms, completed_at_ms) \
   SELECT * FROM UNNEST($12::bytea[], $13::bytea[], $14::bytea[], $15::text[], $16::text[], $17::bytea[], $18::bytea[], $19::bytea[], $20::int8[], $21::bytea[], $22::int8[], $23::int2[], $34::int8[], $35::int8[]) \
   ON CONFLICT (workflow, instance_id, step_key) DO UPDATE SET state = EXCLUDED.state, kind = EXCLUDED.kind, \
   type_tag = EXCLUDED.type_tag, value = EXCLUDED.value, status = EXCLUDED.status, attempts = EXCLUDED.attempts, \
   error = EXCLUDED.error, deadline_ms = EXCLUDED.deadline_ms, codec = EXCLUDED.codec, \
   started_at_ms = EXCLUDED.started_at_ms, completed_at_ms = EXCLUDED.completed_at_ms), \
 td AS (DELETE FROM timers WHERE (deadline_ms, workflow, instance_id, step_key) IN (SELECT * FROM UNNEST($24::int8[], $25::bytea[], $26::bytea[], $27::bytea[]))), \
 ti AS (INSERT INTO timers (deadline_ms, workflow, instance_id, step_key) \
   SELECT * FROM UNNEST($28::int8[], $29::bytea[], $30::bytea[], $31::bytea[]) ON CONFLICT DO NOTHING) \
 SELECT 1";

#[derive(Default)]
struct StepColumns {
    workflow: Vec<Vec<u8>>,
    instance: Vec<Vec<u8>>,
    key: Vec<Vec<u8>>,
    state: Vec<&'static str>,
    kind: Vec<&'static str>,
    type_tag: Vec<Vec<u8>>,
    value: Vec<Vec<u8>>,
    status: Vec<Option<Vec<u8>>>,
    attempts: Vec<i64>,
    error: Vec<Option<Vec<u8>>>,
    deadline: Vec<Option<i64>>,
    codec: Vec<i16>,
    started: Vec<Option<i64>>,
    completed: Vec<Option<i64>>,
}

#[derive(Default)]
struct TimerColumns {
    deadline: Vec<i64>,
    workflow: Vec<Vec<u8>>,
    instance: Vec<Vec<u8>>,
    key: Vec<Vec<u8>>,
}

impl StepColumns {
    fn push(&mut self, key: &InstanceKey, step: &str, record: &StepRecord) {
        self.workflow.push(bytes(key.workflow()));
        self.instance.push(bytes(key.instance()));
        self.key.push(bytes(step));
        self.state.push(rows::state_name(record.state));
        self.kind.push(rows::kind_name(record.kind));
        self.type_tag.push(bytes(&record.type_tag));
        self.value.push(record.value.clone());
        self.status.push(record.status.as_deref().map(bytes));
        self.attempts.push(i64::from(record.attempts));
        self.error.push(record.error.as_deref().map(bytes));
        self.deadline
            .push(record.deadline_ms.map(rows::deadline_to_sql));
        self.codec.push(i16::from(record.codec.id()));
        self.started.push(record.started_at_ms.map(to_sql_int));
        self.completed.push(record.completed_at_ms.map(to_sql_int));
    }
}

impl TimerColumns {
    fn push(&mut self, timer: &TimerEntry) {
        self.deadline.push(rows::deadline_to_sql(timer.deadline_ms));
        self.workflow.push(bytes(timer.instance.workflow()));
        self.instance.push(bytes(timer.instance.instance()));
        self.key.push(bytes(&timer.step_key));
    }
}

impl Batch<'_> {
    fn prefetch(&mut self, ops: &[&WriteOp]) -> Result<(), sqlx::Error> {
        let mut keys: Vec<&InstanceKey> = ops.iter().map(|op| op.key()).collect();
        keys.sort();
        keys.dedup();
        let mut steps: Vec<(&InstanceKey, Cow<'_, str>)> = ops
            .iter()
            .flat_map(|op| named_steps(op).into_iter().map(move |s| (op.key(), s)))
            .collect();
        steps.sort_unstable();
        steps.dedup();
        let query = sqlx::query(PREFETCH)
            .bind(
                keys.iter()
                    .map(|k| k.workflow().as_bytes())
                    .collect::<Vec<_>>(),
            )
            .bind(
                keys.iter()
                    .map(|k| k.instance().as_bytes())
                    .collect::<Vec<_>>(),
            )
            .bind(
                steps
                    .iter()
                    .map(|(k, _)| k.workflow().as_bytes())
                    .collect::<Vec<_>>(),
            )
            .bind(
                steps
                    .iter()
                    .map(|(k, _)| k.instance().as_bytes())
                    .collect::<Vec<_>>(),
            )
            .bind(steps.iter().map(|(_, s)| s.as_bytes()).collect::<Vec<_>>());
        let found: Vec<PgRow> = self.runtime.block_on(query.fetch_all(&mut *self.conn))?;
        for key in &keys {
            self.cache.meta.insert((*key).clone(), None);
            self.cache.owners.insert((*key).clone(), None);
        }
        for (key, step) in &steps {
            self.cache
                .steps
                .entry((*key).clone())
                .or_default()
                .insert(step.to_string(), None);
        }
        for row in &found {
            let tag: i16 = row.try_get(0)?;
            let key = rows::key_at(row, 1, "prefetch").map_err(decode)?;
            if tag == 0 {
                let meta = rows::metadata_at(row, 1, "prefetch").map_err(decode)?;
                let owner = rows::ownership_at(row, 9, "prefetch").map_err(decode)?;
                self.cache.owners.insert(key.clone(), owner);
                self.cache.meta.insert(key, Some(meta));
            } else {
                let (step, record) = rows::step_at(row, 11, "prefetch").map_err(decode)?;
                self.cache
                    .steps
                    .entry(key)
                    .or_default()
                    .insert(step, Some(record));
            }
        }
        Ok(())
    }

    /// Deletes the rows of the instances this batch removed.
    fn remove_instances(&mut self) -> Result<(), sqlx::Error> {
        let cache = &self.cache;
        if !cache.removed.is_empty() {
            let query = sqlx::query(REMOVE_INSTANCES)
                .bind(
                    cache
                        .removed
                        .iter()
                        .map(|k| k.workflow().as_bytes())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    cache
                        .removed
                        .iter()
                        .map(|k| k.instance().as_bytes())
                        .collect::<Vec<_>>(),
                );
            self.runtime.block_on(query.execute(&mut *self.conn))?;
        }
        Ok(())
    }

    /// Writes every dirty row: removed instances first, then one statement.
    fn flush(&mut self) -> Result<(), sqlx::Error> {
        self.remove_instances()?;
        let cache = &self.cache;
        let (mut mo, mut me): (Vec<Option<String>>, Vec<i64>) = (vec![], vec![]);
        let (mut mw, mut mi, mut ms, mut msk, mut mm, mut mc, mut mu, mut mdone) = (
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        for key in &cache.dirty_meta {
            if let Some(Some(meta)) = cache.meta.get(key) {
                let (status, suspended_key, message) = rows::status_columns(&meta.status);
                mw.push(bytes(key.workflow()));
                mi.push(bytes(key.instance()));
                ms.push(status);
                msk.push(suspended_key.map(bytes));
                mm.push(message.map(bytes));
                mc.push(to_sql_int(meta.created_at_ms));
                mu.push(to_sql_int(meta.updated_at_ms));
                mdone.push(meta.completed_at_ms.map(to_sql_int));
                // The row's ownership goes with it (one row version, not
                // two); every op's instance was read with its owner.
                let owner = cache.owners.get(key).cloned().flatten();
                mo.push(owner.as_ref().and_then(|o| o.worker.clone()));
                me.push(owner.map_or(0, |o| to_sql_int(o.epoch)));
            }
        }
        let (mut dw, mut di, mut dk) = (vec![], vec![], vec![]);
        let mut put = StepColumns::default();
        for (key, step) in &cache.dirty_steps {
            if let Some(Some(record)) = cache.steps.get(key).and_then(|s| s.get(step)) {
                put.push(key, step, record);
            } else {
                dw.push(bytes(key.workflow()));
                di.push(bytes(key.instance()));
                dk.push(bytes(step));
            }
        }
        let (mut gone, mut added) = (TimerColumns::default(), TimerColumns::default());
        for (timer, present) in &cache.timers {
            if *present {
                added.push(timer);
            } else {
                gone.push(timer);
            }
        }
        if mw.is_empty()
            && dw.is_empty()
            && put.key.is_empty()
            && gone.key.is_empty()
            && added.key.is_empty()
        {
            return self.set_owners();
        }
        let query = sqlx::query(FLUSH)
            .bind(mw)
            .bind(mi)
            .bind(ms)
            .bind(msk)
            .bind(mm)
            .bind(mc)
            .bind(mu)
            .bind(mdone)
            .bind(dw)
            .bind(di)
            .bind(dk)
            .bind(put.workflow)
            .bind(put.instance)
            .bind(put.key)
            .bind(put.state)
            .bind(put.kind)
            .bind(put.type_tag)
            .bind(put.value)
            .bind(put.status)
            .bind(put.attempts)
            .bind(put.error)
            .bind(put.deadline)
            .bind(put.codec)
            .bind(gone.deadline)
            .bind(gone.workflow)
            .bind(gone.instance)
            .bind(gone.key)
            .bind(added.deadline)
            .bind(added.workflow)
            .bind(added.instance)
            .bind(added.key)
            .bind(mo)
            .bind(me)
            .bind(put.started)
            .bind(put.completed);
        self.runtime.block_on(query.execute(&mut *self.conn))?;
        self.set_owners()
    }

    /// Writes the ownership changes of the batch (one statement, only when
    /// there are any: acquisitions and releases, not plain steps).
    fn set_owners(&mut self) -> Result<(), sqlx::Error> {
        let cache = &self.cache;
        let (mut w, mut i, mut o, mut e) = (vec![], vec![], vec![], vec![]);
        for key in &cache.dirty_owners {
            if cache.dirty_meta.contains(key) {
                continue; // written with its row by the flush
            }
            if let Some(Some(owner)) = cache.owners.get(key) {
                w.push(bytes(key.workflow()));
                i.push(bytes(key.instance()));
                o.push(owner.worker.clone());
                e.push(to_sql_int(owner.epoch));
            }
        }
        if w.is_empty() {
            return Ok(());
        }
        let query = sqlx::query(SET_OWNERS).bind(w).bind(i).bind(o).bind(e);
        self.runtime.block_on(query.execute(&mut *self.conn))?;
        Ok(())
    }

    /// Records a database error for the writer and converts it.
    fn db(&mut self, operation: &'static str, error: sqlx::Error) -> EngineError {
        let converted = storage(operation, clone_for_report(&error)).into();
        self.db_error = Some(error);
        converted
    }
}

/// A string's UTF-8 bytes, for a BYTEA column.
fn bytes(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// A decode error inside the prefetch: corrupt data.
fn decode(error: EngineError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

/// A copy of `error` for the caller's report (the original goes to the
/// writer's classification).
fn clone_for_report(error: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Protocol(error.to_string())
}

impl Transaction for Batch<'_> {
    fn metadata(&mut self, key: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError> {
        if let Some(known) = self.cache.meta.get(key) {
            return Ok(known.clone());
        }
        let query = sqlx::query(concat!(
            "SELECT ",
            metadata_columns!(),
            ", owner, epoch FROM instances WHERE workflow = $1 AND instance_id = $2 FOR UPDATE"
        ))
        .bind(key.workflow().as_bytes())
        .bind(key.instance().as_bytes());
        let row = match self.runtime.block_on(query.fetch_optional(&mut *self.conn)) {
            Ok(row) => row,
            Err(e) => return Err(self.db("read metadata", e)),
        };
        let (meta, owner) = match row {
            Some(row) => (
                Some(rows::metadata_at(&row, 0, "read metadata")?),
                rows::ownership_at(&row, 8, "read metadata")?,
            ),
            None => (None, None),
        };
        self.cache.meta.insert(key.clone(), meta.clone());
        self.cache.owners.entry(key.clone()).or_insert(owner);
        Ok(meta)
    }

    fn put_metadata(
        &mut self,
        key: &InstanceKey,
        meta: &WorkflowMetadata,
        previous: Option<&WorkflowMetadata>,
    ) -> Result<(), EngineError> {
        if meta.status == memable_core::MetadataStatus::Running
            && previous.is_none_or(|p| p.status != memable_core::MetadataStatus::Running)
        {
            self.cache.woke = true;
        }
        self.cache.meta.insert(key.clone(), Some(meta.clone()));
        self.cache.dirty_meta.insert(key.clone());
        Ok(())
    }

    fn step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        if let Some(known) = self.cache.steps.get(key).and_then(|s| s.get(step_key)) {
            return Ok(known.clone());
        }
        if self.cache.complete.contains(key) {
            return Ok(None);
        }
        let query = sqlx::query(concat!(
            "SELECT ",
            step_columns!(),
            " FROM steps WHERE workflow = $1 AND instance_id = $2 AND step_key = $3"
        ))
        .bind(key.workflow().as_bytes())
        .bind(key.instance().as_bytes())
        .bind(step_key.as_bytes());
        let row = match self.runtime.block_on(query.fetch_optional(&mut *self.conn)) {
            Ok(row) => row,
            Err(e) => return Err(self.db("read step", e)),
        };
        let record = row
            .map(|row| rows::step_at(&row, 0, "read step").map(|(_, r)| r))
            .transpose()?;
        self.cache
            .steps
            .entry(key.clone())
            .or_default()
            .insert(step_key.to_owned(), record.clone());
        Ok(record)
    }

    fn put_step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
        record: &StepRecord,
    ) -> Result<(), EngineError> {
        self.cache
            .steps
            .entry(key.clone())
            .or_default()
            .insert(step_key.to_owned(), Some(record.clone()));
        self.cache
            .dirty_steps
            .insert((key.clone(), step_key.to_owned()));
        Ok(())
    }

    fn remove_step(&mut self, key: &InstanceKey, step_key: &str) -> Result<(), EngineError> {
        if key.workflow() == memable_core::QUEUE_WORKFLOW {
            // An entry leaves a queue: a slot may be free for any worker.
            self.cache.woke = true;
        }
        self.cache
            .steps
            .entry(key.clone())
            .or_default()
            .insert(step_key.to_owned(), None);
        self.cache
            .dirty_steps
            .insert((key.clone(), step_key.to_owned()));
        Ok(())
    }

    fn steps(&mut self, key: &InstanceKey) -> Result<Vec<(String, StepRecord)>, EngineError> {
        if !self.cache.complete.contains(key) {
            let query = sqlx::query(concat!(
                "SELECT ",
                step_columns!(),
                " FROM steps WHERE workflow = $1 AND instance_id = $2"
            ))
            .bind(key.workflow().as_bytes())
            .bind(key.instance().as_bytes());
            let found = match self.runtime.block_on(query.fetch_all(&mut *self.conn)) {
                Ok(found) => found,
                Err(e) => return Err(self.db("read steps", e)),
            };
            let known = self.cache.steps.entry(key.clone()).or_default();
            for row in &found {
                let (step, record) = rows::step_at(row, 0, "read steps")?;
                // What this batch wrote wins over the stored row.
                known.entry(step).or_insert(Some(record));
            }
            self.cache.complete.insert(key.clone());
        }
        let mut steps: Vec<(String, StepRecord)> = self
            .cache
            .steps
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|(k, r)| r.clone().map(|r| (k.clone(), r)))
            .collect();
        steps.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(steps)
    }

    fn put_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError> {
        self.cache.timers.insert(timer.clone(), true);
        Ok(())
    }

    fn remove_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError> {
        self.cache.timers.insert(timer.clone(), false);
        Ok(())
    }

    fn remove_instance(
        &mut self,
        key: &InstanceKey,
        _meta: &WorkflowMetadata,
    ) -> Result<(), EngineError> {
        self.cache.removed.insert(key.clone());
        self.cache.meta.insert(key.clone(), None);
        self.cache.owners.insert(key.clone(), None);
        self.cache.dirty_owners.remove(key);
        self.cache.dirty_meta.remove(key);
        self.cache.steps.insert(key.clone(), HashMap::new());
        self.cache.complete.insert(key.clone());
        self.cache.dirty_steps.retain(|(k, _)| k != key);
        Ok(())
    }

    fn ownership(&mut self, key: &InstanceKey) -> Result<Option<Ownership>, EngineError> {
        if let Some(known) = self.cache.owners.get(key) {
            return Ok(known.clone());
        }
        // Every op's instance is prefetched with its owner; this is for an
        // instance no op of the batch named.
        let query = sqlx::query(
            "SELECT owner, epoch FROM instances WHERE workflow = $1 AND instance_id = $2 FOR UPDATE",
        )
        .bind(key.workflow().as_bytes())
        .bind(key.instance().as_bytes());
        let row = match self.runtime.block_on(query.fetch_optional(&mut *self.conn)) {
            Ok(row) => row,
            Err(e) => return Err(self.db("read owner", e)),
        };
        let owner = match row {
            Some(row) => rows::ownership_at(&row, 0, "read owner")?,
            None => None,
        };
        self.cache.owners.insert(key.clone(), owner.clone());
        Ok(owner)
    }

    fn put_ownership(
        &mut self,
        key: &InstanceKey,
        ownership: &Ownership,
    ) -> Result<(), EngineError> {
        self.cache
            .owners
            .insert(key.clone(), Some(ownership.clone()));
        self.cache.dirty_owners.insert(key.clone());
        Ok(())
    }

    fn owner_is_live(&mut self, worker: &str) -> Result<bool, EngineError> {
        if let Some(live) = self.cache.live.get(worker) {
            return Ok(*live);
        }
        // Judged by the database's clock, never a worker's.
        let query = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM workers WHERE id = $1 AND alive_until > now())",
        )
        .bind(worker);
        let live = match self.runtime.block_on(query.fetch_one(&mut *self.conn)) {
            Ok(live) => live,
            Err(e) => return Err(self.db("read worker", e)),
        };
        self.cache.live.insert(worker.to_owned(), live);
        Ok(live)
    }
}
