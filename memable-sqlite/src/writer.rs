//! The writer: one thread owning the write connection. It drains every
//! queued write into one `BEGIN IMMEDIATE` transaction and one commit, then
//! answers each caller — group commit.
//!
//! With a [`Journaled`] writer (a file store with
//! [`Synchronous::Full`](crate::Synchronous::Full)) the connection commits
//! with `synchronous = NORMAL` (written to the WAL, not flushed). Each batch
//! runs in a savepoint of a write transaction that stays open across
//! consecutive batches: the batch records its lsn in `memable_journal`, is
//! appended to the journal and the journal synced, and its callers are
//! answered. The transaction is committed when the queue goes idle, when a
//! reader waits for it (readers wait for answered batches through
//! [`Visibility`]), after a batch of more than one write (its commit is
//! shared already), or after [`HELD_BATCHES`] batches or [`HELD_FOR`] — so
//! a lone workflow's steps do not each wait for a WAL commit. A checkpoint — one commit with
//! `synchronous = FULL`, whose WAL sync makes every earlier commit durable,
//! then a journal reset — runs every [`CHECKPOINT_BYTES`] of journal and
//! when the writer stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use memable_core::EngineError;
use memable_core::journal::{Journal, JournalFile};
use memable_core::readers::Visibility;
use memable_core::transitions::{WriteOp, WriteOutcome, apply};
use memable_core::writer::{
    BatchFailure, Polled, Request, WriterThread, answer_batch, poll_batch, recv_batch,
};
use rusqlite::{Connection, TransactionBehavior};

use crate::error::sql;
use crate::txn::SqlTxn;

/// Most writes applied in one transaction.
const MAX_BATCH: usize = 4_096;

/// Most answered batches held in one open transaction before it commits.
pub const HELD_BATCHES: usize = 64;

/// Longest an answered batch is held in an open transaction.
pub const HELD_FOR: std::time::Duration = std::time::Duration::from_millis(2);

/// Journal bytes after which the writer checkpoints.
pub const CHECKPOINT_BYTES: u64 = 2 * 1024 * 1024;

/// Counters of the writer's work, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct Counters {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    pub checkpoints: AtomicU64,
}

/// The journal of a file store and where it stands.
pub struct Journaled {
    pub journal: Journal<Box<dyn JournalFile>>,
    /// The lsn of the last batch committed.
    pub lsn: u64,
    /// Batches are answered once journaled, just before their commit; the
    /// readers wait on this until those commits are visible.
    pub visibility: Arc<Visibility>,
}

/// Handle on the writer thread; dropping it closes the queue and joins the
/// thread, so the connection is closed when the drop returns.
pub struct Writer(WriterThread);

impl Writer {
    pub fn spawn(
        conn: Connection,
        counters: Arc<Counters>,
        journal: Option<Journaled>,
        lone_writer_spin: Duration,
    ) -> Result<Self, EngineError> {
        WriterThread::spawn("memable-sqlite-writer", lone_writer_spin, move |requests| {
            let mut state = State {
                conn,
                counters,
                journal,
                poisoned: None,
                held: None,
            };
            run(&mut state, &requests);
        })
        .map(Self)
    }

    /// Queues `op` and waits for its outcome.
    pub async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        self.0.submit(op).await
    }
}

struct State {
    conn: Connection,
    counters: Arc<Counters>,
    journal: Option<Journaled>,
    /// Set when the database and the journal may disagree: every later
    /// write fails with this message; reopening replays the journal.
    poisoned: Option<String>,
    /// The journaled write transaction held open across batches.
    held: Option<Held>,
}

/// An open transaction holding answered, not yet committed batches.
struct Held {
    batches: usize,
    since: std::time::Instant,
    /// The lsn of its last batch.
    lsn: u64,
}

