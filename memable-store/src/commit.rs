//! The journaled commit protocol: one writer loop and one recovery routine
//! for every file backend, over a database that implements [`Backend`].
//!
//! # The protocol
//!
//! One writer thread ([`Writer`]) owns the database's write side, the
//! journal ([`Journaled`]) and the store's [`Counters`]. For every group
//! commit (a batch of [`WriteOp`]s) it runs, in this order:
//!
//! 1. **apply**: [`Backend::begin_batch`], then every op through
//!    [`apply`] on the backend's [`Backend::rows`];
//! 2. **lsn**: [`Backend::record_lsn`] records the batch's log sequence
//!    number (the last one plus one) in the same transaction;
//! 3. **append + sync**: [`Journal::append`] writes the batch under that lsn
//!    and `fdatasync`s the journal — from here on the batch is durable;
//! 4. **acknowledge**: [`Visibility::acknowledged`], so every read issued
//!    from now on waits until the batch is visible;
//! 5. **answer** the callers (their wake-up overlaps the commit);
//! 6. **commit**: [`Backend::commit_batch`] commits without a flush. A
//!    backend may instead *hold* the transaction open across batches (each
//!    batch then a savepoint; [`Committed::Held`]): the loop commits what
//!    is held ([`Backend::commit_held`]) when the queue goes idle, a reader
//!    waits, a batch of several writes came, or after [`HELD_BATCHES`]
//!    batches or [`HELD_FOR`];
//! 7. **publish**: [`Visibility::published`] wakes the readers waiting for it.
//!
//! Every `checkpoint_bytes` of journal, before a [`Task`]
//! and when the writer stops, it **checkpoints**: commits what is held,
//! makes the database durable ([`Backend::checkpoint`]) and resets the
//! journal, whose file is then reused from its start.
//!
//! Without a journal (a `Relaxed` or in-memory store) steps 2–4 are left
//! out and the callers are answered after step 6, which is then the
//! durability point.
//!
//! # The dirty marker
//!
//! The database durably records whether its journal may hold work it
//! lacks. [`recover`] marks it [`Marker::Dirty`] in the durable commit that
//! ends recovery, before the first journaled write; every checkpoint keeps
//! it dirty; only the final checkpoint of a clean close records
//! [`Marker::Clean`]. At open, a dirty database whose journal is missing,
//! empty or cut inside its header is refused with
//! [`StorageErrorKind::Incomplete`] (the acknowledged work since its last
//! checkpoint is gone), unless the builder's `accept_lost_journal` says to
//! open with what the database holds.
//!
//! # States and who may touch what
//!
//! | state | the database | the journal | readers |
//! |---|---|---|---|
//! | *idle* | no open transaction (or a held one) | chain up to the last lsn | see every acknowledged batch once published |
//! | *applying* (1–2) | the writer's open transaction | untouched | unaffected (they read the last commit) |
//! | *journaled* (3–5) | open transaction, not committed | holds the batch, synced | wait ([`Visibility::wait`]) |
//! | *held* (6, a holding backend) | open transaction with answered batches | holds them | wait until [`Backend::commit_held`] |
//! | *poisoned* | may lack journaled batches | may hold batches the database lacks | fail if they would miss an acknowledged batch |
//!
//! Only the writer thread touches the write transaction and the journal;
//! readers only read committed state, through [`Visibility`]. Recovery runs
//! before the writer starts, on the opening thread.
//!
//! # Failures
//!
//! | what fails | what happens |
//! |---|---|
//! | applying an op (1) | the batch is rolled back ([`Backend::abort_batch`]) and retried op by op, so only the failing op's caller gets the error |
//! | recording the lsn (2) | the batch is rolled back; its callers get the error; the store goes on |
//! | the append, before anything was written (a batch too large for a record) | rolled back and retried op by op |
//! | the append or sync, after writing (3) | rolled back; what is held is committed; the store is **poisoned**: this and every later write fail with [`StorageErrorKind::Poisoned`] until it is reopened. The batch may be in the journal, so it may turn out committed on reopen |
//! | the commit after the sync (6), or committing what is held | the batch is answered and in the journal; the store is poisoned, readers that would miss it fail; reopening replays the journal, so the batch **will** turn out committed |
//! | a checkpoint | poisoned (the journal is not reset and the database is not marked clean, so reopening replays) |
//!
//! A poisoned store answers every write with [`StorageErrorKind::Poisoned`]
//! and never checkpoints again; reopening recovers from the journal. An
//! operation answered with an error may therefore turn out committed — the
//! engine tolerates a lost acknowledgement (a step runs at least once).
//!
//! # Examples
//!
//! A backend over a `Vec` of ops (a real one wraps a database transaction):
//!
//! ```
//! use memable_core::transitions::{Transaction, WriteOp, WriteOutcome};
//! use memable_core::{EngineError, InstanceKey, StepRecord, TimerEntry, WorkflowMetadata};
//! use memable_store::commit::{Backend, Committed, Marker, Writer};
//! use memable_store::Counters;
//! use std::sync::Arc;
//!
//! /// Nothing exists: every delete finds no instance.
//! struct Rows;
//! impl Transaction for Rows {
//!     fn metadata(&mut self, _: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError> { Ok(None) }
//!     fn put_metadata(&mut self, _: &InstanceKey, _: &WorkflowMetadata, _: Option<&WorkflowMetadata>) -> Result<(), EngineError> { Ok(()) }
//!     fn step(&mut self, _: &InstanceKey, _: &str) -> Result<Option<StepRecord>, EngineError> { Ok(None) }
//!     fn put_step(&mut self, _: &InstanceKey, _: &str, _: &StepRecord) -> Result<(), EngineError> { Ok(()) }
//!     fn remove_step(&mut self, _: &InstanceKey, _: &str) -> Result<(), EngineError> { Ok(()) }
//!     fn steps(&mut self, _: &InstanceKey) -> Result<Vec<(String, StepRecord)>, EngineError> { Ok(vec![]) }
//!     fn put_timer(&mut self, _: &TimerEntry) -> Result<(), EngineError> { Ok(()) }
//!     fn remove_timer(&mut self, _: &TimerEntry) -> Result<(), EngineError> { Ok(()) }
//!     fn remove_instance(&mut self, _: &InstanceKey, _: &WorkflowMetadata) -> Result<(), EngineError> { Ok(()) }
//! }
//!
//! struct Nothing;
//! impl Backend for Nothing {
//!     type Rows<'a> = Rows;
//!     fn begin_batch(&mut self) -> Result<(), EngineError> { Ok(()) }
//!     fn rows(&mut self) -> Result<Rows, EngineError> { Ok(Rows) }
//!     fn record_lsn(&mut self, _: u64) -> Result<(), EngineError> { Ok(()) }
//!     fn abort_batch(&mut self) {}
//!     fn commit_batch(&mut self) -> Result<Committed, EngineError> { Ok(Committed::Visible) }
//!     fn checkpoint(&mut self, _: Marker) -> Result<(), EngineError> { Ok(()) }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let counters = Arc::new(Counters::default());
//! let writer = Writer::spawn("doc-writer", Nothing, None, Arc::clone(&counters), Default::default()).unwrap();
//! let op = WriteOp::Delete { key: InstanceKey::new("etl", "1").unwrap() };
//! assert_eq!(writer.submit(op).await.unwrap(), WriteOutcome::Delete(false));
//! assert_eq!(counters.stats().commits, 1);
//! # });
//! ```

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use memable_core::transitions::{Transaction, WriteOp, WriteOutcome, apply};
use memable_core::{EngineError, StorageErrorKind};

