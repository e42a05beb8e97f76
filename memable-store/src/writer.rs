//! The thread of a group-committing writer, shared by the backends.
//!
//! A backend's writer thread owns its write connection. Callers send a
//! [`WriteOp`] with a [`Reply`] channel through a [`WriterThread`], or a
//! [`Task`] to run on the thread between batches (a backup); the thread
//! takes everything queued ([`recv_batch`]), splits it ([`split_batch`]),
//! applies the writes in one transaction and answers each caller
//! ([`answer_batch`]: a batch whose transaction fails to apply one op is
//! retried op by op, so one bad op does not fail the others).
//! [`crate::commit`] builds the journaled commit protocol on these parts.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use memable_core::transitions::{WriteOp, WriteOutcome};
//! use memable_store::writer::{answer_batch, recv_batch, split_batch, WriterThread};
//! use memable_core::InstanceKey;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // A "store" that answers every delete with `true`, a batch at a time,
//! // and counts the batches for its tasks.
//! let writer = WriterThread::<u32>::spawn("doc-writer", Duration::ZERO, |queue| {
//!     let mut batches = 0;
//!     while let Some(batch) = recv_batch(&queue, 64) {
//!         let (writes, tasks) = split_batch(batch);
//!         batches += 1;
//!         answer_batch(writes, &mut |ops, answer| {
//!             answer(ops.iter().map(|_| WriteOutcome::Delete(true)).collect());
//!             Ok(())
//!         });
//!         for task in tasks {
//!             task(Ok(&mut batches));
//!         }
//!     }
//! })
//! .unwrap();
//! let op = WriteOp::Delete { key: InstanceKey::new("etl", "1").unwrap() };
//! assert_eq!(writer.submit(op).await.unwrap(), WriteOutcome::Delete(true));
//! assert!(writer.run("count", |batches| Ok(*batches)).await.unwrap() >= 1);
//! # });
//! ```

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use memable_core::transitions::{WriteOp, WriteOutcome};
use memable_core::{EngineError, StorageErrorKind};

use crate::storage_error;

/// Where a writer sends one caller's answer.
///
/// # Examples
///
/// ```
/// let (reply, _answer): (memable_store::writer::Reply, _) = tokio::sync::oneshot::channel();
/// # drop(reply);
/// ```
pub type Reply = oneshot::Sender<Result<WriteOutcome, EngineError>>;

/// A queued write: the op and where its answer goes.
pub type Request = (WriteOp, Reply);

/// Work for the writer thread, run between batches with what the thread
/// owns (`C`, its backend) — or with the error that keeps the thread from
/// offering it (a poisoned store).
///
/// # Examples
///
/// ```
/// use memable_store::writer::Task;
///
/// // A task over a backend that is a counter.
/// let task: Task<u32> = Box::new(|backend| {
///     if let Ok(count) = backend {
///         *count += 1;
///     }
/// });
/// let mut count = 0;
/// task(Ok(&mut count));
/// assert_eq!(count, 1);
/// ```
pub type Task<C> = Box<dyn FnOnce(Result<&mut C, &EngineError>) + Send>;

/// What a writer's queue carries.
///
/// # Examples
///
/// ```
/// use memable_store::writer::Queued;
///
/// let queued: Queued<()> = Queued::Task(Box::new(|_| {}));
/// assert!(matches!(queued, Queued::Task(_)));
/// ```
#[allow(clippy::large_enum_variant)] // writes dominate the queue; boxing each would cost an allocation per write
pub enum Queued<C> {
    /// A write and where its answer goes.
    Write(Request),
    /// A task to run between batches.
    Task(Task<C>),
}

impl<C> std::fmt::Debug for Queued<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Write((op, _)) => f.debug_tuple("Write").field(&op.name()).finish(),
            Self::Task(_) => f.write_str("Task"),
        }
    }
}

/// Splits what [`recv_batch`] took into the writes (one group commit) and
/// the tasks (run after it), each in queue order.
///
/// # Examples
///
/// ```
/// use memable_store::writer::{split_batch, Queued};
///
/// let batch: Vec<Queued<()>> = vec![Queued::Task(Box::new(|_| {}))];
/// let (writes, tasks) = split_batch(batch);
/// assert!(writes.is_empty());
/// assert_eq!(tasks.len(), 1);
/// ```
#[must_use]
pub fn split_batch<C>(batch: Vec<Queued<C>>) -> (Vec<Request>, Vec<Task<C>>) {
    let mut writes = Vec::with_capacity(batch.len());
    let mut tasks = Vec::new();
    for queued in batch {
        match queued {
            Queued::Write(request) => writes.push(request),
            Queued::Task(task) => tasks.push(task),
        }
    }
    (writes, tasks)
}

