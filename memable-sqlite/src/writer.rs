//! [`SqliteBackend`]: SQLite's side of the journaled commit protocol of
//! [`memable_store::commit`] — its transactions, row access and durability
//! mapping.
//!
//! A journaled store (a file with `Durability::Immediate`) commits with
//! `synchronous = NORMAL` (written to the WAL, not flushed) and *holds* its
//! write transaction open across consecutive batches, a savepoint each, so
//! the one-write batches of a lone workflow share a WAL commit (the
//! protocol commits what is held when the queue goes idle, a reader waits,
//! a larger batch comes, or after 64 batches / 2 ms). A checkpoint is one
//! commit with `synchronous = FULL`, whose WAL sync makes every earlier
//! commit durable (commits are only ever appended to the WAL, and SQLite
//! syncs the database before it reuses the WAL). Without a journal each
//! batch is a transaction of its own, committed with the store's setting.

use memable_core::{EngineError, StorageError, StorageErrorKind};
use memable_store::commit::{Backend, Committed, DatabaseState, Marker};
use rusqlite::{Connection, OptionalExtension};

use crate::schema;
use crate::txn::SqlTxn;

/// The writer handle of a SQLite store.
pub type Writer = memable_store::commit::Writer<SqliteBackend>;

/// The savepoint each journaled batch runs in.
const SAVEPOINT: &str = "memable_batch";

/// A failed SQLite call: an I/O or database failure (nothing was written).
fn io(operation: &'static str) -> impl Fn(rusqlite::Error) -> EngineError {
    move |e| StorageError::new(StorageErrorKind::Io, operation, e).into()
}