use crate::journal::{
    Journal, JournalFile, NewFile, lost_journal, open_journal_file, preallocation, records_after,
    remove_journal_file,
};
use crate::readers::Visibility;
use crate::writer::{
    BatchFailure, LONE_WRITER_SPIN, Polled, Queued, Task, WriterThread, answer_batch, poll_batch,
    recv_batch, split_batch,
};
use crate::{Counters, Durability, detail, storage_error};

/// The most operations applied in one batch.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_store::commit::MAX_BATCH, 4_096);
/// ```
pub const MAX_BATCH: usize = 4_096;

/// Most answered batches a holding backend keeps in one open transaction.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_store::commit::HELD_BATCHES, 64);
/// ```
pub const HELD_BATCHES: usize = 64;

/// Longest an answered batch is held in an open transaction.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_store::commit::HELD_FOR, std::time::Duration::from_millis(2));
/// ```
pub const HELD_FOR: Duration = Duration::from_millis(2);

/// Journal bytes after which the writer checkpoints by default: 2 MiB.
///
/// This bounds the journal file (to this plus one batch), the work replayed
/// when a store reopens after a crash, and how far the database grows
/// between durable commits. A checkpoint costs about one ordinary durable
/// commit, paid once every several thousand steps.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_store::commit::CHECKPOINT_BYTES, 2 << 20);
/// ```
pub const CHECKPOINT_BYTES: u64 = 2 * 1024 * 1024;

