//! The single writer thread and its group commit.
//!
//! Callers send a [`WriteOp`] with a reply channel. The writer blocks for
//! one request, drains everything else already queued (up to
//! [`MAX_BATCH`]), applies all of them in one redb write transaction, commits
//! once and answers each caller with its own outcome. A refused
//! compare-and-set is an outcome like any other; only a storage failure is
//! an error.
//!
//! With a [`Journaled`] writer (a file store with
//! [`Durability::Immediate`](crate::Durability::Immediate)), each
//! transaction commits with redb's `Durability::None` — written, not
//! flushed — after its ops have been appended to the journal and the
//! journal synced. The callers are answered between the sync and the
//! commit (their wake-up overlaps the commit); readers wait for the commit
//! through [`Visibility`]. A checkpoint (a durable redb commit, then a journal
//! reset) runs every [`CHECKPOINT_BYTES`] of journal and when the writer
//! stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use memable_core::EngineError;
use memable_core::journal::{Journal, JournalFile};
use memable_core::readers::Visibility;
use memable_core::transitions::{WriteOp, WriteOutcome, apply};
use memable_core::writer::{BatchFailure, Request, WriterThread, answer_batch, recv_batch};
use redb::{Database, WriteTransaction};

use crate::tables::{JOURNAL, LSN_KEY};
use crate::txn::RedbTxn;

/// The most operations committed in one transaction.
pub(crate) const MAX_BATCH: usize = 4096;

/// Journal bytes after which the writer checkpoints by default (a durable
/// redb commit, then the journal restarts at its beginning): 2 MiB. See
/// [`RedbStoreBuilder::checkpoint_bytes`](crate::RedbStoreBuilder::checkpoint_bytes).
///
/// This bounds the journal file (to this plus one batch), the work replayed
/// when a store reopens after a crash, and how far redb's file grows between
/// durable commits (redb only reuses the pages of its last durable state
/// after the next durable commit). A checkpoint costs about one ordinary
/// durable commit, so at a few hundred bytes per step it is paid once every
/// several thousand steps.
pub(crate) const CHECKPOINT_BYTES: u64 = 2 * 1024 * 1024;

/// Commit counters shared by the writer and [`crate::RedbStore::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) ops: AtomicU64,
    pub(crate) largest_batch: AtomicU64,
    pub(crate) checkpoints: AtomicU64,
}

/// The journal of a journaled writer and the lsn of the last batch applied.
pub(crate) struct Journaled {
    pub(crate) journal: Journal<Box<dyn JournalFile>>,
    pub(crate) lsn: u64,
    /// Batches are answered once journaled, just before their redb commit;
    /// the readers wait on this until those commits are visible.
    pub(crate) visibility: Arc<Visibility>,
    /// Journal bytes that trigger a checkpoint.
    pub(crate) checkpoint_bytes: u64,
}

/// Handle to the writer thread. Dropping it closes the queue and joins the
/// thread, so the thread's database handle is gone when `drop` returns.
#[derive(Debug)]
pub(crate) struct Writer(WriterThread);

impl Writer {
    /// Starts the writer thread over `db`, journaling when `journal` is set.
    pub(crate) fn spawn(
        db: Arc<Database>,
        counters: Arc<Counters>,
        journal: Option<Journaled>,
        lone_writer_spin: Duration,
    ) -> Result<Self, EngineError> {
        WriterThread::spawn("memable-redb-writer", lone_writer_spin, move |requests| {
            let mut state = State {
                db: &db,
                counters: &counters,
                journal,
                poisoned: None,
            };
            run(&mut state, &requests);
        })
        .map(Self)
    }

    /// Queues `op` and waits for its outcome, durable when it is `Ok`.
    pub(crate) async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        self.0.submit(op).await
    }
}

/// What the writer thread owns.
struct State<'a> {
    db: &'a Database,
    counters: &'a Counters,
    journal: Option<Journaled>,
    /// Set when the database and the journal may disagree (a redb commit
    /// failed after its batch was journaled, or the journal itself failed):
    /// every later write fails with this message; reopening replays the
    /// journal.
    poisoned: Option<String>,
}