/// What the database says about its journal: `lsn` and `journal_id` from
/// `memable_journal`, and its `dirty` row (absent: clean).
pub fn database_state(conn: &Connection) -> Result<DatabaseState, EngineError> {
    let (lsn, journal_id) = schema::journal_position(conn)?;
    let dirty: Option<i64> = conn
        .query_row(
            "SELECT value FROM memable_journal WHERE key = 'dirty'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(io("open: read the journal position"))?;
    Ok(DatabaseState {
        lsn,
        journal_id,
        dirty: dirty.is_some_and(|v| v != 0),
    })
}

/// The write connection, owned by the writer thread.
pub struct SqliteBackend {
    conn: Connection,
    journaled: bool,
    /// A write transaction is open.
    in_txn: bool,
    /// Batches released into the open transaction.
    batches: usize,
    /// The connection's `synchronous` setting between checkpoints.
    synchronous: &'static str,
}

impl SqliteBackend {
    /// The backend over `conn`, committing with `synchronous` between
    /// checkpoints; `journaled` holds batches as savepoints.
    pub fn new(conn: Connection, journaled: bool, synchronous: &'static str) -> Self {
        Self {
            conn,
            journaled,
            in_txn: false,
            batches: 0,
            synchronous,
        }
    }

    /// From now on, batches are transactions of their own (no journal).
    pub fn unjournaled(mut self) -> Self {
        self.journaled = false;
        self
    }

    /// Writes a consistent copy of the database to the new file at `path`
    /// (`VACUUM INTO`), from the writer's connection, which sees every
    /// commit. No transaction may be open. `on_disk` names the operating
    /// system's file VFS for the copy (an in-memory store's connection
    /// would otherwise write it into memory).
    pub fn vacuum_into(&self, path: &std::path::Path, on_disk: bool) -> Result<(), EngineError> {
        let unsupported = |why: &str| -> EngineError {
            StorageError::new(
                StorageErrorKind::Unsupported,
                "backup",
                format!("{}: {why}", path.display()),
            )
            .into()
        };
        let plain = path
            .to_str()
            .ok_or_else(|| unsupported("SQLite needs a UTF-8 path"))?;
        let target = if on_disk {
            if !cfg!(unix) {
                return Err(unsupported(
                    "backing up an in-memory store is supported on Unix only",
                ));
            }
            let absolute = std::path::absolute(path).map_err(|e| unsupported(&e.to_string()))?;
            let absolute = absolute
                .to_str()
                .ok_or_else(|| unsupported("SQLite needs a UTF-8 path"))?;
            format!("file:{}?vfs=unix", uri_escape(absolute))
        } else {
            plain.to_owned()
        };
        self.conn
            .execute("VACUUM INTO ?1", [target])
            .map(drop)
            .map_err(|e| {
                StorageError::new(
                    crate::open::sqlite_kind(&e),
                    "backup",
                    format!("VACUUM INTO {}: {e}", path.display()),
                )
                .into()
            })
    }

    fn exec(&self, operation: &'static str, sql: &str) -> Result<(), EngineError> {
        self.conn.execute_batch(sql).map_err(io(operation))
    }
}

impl Backend for SqliteBackend {
    type Rows<'a> = SqlTxn<'a>;

    fn begin_batch(&mut self) -> Result<(), EngineError> {
        if !self.in_txn {
            self.exec("begin", "BEGIN IMMEDIATE")?;
            self.in_txn = true;
            self.batches = 0;
        }
        if self.journaled {
            self.exec("savepoint", &format!("SAVEPOINT {SAVEPOINT}"))?;
        }
        Ok(())
    }

    fn rows(&mut self) -> Result<SqlTxn<'_>, EngineError> {
        Ok(SqlTxn(&self.conn))
    }

    fn record_lsn(&mut self, lsn: u64) -> Result<(), EngineError> {
        let lsn = i64::try_from(lsn).map_err(|_| {
            StorageError::new(StorageErrorKind::Other, "record lsn", "lsn out of range")
        })?;
        self.conn
            .execute(
                "UPDATE memable_journal SET value = ?1 WHERE key = 'lsn'",
                [lsn],
            )
            .map(drop)
            .map_err(io("record lsn"))
    }

    fn abort_batch(&mut self) {
        if self.journaled && self.batches > 0 {
            // Undoes this batch alone; the batches held before it stay.
            if let Err(e) = self.exec(
                "rollback",
                &format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}"),
            ) {
                tracing::warn!(error = %e, "SQLite could not roll a batch back to its savepoint");
            }
        } else {
            self.abort_held();
        }
    }

    fn commit_batch(&mut self) -> Result<Committed, EngineError> {
        if self.journaled {
            self.exec("release", &format!("RELEASE {SAVEPOINT}"))?;
            self.batches += 1;
            Ok(Committed::Held)
        } else {
            let committed = self.exec("commit", "COMMIT");
            if committed.is_err() {
                self.abort_held();
            }
            self.in_txn = false;
            committed.map(|()| Committed::Visible)
        }
    }

    fn commit_held(&mut self) -> Result<(), EngineError> {
        if self.in_txn {
            self.exec("commit", "COMMIT")?;
            self.in_txn = false;
            self.batches = 0;
        }
        Ok(())
    }

    fn abort_held(&mut self) {
        if self.in_txn {
            if let Err(e) = self.exec("rollback", "ROLLBACK") {
                tracing::warn!(error = %e, "SQLite rollback failed");
            }
            self.in_txn = false;
            self.batches = 0;
        }
    }

    fn checkpoint(&mut self, marker: Marker) -> Result<(), EngineError> {
        let op = "checkpoint";
        self.commit_held()?;
        self.exec(op, "PRAGMA synchronous = FULL")?;
        let dirty = i64::from(marker == Marker::Dirty);
        let committed = self.exec(op, "BEGIN IMMEDIATE").and_then(|()| {
            let written = self
                .conn
                .execute_batch(&format!(
                    "UPDATE memable_journal SET value = value + 1 WHERE key = 'checkpoints';
                     INSERT INTO memable_journal (key, value) VALUES ('dirty', {dirty})
                       ON CONFLICT (key) DO UPDATE SET value = excluded.value;
                     COMMIT;"
                ))
                .map_err(io(op));
            if written.is_err() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            written
        });
        let restored = self.exec(op, &format!("PRAGMA synchronous = {}", self.synchronous));
        committed.and(restored)
    }
}

/// `path` with every byte a URI filename may not hold as is escaped.
fn uri_escape(path: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}
