//! The writer: one thread owning the write connection. It drains every
//! queued write into one `BEGIN IMMEDIATE` transaction and one commit, then
//! answers each caller — group commit.
//!
//! With a [`Journaled`] writer (a file store with
//! [`Synchronous::Full`](crate::Synchronous::Full)) the connection commits
//! with `synchronous = NORMAL` (written to the WAL, not flushed): each
//! transaction records its batch's lsn in `memable_journal`, the batch is
//! appended to the journal and the journal synced, the callers are answered
//! and the transaction is committed while they wake; readers wait for that
//! commit through [`Visibility`]. A checkpoint — one commit with
//! `synchronous = FULL`, whose WAL sync makes every earlier commit durable,
//! then a journal reset — runs every [`CHECKPOINT_BYTES`] of journal and
//! when the writer stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use memable_core::EngineError;
use memable_core::journal::{Journal, JournalFile};
use memable_core::readers::Visibility;
use memable_core::txn::{WriteOp, WriteOutcome, WriterCalls, apply, recv_batch};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::error::sql;
use crate::txn::SqlTxn;

/// Most writes applied in one transaction.
const MAX_BATCH: usize = 4_096;

/// Journal bytes after which the writer checkpoints.
pub const CHECKPOINT_BYTES: u64 = 2 * 1024 * 1024;

type Reply = oneshot::Sender<Result<WriteOutcome, EngineError>>;

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
pub struct Writer {
    queue: Option<mpsc::Sender<(WriteOp, Reply)>>,
    thread: Option<JoinHandle<()>>,
    calls: WriterCalls,
}

impl Writer {
    pub fn spawn(
        conn: Connection,
        counters: Arc<Counters>,
        journal: Option<Journaled>,
        lone_writer_spin: Duration,
    ) -> Result<Self, EngineError> {
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("memable-sqlite-writer".to_owned())
            .spawn(move || {
                let mut state = State {
                    conn,
                    counters,
                    journal,
                    poisoned: None,
                };
                run(&mut state, &requests);
            })
            .map_err(|e| EngineError::storage("open: start writer thread", e))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            calls: WriterCalls::new(lone_writer_spin),
        })
    }

    /// Queues `op` and waits for its outcome.
    pub async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        let name = op.name();
        let (reply, answer) = oneshot::channel();
        let waiting = self.calls.enter();
        self.queue
            .as_ref()
            .ok_or_else(|| EngineError::storage(name, "the store is closed"))?
            .send((op, reply))
            .map_err(|_| EngineError::storage(name, "the writer thread has stopped"))?;
        waiting.answer(answer).await.ok_or_else(|| {
            EngineError::storage(name, "the writer thread stopped before answering")
        })?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the SQLite writer thread panicked");
        }
    }
}

struct State {
    conn: Connection,
    counters: Arc<Counters>,
    journal: Option<Journaled>,
    /// Set when the database and the journal may disagree: every later
    /// write fails with this message; reopening replays the journal.
    poisoned: Option<String>,
}

