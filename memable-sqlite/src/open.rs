//! Opening a store: file checks, the lock file, pragmas, migrations.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use memable_core::EngineError;
use memable_core::journal::{
    Journal, JournalFile, journal_path, open_journal_file, preallocation, records_after,
    remove_journal_file,
};
use memable_core::readers::Visibility;
use memable_core::transitions::apply;
use memable_core::writer::LONE_WRITER_SPIN;
use rusqlite::{Connection, OpenFlags};

use crate::error::sql;
use crate::readers::Readers;
use crate::schema;
use crate::store::{Shared, SqliteStore};
use crate::txn::SqlTxn;
use crate::writer::{CHECKPOINT_BYTES, Counters, Journaled, Writer, durable_commit};

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
    /// Every commit is durable before it is acknowledged — it survives a
    /// process crash and a power loss. A file store makes commits durable
    /// through its journal (see the crate docs), the in-memory store with
    /// `PRAGMA synchronous = FULL`.
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
    lone_writer_spin: Option<Duration>,
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
        let mut writer = self.connect_writer(&target, true)?;
        let journal_path = journal_path(path);
        let name = format!("{} (journal of {})", journal_path.display(), path.display());
        let journaled = match self.synchronous {
            Synchronous::Full => {
                let file = open_journal_file(&journal_path, &name)?;
                Some(recover(&mut writer, Box::new(file), &name)?)
            }
            Synchronous::Normal => {
                if journal_path.exists() {
                    // Left by a store opened with `Full`: replay it into a
                    // durable commit, then it is redundant.
                    let file = open_journal_file(&journal_path, &name)?;
                    drop(recover(&mut writer, Box::new(file), &name)?);
                    remove_journal_file(&journal_path, &name)?;
                }
                None
            }
        };
        self.finish(
            writer,
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
        self.finish(writer, &target, None, None, None)
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
        journaled: Option<Journaled>,
    ) -> Result<SqliteStore, EngineError> {
        let counters = Arc::new(Counters::default());
        let visibility = journaled.as_ref().map(|j| Arc::clone(&j.visibility));
        let writer = Writer::spawn(
            writer,
            Arc::clone(&counters),
            journaled,
            self.lone_writer_spin.unwrap_or(LONE_WRITER_SPIN),
        )?;
        let readers = Readers::new(target, visibility.as_ref())?;
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

/// Opens the journal, re-applies every record the database lacks, makes the
/// database durable (one commit with `synchronous = FULL`: commits that
/// survived a process crash may still sit unflushed in the WAL) and resets
/// the journal. Leaves the connection at `synchronous = NORMAL`.
fn recover(
    conn: &mut Connection,
    file: Box<dyn JournalFile>,
    name: &str,
) -> Result<Journaled, EngineError> {
    let (db_lsn, id) = schema::journal_position(conn)?;
    let (mut journal, records) = Journal::open(file, name, id)?;
    let pending = records_after(records, db_lsn, name)?;
    let mut lsn = db_lsn;
    if let (Some(first), Some(last)) = (pending.first(), pending.last()) {
        let op = "open: replay the journal";
        let tx = conn.transaction().map_err(sql(op))?;
        {
            let mut access = SqlTxn(&tx);
            for record in &pending {
                for batch_op in &record.ops {
                    apply(batch_op, &mut access).map_err(|e| {
                        EngineError::storage(op, format!("{name}: lsn {}: {e}", record.lsn))
                    })?;
                }
            }
        }
        lsn = last.lsn;
        tx.execute(
            "UPDATE memable_journal SET value = ?1 WHERE key = 'lsn'",
            [i64::try_from(lsn).unwrap_or(i64::MAX)],
        )
        .map_err(sql(op))?;
        tx.commit().map_err(sql(op))?;
        tracing::info!(
            journal = name,
            records = pending.len(),
            from = first.lsn,
            to = lsn,
            "memable-sqlite replayed its journal"
        );
    }
    durable_commit(conn)?;
    journal.reset();
    journal.preallocate(preallocation(CHECKPOINT_BYTES))?;
    Ok(Journaled {
        journal,
        lsn,
        visibility: Arc::new(Visibility::new()),
    })
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
