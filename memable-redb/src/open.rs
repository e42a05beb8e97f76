//! Opening a database: [`RedbStoreBuilder`], error mapping and the format
//! check. Recovery from the journal is [`memable_store::commit::recover`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use memable_core::{EngineError, StorageError, StorageErrorKind};
use memable_store::Durability;
use memable_store::commit::{
    CHECKPOINT_BYTES, DatabaseState, JournalSource, RecoverOptions, open_journal, recover,
};
use memable_store::files::{NewFiles, check_store_path};
use memable_store::journal::{JournalFile, journal_path};
use memable_store::writer::LONE_WRITER_SPIN;
use redb::backends::FileBackend;
use redb::{
    Database, DatabaseError, MultimapTableHandle, ReadableTable, StorageBackend, TableHandle,
};

use crate::RedbStore;
use crate::backend::NoSync;
use crate::tables::{
    BY_STATUS, DIRTY_KEY, FORMAT_KEY, FORMAT_VERSION, FORMAT_WITHOUT_DIRTY, FORMAT_WITHOUT_JOURNAL,
    INSTANCES, JOURNAL, JOURNAL_ID_KEY, LSN_KEY, META, STEPS, TIMERS,
};
use crate::writer::RedbBackend;

/// Configures and opens a [`RedbStore`].
///
/// # Examples
///
/// ```
/// use memable_redb::{Durability, RedbStore};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = RedbStore::builder()
///     .durability(Durability::Relaxed)
///     .open(dir.path().join("wf.redb"))
///     .unwrap();
/// assert_eq!(store.durability(), Durability::Relaxed);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RedbStoreBuilder {
    durability: Durability,
    verify_on_open: bool,
    checkpoint_bytes: u64,
    lone_writer_spin: Duration,
    accept_lost_journal: bool,
}

impl Default for RedbStoreBuilder {
    fn default() -> Self {
        Self {
            durability: Durability::Immediate,
            verify_on_open: true,
            checkpoint_bytes: CHECKPOINT_BYTES,
            lone_writer_spin: LONE_WRITER_SPIN,
            accept_lost_journal: false,
        }
    }
}

impl RedbStoreBuilder {
    /// A builder with the defaults: [`Durability::Immediate`], verification
    /// on open.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_redb::RedbStoreBuilder::new().in_memory().unwrap();
    /// # drop(store);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets when a commit counts as done (default
    /// [`Durability::Immediate`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_redb::{Durability, RedbStore};
    ///
    /// let store = RedbStore::builder().durability(Durability::Relaxed).in_memory().unwrap();
    /// assert_eq!(store.durability(), Durability::Relaxed);
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether opening verifies the checksum of every page (default `true`).
    ///
    /// Verification reads the whole file, so opening a large database takes
    /// longer, but a damaged file is reported as a storage error at open
    /// instead of failing (possibly with a panic inside redb) at some later
    /// read. Turn it off only for large files you trust.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_redb::RedbStore::builder().verify_on_open(false).in_memory().unwrap();
    /// # drop(store);
    /// ```
    pub fn verify_on_open(mut self, verify: bool) -> Self {
        self.verify_on_open = verify;
        self
    }

    /// How many bytes the journal of a journaled store (a file opened with
    /// [`Durability::Immediate`]) may hold before the store checkpoints:
    /// makes redb's file durable with one flushed commit and starts the
    /// journal over. Default: 2 MiB.
    ///
    /// A larger value means fewer checkpoints but a larger journal file,
    /// more to replay when reopening after a crash, and more growth of the
    /// database file between checkpoints (redb reuses the pages its last
    /// durable state occupied only after the next durable commit).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = memable_redb::RedbStore::builder()
    ///     .checkpoint_bytes(512 * 1024)
    ///     .open(dir.path().join("wf.redb"))
    ///     .unwrap();
    /// # drop(store);
    /// ```
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// How long a write that is alone in flight (a lone sequential workflow)
    /// polls for its answer before its task sleeps. Default: 250 µs
    /// ([`LONE_WRITER_SPIN`]).
    ///
    /// Waking a sleeping runtime worker when the answer arrives costs tens
    /// of microseconds on a virtual machine, a sizeable part of a commit
    /// that is one `fdatasync`; polling (the task yields to others between
    /// polls) skips it, at the price of a busy worker while the commit is in
    /// flight. Concurrent writes never poll. `Duration::ZERO` turns polling
    /// off.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let store = memable_redb::RedbStore::builder()
    ///     .lone_writer_spin(Duration::ZERO)
    ///     .in_memory()
    ///     .unwrap();
    /// # drop(store);
    /// ```
    pub fn lone_writer_spin(mut self, spin: Duration) -> Self {
        self.lone_writer_spin = spin;
        self
    }