/// What [`Backend::commit_batch`] did.
///
/// # Examples
///
/// ```
/// use memable_store::commit::Committed;
/// assert_ne!(Committed::Visible, Committed::Held);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Committed: new read snapshots see the batch.
    Visible,
    /// Kept in a transaction held open: visible after
    /// [`Backend::commit_held`].
    Held,
}

/// What a checkpoint records in the database about its journal.
///
/// # Examples
///
/// ```
/// use memable_store::commit::Marker;
/// assert_ne!(Marker::Dirty, Marker::Clean);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// The journal may hold acknowledged work the database lacks: opening
    /// needs it.
    Dirty,
    /// Closed cleanly: the database holds everything, the journal nothing
    /// it lacks.
    Clean,
}

/// A database the journaled commit protocol runs over. Only the writer
/// thread (and, before it starts, [`recover`]) calls these methods; see the
/// [module docs](self) for the order.
///
/// # Examples
///
/// See the [module docs](self).
pub trait Backend: Send + 'static {
    /// Row access inside the batch transaction, for [`apply`].
    type Rows<'a>: Transaction
    where
        Self: 'a;

    /// Begins a batch: a write transaction (committed without a flush when
    /// journaled), or a savepoint in a held one.
    fn begin_batch(&mut self) -> Result<(), EngineError>;

    /// Row access to the batch begun by [`begin_batch`](Self::begin_batch).
    fn rows(&mut self) -> Result<Self::Rows<'_>, EngineError>;

    /// Records `lsn` as the database's journal position, in the batch.
    fn record_lsn(&mut self, lsn: u64) -> Result<(), EngineError>;

    /// Undoes the current batch alone (batches held before it stay).
    fn abort_batch(&mut self);

    /// Ends the current batch: commits it (journaled: without a flush), or
    /// keeps it in the held transaction.
    fn commit_batch(&mut self) -> Result<Committed, EngineError>;

    /// Commits the held transaction, if any (without a flush).
    fn commit_held(&mut self) -> Result<(), EngineError> {
        Ok(())
    }

    /// Drops the held transaction, if any, after a failure.
    fn abort_held(&mut self) {}

    /// One durable commit that makes every earlier commit durable and
    /// records `marker`. No batch is open when it is called.
    fn checkpoint(&mut self, marker: Marker) -> Result<(), EngineError>;
}

/// A writer's journal and where it stands.
///
/// # Examples
///
/// See [`recover`].
pub struct Journaled {
    journal: Journal<Box<dyn JournalFile>>,
    /// The lsn of the last batch journaled.
    lsn: u64,
    visibility: Arc<Visibility>,
    checkpoint_bytes: u64,
}

impl std::fmt::Debug for Journaled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journaled")
            .field("journal", &self.journal.name())
            .field("lsn", &self.lsn)
            .finish_non_exhaustive()
    }
}

impl Journaled {
    /// What the store's readers wait on: batches are answered once
    /// journaled, before their commit is visible.
    ///
    /// # Examples
    ///
    /// See [`recover`].
    #[must_use]
    pub fn visibility(&self) -> &Arc<Visibility> {
        &self.visibility
    }

    /// The lsn of the last batch journaled (or replayed).
    ///
    /// # Examples
    ///
    /// See [`recover`].
    #[must_use]
    pub fn lsn(&self) -> u64 {
        self.lsn
    }
}