fn run(state: &mut State, requests: &mpsc::Receiver<Request>) {
    loop {
        let batch = if state.held.is_some() {
            match poll_batch(requests, MAX_BATCH) {
                Polled::Batch(batch) => batch,
                Polled::Idle => {
                    commit_held(state);
                    continue;
                }
                Polled::Closed => break,
            }
        } else {
            match recv_batch(requests, MAX_BATCH) {
                Some(batch) => batch,
                None => break,
            }
        };
        tracing::trace!(writes = batch.len(), "SQLite group commit");
        let lone = batch.len() == 1;
        write_batch(state, batch);
        if state.held.as_ref().is_some_and(|held| {
            !lone
                || held.batches >= HELD_BATCHES
                || held.since.elapsed() >= HELD_FOR
                || state
                    .journal
                    .as_ref()
                    .is_some_and(|j| j.visibility.readers_waiting())
        }) {
            commit_held(state);
        }
        if state
            .journal
            .as_ref()
            .is_some_and(|j| j.journal.written_since_reset() > CHECKPOINT_BYTES)
        {
            commit_held(state);
            checkpoint(state);
        }
    }
    commit_held(state);
    if state
        .journal
        .as_ref()
        .is_some_and(|j| j.journal.written_since_reset() > 0)
    {
        checkpoint(state);
    }
}

/// Commits the held transaction, making its answered batches visible. If
/// that fails they stay answered (they are in the journal): the store is
/// poisoned, and readers waiting for them fail.
fn commit_held(state: &mut State) {
    let Some(held) = state.held.take() else {
        return;
    };
    let Some(journaled) = state.journal.as_ref() else {
        return;
    };
    match state.conn.execute_batch("COMMIT") {
        Ok(()) => journaled.visibility.published(held.lsn),
        Err(e) => {
            let message = format!(
                "commit of journaled batches up to lsn {} failed ({e}); the store refuses writes until it is reopened (reopening replays the journal, so they will turn out committed)",
                held.lsn
            );
            tracing::error!(lsn = held.lsn, error = %e, "SQLite commit failed after its batches were journaled; the store is poisoned");
            journaled.visibility.failed(&message);
            let _ = state.conn.execute_batch("ROLLBACK");
            state.poisoned = Some(message);
        }
    }
}

/// Makes every commit so far durable, then reuses the journal from its
/// start.
fn checkpoint(state: &mut State) {
    let Some(journaled) = state.journal.as_mut() else {
        return;
    };
    if state.poisoned.is_some() {
        return;
    }
    match durable_commit(&state.conn) {
        Ok(()) => {
            journaled.journal.reset();
            state.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(lsn = journaled.lsn, "SQLite checkpoint");
        }
        Err(e) => {
            tracing::error!(error = %e, "SQLite checkpoint failed; the store is poisoned");
            state.poisoned = Some(format!(
                "a checkpoint failed ({e}); the store refuses writes until it is reopened (reopening replays the journal)"
            ));
        }
    }
}

/// One commit with `synchronous = FULL`: its WAL sync makes every earlier
/// commit of the connection durable (commits are only ever appended to the
/// WAL, and SQLite syncs the database before it reuses the WAL).
pub fn durable_commit(conn: &Connection) -> Result<(), EngineError> {
    let op = "checkpoint";
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(sql(op))?;
    let committed = conn
        .execute(
            "UPDATE memable_journal SET value = value + 1 WHERE key = 'checkpoints'",
            [],
        )
        .map_err(sql(op));
    let restored = conn
        .execute_batch("PRAGMA synchronous = NORMAL")
        .map_err(sql(op));
    committed.and(restored).map(drop)
}

/// Counts and commits one batch, answering every caller.
fn write_batch(state: &mut State, batch: Vec<Request>) {
    state
        .counters
        .writes
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    answer_batch(batch, &mut |ops, answer| commit(state, ops, answer));
}

/// Applies `ops` and calls `answer` with their outcomes once they are
/// durable: with a journal, in a savepoint of the held transaction, right
/// after the journal sync (the commit comes later, see [`commit_held`]);
/// without, in a transaction of their own, after its commit.
fn commit(
    state: &mut State,
    ops: &[WriteOp],
    answer: &mut dyn FnMut(Vec<WriteOutcome>),
) -> Result<(), BatchFailure> {
    if let Some(message) = &state.poisoned {
        return Err(BatchFailure::Transaction(message.clone()));
    }
    if state.journal.is_some() {
        return commit_journaled(state, ops, answer);
    }
    let name = ops.first().map_or("write", WriteOp::name);
    let tx = state
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| BatchFailure::Transaction(format!("{name}: begin: {e}")))?;
    let mut outcomes = Vec::with_capacity(ops.len());
    {
        let mut access = SqlTxn(&tx);
        for op in ops {
            outcomes.push(apply(op, &mut access).map_err(BatchFailure::Apply)?);
        }
    }
    tx.commit()
        .map_err(|e| BatchFailure::Transaction(format!("{name}: commit: {e}")))?;
    state.counters.commits.fetch_add(1, Ordering::Relaxed);
    answer(outcomes);
    Ok(())
}