/// Why a batch's transaction did not commit, for [`answer_batch`].
///
/// # Examples
///
/// ```
/// use memable_core::StorageErrorKind;
/// use memable_store::writer::BatchFailure;
///
/// let failure = BatchFailure::Transaction(StorageErrorKind::Io, "disk full".into());
/// assert!(matches!(failure, BatchFailure::Transaction(StorageErrorKind::Io, _)));
/// ```
#[derive(Debug)]
pub enum BatchFailure {
    /// Applying one op failed and nothing of the batch was written: the
    /// batch is retried op by op.
    Apply(EngineError),
    /// The transaction, its journal or the store failed: every caller not
    /// answered yet gets a storage error of this kind with this message.
    Transaction(StorageErrorKind, String),
}

impl BatchFailure {
    /// A [`Transaction`](Self::Transaction) failure carrying `error`'s kind
    /// (or [`StorageErrorKind::Other`]) and message.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EngineError, StorageErrorKind};
    /// use memable_store::writer::BatchFailure;
    ///
    /// let failure = BatchFailure::of(&EngineError::storage("begin", std::io::Error::other("EIO")));
    /// assert!(matches!(failure, BatchFailure::Transaction(StorageErrorKind::Io, _)));
    /// ```
    #[must_use]
    pub fn of(error: &EngineError) -> Self {
        Self::Transaction(
            error.storage_kind().unwrap_or(StorageErrorKind::Other),
            crate::detail(error),
        )
    }
}

/// How a backend commits one batch for [`answer_batch`]: it applies the ops
/// in one transaction and calls the answer function with their outcomes
/// once they are durable.
pub type CommitBatch<'a> =
    dyn FnMut(&[WriteOp], &mut dyn FnMut(Vec<WriteOutcome>)) -> Result<(), BatchFailure> + 'a;

/// Runs one batch through `commit` and answers every caller.
///
/// `commit` applies the ops in one transaction and calls its answer
/// function with their outcomes (in order) once they are durable. If it
/// fails with [`BatchFailure::Apply`], a batch of several ops is retried one
/// op per call, so only the failing op's caller gets the error; if it fails
/// with [`BatchFailure::Transaction`] after answering, the answered callers
/// keep their answers.
///
/// # Examples
///
/// See the [module documentation](self).
pub fn answer_batch(batch: Vec<Request>, commit: &mut CommitBatch<'_>) {
    let size = batch.len();
    let (ops, mut replies): (Vec<WriteOp>, Vec<Option<Reply>>) = batch
        .into_iter()
        .map(|(op, reply)| (op, Some(reply)))
        .unzip();
    let mut answer = |outcomes: Vec<WriteOutcome>| {
        for (reply, outcome) in replies.iter_mut().zip(outcomes) {
            if let Some(reply) = reply.take() {
                // A caller that stopped waiting is not an error for the others.
                let _ = reply.send(Ok(outcome));
            }
        }
    };
    let failure = match commit(&ops, &mut answer) {
        Ok(()) => return,
        Err(failure) => failure,
    };
    match failure {
        BatchFailure::Apply(error) if size > 1 => {
            tracing::warn!(batch = size, %error, "batch failed; retrying its writes one by one");
            for (op, reply) in ops.into_iter().zip(replies) {
                if let Some(reply) = reply {
                    answer_batch(vec![(op, reply)], commit);
                }
            }
        }
        BatchFailure::Apply(error) => {
            if let Some(reply) = replies.into_iter().flatten().next() {
                let _ = reply.send(Err(error));
            }
        }
        BatchFailure::Transaction(kind, message) => {
            for (op, reply) in ops.iter().zip(replies) {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(storage_error(kind, op.name(), message.clone())));
                }
            }
        }
    }
}

/// Records a group commit of `ops` writes in the histogram
/// `memable_commit_batch_ops` (feature `metrics`), labelled `store` by the
/// writer thread's name (`memable-redb-writer` → `redb`).
///
/// # Examples
///
/// ```
/// memable_store::writer::record_batch(3); // no recorder installed: a no-op
/// ```
#[cfg(feature = "metrics")]
pub fn record_batch(ops: usize) {
    let store = match std::thread::current().name() {
        Some("memable-redb-writer") => "redb",
        Some("memable-sqlite-writer") => "sqlite",
        _ => "other",
    };
    #[allow(clippy::cast_precision_loss)] // a batch is far below 2^52 writes
    metrics::histogram!("memable_commit_batch_ops", "store" => store).record(ops as f64);
}