/// What a database says about its journal, read by the backend at open.
///
/// # Examples
///
/// ```
/// let state = memable_store::commit::DatabaseState { lsn: 0, journal_id: 7, dirty: false };
/// assert!(!state.dirty);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabaseState {
    /// The lsn of the last journaled batch the database holds.
    pub lsn: u64,
    /// The id the journal's header must carry.
    pub journal_id: u64,
    /// Whether the journal may hold acknowledged work the database lacks
    /// (the database was not closed cleanly).
    pub dirty: bool,
}

/// Where the journal is.
///
/// # Examples
///
/// ```
/// use memable_store::commit::JournalSource;
///
/// let source = JournalSource::Path(std::path::Path::new("wf.db.journal"));
/// assert!(matches!(source, JournalSource::Path(_)));
/// ```
pub enum JournalSource<'a> {
    /// The file at this path (created if missing).
    Path(&'a Path),
    /// Any [`JournalFile`] (tests that simulate a disk).
    File(Box<dyn JournalFile>),
}

impl std::fmt::Debug for JournalSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Self::File(_) => f.write_str("File"),
        }
    }
}

/// How [`recover`] treats a journal that is gone.
///
/// # Examples
///
/// ```
/// let options = memable_store::commit::RecoverOptions::default();
/// assert!(!options.accept_lost_journal);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoverOptions {
    /// Open a dirty database whose journal is missing, empty or cut inside
    /// its header with what the database holds (the work acknowledged since
    /// its last checkpoint is lost) instead of refusing it.
    pub accept_lost_journal: bool,
    /// Journal bytes between checkpoints (sizes the preallocation).
    pub checkpoint_bytes: u64,
    /// Whether [`open_journal`] keeps the journal (`Immediate`) or retires
    /// it (`Relaxed`); [`recover`] ignores it.
    pub durability: Durability,
}

impl Default for RecoverOptions {
    fn default() -> Self {
        Self {
            accept_lost_journal: false,
            checkpoint_bytes: CHECKPOINT_BYTES,
            durability: Durability::Immediate,
        }
    }
}

fn replay_error(name: &str, error: &EngineError, kind: StorageErrorKind) -> EngineError {
    storage_error(
        kind,
        "open",
        format!("{name}: replaying the journal: {}", detail(error)),
    )
}

fn kind_of(error: &EngineError) -> StorageErrorKind {
    error.storage_kind().unwrap_or(StorageErrorKind::Corrupt)
}

