//! [`RedbStore`]: the [`StepStore`] implementation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use memable_core::transitions::{WriteOp, WriteOutcome};
use memable_core::{
    EngineError, InstanceFilter, InstanceKey, InstanceSnapshot, StepRecord, StepStore, TimerEntry,
    WorkflowMetadata,
};
use memable_core::{StorageError, StorageErrorKind};
use memable_store::commit::{Journaled, WriterConfig};
use memable_store::files::BackupFile;
use memable_store::readers::ReaderPool;
use memable_store::{Counters, Durability, StoreStats};

use crate::open::RedbStoreBuilder;
use crate::read::{Reader, Snapshot};
use crate::writer::{RedbBackend, Writer};

/// Reader threads per store. Reads are served from redb's page cache in
/// batches, so two threads keep up with many concurrent runs.
const READER_THREADS: usize = 2;

/// A durable [`StepStore`] over a redb database (a file, or memory).
///
/// Clones are cheap and share the database and its writer thread; the file
/// is closed when the last clone is dropped (the drop waits for the writer
/// thread to finish, so the file can be reopened right away).
///
/// # Examples
///
/// ```
/// use memable_core::{InstanceKey, StartOutcome, StepKind, StepRecord, StepStore, StepStoreExt};
/// use memable_redb::RedbStore;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = RedbStore::open(dir.path().join("wf.redb")).unwrap();
/// let key = InstanceKey::new("etl", "1").unwrap();
/// let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
/// assert_eq!(store.start_instance(key.clone(), input, 0).await.unwrap(), StartOutcome::Started);
/// drop(store);
///
/// let store = RedbStore::open(dir.path().join("wf.redb")).unwrap();
/// assert!(store.get_metadata(&key).await.unwrap().is_some());
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct RedbStore {
    inner: Arc<Inner>,
    slot: memable_core::EngineSlot,
}

#[derive(Debug)]
struct Inner {
    // The writer and the readers each join their threads on drop, and
    // those threads hold the only database handles: the file is closed when
    // the last clone of the store is dropped.
    writer: Writer,
    readers: ReaderPool<Reader>,
    counters: Arc<Counters>,
    durability: Durability,
    /// The database file of a file store.
    path: Option<PathBuf>,
}

impl RedbStore {
    /// Opens (or creates) the database file at `path` with the default
    /// settings ([`Durability::Immediate`], verification on open).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = memable_redb::RedbStore::open(dir.path().join("wf.redb")).unwrap();
    /// # drop(store);
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EngineError> {
        RedbStoreBuilder::new().open(path)
    }

    /// A store on redb's in-memory backend: no file, nothing survives the
    /// last handle being dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_redb::RedbStore::in_memory().unwrap();
    /// # drop(store);
    /// ```
    pub fn in_memory() -> Result<Self, EngineError> {
        RedbStoreBuilder::new().in_memory()
    }

    /// A builder for other settings (durability, verification, custom
    /// backends).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_redb::{Durability, RedbStore};
    ///
    /// let store = RedbStore::builder().durability(Durability::Relaxed).in_memory().unwrap();
    /// # drop(store);
    /// ```
    pub fn builder() -> RedbStoreBuilder {
        RedbStoreBuilder::new()
    }