/// The savepoint each journaled batch runs in.
const SAVEPOINT: &str = "memable_batch";

fn commit_journaled(
    state: &mut State,
    ops: &[WriteOp],
    answer: &mut dyn FnMut(Vec<WriteOutcome>),
) -> Result<(), BatchFailure> {
    let name = ops.first().map_or("write", WriteOp::name);
    let conn = &state.conn;
    if state.held.is_none() {
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| BatchFailure::Transaction(format!("{name}: begin: {e}")))?;
        state.held = Some(Held {
            batches: 0,
            since: std::time::Instant::now(),
            lsn: 0,
        });
    }
    conn.execute_batch(&format!("SAVEPOINT {SAVEPOINT}"))
        .map_err(|e| BatchFailure::Transaction(format!("{name}: savepoint: {e}")))?;
    // Undoes this batch alone; the batches held before it stay.
    let undo = |conn: &Connection| {
        if let Err(e) = conn.execute_batch(&format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}"))
        {
            tracing::warn!(error = %e, "SQLite could not roll a batch back to its savepoint");
        }
    };
    let mut outcomes = Vec::with_capacity(ops.len());
    {
        let mut access = SqlTxn(conn);
        for op in ops {
            match apply(op, &mut access) {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    undo(conn);
                    return Err(BatchFailure::Apply(e));
                }
            }
        }
    }
    let Some(journaled) = state.journal.as_mut() else {
        undo(conn);
        return Err(BatchFailure::Transaction("the journal is gone".into()));
    };
    let Some(lsn) = journaled.lsn.checked_add(1) else {
        undo(conn);
        return Err(BatchFailure::Transaction(
            "the journal's lsns are exhausted".into(),
        ));
    };
    if let Err(e) = conn.execute(
        "UPDATE memable_journal SET value = ?1 WHERE key = 'lsn'",
        [i64::try_from(lsn).unwrap_or(i64::MAX)],
    ) {
        undo(conn);
        return Err(BatchFailure::Transaction(format!("record lsn {lsn}: {e}")));
    }
    if let Err(e) = journaled.journal.append(lsn, ops) {
        undo(conn);
        if !journaled.journal.is_failed() {
            // Refused before anything was written (a batch too large for
            // one record): retry its ops one by one.
            return Err(BatchFailure::Apply(e));
        }
        let message = format!(
            "{e}; the store refuses writes until it is reopened (reopening replays the journal, so this batch may turn out committed)"
        );
        tracing::error!(lsn, error = %e, "SQLite journal append failed; the store is poisoned");
        // The batches held before this one were answered: commit them.
        commit_held(state);
        state.poisoned = Some(message.clone());
        return Err(BatchFailure::Transaction(message));
    }
    if let Err(e) = conn.execute_batch(&format!("RELEASE {SAVEPOINT}")) {
        // The batch is journaled: the database must not go on without it.
        let message = format!(
            "release of journaled lsn {lsn} failed ({e}); the store refuses writes until it is reopened (reopening replays the journal, so this batch will turn out committed)"
        );
        tracing::error!(lsn, error = %e, "SQLite savepoint release failed after its batch was journaled; the store is poisoned");
        journaled.lsn = lsn;
        if let Some(held) = state.held.as_mut() {
            held.lsn = lsn;
        }
        commit_held(state);
        state.poisoned = Some(message.clone());
        return Err(BatchFailure::Transaction(message));
    }
    journaled.lsn = lsn;
    journaled.visibility.acknowledged(lsn);
    if let Some(held) = state.held.as_mut() {
        held.batches += 1;
        held.lsn = lsn;
    }
    state.counters.commits.fetch_add(1, Ordering::Relaxed);
    answer(outcomes);
    Ok(())
}
