//! Opening a database: [`RedbStoreBuilder`], [`Durability`], error mapping
//! and the format check.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use memable_core::EngineError;
use redb::{
    Database, DatabaseError, MultimapTableHandle, ReadableTable, StorageBackend, TableHandle,
};

use crate::RedbStore;
use crate::backend::NoSync;
use crate::tables::{BY_STATUS, FORMAT_KEY, FORMAT_VERSION, INSTANCES, META, STEPS, TIMERS};

/// When a commit counts as done.
///
/// # Examples
///
/// ```
/// use memable_redb::Durability;
///
/// assert_eq!(Durability::default(), Durability::Immediate);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Every commit is flushed to the disk (`fsync`) before it is
    /// acknowledged: an acknowledged transition survives a process crash and
    /// a power loss. The default.
    #[default]
    Immediate,
    /// Every commit is written to the file but not flushed: an acknowledged
    /// transition survives the process crashing or being killed (the
    /// operating system still holds the write), but a power loss or an OS
    /// crash may lose recent commits, and — because the OS may write pages
    /// out of order — may leave a file that needs repair or cannot be opened.
    /// Much faster where `fsync` is slow.
    Relaxed,
}

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
}

impl Default for RedbStoreBuilder {
    fn default() -> Self {
        Self {
            durability: Durability::Immediate,
            verify_on_open: true,
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

    /// Opens the database file at `path`, creating it if it does not exist.
    ///
    /// Fails with a clear [`EngineError::Storage`] if the file is open
    /// elsewhere (another process or another store in this one), is not a
    /// redb file, is damaged, or was written by a newer memable.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = memable_redb::RedbStore::builder().open(dir.path().join("wf.redb")).unwrap();
    /// # drop(store);
    /// ```
    pub fn open(self, path: impl AsRef<Path>) -> Result<RedbStore, EngineError> {
        let path = path.as_ref();
        let context = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| EngineError::storage("open", format!("{context}: {e}")))?;
        let backend =
            redb::backends::FileBackend::new(file).map_err(|e| open_error(&context, e))?;
        self.open_with(backend, &context)
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
        let db = match self.durability {
            Durability::Immediate => self.create(backend, context)?,
            Durability::Relaxed => self.create(NoSync(backend), context)?,
        };
        check_format(&db, context)?;
        tracing::debug!(database = context, durability = ?self.durability, "memable-redb store opened");
        RedbStore::from_database(db, self.durability)
    }

    fn create(&self, backend: impl StorageBackend, context: &str) -> Result<Database, EngineError> {
        let mut builder = Database::builder();
        builder.set_check_integrity_on_open(self.verify_on_open);
        // redb may panic on some damaged files; report that as a storage
        // error like any other unreadable file.
        match catch_unwind(AssertUnwindSafe(|| builder.create_with_backend(backend))) {
            Ok(result) => result.map_err(|e| open_error(context, e)),
            Err(_) => Err(EngineError::storage(
                "open",
                format!(
                    "{context}: redb failed while reading the file; it is damaged or not a redb database"
                ),
            )),
        }
    }
}

/// Maps a redb open failure to a storage error that says what to do.
fn open_error(context: &str, e: DatabaseError) -> EngineError {
    let message = match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => format!(
            "{context}: the database is already open (by another process or another store in this process): {e}"
        ),
        DatabaseError::UpgradeRequired(version) => format!(
            "{context}: the file uses redb file format {version}, which this build cannot open: {e}"
        ),
        DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            format!("{context}: not a redb database, or the file is damaged: {detail}")
        }
        DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            format!("{context}: not a redb database (the file is too short): {io}")
        }
        DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            format!("{context}: not a redb database, or the file is damaged: {io}")
        }
        other => format!("{context}: {other}"),
    };
    EngineError::storage("open", message)
}

fn not_memable(context: &str, why: &str) -> EngineError {
    EngineError::storage("open", format!("{context}: not a memable database ({why})"))
}

/// Checks the stored format version, or writes it into an empty database,
/// and creates the tables.
fn check_format(db: &Database, context: &str) -> Result<(), EngineError> {
    let fail = |e: &dyn std::fmt::Display| {
        EngineError::storage("open", format!("{context}: checking the format: {e}"))
    };
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
        let meta = txn
            .open_table(META)
            .map_err(|e| not_memable(context, &format!("unexpected memable_meta table: {e}")))?;
        let stored = meta
            .get(FORMAT_KEY)
            .map_err(|e| fail(&e))?
            .map(|v| v.value());
        match stored {
            Some(FORMAT_VERSION) => {}
            Some(version) if version > FORMAT_VERSION => {
                return Err(EngineError::storage(
                    "open",
                    format!(
                        "{context}: written by a newer memable (format version {version}; this build reads format version {FORMAT_VERSION}); upgrade memable to open it"
                    ),
                ));
            }
            Some(version) => {
                return Err(EngineError::storage(
                    "open",
                    format!(
                        "{context}: unknown memable format version {version} (this build reads format version {FORMAT_VERSION})"
                    ),
                ));
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
    txn.commit().map_err(|e| fail(&e))
}