    /// Whether a database that was not closed cleanly may open although its
    /// journal is missing, empty or cut inside its header (default
    /// `false`: such an open is refused with
    /// [`StorageErrorKind::Incomplete`]). With `true` the store **opens with
    /// what the database holds; work acknowledged since its last checkpoint
    /// is lost.** Use it only once the journal is known to be gone for good.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = memable_redb::RedbStore::builder()
    ///     .accept_lost_journal(true)
    ///     .open(dir.path().join("wf.redb"))
    ///     .unwrap();
    /// # drop(store);
    /// ```
    pub fn accept_lost_journal(mut self, accept: bool) -> Self {
        self.accept_lost_journal = accept;
        self
    }

    fn recover_options(&self) -> RecoverOptions {
        RecoverOptions {
            accept_lost_journal: self.accept_lost_journal,
            checkpoint_bytes: self.checkpoint_bytes,
            durability: self.durability,
        }
    }

    /// Opens the database file at `path`, creating it if it does not exist.
    ///
    /// With [`Durability::Immediate`] the store keeps its write-ahead journal
    /// in `<path>.journal` (created if missing) and replays it first if a
    /// crash left records the database lacks; with [`Durability::Relaxed`] a
    /// journal left there is replayed and removed. See the crate docs, "The
    /// journal of a file store".
    ///
    /// Fails with a storage error whose [`StorageErrorKind`] says why: the
    /// file is open elsewhere ([`Locked`](StorageErrorKind::Locked)), is not
    /// a memable redb file ([`NotMemable`](StorageErrorKind::NotMemable)), is
    /// damaged or its journal is damaged in the middle
    /// ([`Corrupt`](StorageErrorKind::Corrupt)), was written by a newer
    /// memable ([`NewerFormat`](StorageErrorKind::NewerFormat)), or was not
    /// closed cleanly and its journal is missing, emptied, cut, of another
    /// database or does not continue from the database's last commit
    /// ([`Incomplete`](StorageErrorKind::Incomplete); see
    /// [`accept_lost_journal`](Self::accept_lost_journal)).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = memable_redb::RedbStore::builder().open(dir.path().join("wf.redb")).unwrap();
    /// assert!(dir.path().join("wf.redb.journal").exists());
    /// # drop(store);
    /// ```
    pub fn open(self, path: impl AsRef<Path>) -> Result<RedbStore, EngineError> {
        let path = path.as_ref();
        check_store_path(path)?;
        let journal_path = journal_path(path);
        let created = NewFiles::first_open(path, [journal_path.clone()]);
        let opened = self.open_file(path, &journal_path);
        match opened {
            Ok(store) => Ok(store),
            Err(e) => {
                // A first open that failed removes what it created, so a
                // later open finds no half-created file; a `Locked` file
                // was created by the store that holds it.
                if e.storage_kind() != Some(StorageErrorKind::Locked) {
                    created.remove();
                }
                Err(memable_store::files::naming(path, e))
            }
        }
    }