/// Opens the journal (`name` in messages), checks that it belongs to the
/// database, re-applies every record after the database's lsn in one
/// batch, makes the database durable and marks it dirty
/// ([`Backend::checkpoint`]), and resets the journal: the recovery every
/// file backend runs at open, before its writer starts.
///
/// Refuses with [`StorageErrorKind::Incomplete`] a dirty database whose
/// journal is missing, empty or cut inside its header (unless
/// [`RecoverOptions::accept_lost_journal`]), a journal of another database
/// and one that continues from a later lsn than the database's; with
/// [`StorageErrorKind::Corrupt`] a journal damaged in the middle.
///
/// # Examples
///
/// ```
/// # use memable_core::transitions::Transaction;
/// # use memable_core::{EngineError, InstanceKey, StepRecord, TimerEntry, WorkflowMetadata};
/// # struct Rows;
/// # impl Transaction for Rows {
/// #     fn metadata(&mut self, _: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError> { Ok(None) }
/// #     fn put_metadata(&mut self, _: &InstanceKey, _: &WorkflowMetadata, _: Option<&WorkflowMetadata>) -> Result<(), EngineError> { Ok(()) }
/// #     fn step(&mut self, _: &InstanceKey, _: &str) -> Result<Option<StepRecord>, EngineError> { Ok(None) }
/// #     fn put_step(&mut self, _: &InstanceKey, _: &str, _: &StepRecord) -> Result<(), EngineError> { Ok(()) }
/// #     fn remove_step(&mut self, _: &InstanceKey, _: &str) -> Result<(), EngineError> { Ok(()) }
/// #     fn steps(&mut self, _: &InstanceKey) -> Result<Vec<(String, StepRecord)>, EngineError> { Ok(vec![]) }
/// #     fn put_timer(&mut self, _: &TimerEntry) -> Result<(), EngineError> { Ok(()) }
/// #     fn remove_timer(&mut self, _: &TimerEntry) -> Result<(), EngineError> { Ok(()) }
/// #     fn remove_instance(&mut self, _: &InstanceKey, _: &WorkflowMetadata) -> Result<(), EngineError> { Ok(()) }
/// # }
/// use memable_core::StorageErrorKind;
/// use memable_store::commit::{recover, Backend, Committed, DatabaseState, JournalSource, Marker, RecoverOptions};
///
/// /// Remembers its marker.
/// struct Db(Option<Marker>);
/// impl Backend for Db {
///     type Rows<'a> = Rows;
///     fn begin_batch(&mut self) -> Result<(), EngineError> { Ok(()) }
///     fn rows(&mut self) -> Result<Rows, EngineError> { Ok(Rows) }
///     fn record_lsn(&mut self, _: u64) -> Result<(), EngineError> { Ok(()) }
///     fn abort_batch(&mut self) {}
///     fn commit_batch(&mut self) -> Result<Committed, EngineError> { Ok(Committed::Visible) }
///     fn checkpoint(&mut self, marker: Marker) -> Result<(), EngineError> { self.0 = Some(marker); Ok(()) }
/// }
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("db.journal");
/// let clean = DatabaseState { lsn: 0, journal_id: 7, dirty: false };
/// let mut db = Db(None);
/// let journaled = recover(&mut db, clean, JournalSource::Path(&path), "db.journal", RecoverOptions::default()).unwrap();
/// assert_eq!((journaled.lsn(), db.0), (0, Some(Marker::Dirty)));
///
/// // A dirty database whose journal was deleted is refused.
/// std::fs::remove_file(&path).unwrap();
/// let dirty = DatabaseState { dirty: true, ..clean };
/// let err = recover(&mut db, dirty, JournalSource::Path(&path), "db.journal", RecoverOptions::default()).unwrap_err();
/// assert_eq!(err.storage_kind(), Some(StorageErrorKind::Incomplete));
/// ```
pub fn recover<B: Backend>(
    backend: &mut B,
    db: DatabaseState,
    source: JournalSource<'_>,
    name: &str,
    options: RecoverOptions,
) -> Result<Journaled, EngineError> {
    let refuse_lost = db.dirty && !options.accept_lost_journal;
    let file: Box<dyn JournalFile> = match source {
        JournalSource::Path(path) => {
            if !path.exists() {
                if refuse_lost {
                    return Err(lost_journal(name, "is missing"));
                }
                if db.dirty {
                    tracing::warn!(
                        journal = name,
                        "the journal of a database not closed cleanly is missing; opening with what the database holds (accept_lost_journal)"
                    );
                }
            }
            Box::new(open_journal_file(path, name)?)
        }
        JournalSource::File(file) => file,
    };
    let new_file = if refuse_lost {
        NewFile::Refuse
    } else {
        NewFile::Initialise
    };
    let (mut journal, records) = Journal::open_after(file, name, db.journal_id, db.lsn, new_file)?;
    let pending = records_after(records, db.lsn, name)?;
    let mut lsn = db.lsn;
    if let (Some(first), Some(last)) = (pending.first(), pending.last()) {
        backend
            .begin_batch()
            .map_err(|e| replay_error(name, &e, kind_of(&e)))?;
        let replayed = replay(backend, &pending, last.lsn);
        if let Err(e) = replayed {
            backend.abort_batch();
            backend.abort_held();
            return Err(e);
        }
        let committed = backend.commit_batch().and_then(|_| backend.commit_held());
        committed.map_err(|e| replay_error(name, &e, kind_of(&e)))?;
        lsn = last.lsn;
        tracing::info!(
            journal = name,
            records = pending.len(),
            from = first.lsn,
            to = lsn,
            "memable replayed its journal"
        );
    }
    backend
        .checkpoint(Marker::Dirty)
        .map_err(|e| replay_error(name, &e, kind_of(&e)))?;
    journal.reset();
    journal.preallocate(preallocation(options.checkpoint_bytes))?;
    Ok(Journaled {
        journal,
        lsn,
        visibility: Arc::new(Visibility::new()),
        checkpoint_bytes: options.checkpoint_bytes,
    })
}