fn run(state: &mut State<'_>, requests: &mpsc::Receiver<Request>) {
    while let Some(batch) = recv_batch(requests, MAX_BATCH) {
        tracing::debug!(batch = batch.len(), "memable-redb group commit");
        answer_batch(batch, &mut |ops, answer| {
            run_transaction(state, ops, answer)
        });
        if state
            .journal
            .as_ref()
            .is_some_and(|j| j.journal.written_since_reset() > j.checkpoint_bytes)
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
    tracing::debug!("memable-redb writer thread exiting");
}

/// Makes every earlier commit durable with one durable redb commit, then
/// restarts the journal. A failure poisons the writer.
fn checkpoint(state: &mut State<'_>) {
    let Some(journaled) = state.journal.as_mut() else {
        return;
    };
    if state.poisoned.is_some() {
        return;
    }
    match durable_commit(state.db) {
        Ok(()) => {
            journaled.journal.reset();
            state.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(lsn = journaled.lsn, "memable-redb checkpoint");
        }
        Err(e) => {
            tracing::error!(error = %e, "memable-redb checkpoint failed; the store is poisoned");
            state.poisoned = Some(format!(
                "a checkpoint failed ({e}); the store refuses writes until it is reopened (reopening replays the journal)"
            ));
        }
    }
}

/// An empty commit with redb's `Durability::Immediate`: it makes every
/// earlier non-durable commit durable.
pub(crate) fn durable_commit(db: &Database) -> Result<(), String> {
    let txn = db
        .begin_write()
        .map_err(|e| format!("begin checkpoint: {e}"))?;
    txn.commit().map_err(|e| format!("checkpoint commit: {e}"))
}

fn abort(txn: WriteTransaction) {
    if let Err(abort) = txn.abort() {
        tracing::warn!(error = %abort, "memable-redb abort failed");
    }
}

/// Runs `ops` in one transaction and calls `answer` with their outcomes
/// once they are durable: with a journal, right after the journal sync and
/// before the (non-durable) redb commit, which the readers wait for through
/// [`Visibility`]; without, after the commit.
fn run_transaction(
    state: &mut State<'_>,
    ops: &[WriteOp],
    answer: &mut dyn FnMut(Vec<WriteOutcome>),
) -> Result<(), BatchFailure> {
    if let Some(message) = &state.poisoned {
        return Err(BatchFailure::Transaction(message.clone()));
    }
    let count = ops.len() as u64;
    let mut txn = state
        .db
        .begin_write()
        .map_err(|e| BatchFailure::Transaction(format!("begin write transaction: {e}")))?;
    if state.journal.is_some()
        && let Err(e) = txn.set_durability(redb::Durability::None)
    {
        abort(txn);
        return Err(BatchFailure::Transaction(format!(
            "non-durable write transaction: {e}"
        )));
    }
    let mut rows = RedbTxn::new(&txn);
    let applied = ops
        .iter()
        .map(|op| apply(op, &mut rows))
        .collect::<Result<Vec<_>, _>>();
    drop(rows);
    let outcomes = match applied {
        Ok(outcomes) => outcomes,
        Err(e) => {
            abort(txn);
            return Err(BatchFailure::Apply(e));
        }
    };
    if let Some(journaled) = state.journal.as_mut() {
        let Some(lsn) = journaled.lsn.checked_add(1) else {
            abort(txn);
            return Err(BatchFailure::Transaction(
                "the journal's lsns are exhausted".into(),
            ));
        };
        let recorded = txn
            .open_table(JOURNAL)
            .and_then(|mut table| table.insert(LSN_KEY, lsn).map(|_| ()).map_err(Into::into));
        if let Err(e) = recorded {
            abort(txn);
            return Err(BatchFailure::Transaction(format!("record lsn {lsn}: {e}")));
        }
        if let Err(e) = journaled.journal.append(lsn, ops) {
            abort(txn);
            if !journaled.journal.is_failed() {
                // Refused before anything was written (a batch too large
                // for one record): retry its ops one by one.
                return Err(BatchFailure::Apply(e));
            }
            // The record may or may not have reached the journal.
            let message = format!(
                "{e}; the store refuses writes until it is reopened (reopening replays the journal, so this batch may turn out committed)"
            );
            tracing::error!(lsn, error = %e, "memable-redb journal append failed; the store is poisoned");
            state.poisoned = Some(message.clone());
            return Err(BatchFailure::Transaction(message));
        }
        journaled.visibility.acknowledged(lsn);
        count_commit(state.counters, count);
        answer(outcomes);
        if let Err(e) = txn.commit() {
            // The batch is in the journal: the database must not go on
            // without it.
            let message = format!(
                "commit of journaled lsn {lsn} failed ({e}); the store refuses writes until it is reopened (reopening replays the journal, so this batch will turn out committed)"
            );
            tracing::error!(lsn, error = %e, "memable-redb commit failed after its journal record was synced; the store is poisoned");
            journaled.visibility.failed(&message);
            state.poisoned = Some(message.clone());
            return Err(BatchFailure::Transaction(message));
        }
        journaled.visibility.published(lsn);
        journaled.lsn = lsn;
    } else {
        txn.commit()
            .map_err(|e| BatchFailure::Transaction(format!("commit: {e}")))?;
        count_commit(state.counters, count);
        answer(outcomes);
    }
    Ok(())
}

/// Counts a durable batch of `ops` operations, before its callers hear of it.
fn count_commit(counters: &Counters, ops: u64) {
    counters.commits.fetch_add(1, Ordering::Relaxed);
    counters.ops.fetch_add(ops, Ordering::Relaxed);
    counters.largest_batch.fetch_max(ops, Ordering::Relaxed);
}