    pub(crate) fn from_backend(
        backend: RedbBackend,
        durability: Durability,
        journal: Option<Journaled>,
        lone_writer_spin: std::time::Duration,
        path: Option<PathBuf>,
    ) -> Result<Self, EngineError> {
        let db = Arc::clone(&backend.db);
        let counters = Arc::new(Counters::default());
        let visibility = journal.as_ref().map(|j| Arc::clone(j.visibility()));
        let writer = Writer::spawn(
            "memable-redb-writer",
            backend,
            journal,
            Arc::clone(&counters),
            WriterConfig {
                lone_writer_spin,
                ..WriterConfig::default()
            },
        )?;
        let readers = (0..READER_THREADS)
            .map(|_| Reader::new(Arc::clone(&db), visibility.clone()))
            .collect();
        let readers = ReaderPool::new("memable-redb-reader", readers)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                readers,
                counters,
                durability,
                path,
            }),
            slot: memable_core::EngineSlot::new(),
        })
    }

    /// The durability this store commits with.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_redb::{Durability, RedbStore};
    ///
    /// assert_eq!(RedbStore::in_memory().unwrap().durability(), Durability::Immediate);
    /// ```
    #[must_use]
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Commit counters since the store was opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, StepKind, StepRecord, StepStoreExt};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = memable_redb::RedbStore::in_memory().unwrap();
    /// let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
    /// store.start_instance(InstanceKey::new("a", "1").unwrap(), input, 0).await.unwrap();
    /// assert_eq!(store.stats().commits, 1);
    /// # });
    /// ```
    #[must_use]
    pub fn stats(&self) -> StoreStats {
        self.inner.counters.stats()
    }

    /// Writes a consistent copy of the database to `path`, a single redb
    /// file that opens as a store of its own (no journal needed: it is
    /// marked as cleanly closed) and holds every write acknowledged before
    /// the call. The engine keeps running; writes wait while the file is
    /// copied (after a checkpoint, between two group commits).
    ///
    /// The copy is written under a temporary name beside `path`, checked
    /// (redb verifies every page), synced and only then moved into place,
    /// so a crash or a failure never leaves a partial file at `path`. See
    /// the crate docs, "Files and backups".
    ///
    /// # Errors
    ///
    /// [`StorageErrorKind::Unsupported`](memable_core::StorageErrorKind::Unsupported)
    /// if something is at `path` already (a backup never overwrites) or
    /// the store has no file (in memory, a custom backend);
    /// [`Io`](memable_core::StorageErrorKind::Io) if the copy cannot be
    /// written; [`Poisoned`](memable_core::StorageErrorKind::Poisoned) if
    /// the store is poisoned.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, StepKind, StepRecord, StepStore, StepStoreExt};
    /// use memable_redb::RedbStore;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = RedbStore::open(dir.path().join("wf.redb")).unwrap();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
    /// store.start_instance(key.clone(), input, 0).await.unwrap();
    /// store.backup(dir.path().join("copy.redb")).await.unwrap();
    ///
    /// let copy = RedbStore::open(dir.path().join("copy.redb")).unwrap();
    /// assert!(copy.get_metadata(&key).await.unwrap().is_some());
    /// # });
    /// ```
    pub async fn backup(&self, path: impl AsRef<Path>) -> Result<(), EngineError> {
        let Some(source) = self.inner.path.clone() else {
            return Err(StorageError::new(
                StorageErrorKind::Unsupported,
                "backup",
                "this store has no database file (in memory, or a custom backend): there is nothing to copy",
            )
            .into());
        };
        let target = BackupFile::new(path.as_ref())?;
        let temp = target.temp().to_path_buf();
        let name = source.display().to_string();
        // On the writer thread, after the checkpoint `run` takes: the file
        // holds every acknowledged write in its last durable commit, and
        // nothing writes to it while it is copied.
        self.inner
            .writer
            .run("backup", move |_| {
                std::fs::copy(&source, &temp).map(drop).map_err(|e| {
                    EngineError::from(StorageError::new(
                        StorageErrorKind::Io,
                        "backup",
                        format!("copy {name} to {}: {e}", temp.display()),
                    ))
                })
            })
            .await?;
        tokio::task::spawn_blocking(move || {
            crate::open::seal_backup(target.temp())?;
            target.finish()
        })
        .await
        .map_err(|e| EngineError::storage("backup", e.to_string()))?
    }

    /// Runs a blocking read on the reader threads, from the snapshot of the
    /// batch it lands in.
    async fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Snapshot) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        self.inner
            .readers
            .read(operation, move |reader| f(reader.snapshot(operation)?))
            .await
    }
}

#[async_trait]
impl StepStore for RedbStore {
    fn engine_slot(&self) -> &memable_core::EngineSlot {
        &self.slot
    }

    fn name(&self) -> &'static str {
        "redb"
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        self.inner.writer.submit(op).await
    }

    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        let key = key.clone();
        self.read("load_instance", move |s| s.load_instance(&key))
            .await
    }

    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        let (key, step_key) = (key.clone(), step_key.to_owned());
        self.read("get_step", move |s| s.get_step(&key, &step_key))
            .await
    }

    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        let key = key.clone();
        self.read("get_metadata", move |s| s.get_metadata(&key))
            .await
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        let filter = filter.clone();
        self.read("list_instances", move |s| s.list_instances(&filter))
            .await
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        self.read("due_timers", move |s| s.due_timers(now_ms, limit))
            .await
    }

    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        self.read("next_timer_deadline", Snapshot::next_timer_deadline)
            .await
    }
}