    fn open_file(&self, path: &Path, journal_path: &Path) -> Result<RedbStore, EngineError> {
        let context = path.display().to_string();
        let name = format!("{} (journal of {context})", journal_path.display());
        if !journal_path.exists() && never_created(path, &context)? {
            tracing::warn!(
                database = context,
                "the file holds no redb database (its creation never finished) and has no journal: creating the database anew"
            );
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|file| file.set_len(0))
                .map_err(|e| {
                    StorageError::new(StorageErrorKind::Io, "open", format!("{context}: {e}"))
                })?;
        }
        // Flushed while the journal is replayed; for a `Relaxed` store, not
        // afterwards.
        let sync = Arc::new(AtomicBool::new(true));
        let db = self.create(
            NoSync::new(file_backend(path, &context)?, Arc::clone(&sync)),
            &context,
        )?;
        let state = check_format(&db, &context)?;
        let mut backend = RedbBackend::new(Arc::new(db), true);
        let options = self.recover_options();
        let journaled = open_journal(&mut backend, state, journal_path, &name, options)?;
        // A `Relaxed` store flushes nothing once its old journal is retired.
        sync.store(journaled.is_some(), Ordering::Release);
        let backend = RedbBackend::new(backend.db, journaled.is_some());
        RedbStore::from_backend(
            backend,
            self.durability,
            journaled,
            self.lone_writer_spin,
            Some(path.to_path_buf()),
        )
    }

    /// Opens (or initialises) a database over any redb storage backend with
    /// a write-ahead journal in `journal`, exactly as [`open`](Self::open)
    /// does for a file with [`Durability::Immediate`] (whatever the
    /// builder's durability): commits are made durable by the journal,
    /// checkpoints by durable redb commits, and opening replays the journal.
    ///
    /// Meant for tests that simulate a power loss or inject faults in both
    /// files, and for custom storage. `journal` must be the journal of this
    /// database (or empty): a journal of another database is refused.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use memable_core::{InstanceKey, StepKind, StepRecord, StepStoreExt};
    ///
    /// let backend = redb::backends::InMemoryBackend::new();
    /// let journal = tempfile::tempfile().unwrap();
    /// let store = memable_redb::RedbStore::builder()
    ///     .open_backend_with_journal(backend, journal)
    ///     .unwrap();
    /// let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
    /// store.start_instance(InstanceKey::new("a", "1").unwrap(), input, 0).await.unwrap();
    /// assert_eq!(store.stats().commits, 1);
    /// # });
    /// ```
    pub fn open_backend_with_journal(
        self,
        backend: impl StorageBackend,
        journal: impl JournalFile + 'static,
    ) -> Result<RedbStore, EngineError> {
        let context = "custom backend";
        let db = self.create(backend, context)?;
        let state = check_format(&db, context)?;
        let mut backend = RedbBackend::new(Arc::new(db), true);
        let journaled = recover(
            &mut backend,
            state,
            JournalSource::File(Box::new(journal)),
            "custom journal (of custom backend)",
            self.recover_options(),
        )?;
        RedbStore::from_backend(
            backend,
            Durability::Immediate,
            Some(journaled),
            self.lone_writer_spin,
            None,
        )
    }

    /// Opens a fresh database that lives in memory only (redb's in-memory
    /// backend): nothing survives the store being dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_redb::RedbStore::builder().in_memory().unwrap();
    /// # drop(store);
    /// ```
    pub fn in_memory(self) -> Result<RedbStore, EngineError> {
        self.open_with(redb::backends::InMemoryBackend::new(), "in-memory database")
    }

    /// Opens (or initialises) a database over any redb storage backend — for
    /// example one that injects faults or simulates a power loss in tests.
    ///
    /// # Examples
    ///
    /// ```
    /// let backend = redb::backends::InMemoryBackend::new();
    /// let store = memable_redb::RedbStore::builder().open_backend(backend).unwrap();
    /// # drop(store);
    /// ```
    pub fn open_backend(self, backend: impl StorageBackend) -> Result<RedbStore, EngineError> {
        self.open_with(backend, "custom backend")
    }

    fn open_with(
        self,
        backend: impl StorageBackend,
        context: &str,
    ) -> Result<RedbStore, EngineError> {
        let sync = Arc::new(AtomicBool::new(self.durability == Durability::Immediate));
        let db = self.create(NoSync::new(backend, sync), context)?;
        check_format(&db, context)?;
        tracing::debug!(database = context, durability = ?self.durability, "memable-redb store opened");
        RedbStore::from_backend(
            RedbBackend::new(Arc::new(db), false),
            self.durability,
            None,
            self.lone_writer_spin,
            None,
        )
    }

    fn create(&self, backend: impl StorageBackend, context: &str) -> Result<Database, EngineError> {
        let mut builder = Database::builder();
        builder.set_check_integrity_on_open(self.verify_on_open);
        // redb may panic on some damaged files; report that as a storage
        // error like any other unreadable file.
        match catch_unwind(AssertUnwindSafe(|| builder.create_with_backend(backend))) {
            Ok(result) => result.map_err(|e| open_error(context, e)),
            Err(_) => Err(StorageError::new(
                StorageErrorKind::Corrupt,
                "open",
                format!(
                    "{context}: redb failed while reading the file; it is damaged or not a redb database"
                ),
            )
            .into()),
        }
    }
}

/// The first bytes of every redb file; redb writes them last when it
/// creates a database.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// The bytes of redb's file header (it is 320 bytes long).
const REDB_HEADER: u64 = 512;

/// The largest file [`never_created`] reads through.
const NEVER_CREATED_MAX: u64 = 64 * 1024 * 1024;

