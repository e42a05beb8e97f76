//! The writer: one thread owning the write connection. It drains every
//! queued write into one `BEGIN IMMEDIATE` transaction and one commit, then
//! answers each caller — group commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use memable_core::EngineError;
use memable_core::txn::{WriteOp, WriteOutcome, apply, recv_batch};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::error::sql;
use crate::txn::SqlTxn;

/// Most writes applied in one transaction.
const MAX_BATCH: usize = 4_096;

type Reply = oneshot::Sender<Result<WriteOutcome, EngineError>>;

/// Counters of the writer's work, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct Counters {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
}

/// Handle on the writer thread; dropping it closes the queue and joins the
/// thread, so the connection is closed when the drop returns.
pub struct Writer {
    queue: Option<mpsc::Sender<(WriteOp, Reply)>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn spawn(conn: Connection, counters: Arc<Counters>) -> Result<Self, EngineError> {
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("memable-sqlite-writer".to_owned())
            .spawn(move || run(conn, &requests, &counters))
            .map_err(|e| EngineError::storage("open: start writer thread", e))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `op` and waits for its outcome.
    pub async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        let name = op.name();
        let (reply, answer) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(|| EngineError::storage(name, "the store is closed"))?
            .send((op, reply))
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
            tracing::error!("the SQLite writer thread panicked");
        }
    }
}

fn run(mut conn: Connection, requests: &mpsc::Receiver<(WriteOp, Reply)>, counters: &Counters) {
    while let Some(batch) = recv_batch(requests, MAX_BATCH) {
        tracing::trace!(writes = batch.len(), "SQLite group commit");
        write_batch(&mut conn, batch, counters);
    }
}

fn write_batch(conn: &mut Connection, batch: Vec<(WriteOp, Reply)>, counters: &Counters) {
    counters
        .writes
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    if batch.len() == 1 {
        let Some((op, reply)) = batch.into_iter().next() else {
            return;
        };
        let result = commit(conn, vec![op], counters).and_then(|mut outcomes| {
            outcomes
                .pop()
                .ok_or_else(|| EngineError::storage("write", "no outcome"))
        });
        let _ = reply.send(result);
        return;
    }
    let ops: Vec<WriteOp> = batch.iter().map(|(op, _)| op.clone()).collect();
    match commit(conn, ops, counters) {
        Ok(outcomes) => {
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            // Nothing of the batch was committed. Retry each write on its
            // own so one failing write does not fail the others.
            tracing::warn!(%error, writes = batch.len(), "SQLite batch failed; retrying its writes one by one");
            for (op, reply) in batch {
                let result = commit(conn, vec![op], counters).and_then(|mut outcomes| {
                    outcomes
                        .pop()
                        .ok_or_else(|| EngineError::storage("write", "no outcome"))
                });
                let _ = reply.send(result);
            }
        }
    }
}

/// Applies `ops` in one transaction and commits it.
fn commit(
    conn: &mut Connection,
    ops: Vec<WriteOp>,
    counters: &Counters,
) -> Result<Vec<WriteOutcome>, EngineError> {
    let name = ops.first().map_or("write", WriteOp::name);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql(name))?;
    let mut outcomes = Vec::with_capacity(ops.len());
    {
        let mut access = SqlTxn(&tx);
        for op in ops {
            outcomes.push(apply(op, &mut access)?);
        }
    }
    tx.commit().map_err(sql(name))?;
    counters.commits.fetch_add(1, Ordering::Relaxed);
    Ok(outcomes)
}