/// Handle to a writer thread that owns a `C` (its backend). Dropping it
/// closes the queue and joins the thread, so whatever the thread owns (its
/// connection) is gone when the drop returns.
///
/// # Examples
///
/// See the [module documentation](self).
pub struct WriterThread<C = ()> {
    queue: Option<mpsc::Sender<Queued<C>>>,
    thread: Option<JoinHandle<()>>,
    calls: WriterCalls,
}

impl<C> std::fmt::Debug for WriterThread<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterThread")
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl<C: 'static> WriterThread<C> {
    /// Starts a thread named `name` running `body` over the queue; `body`
    /// returns when the queue is closed. A lone caller polls for its
    /// answer for up to `lone_writer_spin` (see [`WriterCalls`]).
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    pub fn spawn(
        name: &str,
        lone_writer_spin: Duration,
        body: impl FnOnce(mpsc::Receiver<Queued<C>>) + Send + 'static,
    ) -> Result<Self, EngineError> {
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(requests))
            .map_err(|e| EngineError::storage("start writer thread", e))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            calls: WriterCalls::new(lone_writer_spin),
        })
    }

    fn send(&self, name: &'static str, queued: Queued<C>) -> Result<(), EngineError> {
        self.queue
            .as_ref()
            .ok_or_else(|| storage_error(StorageErrorKind::Closed, name, "the store is closed"))?
            .send(queued)
            .map_err(|_| {
                storage_error(
                    StorageErrorKind::Closed,
                    name,
                    "the writer thread has stopped",
                )
            })
    }

    /// Queues `op` and waits for its outcome, durable when it is `Ok`.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    pub async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        let name = op.name();
        let (reply, answer) = oneshot::channel();
        let waiting = self.calls.enter();
        self.send(name, Queued::Write((op, reply)))?;
        waiting.answer(answer).await.ok_or_else(|| {
            storage_error(
                StorageErrorKind::Closed,
                name,
                "the writer thread stopped before answering",
            )
        })?
    }

    /// Queues `task` to run on the writer thread between batches, with what
    /// the thread owns, and waits for its result. `operation` names it in
    /// errors.
    ///
    /// # Examples
    ///
    /// See the [module documentation](self).
    pub async fn run<R: Send + 'static>(
        &self,
        operation: &'static str,
        task: impl FnOnce(&mut C) -> Result<R, EngineError> + Send + 'static,
    ) -> Result<R, EngineError> {
        let (reply, answer) = oneshot::channel();
        let job: Task<C> = Box::new(move |owned| {
            let result = match owned {
                Ok(owned) => task(owned),
                Err(error) => Err(storage_error(
                    error.storage_kind().unwrap_or(StorageErrorKind::Other),
                    operation,
                    crate::detail(error),
                )),
            };
            let _ = reply.send(result);
        });
        self.send(operation, Queued::Task(job))?;
        answer.await.map_err(|_| {
            storage_error(
                StorageErrorKind::Closed,
                operation,
                "the writer thread stopped before running the task",
            )
        })?
    }
}

impl<C> Drop for WriterThread<C> {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("a writer thread panicked");
        }
    }
}

/// How long a writer keeps polling its queue after a commit before it
/// sleeps: a lone workflow's next write arrives a few microseconds after its
/// answer, and catching it without a sleep and a wake-up saves both.
pub const WRITER_SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Waits for the next request on a writer's queue — polling it for
/// [`WRITER_SPIN`] first, then sleeping — and returns it with every request
/// already queued behind it, at most `max` in all: one group commit's batch.
/// `None` once every sender is gone and the queue is empty.
///
/// # Examples
///
/// ```
/// use memable_store::writer::recv_batch;
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// for i in 0..5 {
///     tx.send(i).unwrap();
/// }
/// assert_eq!(recv_batch(&rx, 3), Some(vec![0, 1, 2]));
/// assert_eq!(recv_batch(&rx, 3), Some(vec![3, 4]));
/// drop(tx);
/// assert_eq!(recv_batch(&rx, 3), None);
/// ```
#[must_use]
pub fn recv_batch<T>(requests: &std::sync::mpsc::Receiver<T>, max: usize) -> Option<Vec<T>> {
    match poll_batch(requests, max) {
        Polled::Batch(batch) => Some(batch),
        Polled::Closed => None,
        Polled::Idle => {
            let first = requests.recv().ok()?;
            Some(drain_behind(requests, first, max))
        }
    }
}

/// What [`poll_batch`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled<T> {
    /// A batch of requests.
    Batch(Vec<T>),
    /// Nothing arrived while polling.
    Idle,
    /// Every sender is gone and the queue is empty.
    Closed,
}

