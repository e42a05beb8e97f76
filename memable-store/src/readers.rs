//! A pool of dedicated reader threads that serves reads in batches.
//!
//! Backends read through blocking calls that must never run on a tokio
//! worker. Spawning one blocking task per read costs a thread hand-off each
//! and, under load, grows tokio's blocking pool to hundreds of threads that
//! fight over two cores. A [`ReaderPool`] instead owns a few threads, each
//! with its own [`ReadSession`] (a connection, a database handle). A thread
//! takes **every** read queued when it wakes, opens one read snapshot for
//! them ([`ReadSession::begin_batch`]), serves them all from it and closes
//! it, so a thousand concurrent snapshot loads cost a few snapshots, not a
//! thousand.
//!
//! A batch's snapshot is opened after its reads were queued, so each read
//! sees every write acknowledged before it was submitted.
//!
//! # Examples
//!
//! ```
//! use memable_store::readers::{ReadSession, ReaderPool};
//! use memable_core::EngineError;
//!
//! /// A "connection" that counts the batches it served.
//! struct Counter { batches: u64 }
//! impl ReadSession for Counter {
//!     fn begin_batch(&mut self) -> Result<(), EngineError> { self.batches += 1; Ok(()) }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let pool = ReaderPool::new("doc-reader", vec![Counter { batches: 0 }]).unwrap();
//! let seen = pool.read("count", |session| Ok(session.batches)).await.unwrap();
//! assert_eq!(seen, 1);
//! # });
//! ```

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use memable_core::{EngineError, StorageErrorKind};

use crate::storage_error;

/// Most reads served from one snapshot, so a long queue does not pin one
/// old snapshot for long.
const MAX_BATCH: usize = 1024;

/// One reader thread's connection to the database.
///
/// [`begin_batch`](Self::begin_batch) opens a read snapshot that every read
/// of the batch then uses; [`end_batch`](Self::end_batch) releases it. Both
/// default to doing nothing (each read then opens its own snapshot).
///
/// # Examples
///
/// ```
/// use memable_store::readers::ReadSession;
///
/// struct Plain;
/// impl ReadSession for Plain {}
/// ```
pub trait ReadSession: Send + 'static {
    /// Opens the snapshot the next batch of reads uses. An error fails every
    /// read of the batch with it.
    fn begin_batch(&mut self) -> Result<(), EngineError> {
        Ok(())
    }

    /// Releases the batch's snapshot.
    fn end_batch(&mut self) {}
}

/// A queued read: called with the session, or with the error that kept the
/// batch from starting.
type Job<S> = Box<dyn FnOnce(Result<&mut S, &EngineError>) + Send>;

struct Queue<S> {
    jobs: VecDeque<Job<S>>,
    closed: bool,
}

struct Shared<S> {
    queue: Mutex<Queue<S>>,
    ready: Condvar,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, Queue<S>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Reader threads, one per [`ReadSession`], serving queued reads in
/// batches. Dropping the pool serves what is queued, then joins the threads.
///
/// # Examples
///
/// See the [module documentation](self).
pub struct ReaderPool<S: ReadSession> {
    shared: Arc<Shared<S>>,
    threads: Vec<JoinHandle<()>>,
}

impl<S: ReadSession> std::fmt::Debug for ReaderPool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderPool")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl<S: ReadSession> ReaderPool<S> {
    /// Starts one thread named `name` per session.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::readers::{ReadSession, ReaderPool};
    ///
    /// struct Plain;
    /// impl ReadSession for Plain {}
    /// let pool = ReaderPool::new("reader", vec![Plain, Plain]).unwrap();
    /// # drop(pool);
    /// ```
    pub fn new(name: &str, sessions: Vec<S>) -> Result<Self, EngineError> {
        if sessions.is_empty() {
            return Err(storage_error(
                StorageErrorKind::Unsupported,
                "start readers",
                "a reader pool needs at least one session",
            ));
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let mut pool = Self {
            shared: Arc::clone(&shared),
            threads: Vec::with_capacity(sessions.len()),
        };
        for session in sessions {
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || serve(&shared, session))
                .map_err(|e| EngineError::storage("start reader thread", e))?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Queues `read` and waits for its result. `operation` names it in
    /// errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::readers::{ReadSession, ReaderPool};
    ///
    /// struct Plain;
    /// impl ReadSession for Plain {}
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pool = ReaderPool::new("reader", vec![Plain]).unwrap();
    /// assert_eq!(pool.read("answer", |_| Ok(42)).await.unwrap(), 42);
    /// # });
    /// ```
    pub async fn read<R, F>(&self, operation: &'static str, read: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> Result<R, EngineError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job<S> = Box::new(move |session| {
            let result = match session {
                Ok(session) => read(session),
                Err(error) => Err(storage_error(
                    error.storage_kind().unwrap_or(StorageErrorKind::Other),
                    operation,
                    crate::detail(error),
                )),
            };
            // A caller that stopped waiting is not an error.
            let _ = reply.send(result);
        });
        {
            let mut queue = self.shared.lock();
            if queue.closed {
                return Err(storage_error(
                    StorageErrorKind::Closed,
                    operation,
                    "the store is closed",
                ));
            }
            queue.jobs.push_back(job);
        }
        self.shared.ready.notify_one();
        answer.await.map_err(|_| {
            storage_error(
                StorageErrorKind::Closed,
                operation,
                "the read stopped before answering",
            )
        })?
    }
}

