//! Opening a store: file checks, the lock file, pragmas, migrations.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use memable_core::{EngineError, StorageError, StorageErrorKind};
use memable_store::commit::{
    CHECKPOINT_BYTES, Journaled, RecoverOptions, WriterConfig, open_journal,
};
use memable_store::files::{NewFiles, check_store_path};
use memable_store::journal::journal_path;
use memable_store::writer::LONE_WRITER_SPIN;
use memable_store::{Counters, Durability};
use rusqlite::{Connection, OpenFlags};

use crate::readers::Readers;
use crate::schema;
use crate::store::{Shared, SqliteStore};
use crate::writer::{SqliteBackend, Writer, database_state};

/// Configures and opens a [`SqliteStore`].
///
/// # Examples
///
/// ```
/// use memable_sqlite::{Durability, SqliteStore};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::builder()
///     .durability(Durability::Relaxed)
///     .open(dir.path().join("memable.db"))
///     .unwrap();
/// assert_eq!(store.durability(), Durability::Relaxed);
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct SqliteStoreBuilder {
    durability: Durability,
    lone_writer_spin: Option<Duration>,
    checkpoint_bytes: Option<u64>,
    accept_lost_journal: bool,
}

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The lock file beside a database: `<db>.memable-lock`.
const LOCK_SUFFIX: &str = ".memable-lock";

/// How often a held lock is tried again before the open reports `Locked`,
/// and the pause between tries (100 ms in all).
const LOCK_RETRIES: u32 = 20;
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// The kind of a failed SQLite call at open.
pub(crate) fn sqlite_kind(e: &rusqlite::Error) -> StorageErrorKind {
    use rusqlite::ErrorCode::{
        CannotOpen, DatabaseBusy, DatabaseCorrupt, DatabaseLocked, DiskFull, NotADatabase,
        ReadOnly, SystemIoFailure,
    };
    match e.sqlite_error_code() {
        Some(NotADatabase) => StorageErrorKind::NotMemable,
        Some(DatabaseCorrupt) => StorageErrorKind::Corrupt,
        Some(DatabaseBusy | DatabaseLocked) => StorageErrorKind::Locked,
        Some(CannotOpen | DiskFull | ReadOnly | SystemIoFailure) => StorageErrorKind::Io,
        _ => StorageErrorKind::Other,
    }
}

/// `map_err` adapter for a SQLite call at open, with its precise kind.
fn sqlite_error(operation: &'static str) -> impl Fn(rusqlite::Error) -> EngineError {
    move |e| StorageError::new(sqlite_kind(&e), operation, e).into()
}

impl SqliteStoreBuilder {
    /// When a commit counts as done (default [`Durability::Immediate`]).
    ///
    /// `Immediate`: an acknowledged write survives a power loss (a file
    /// store makes it durable through its journal, see the crate docs; the
    /// in-memory store with `PRAGMA synchronous = FULL`). `Relaxed`:
    /// `PRAGMA synchronous = NORMAL` and no journal — an acknowledged write
    /// survives a process crash, but a power loss may undo the last commits
    /// (never damage the file).
    ///
    /// # Examples
    ///
    /// See [`SqliteStoreBuilder`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How many bytes the journal of a file store opened with
    /// [`Durability::Immediate`] may hold before the store checkpoints (one
    /// commit with `synchronous = FULL`, then the journal starts over).
    /// Default: 2 MiB. A larger value means fewer checkpoints but a larger
    /// journal file and more to replay after a crash.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = memable_sqlite::SqliteStore::builder()
    ///     .checkpoint_bytes(512 * 1024)
    ///     .open(dir.path().join("wf.db"))
    ///     .unwrap();
    /// # drop(store);
    /// ```
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = Some(bytes);
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
    /// let store = memable_sqlite::SqliteStore::builder()
    ///     .accept_lost_journal(true)
    ///     .open(dir.path().join("wf.db"))
    ///     .unwrap();
    /// # drop(store);
    /// ```
    pub fn accept_lost_journal(mut self, accept: bool) -> Self {
        self.accept_lost_journal = accept;
        self
    }

    fn recover_options(self) -> RecoverOptions {
        RecoverOptions {
            accept_lost_journal: self.accept_lost_journal,
            checkpoint_bytes: self.checkpoint_bytes.unwrap_or(CHECKPOINT_BYTES),
            durability: self.durability,
        }
    }

    /// How long a write that is alone in flight (a lone sequential workflow)
    /// polls for its answer before its task sleeps. Default: 250 µs
    /// ([`LONE_WRITER_SPIN`]).
    ///
    /// Waking a sleeping runtime worker when the answer arrives costs tens
    /// of microseconds on a virtual machine; polling (the task yields to
    /// others between polls) skips it, at the price of a busy worker while
    /// the commit is in flight. Concurrent writes never poll.
    /// `Duration::ZERO` turns polling off.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let store = memable_sqlite::SqliteStore::builder()
    ///     .lone_writer_spin(Duration::ZERO)
    ///     .in_memory()
    ///     .unwrap();
    /// # drop(store);
    /// ```
    pub fn lone_writer_spin(mut self, spin: Duration) -> Self {
        self.lone_writer_spin = Some(spin);
        self
    }

