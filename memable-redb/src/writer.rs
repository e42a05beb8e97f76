//! The single writer thread and its group commit.
//!
//! Callers send a [`WriteOp`] with a reply channel. The writer blocks for
//! one request, drains everything else already queued (up to
//! [`MAX_BATCH`]), applies all of them in one redb write transaction, commits
//! once and answers each caller with its own outcome. A refused
//! compare-and-set is an outcome like any other; only a storage failure is
//! an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use memable_core::EngineError;
use memable_core::txn::{WriteOp, WriteOutcome, apply};
use redb::Database;
use tokio::sync::oneshot;

use crate::txn::RedbTxn;

/// The most operations committed in one transaction.
pub(crate) const MAX_BATCH: usize = 4096;

type Reply = oneshot::Sender<Result<WriteOutcome, EngineError>>;

struct Request {
    op: WriteOp,
    reply: Reply,
}

/// Commit counters shared by the writer and [`crate::RedbStore::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) ops: AtomicU64,
    pub(crate) largest_batch: AtomicU64,
}

/// Handle to the writer thread. Dropping it closes the queue and joins the
/// thread, so the thread's database handle is gone when `drop` returns.
#[derive(Debug)]
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread over `db`.
    pub(crate) fn spawn(db: Arc<Database>, counters: Arc<Counters>) -> Result<Self, EngineError> {
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("memable-redb-writer".into())
            .spawn(move || run(&db, &requests, &counters))
            .map_err(|e| EngineError::storage("start writer thread", e))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `op` and waits for its outcome, durable when it is `Ok`.
    pub(crate) async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        let name = op.name();
        let (reply, answer) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(|| EngineError::storage(name, "the store is closed"))?
            .send(Request { op, reply })
            .map_err(|_| EngineError::storage(name, "the writer thread has stopped"))?;
        answer
            .await
            .map_err(|_| EngineError::storage(name, "the writer thread stopped before answering"))?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("memable-redb writer thread panicked");
        }
    }
}

fn run(db: &Database, requests: &mpsc::Receiver<Request>, counters: &Counters) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit_batch(db, batch, counters);
    }
    tracing::debug!("memable-redb writer thread exiting");
}

/// Why a transaction did not commit.
enum Failure {
    /// Applying one op failed: the batch is retried one op per transaction.
    Apply(EngineError),
    /// The transaction itself failed (begin or commit): nothing is durable.
    Transaction(String),
}

fn commit_batch(db: &Database, batch: Vec<Request>, counters: &Counters) {
    let size = batch.len();
    tracing::debug!(batch = size, "memable-redb group commit");
    if size == 1 {
        for request in batch {
            let name = request.op.name();
            let result = match run_transaction(db, vec![request.op], counters) {
                Ok(mut outcomes) => outcomes
                    .pop()
                    .ok_or_else(|| EngineError::storage(name, "no outcome")),
                Err(Failure::Apply(e)) => Err(e),
                Err(Failure::Transaction(message)) => Err(EngineError::storage(name, message)),
            };
            // A caller that stopped waiting is not an error for the others.
            let _ = request.reply.send(result);
        }
        return;
    }
    let ops = batch.iter().map(|r| r.op.clone()).collect();
    match run_transaction(db, ops, counters) {
        Ok(outcomes) => {
            for (request, outcome) in batch.into_iter().zip(outcomes) {
                let _ = request.reply.send(Ok(outcome));
            }
        }
        Err(Failure::Apply(e)) => {
            tracing::warn!(batch = size, error = %e, "memable-redb batch failed; retrying its ops one by one");
            for request in batch {
                commit_batch(db, vec![request], counters);
            }
        }
        Err(Failure::Transaction(message)) => {
            for request in batch {
                let name = request.op.name();
                let _ = request
                    .reply
                    .send(Err(EngineError::storage(name, message.clone())));
            }
        }
    }
}

fn run_transaction(
    db: &Database,
    ops: Vec<WriteOp>,
    counters: &Counters,
) -> Result<Vec<WriteOutcome>, Failure> {
    let count = ops.len() as u64;
    let txn = db
        .begin_write()
        .map_err(|e| Failure::Transaction(format!("begin write transaction: {e}")))?;
    let applied = RedbTxn::open(&txn).and_then(|mut rows| {
        ops.into_iter()
            .map(|op| apply(op, &mut rows))
            .collect::<Result<Vec<_>, _>>()
    });
    match applied {
        Ok(outcomes) => {
            txn.commit()
                .map_err(|e| Failure::Transaction(format!("commit: {e}")))?;
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters.ops.fetch_add(count, Ordering::Relaxed);
            counters.largest_batch.fetch_max(count, Ordering::Relaxed);
            Ok(outcomes)
        }
        Err(e) => {
            if let Err(abort) = txn.abort() {
                tracing::warn!(error = %abort, "memable-redb abort failed");
            }
            Err(Failure::Apply(e))
        }
    }
}