fn replay<B: Backend>(
    backend: &mut B,
    pending: &[crate::journal::Record],
    last: u64,
) -> Result<(), EngineError> {
    {
        let mut rows = backend.rows()?;
        for record in pending {
            for op in &record.ops {
                apply(op, &mut rows).map_err(|e| {
                    storage_error(
                        kind_of(&e),
                        "open",
                        format!("replaying the journal: lsn {}: {}", record.lsn, detail(&e)),
                    )
                })?;
            }
        }
    }
    backend.record_lsn(last)
}

/// For a store opened without a journal (`Relaxed`): replays a journal left
/// at `path` by a journaled store into a durable commit, marks the database
/// clean and removes the journal; refuses a dirty database whose journal is
/// gone, as [`recover`] does. Returns the database's lsn.
///
/// # Examples
///
/// See [`recover`]; a backend crate's `Relaxed` open calls this.
pub fn retire_journal<B: Backend>(
    backend: &mut B,
    db: DatabaseState,
    path: &Path,
    name: &str,
    options: RecoverOptions,
) -> Result<u64, EngineError> {
    if !path.exists() && !db.dirty {
        return Ok(db.lsn);
    }
    let journaled = recover(backend, db, JournalSource::Path(path), name, options)?;
    backend.checkpoint(Marker::Clean)?;
    let lsn = journaled.lsn;
    drop(journaled);
    remove_journal_file(path, name)?;
    Ok(lsn)
}

/// Opens a file store's journal as its durability
/// ([`RecoverOptions::durability`]) wants: for
/// [`Durability::Immediate`], [`recover`] from the journal at `path` and
/// return it; for [`Durability::Relaxed`], [`retire_journal`] (replay a
/// journal left there, mark the database clean, remove the journal) and
/// return `None`.
///
/// # Examples
///
/// See [`recover`]; each file backend's `open` calls this.
pub fn open_journal<B: Backend>(
    backend: &mut B,
    db: DatabaseState,
    path: &Path,
    name: &str,
    options: RecoverOptions,
) -> Result<Option<Journaled>, EngineError> {
    match options.durability {
        Durability::Immediate => {
            let journaled = recover(backend, db, JournalSource::Path(path), name, options)?;
            tracing::debug!(
                journal = name,
                lsn = journaled.lsn,
                "memable store opened with its journal"
            );
            Ok(Some(journaled))
        }
        Durability::Relaxed => {
            retire_journal(backend, db, path, name, options)?;
            Ok(None)
        }
    }
}

/// Settings of a [`Writer`].
///
/// # Examples
///
/// ```
/// let config = memable_store::commit::WriterConfig::default();
/// assert_eq!(config.max_batch, memable_store::commit::MAX_BATCH);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterConfig {
    /// The most operations in one batch.
    pub max_batch: usize,
    /// How long a lone caller polls for its answer.
    pub lone_writer_spin: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: MAX_BATCH,
            lone_writer_spin: LONE_WRITER_SPIN,
        }
    }
}

/// The writer thread running the protocol over a backend `B`. Dropping it
/// closes the queue, lets the thread finish (commit what is held, the final
/// checkpoint of a clean close) and joins it.
///
/// # Examples
///
/// See the [module docs](self).
pub struct Writer<B: Backend> {
    thread: WriterThread<B>,
}

impl<B: Backend> std::fmt::Debug for Writer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl<B: Backend> Writer<B> {
    /// Starts the thread (named `name`) over `backend`, journaling when
    /// `journal` is set (from [`recover`]).
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn spawn(
        name: &str,
        backend: B,
        journal: Option<Journaled>,
        counters: Arc<Counters>,
        config: WriterConfig,
    ) -> Result<Self, EngineError> {
        let thread = WriterThread::spawn(name, config.lone_writer_spin, move |queue| {
            Loop {
                backend,
                journal,
                counters,
                poisoned: None,
                held: None,
                max_batch: config.max_batch,
            }
            .run(&queue);
        })?;
        Ok(Self { thread })
    }