fn run(state: &mut State, requests: &mpsc::Receiver<(WriteOp, Reply)>) {
    while let Some(batch) = recv_batch(requests, MAX_BATCH) {
        tracing::trace!(writes = batch.len(), "SQLite group commit");
        write_batch(state, batch);
        if state
            .journal
            .as_ref()
            .is_some_and(|j| j.journal.written_since_reset() > CHECKPOINT_BYTES)
        {
            checkpoint(state);
        }
    }
    if state
        .journal
        .as_ref()
        .is_some_and(|j| j.journal.written_since_reset() > 0)
    {
        checkpoint(state);
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

/// Why a transaction did not commit.
enum Failure {
    /// Applying one op failed (nothing written): retry the ops one by one.
    Apply(EngineError),
    /// The transaction, the journal or the store failed.
    Transaction(String),
}

fn write_batch(state: &mut State, batch: Vec<(WriteOp, Reply)>) {
    let size = batch.len();
    state
        .counters
        .writes
        .fetch_add(size as u64, Ordering::Relaxed);
    let (ops, mut replies): (Vec<WriteOp>, Vec<Option<Reply>>) = batch
        .into_iter()
        .map(|(op, reply)| (op, Some(reply)))
        .unzip();
    let mut answer = |outcomes: Vec<WriteOutcome>| {
        for (reply, outcome) in replies.iter_mut().zip(outcomes) {
            if let Some(reply) = reply.take() {
                let _ = reply.send(Ok(outcome));
            }
        }
    };
    let failure = match commit(state, &ops, &mut answer) {
        Ok(()) => return,
        Err(failure) => failure,
    };
    match failure {
        Failure::Apply(error) if size > 1 => {
            // Nothing of the batch was committed. Retry each write on its
            // own so one failing write does not fail the others.
            tracing::warn!(%error, writes = size, "SQLite batch failed; retrying its writes one by one");
            for (op, reply) in ops.into_iter().zip(replies) {
                if let Some(reply) = reply {
                    state.counters.writes.fetch_sub(1, Ordering::Relaxed);
                    write_batch(state, vec![(op, reply)]);
                }
            }
        }
        Failure::Apply(error) => {
            if let Some(reply) = replies.into_iter().flatten().next() {
                let _ = reply.send(Err(error));
            }
        }
        Failure::Transaction(message) => {
            for (op, reply) in ops.iter().zip(replies) {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(EngineError::storage(op.name(), message.clone())));
                }
            }
        }
    }
}

/// Applies `ops` in one transaction and calls `answer` with their outcomes
/// once they are durable: with a journal, right after the journal sync and
/// before the commit (the readers wait for it through [`Visibility`]);
/// without, after the commit.
fn commit(
    state: &mut State,
    ops: &[WriteOp],
    answer: &mut dyn FnMut(Vec<WriteOutcome>),
) -> Result<(), Failure> {
    if let Some(message) = &state.poisoned {
        return Err(Failure::Transaction(message.clone()));
    }
    let name = ops.first().map_or("write", WriteOp::name);
    let tx = state
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| Failure::Transaction(format!("{name}: begin: {e}")))?;
    let mut outcomes = Vec::with_capacity(ops.len());
    {
        let mut access = SqlTxn(&tx);
        for op in ops {
            outcomes.push(apply(op.clone(), &mut access).map_err(Failure::Apply)?);
        }
    }
    let Some(journaled) = state.journal.as_mut() else {
        tx.commit()
            .map_err(|e| Failure::Transaction(format!("{name}: commit: {e}")))?;
        state.counters.commits.fetch_add(1, Ordering::Relaxed);
        answer(outcomes);
        return Ok(());
    };
    let lsn = journaled
        .lsn
        .checked_add(1)
        .ok_or_else(|| Failure::Transaction("the journal's lsns are exhausted".into()))?;
    tx.execute(
        "UPDATE memable_journal SET value = ?1 WHERE key = 'lsn'",
        [i64::try_from(lsn).unwrap_or(i64::MAX)],
    )
    .map_err(|e| Failure::Transaction(format!("record lsn {lsn}: {e}")))?;
    if let Err(e) = journaled.journal.append(lsn, ops) {
        // The transaction rolls back when dropped.
        if !journaled.journal.is_failed() {
            // Refused before anything was written (a batch too large for
            // one record): retry its ops one by one.
            return Err(Failure::Apply(e));
        }
        let message = format!(
            "{e}; the store refuses writes until it is reopened (reopening replays the journal, so this batch may turn out committed)"
        );
        tracing::error!(lsn, error = %e, "SQLite journal append failed; the store is poisoned");
        state.poisoned = Some(message.clone());
        return Err(Failure::Transaction(message));
    }
    journaled.visibility.acknowledged(lsn);
    state.counters.commits.fetch_add(1, Ordering::Relaxed);
    answer(outcomes);
    if let Err(e) = tx.commit() {
        let message = format!(
            "commit of journaled lsn {lsn} failed ({e}); the store refuses writes until it is reopened (reopening replays the journal, so this batch will turn out committed)"
        );
        tracing::error!(lsn, error = %e, "SQLite commit failed after its journal record was synced; the store is poisoned");
        journaled.visibility.failed(&message);
        state.poisoned = Some(message.clone());
        return Err(Failure::Transaction(message));
    }
    journaled.visibility.published(lsn);
    journaled.lsn = lsn;
    Ok(())
}