impl<S: ReadSession> Drop for ReaderPool<S> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a reader thread panicked");
            }
        }
    }
}

/// A reader thread: waits for reads, serves each queued batch from one
/// snapshot, exits once the pool is closed and the queue is empty.
fn serve<S: ReadSession>(shared: &Shared<S>, mut session: S) {
    loop {
        let batch: Vec<Job<S>> = {
            let mut queue = shared.lock();
            while queue.jobs.is_empty() && !queue.closed {
                queue = shared
                    .ready
                    .wait(queue)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if queue.jobs.is_empty() {
                return;
            }
            let take = queue.jobs.len().min(MAX_BATCH);
            queue.jobs.drain(..take).collect()
        };
        match session.begin_batch() {
            Ok(()) => {
                for job in batch {
                    // A panicking read drops its reply (its caller gets an
                    // error) and the thread goes on serving the others.
                    if catch_unwind(AssertUnwindSafe(|| job(Ok(&mut session)))).is_err() {
                        tracing::error!("a read panicked");
                    }
                }
                session.end_batch();
            }
            Err(error) => {
                tracing::warn!(%error, "could not open a read snapshot");
                for job in batch {
                    job(Err(&error));
                }
            }
        }
    }
}

/// Read-your-writes for a writer that answers a batch as soon as it is
/// durable, before the database makes it visible.
///
/// A journaled writer knows a batch is safe once its journal record is
/// synced; committing it to the database (making it visible to readers)
/// can overlap with waking its callers. A caller that then reads must still
/// see its write: the writer calls [`acknowledged`](Self::acknowledged)
/// before answering and [`published`](Self::published) once the commit is
/// visible, and every read batch first [`wait`](Self::wait)s until all
/// acknowledged batches are published (a few microseconds at most).
///
/// # Examples
///
/// ```
/// use memable_store::readers::Visibility;
///
/// let visibility = Visibility::new();
/// visibility.acknowledged(1);
/// visibility.published(1);
/// visibility.wait().unwrap(); // batch 1 is visible: no wait
/// ```
#[derive(Debug, Default)]
pub struct Visibility {
    acknowledged: AtomicU64,
    published: AtomicU64,
    waiting: AtomicU64,
    failure: Mutex<Option<String>>,
    changed: Condvar,
}

impl Visibility {
    /// Nothing acknowledged yet.
    ///
    /// # Examples
    ///
    /// ```
    /// memable_store::readers::Visibility::new().wait().unwrap();
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The writer is about to answer batch `lsn` (durable, not yet visible).
    ///
    /// # Examples
    ///
    /// See [`Visibility`].
    pub fn acknowledged(&self, lsn: u64) {
        self.acknowledged.fetch_max(lsn, Ordering::AcqRel);
    }

    /// Batch `lsn` is visible to new read snapshots.
    ///
    /// # Examples
    ///
    /// See [`Visibility`].
    pub fn published(&self, lsn: u64) {
        self.published.fetch_max(lsn, Ordering::AcqRel);
        // Taken so a reader between its check and its wait cannot miss this.
        drop(self.failure.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_all();
    }

    /// The writer could not make an acknowledged batch visible: waiting
    /// readers fail with `message` instead of waiting forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::readers::Visibility;
    ///
    /// let visibility = Visibility::new();
    /// visibility.acknowledged(1);
    /// visibility.failed("commit failed");
    /// assert!(visibility.wait().is_err());
    /// ```
    pub fn failed(&self, message: &str) {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(message.to_owned());
        self.changed.notify_all();
    }

    /// Whether a reader is waiting for an acknowledged batch to become
    /// visible: a writer that holds batches back to commit several at once
    /// commits now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!memable_store::readers::Visibility::new().readers_waiting());
    /// ```
    #[must_use]
    pub fn readers_waiting(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Waits until every batch acknowledged so far is visible.
    ///
    /// # Examples
    ///
    /// See [`Visibility`].
    pub fn wait(&self) -> Result<(), EngineError> {
        let needed = self.acknowledged.load(Ordering::Acquire);
        if self.published.load(Ordering::Acquire) >= needed {
            return Ok(());
        }
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let outcome = loop {
            if self.published.load(Ordering::Acquire) >= needed {
                break Ok(());
            }
            if let Some(message) = failure.as_ref() {
                break Err(storage_error(
                    StorageErrorKind::Poisoned,
                    "read",
                    message.clone(),
                ));
            }
            failure = self
                .changed
                .wait(failure)
                .unwrap_or_else(PoisonError::into_inner);
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Batches {
        begun: u64,
        open: bool,
    }

    impl ReadSession for Batches {
        fn begin_batch(&mut self) -> Result<(), EngineError> {
            self.begun += 1;
            self.open = true;
            Ok(())
        }
        fn end_batch(&mut self) {
            self.open = false;
        }
    }

    struct Refuses;
    impl ReadSession for Refuses {
        fn begin_batch(&mut self) -> Result<(), EngineError> {
            Err(EngineError::storage("begin", "no snapshot today"))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_run_inside_a_batch_and_many_share_one() {
        let pool = Arc::new(ReaderPool::new("t", vec![Batches::default()]).unwrap());
        let mut reads = tokio::task::JoinSet::new();
        for _ in 0..2_000 {
            let pool = Arc::clone(&pool);
            reads.spawn(async move { pool.read("r", |s| Ok((s.open, s.begun))).await });
        }
        let mut largest_batch_number = 0;
        while let Some(read) = reads.join_next().await {
            let (open, begun) = read.unwrap().unwrap();
            assert!(open, "a read ran outside a batch");
            largest_batch_number = largest_batch_number.max(begun);
        }
        assert!(
            largest_batch_number < 2_000,
            "2000 queued reads took {largest_batch_number} snapshots"
        );
    }

    #[tokio::test]
    async fn a_snapshot_that_cannot_open_fails_its_reads_with_the_error() {
        let pool = ReaderPool::new("t", vec![Refuses]).unwrap();
        let error = pool.read("r", |_| Ok(1)).await.unwrap_err();
        assert!(error.to_string().contains("no snapshot today"), "{error}");
    }

    #[tokio::test]
    async fn a_panicking_read_fails_alone() {
        let pool = ReaderPool::new("t", vec![Batches::default()]).unwrap();
        let error = pool
            .read::<u8, _>("boom", |_| panic!("read bug"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("boom"), "{error}");
        assert_eq!(pool.read("after", |_| Ok(7)).await.unwrap(), 7);
    }

    #[test]
    fn an_empty_pool_is_refused() {
        assert!(ReaderPool::<Batches>::new("t", Vec::new()).is_err());
    }

    #[tokio::test]
    async fn dropping_the_pool_joins_its_threads_after_serving_the_queue() {
        let pool = ReaderPool::new("t", vec![Batches::default(), Batches::default()]).unwrap();
        assert_eq!(pool.read("r", |s| Ok(s.begun)).await.unwrap(), 1);
        drop(pool);
    }

    #[test]
    fn a_reader_waits_until_every_acknowledged_batch_is_published() {
        let visibility = Arc::new(Visibility::new());
        visibility.acknowledged(3);
        let waiting = {
            let visibility = Arc::clone(&visibility);
            std::thread::spawn(move || visibility.wait())
        };
        visibility.published(2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(
            !waiting.is_finished(),
            "returned before batch 3 was visible"
        );
        visibility.published(3);
        waiting.join().unwrap().unwrap();
    }

    #[test]
    fn a_failed_publication_fails_the_waiting_readers() {
        let visibility = Arc::new(Visibility::new());
        visibility.acknowledged(1);
        let waiting = {
            let visibility = Arc::clone(&visibility);
            std::thread::spawn(move || visibility.wait())
        };
        visibility.failed("the commit failed");
        let error = waiting.join().unwrap().unwrap_err();
        assert!(error.to_string().contains("the commit failed"), "{error}");
    }
}