    /// Queues `op` and waits for its outcome, durable when it is `Ok`.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        self.thread.submit(op).await
    }

    /// Runs `task` on the writer thread between batches, after a
    /// checkpoint: the database then holds every write acknowledged before
    /// the call, durably, and no batch is open. Fails with
    /// [`StorageErrorKind::Poisoned`] on a poisoned store.
    ///
    /// # Examples
    ///
    /// See the [module docs](self); a backend's `backup` uses it.
    pub async fn run<R: Send + 'static>(
        &self,
        operation: &'static str,
        task: impl FnOnce(&mut B) -> Result<R, EngineError> + Send + 'static,
    ) -> Result<R, EngineError> {
        self.thread.run(operation, task).await
    }
}

/// Answered batches in a transaction held open.
struct Held {
    batches: usize,
    since: Instant,
    lsn: u64,
}

/// What the writer thread owns.
struct Loop<B> {
    backend: B,
    journal: Option<Journaled>,
    counters: Arc<Counters>,
    /// Set once the database and the journal may disagree.
    poisoned: Option<String>,
    held: Option<Held>,
    max_batch: usize,
}

impl<B: Backend> Loop<B> {
    fn run(mut self, queue: &mpsc::Receiver<Queued<B>>) {
        loop {
            let batch = if self.held.is_some() {
                match poll_batch(queue, self.max_batch) {
                    Polled::Batch(batch) => batch,
                    Polled::Idle => {
                        self.commit_held();
                        continue;
                    }
                    Polled::Closed => break,
                }
            } else {
                match recv_batch(queue, self.max_batch) {
                    Some(batch) => batch,
                    None => break,
                }
            };
            let (writes, tasks) = split_batch(batch);
            let lone = writes.len() == 1;
            if !writes.is_empty() {
                tracing::trace!(writes = writes.len(), "memable group commit");
                #[cfg(feature = "metrics")]
                crate::writer::record_batch(writes.len());
                answer_batch(writes, &mut |ops, answer| self.commit(ops, answer));
            }
            if self.held.as_ref().is_some_and(|held| {
                !lone
                    || held.batches >= HELD_BATCHES
                    || held.since.elapsed() >= HELD_FOR
                    || self
                        .journal
                        .as_ref()
                        .is_some_and(|j| j.visibility.readers_waiting())
            }) {
                self.commit_held();
            }
            if self
                .journal
                .as_ref()
                .is_some_and(|j| j.journal.written_since_reset() > j.checkpoint_bytes)
            {
                self.checkpoint(Marker::Dirty);
            }
            for task in tasks {
                self.run_task(task);
            }
        }
        self.commit_held();
        if self.journal.is_some() {
            self.checkpoint(Marker::Clean);
        }
        tracing::debug!("memable writer thread exiting");
    }

    fn run_task(&mut self, task: Task<B>) {
        if self.journal.is_some() {
            self.checkpoint(Marker::Dirty);
        } else {
            self.commit_held();
        }
        match &self.poisoned {
            Some(message) => {
                let error = storage_error(StorageErrorKind::Poisoned, "task", message.clone());
                task(Err(&error));
            }
            None => task(Ok(&mut self.backend)),
        }
    }

    fn poison(&mut self, message: String) -> BatchFailure {
        self.poisoned = Some(message.clone());
        BatchFailure::Transaction(StorageErrorKind::Poisoned, message)
    }

    /// Commits the held transaction; a failure poisons the store and fails
    /// the readers waiting for its batches.
    fn commit_held(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let Some(journaled) = self.journal.as_ref() else {
            return;
        };
        match self.backend.commit_held() {
            Ok(()) => journaled.visibility.published(held.lsn),
            Err(e) => {
                let message = format!(
                    "commit of journaled batches up to lsn {} failed ({}); the store refuses writes until it is reopened (reopening replays the journal, so they will turn out committed)",
                    held.lsn,
                    detail(&e)
                );
                tracing::error!(lsn = held.lsn, error = %e, "commit failed after its batches were journaled; the store is poisoned");
                journaled.visibility.failed(&message);
                self.backend.abort_held();
                self.poisoned = Some(message);
            }
        }
    }