/// Whether the file at `path` is one redb began to create and never
/// finished (a crash during the first open, after redb wrote its header but
/// before the magic number it writes last): no magic number (zeros where it
/// goes), a header, and nothing but zeros after it. Such a file holds no
/// data. A file of zeros alone is left for redb to refuse: nothing in it
/// says redb wrote it.
fn never_created(path: &Path, context: &str) -> Result<bool, EngineError> {
    use std::io::Read;
    let io = |e: std::io::Error| {
        StorageError::new(StorageErrorKind::Io, "open", format!("{context}: {e}"))
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(e).into()),
    };
    let len = file.metadata().map_err(io)?.len();
    if len <= REDB_HEADER || len > NEVER_CREATED_MAX {
        return Ok(false);
    }
    let mut chunk = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    let mut header = false;
    loop {
        let n = file.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Ok(header);
        }
        for (i, byte) in chunk[..n].iter().enumerate() {
            let offset = at + i as u64;
            if *byte == 0 {
                continue;
            }
            if offset < REDB_MAGIC.len() as u64 || offset >= REDB_HEADER {
                return Ok(false);
            }
            header = true;
        }
        at += n as u64;
    }
}

/// Makes the raw copy of a running store's file at `temp` a database of its
/// own: opens it (redb repairs the copy of an open file to its last
/// durable commit and verifies every page), marks it cleanly closed, and
/// closes it.
pub(crate) fn seal_backup(temp: &Path) -> Result<(), EngineError> {
    let context = format!("{} (backup copy)", temp.display());
    let fail = |e: &dyn std::fmt::Display| {
        EngineError::from(StorageError::new(
            StorageErrorKind::Io,
            "backup",
            format!("{context}: {e}"),
        ))
    };
    let mut builder = Database::builder();
    builder.set_check_integrity_on_open(true);
    let db = builder.create(temp).map_err(|e| fail(&e))?;
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    txn.open_table(JOURNAL)
        .and_then(|mut table| table.insert(DIRTY_KEY, 0).map(drop).map_err(Into::into))
        .map_err(|e| fail(&e))?;
    txn.commit().map_err(|e| fail(&e))?;
    drop(db);
    Ok(())
}

/// Opens (creating if needed) the database file as a redb backend.
fn file_backend(path: &Path, context: &str) -> Result<FileBackend, EngineError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StorageError::new(StorageErrorKind::Io, "open", format!("{context}: {e}")))?;
    FileBackend::new(file).map_err(|e| open_error(context, e))
}

/// Maps a redb open failure to a storage error that says what to do.
fn open_error(context: &str, e: DatabaseError) -> EngineError {
    use StorageErrorKind::{Corrupt, Io, Locked, NotMemable, Unsupported};
    let (kind, message) = match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => (
            Locked,
            format!(
                "{context}: the database is already open (by another process or another store in this process): {e}"
            ),
        ),
        DatabaseError::UpgradeRequired(version) => (
            Unsupported,
            format!(
                "{context}: the file uses redb file format {version}, which this build cannot open: {e}"
            ),
        ),
        // redb reports a file that does not start with its magic number
        // as corrupted: such a file is not a redb database at all (another
        // file at this path), not a damaged store.
        DatabaseError::Storage(redb::StorageError::Corrupted(detail))
            if detail.contains("magic number") =>
        {
            (
                NotMemable,
                format!("{context}: not a redb database (or its header is damaged): {detail}"),
            )
        }
        DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => (
            Corrupt,
            format!("{context}: not a redb database, or the file is damaged: {detail}"),
        ),
        DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            (
                NotMemable,
                format!("{context}: not a redb database (the file is too short): {io}"),
            )
        }
        DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData
                && io.to_string().contains("magic number") =>
        {
            (
                NotMemable,
                format!("{context}: not a redb database (or its header is damaged): {io}"),
            )
        }
        DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            (
                Corrupt,
                format!("{context}: not a redb database, or the file is damaged: {io}"),
            )
        }
        other => (Io, format!("{context}: {other}")),
    };
    StorageError::new(kind, "open", message).into()
}

/// A redb call failed while checking the format.
fn format_error(context: &str, e: &dyn std::fmt::Display) -> EngineError {
    StorageError::new(
        StorageErrorKind::Io,
        "open",
        format!("{context}: checking the format: {e}"),
    )
    .into()
}