/// Like [`recv_batch`], but returns [`Polled::Idle`] instead of sleeping
/// when nothing arrives within [`WRITER_SPIN`] — for a writer that has
/// something to do while its queue is idle (commit what it held back).
///
/// # Examples
///
/// ```
/// use memable_store::writer::{poll_batch, Polled};
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// assert_eq!(poll_batch(&rx, 8), Polled::Idle);
/// tx.send(1).unwrap();
/// assert_eq!(poll_batch(&rx, 8), Polled::Batch(vec![1]));
/// drop(tx);
/// assert_eq!(poll_batch::<i32>(&rx, 8), Polled::Closed);
/// ```
#[must_use]
pub fn poll_batch<T>(requests: &std::sync::mpsc::Receiver<T>, max: usize) -> Polled<T> {
    use std::sync::mpsc::TryRecvError;
    let spin_until = std::time::Instant::now() + WRITER_SPIN;
    loop {
        match requests.try_recv() {
            Ok(first) => return Polled::Batch(drain_behind(requests, first, max)),
            Err(TryRecvError::Disconnected) => return Polled::Closed,
            Err(TryRecvError::Empty) if std::time::Instant::now() < spin_until => {
                std::hint::spin_loop();
            }
            Err(TryRecvError::Empty) => return Polled::Idle,
        }
    }
}

/// `first` and every request queued behind it, at most `max` in all.
fn drain_behind<T>(requests: &std::sync::mpsc::Receiver<T>, first: T, max: usize) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < max {
        match requests.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
    batch
}

/// How long a lone writer polls for its commit's answer before it sleeps,
/// by default (see [`WriterCalls`]).
pub const LONE_WRITER_SPIN: std::time::Duration = std::time::Duration::from_micros(250);

/// Counts the calls waiting on a writer, so a lone sequential caller can
/// wait for its answers by polling instead of sleeping.
///
/// Waking a sleeping runtime worker when the answer arrives costs tens of
/// microseconds on a virtual machine — a fifth of a commit when the commit
/// is one `fdatasync`. A lone sequential workflow, whose every step waits
/// for one commit, therefore polls for its answer (yielding to the other
/// tasks between polls) for up to a bound, then sleeps; many concurrent
/// callers never poll, their answers arrive together. The price is one busy
/// runtime worker while a lone workflow's commit is in flight.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_store::writer::WriterCalls;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let calls = WriterCalls::new(Duration::from_micros(250));
/// let (reply, answer) = tokio::sync::oneshot::channel();
/// let waiting = calls.enter();
/// reply.send(7).unwrap();
/// assert_eq!(waiting.answer(answer).await, Some(7));
/// # });
/// ```
#[derive(Debug)]
pub struct WriterCalls {
    waiting: std::sync::atomic::AtomicUsize,
    /// Whether the previous call started alone: a call polls only when it
    /// and the one before it were alone, the pattern of a lone sequential
    /// workflow (many concurrent workflows leave the queue empty now and
    /// then, but not twice in a row).
    previous_alone: std::sync::atomic::AtomicBool,
    spin: std::time::Duration,
}

impl WriterCalls {
    /// Calls that poll for up to `spin` when alone (`Duration::ZERO`: never
    /// poll).
    ///
    /// # Examples
    ///
    /// See [`WriterCalls`].
    #[must_use]
    pub fn new(spin: std::time::Duration) -> Self {
        Self {
            waiting: std::sync::atomic::AtomicUsize::new(0),
            previous_alone: std::sync::atomic::AtomicBool::new(false),
            spin,
        }
    }

    /// A call starts waiting; it counts until the returned guard is dropped.
    ///
    /// # Examples
    ///
    /// See [`WriterCalls`].
    pub fn enter(&self) -> WaitingCall<'_> {
        let alone = self
            .waiting
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            == 0;
        let previous = self
            .previous_alone
            .swap(alone, std::sync::atomic::Ordering::AcqRel);
        WaitingCall {
            calls: self,
            alone: alone && previous,
        }
    }
}

/// One call waiting on a writer; see [`WriterCalls`].
#[derive(Debug)]
pub struct WaitingCall<'a> {
    calls: &'a WriterCalls,
    alone: bool,
}