    /// Commits what is held, makes the database durable recording `marker`,
    /// and resets the journal. A failure poisons the store.
    fn checkpoint(&mut self, marker: Marker) {
        self.commit_held();
        if self.poisoned.is_some() {
            return;
        }
        let Some(journaled) = self.journal.as_mut() else {
            return;
        };
        if marker == Marker::Dirty && journaled.journal.written_since_reset() == 0 {
            return; // nothing to make durable
        }
        match self.backend.checkpoint(marker) {
            Ok(()) => {
                journaled.journal.reset();
                self.counters.count_checkpoint();
                tracing::debug!(lsn = journaled.lsn, ?marker, "memable checkpoint");
            }
            Err(e) => {
                tracing::error!(error = %e, "memable checkpoint failed; the store is poisoned");
                self.poisoned = Some(format!(
                    "a checkpoint failed ({}); the store refuses writes until it is reopened (reopening replays the journal)",
                    detail(&e)
                ));
            }
        }
    }

    /// Applies `ops` as one batch and calls `answer` once they are durable;
    /// see the [module docs](self) for the steps and their failures.
    fn commit(
        &mut self,
        ops: &[WriteOp],
        answer: &mut dyn FnMut(Vec<WriteOutcome>),
    ) -> Result<(), BatchFailure> {
        if let Some(message) = &self.poisoned {
            return Err(BatchFailure::Transaction(
                StorageErrorKind::Poisoned,
                message.clone(),
            ));
        }
        self.backend
            .begin_batch()
            .map_err(|e| BatchFailure::of(&e))?;
        let applied = self.backend.rows().and_then(|mut rows| {
            ops.iter()
                .map(|op| apply(op, &mut rows))
                .collect::<Result<Vec<_>, _>>()
        });
        let outcomes = match applied {
            Ok(outcomes) => outcomes,
            Err(e) => {
                self.backend.abort_batch();
                return Err(BatchFailure::Apply(e));
            }
        };
        let count = ops.len() as u64;
        let Some(journaled) = self.journal.as_mut() else {
            // No journal: the commit is what makes the batch durable.
            let committed = self.backend.commit_batch().and_then(|c| match c {
                Committed::Visible => Ok(()),
                Committed::Held => self.backend.commit_held(),
            });
            if let Err(e) = committed {
                self.backend.abort_held();
                return Err(BatchFailure::of(&e));
            }
            self.counters.count_commit(count);
            answer(outcomes);
            return Ok(());
        };
        let Some(lsn) = journaled.lsn.checked_add(1) else {
            self.backend.abort_batch();
            return Err(BatchFailure::Transaction(
                StorageErrorKind::Other,
                "the journal's lsns are exhausted".into(),
            ));
        };
        if let Err(e) = self.backend.record_lsn(lsn) {
            self.backend.abort_batch();
            return Err(BatchFailure::of(&e));
        }
        if let Err(e) = journaled.journal.append(lsn, ops) {
            self.backend.abort_batch();
            if !journaled.journal.is_failed() {
                // Refused before anything was written (a batch too large
                // for one record): retry its ops one by one.
                return Err(BatchFailure::Apply(e));
            }
            tracing::error!(lsn, error = %e, "memable journal append failed; the store is poisoned");
            // The batches held before this one were answered: commit them.
            self.commit_held();
            return Err(self.poison(format!(
                "{}; the store refuses writes until it is reopened (reopening replays the journal, so this batch may turn out committed)",
                detail(&e)
            )));
        }
        journaled.lsn = lsn;
        journaled.visibility.acknowledged(lsn);
        self.counters.count_commit(count);
        answer(outcomes);
        match self.backend.commit_batch() {
            Ok(Committed::Visible) => journaled.visibility.published(lsn),
            Ok(Committed::Held) => {
                let held = self.held.get_or_insert_with(|| Held {
                    batches: 0,
                    since: Instant::now(),
                    lsn,
                });
                held.batches += 1;
                held.lsn = lsn;
            }
            Err(e) => {
                // The batch is in the journal: the database must not go on
                // without it.
                let message = format!(
                    "commit of journaled lsn {lsn} failed ({}); the store refuses writes until it is reopened (reopening replays the journal, so this batch will turn out committed)",
                    detail(&e)
                );
                tracing::error!(lsn, error = %e, "commit failed after its journal record was synced; the store is poisoned");
                journaled.visibility.failed(&message);
                self.backend.abort_held();
                self.held = None;
                return Err(self.poison(message));
            }
        }
        Ok(())
    }
}