fn not_memable(context: &str, why: &str) -> EngineError {
    StorageError::new(
        StorageErrorKind::NotMemable,
        "open",
        format!("{context}: not a memable database ({why})"),
    )
    .into()
}

/// Checks the stored format version, or writes it into an empty database,
/// and creates the tables. Returns what the database says about its
/// journal (an id is drawn the first time).
fn check_format(db: &Database, context: &str) -> Result<DatabaseState, EngineError> {
    let fail = |e: &dyn std::fmt::Display| format_error(context, e);
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    let mut has_meta = false;
    let mut others = Vec::new();
    for table in txn.list_tables().map_err(|e| fail(&e))? {
        if table.name() == META.name() {
            has_meta = true;
        } else {
            others.push(table.name().to_owned());
        }
    }
    for table in txn.list_multimap_tables().map_err(|e| fail(&e))? {
        others.push(table.name().to_owned());
    }
    if has_meta {
        let mut meta = txn
            .open_table(META)
            .map_err(|e| not_memable(context, &format!("unexpected memable_meta table: {e}")))?;
        let stored = meta
            .get(FORMAT_KEY)
            .map_err(|e| fail(&e))?
            .map(|v| v.value());
        match stored {
            Some(FORMAT_VERSION) => {}
            Some(version @ (FORMAT_WITHOUT_JOURNAL | FORMAT_WITHOUT_DIRTY)) => {
                // Its journal table is created below if missing; without a
                // dirty marker it counts as clean, as format 2 did.
                tracing::info!(
                    database = context,
                    from = version,
                    "upgrading a memable-redb file to format {FORMAT_VERSION}"
                );
                meta.insert(FORMAT_KEY, FORMAT_VERSION)
                    .map_err(|e| fail(&e))?;
            }
            Some(version) if version > FORMAT_VERSION => {
                return Err(StorageError::new(
                    StorageErrorKind::NewerFormat,
                    "open",
                    format!(
                        "{context}: written by a newer memable (format version {version}; this build reads format version {FORMAT_VERSION}); upgrade memable to open it"
                    ),
                )
                .into());
            }
            Some(version) => {
                return Err(StorageError::new(
                    StorageErrorKind::NotMemable,
                    "open",
                    format!(
                        "{context}: unknown memable format version {version} (this build reads format version {FORMAT_VERSION})"
                    ),
                )
                .into());
            }
            None => return Err(not_memable(context, "it has no format version")),
        }
    } else if !others.is_empty() {
        return Err(not_memable(
            context,
            &format!("it holds other tables: {}", others.join(", ")),
        ));
    } else {
        let mut meta = txn.open_table(META).map_err(|e| fail(&e))?;
        meta.insert(FORMAT_KEY, FORMAT_VERSION)
            .map_err(|e| fail(&e))?;
    }
    let mismatch = |e: redb::TableError| not_memable(context, &e.to_string());
    txn.open_table(INSTANCES).map_err(mismatch)?;
    txn.open_table(BY_STATUS).map_err(mismatch)?;
    txn.open_table(STEPS).map_err(mismatch)?;
    txn.open_table(TIMERS).map_err(mismatch)?;
    let state = journal_state(&txn, context)?;
    txn.commit().map_err(|e| fail(&e))?;
    Ok(state)
}

/// The journal bookkeeping of the database in `txn` (an id is drawn the
/// first time).
fn journal_state(
    txn: &redb::WriteTransaction,
    context: &str,
) -> Result<DatabaseState, EngineError> {
    let fail = |e: &dyn std::fmt::Display| format_error(context, e);
    let mismatch = |e: redb::TableError| not_memable(context, &e.to_string());
    let state = {
        let mut journal = txn.open_table(JOURNAL).map_err(mismatch)?;
        let lsn = journal
            .get(LSN_KEY)
            .map_err(|e| fail(&e))?
            .map_or(0, |v| v.value());
        let stored = journal
            .get(JOURNAL_ID_KEY)
            .map_err(|e| fail(&e))?
            .map(|v| v.value());
        let id = if let Some(id) = stored {
            id
        } else {
            let id = fastrand::u64(1..);
            journal.insert(JOURNAL_ID_KEY, id).map_err(|e| fail(&e))?;
            id
        };
        let dirty = journal
            .get(DIRTY_KEY)
            .map_err(|e| fail(&e))?
            .is_some_and(|v| v.value() != 0);
        DatabaseState {
            lsn,
            journal_id: id,
            dirty,
        }
    };
    Ok(state)
}
