//! Opening a store: file checks, the lock file, pragmas, migrations.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memable_core::EngineError;
use rusqlite::{Connection, OpenFlags};

use crate::readers::Readers;
use crate::schema;
use crate::store::{Shared, SqliteStore};
use crate::writer::{Counters, Writer};

/// How hard a commit is pushed to disk.
///
/// # Examples
///
/// ```
/// use memable_sqlite::Synchronous;
/// assert_eq!(Synchronous::default(), Synchronous::Full);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `PRAGMA synchronous = FULL`: every commit is fsynced before it is
    /// acknowledged — it survives a process crash and a power loss.
    #[default]
    Full,
    /// `PRAGMA synchronous = NORMAL`: in WAL mode commits are not fsynced
    /// one by one — they survive a process crash, but a power loss may undo
    /// the last commits (never corrupt the file). Faster.
    Normal,
}

/// Configures and opens a [`SqliteStore`].
///
/// # Examples
///
/// ```
/// use memable_sqlite::{SqliteStore, Synchronous};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::builder()
///     .synchronous(Synchronous::Normal)
///     .open(dir.path().join("memable.db"))
///     .unwrap();
/// assert_eq!(store.synchronous(), Synchronous::Normal);
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct SqliteStoreBuilder {
    synchronous: Synchronous,
}

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

impl SqliteStoreBuilder {
    /// The durability of commits; see [`Synchronous`].
    ///
    /// # Examples
    ///
    /// See [`SqliteStoreBuilder`].
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Opens (or creates) the database file at `path`.
    ///
    /// Errors ([`EngineError::Storage`]): the file is not a SQLite database,
    /// is a SQLite database of another application, has a newer memable
    /// schema, is damaged, or is in use by another memable store (in this or
    /// another process).
    ///
    /// # Examples
    ///
    /// See [`SqliteStoreBuilder`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, EngineError> {
        let path = path.as_ref();
        check_header(path)?;
        let lock = lock_file(path)?;
        let target = path.to_string_lossy().into_owned();
        let writer = self.connect_writer(&target, true)?;
        self.finish(writer, &target, Some(lock), Some(path.to_path_buf()))
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
        self.finish(writer, &target, None, None)
    }

    fn connect_writer(self, target: &str, wal: bool) -> Result<Connection, EngineError> {
        let op = "open";
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let mut conn =
            Connection::open_with_flags(target, flags).map_err(|e| EngineError::storage(op, e))?;
        let journal = if wal { "WAL" } else { "MEMORY" };
        let synchronous = match self.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous};"
        ))
        .map_err(|e| EngineError::storage(op, e))?;
        let mode: String = conn
            .query_row(&format!("PRAGMA journal_mode = {journal}"), [], |row| {
                row.get(0)
            })
            .map_err(|e| EngineError::storage(op, e))?;
        if !mode.eq_ignore_ascii_case(journal) {
            return Err(EngineError::storage(
                op,
                format!("could not switch the journal to {journal} (got {mode})"),
            ));
        }
        schema::migrate(&mut conn)?;
        Ok(conn)
    }

    fn finish(
        self,
        writer: Connection,
        target: &str,
        lock: Option<File>,
        path: Option<PathBuf>,
    ) -> Result<SqliteStore, EngineError> {
        let counters = Arc::new(Counters::default());
        let writer = Writer::spawn(writer, Arc::clone(&counters))?;
        let readers = Readers::new(target)?;
        Ok(SqliteStore::from_shared(Shared {
            writer,
            readers,
            counters,
            synchronous: self.synchronous,
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
            Err(e) => return Err(EngineError::storage(op, e)),
        }
    }
    if read == 0 || header == *SQLITE_HEADER {
        Ok(())
    } else {
        Err(EngineError::storage(
            op,
            format!("{} is not a SQLite database (bad header)", path.display()),
        ))
    }
}

/// Takes the exclusive advisory lock that keeps a second memable store —
/// in this or another process — off the same database.
fn lock_file(path: &Path) -> Result<File, EngineError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".memable-lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| EngineError::storage("open: lock file", e))?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(fs4::TryLockError::WouldBlock) => Err(EngineError::storage(
            "open",
            format!(
                "{} is in use by another memable store (in this or another process); \
                 one engine owns a database at a time",
                path.display()
            ),
        )),
        Err(fs4::TryLockError::Error(e)) => Err(EngineError::storage("open: lock file", e)),
    }
}