    /// Opens (or creates) the database file at `path`.
    ///
    /// Errors (a storage error whose [`StorageErrorKind`] says why): the
    /// file is not a SQLite database, is a SQLite database of another
    /// application, has a newer memable schema, is damaged, is in use by
    /// another memable store (in this or another process), its journal is
    /// damaged in the middle ([`Corrupt`](StorageErrorKind::Corrupt)), or
    /// the database was not closed cleanly and its journal is missing,
    /// emptied, cut, of another database or does not continue from the
    /// database's last commit ([`Incomplete`](StorageErrorKind::Incomplete);
    /// see [`accept_lost_journal`](Self::accept_lost_journal)).
    ///
    /// # Examples
    ///
    /// See [`SqliteStoreBuilder`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, EngineError> {
        let path = path.as_ref();
        check_store_path(path)?;
        let side = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        let created = NewFiles::first_open(
            path,
            [
                journal_path(path),
                side("-wal"),
                side("-shm"),
                side(LOCK_SUFFIX),
            ],
        );
        match self.open_file(path) {
            Ok(store) => Ok(store),
            Err(e) => {
                // A first open that failed removes what it created (its
                // connections and lock are closed by now), so no later
                // open finds a half-made store; a `Locked` database was
                // created by the store that holds it.
                if e.storage_kind() != Some(StorageErrorKind::Locked) {
                    created.remove();
                }
                Err(memable_store::files::naming(path, e))
            }
        }
    }

    fn open_file(self, path: &Path) -> Result<SqliteStore, EngineError> {
        check_header(path)?;
        let lock = lock_file(path)?;
        let target = path.to_string_lossy().into_owned();
        let writer = self.connect_writer(&target, true)?;
        let journal_path = journal_path(path);
        let name = format!("{} (journal of {})", journal_path.display(), path.display());
        let state = database_state(&writer)?;
        let mut backend = SqliteBackend::new(writer, true, "NORMAL");
        let options = self.recover_options();
        let journaled = open_journal(&mut backend, state, &journal_path, &name, options)?;
        let backend = if journaled.is_some() {
            backend
        } else {
            backend.unjournaled()
        };
        self.finish(
            backend,
            &target,
            Some(lock),
            Some(path.to_path_buf()),
            journaled,
        )
    }

    /// A store in memory (SQLite's `memdb`), shared by the store's
    /// connections and gone when the store is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_sqlite::SqliteStore::builder().in_memory().unwrap();
    /// # let _ = store;
    /// ```
    pub fn in_memory(self) -> Result<SqliteStore, EngineError> {
        let target = format!("file:/memable-{}?vfs=memdb", uuid::Uuid::new_v4());
        let writer = self.connect_writer(&target, false)?;
        let synchronous = match self.durability {
            Durability::Immediate => "FULL",
            Durability::Relaxed => "NORMAL",
        };
        let backend = SqliteBackend::new(writer, false, synchronous);
        self.finish(backend, &target, None, None, None)
    }

    fn connect_writer(self, target: &str, wal: bool) -> Result<Connection, EngineError> {
        let op = "open";
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let mut conn = Connection::open_with_flags(target, flags).map_err(sqlite_error(op))?;
        let journal = if wal { "WAL" } else { "MEMORY" };
        // A file store commits without a flush: with `Immediate` its
        // journal makes commits durable, checkpoints flush the WAL.
        let synchronous = match (self.durability, wal) {
            (Durability::Immediate, false) => "FULL",
            _ => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous};"
        ))
        .map_err(sqlite_error(op))?;
        let mode: String = conn
            .query_row(&format!("PRAGMA journal_mode = {journal}"), [], |row| {
                row.get(0)
            })
            .map_err(sqlite_error(op))?;
        if !mode.eq_ignore_ascii_case(journal) {
            return Err(StorageError::new(
                StorageErrorKind::Unsupported,
                op,
                format!("SQLite could not switch the database to journal mode {journal} (it is in {mode})"),
            )
            .into());
        }
        schema::migrate(&mut conn)?;
        Ok(conn)
    }

    fn finish(
        self,
        backend: SqliteBackend,
        target: &str,
        lock: Option<File>,
        path: Option<PathBuf>,
        journaled: Option<Journaled>,
    ) -> Result<SqliteStore, EngineError> {
        let counters = Arc::new(Counters::default());
        let visibility = journaled.as_ref().map(|j| Arc::clone(j.visibility()));
        let writer = Writer::spawn(
            "memable-sqlite-writer",
            backend,
            journaled,
            Arc::clone(&counters),
            WriterConfig {
                lone_writer_spin: self.lone_writer_spin.unwrap_or(LONE_WRITER_SPIN),
                ..WriterConfig::default()
            },
        )?;
        let readers = Readers::new(target, visibility.as_ref())?;
        Ok(SqliteStore::from_shared(Shared {
            writer: Some(writer),
            readers,
            counters,
            durability: self.durability,
            path,
            _lock: lock,
        }))
    }
}