impl WaitingCall<'_> {
    /// Waits for `answer`: polling it first if this call and the one before
    /// it were alone when they started, then sleeping until it arrives. `None` if the writer dropped
    /// the reply without answering.
    ///
    /// # Examples
    ///
    /// See [`WriterCalls`].
    pub async fn answer<T>(self, mut answer: tokio::sync::oneshot::Receiver<T>) -> Option<T> {
        use tokio::sync::oneshot::error::TryRecvError;
        if self.alone && !self.calls.spin.is_zero() {
            let until = std::time::Instant::now() + self.calls.spin;
            loop {
                match answer.try_recv() {
                    Ok(value) => return Some(value),
                    Err(TryRecvError::Closed) => return None,
                    Err(TryRecvError::Empty) if std::time::Instant::now() < until => {
                        tokio::task::yield_now().await;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
        answer.await.ok()
    }
}

impl Drop for WaitingCall<'_> {
    fn drop(&mut self) {
        self.calls
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::WriterCalls;

    #[tokio::test]
    async fn a_lone_call_gets_an_answer_sent_while_it_polls() {
        let calls = WriterCalls::new(Duration::from_secs(5));
        drop(calls.enter());
        let waiting = calls.enter();
        assert!(waiting.alone);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            reply.send("late").unwrap();
        });
        assert_eq!(waiting.answer(answer).await, Some("late"));
        sender.join().unwrap();
    }

    #[tokio::test]
    async fn an_answer_later_than_the_spin_is_awaited() {
        let calls = WriterCalls::new(Duration::from_micros(10));
        let (reply, answer) = tokio::sync::oneshot::channel();
        let waiting = calls.enter();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            reply.send(3).unwrap();
        });
        assert_eq!(waiting.answer(answer).await, Some(3));
        sender.await.unwrap();
    }

    #[tokio::test]
    async fn a_dropped_writer_is_an_error_not_a_hang() {
        let calls = WriterCalls::new(Duration::from_secs(5));
        let (reply, answer) = tokio::sync::oneshot::channel::<u8>();
        drop(reply);
        assert!(calls.enter().answer(answer).await.is_none());
    }

    #[test]
    fn a_call_polls_only_after_a_lone_call_and_when_alone() {
        let calls = WriterCalls::new(Duration::from_micros(1));
        // The first call has no lone call before it.
        assert!(!calls.enter().alone);
        assert!(calls.enter().alone);
        let first = calls.enter();
        let second = calls.enter();
        assert!(first.alone && !second.alone);
        drop((first, second));
        // The call before was not alone: no polling yet.
        assert!(!calls.enter().alone);
        assert!(calls.enter().alone);
    }

    use super::{BatchFailure, Request, answer_batch};
    use memable_core::transitions::{WriteOp, WriteOutcome};
    use memable_core::{EngineError, InstanceKey};

    fn delete(
        instance: &str,
    ) -> (
        Request,
        tokio::sync::oneshot::Receiver<Result<WriteOutcome, EngineError>>,
    ) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let op = WriteOp::Delete {
            key: InstanceKey::new("w", instance).unwrap(),
        };
        ((op, reply), answer)
    }

    fn is_bad(op: &WriteOp) -> bool {
        matches!(op, WriteOp::Delete { key } if key.instance() == "bad")
    }

    #[test]
    fn a_failing_op_is_retried_alone_and_fails_alone() {
        let (requests, answers): (Vec<_>, Vec<_>) =
            ["a", "bad", "c"].into_iter().map(delete).unzip();
        let mut calls = Vec::new();
        answer_batch(requests, &mut |ops, answer| {
            calls.push(ops.len());
            if ops.iter().any(is_bad) {
                return Err(BatchFailure::Apply(EngineError::storage(
                    "delete", "bad row",
                )));
            }
            answer(ops.iter().map(|_| WriteOutcome::Delete(true)).collect());
            Ok(())
        });
        assert_eq!(calls, [3, 1, 1, 1]);
        let results: Vec<_> = answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap())
            .collect();
        assert_eq!(results[0].as_ref().unwrap(), &WriteOutcome::Delete(true));
        assert!(
            results[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("bad row")
        );
        assert_eq!(results[2].as_ref().unwrap(), &WriteOutcome::Delete(true));
    }

    #[test]
    fn a_failure_after_answering_keeps_the_answers() {
        let (requests, answers): (Vec<_>, Vec<_>) = ["a", "b"].into_iter().map(delete).unzip();
        answer_batch(requests, &mut |ops, answer| {
            answer(ops.iter().map(|_| WriteOutcome::Delete(true)).collect());
            Err(BatchFailure::Transaction(
                memable_core::StorageErrorKind::Io,
                "commit failed".into(),
            ))
        });
        for mut answer in answers {
            assert_eq!(
                answer.try_recv().unwrap().unwrap(),
                WriteOutcome::Delete(true)
            );
        }
    }
}