/// Refuses an existing non-empty file that does not start with SQLite's header.
fn check_header(path: &Path) -> Result<(), EngineError> {
    let op = "open";
    let Ok(mut file) = File::open(path) else {
        return Ok(()); // Missing: SQLite creates it.
    };
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => {
                return Err(StorageError::new(
                    StorageErrorKind::Io,
                    op,
                    format!("{}: {e}", path.display()),
                )
                .into());
            }
        }
    }
    if read == 0 || header == *SQLITE_HEADER {
        Ok(())
    } else {
        Err(StorageError::new(
            StorageErrorKind::NotMemable,
            op,
            format!("{} is not a SQLite database (bad header)", path.display()),
        )
        .into())
    }
}

/// Takes the exclusive advisory lock that keeps a second memable store —
/// in this or another process — off the same database.
fn lock_file(path: &Path) -> Result<File, EngineError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(LOCK_SUFFIX);
    let lock_path = PathBuf::from(lock_path);
    let lock_error = |e: std::io::Error| -> EngineError {
        StorageError::new(
            StorageErrorKind::Io,
            "open",
            format!("lock file {}: {e}", lock_path.display()),
        )
        .into()
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(lock_error)?;
    // A lock held only by a copy of another store's descriptor in a child
    // process between its fork and its exec (every descriptor is
    // close-on-exec) is gone within moments: retry briefly before
    // reporting the database in use.
    let mut attempt = 0;
    let locked = loop {
        match fs4::FileExt::try_lock(&file) {
            Err(fs4::TryLockError::WouldBlock) if attempt < LOCK_RETRIES => {
                attempt += 1;
                std::thread::sleep(LOCK_RETRY_PAUSE);
            }
            other => break other,
        }
    };
    match locked {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => Err(StorageError::new(
            StorageErrorKind::Locked,
            "open",
            format!(
                "{} is in use by another memable store (in this or another process); \
                 one engine owns a database at a time",
                path.display()
            ),
        )
        .into()),
        Err(fs4::TryLockError::Error(e)) => Err(lock_error(e)),
    }
}

/// [`SqliteStore::open_read_only`]: checks the file and its schema through
/// a read-only connection, then opens the readers; no lock, no writer.
pub(crate) fn open_read_only(path: &Path) -> Result<SqliteStore, EngineError> {
    let op = "open read-only";
    check_store_path(path)?;
    let missing = || -> EngineError {
        StorageError::new(
            StorageErrorKind::Io,
            op,
            format!("{}: no such database file", path.display()),
        )
        .into()
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > 0 => {}
        Ok(_) => {
            return Err(StorageError::new(
                StorageErrorKind::NotMemable,
                op,
                format!("{} is empty, not a memable database", path.display()),
            )
            .into());
        }
        Err(_) => return Err(missing()),
    }
    check_header(path)?;
    let target = path.to_string_lossy().into_owned();
    let probe = Connection::open_with_flags(
        &target,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error(op))?;
    probe
        .execute_batch("PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;")
        .map_err(sqlite_error(op))?;
    let application_id: i32 = probe
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(sqlite_error(op))?;
    let version: i64 = probe
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sqlite_error(op))?;
    drop(probe);
    if application_id != schema::APPLICATION_ID {
        return Err(StorageError::new(
            StorageErrorKind::NotMemable,
            op,
            format!(
                "{} is not a memable database (application_id {application_id:#x})",
                path.display()
            ),
        )
        .into());
    }
    if version != schema::SCHEMA_VERSION {
        let (kind, what) = if version > schema::SCHEMA_VERSION {
            (StorageErrorKind::NewerFormat, "newer; upgrade memable")
        } else {
            (
                StorageErrorKind::Unsupported,
                "older; open it read-write once to migrate it",
            )
        };
        return Err(StorageError::new(
            kind,
            op,
            format!(
                "{} has schema version {version}, this memable reads {} ({what})",
                path.display(),
                schema::SCHEMA_VERSION
            ),
        )
        .into());
    }
    let readers = Readers::new(&target, None)?;
    Ok(SqliteStore::from_shared(Shared {
        writer: None,
        readers,
        counters: Arc::new(Counters::default()),
        durability: Durability::default(),
        path: Some(path.to_path_buf()),
        _lock: None,
    }))
}
