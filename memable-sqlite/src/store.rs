//! [`SqliteStore`]: the [`StepStore`] implementation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use memable_core::transitions::{WriteOp, WriteOutcome};
use memable_core::{
    EngineError, InstanceFilter, InstanceKey, InstanceSnapshot, StepRecord, StepStore, TimerEntry,
    WorkflowMetadata,
};
use rusqlite::{OptionalExtension, params, params_from_iter, types::Value};

use memable_core::{StorageError, StorageErrorKind};
use memable_store::files::BackupFile;
use memable_store::{Counters, Durability, StoreStats};

use crate::error::sql;
use crate::open::SqliteStoreBuilder;
use crate::readers::Readers;
use crate::rows::{self, METADATA_COLUMNS, STEP_COLUMNS};
use crate::writer::Writer;

/// A durable [`StepStore`] over SQLite in WAL mode.
///
/// Cheap to clone; clones share one writer thread and reader pool. The file
/// is released when the last clone is dropped.
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, StepError};
/// use memable_sqlite::SqliteStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let dir = tempfile::tempdir().unwrap();
/// let engine = Engine::builder().store(SqliteStore::open(dir.path().join("app.db"))?).build();
/// engine.register("one", |ctx: Context| async move {
///     ctx.step("one").run(|| async { Ok::<_, StepError>(1u8) }).await
/// })?;
/// engine.start().await?;
/// assert_eq!(engine.invoke("one").await?.wait_output::<u8>().await?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
    slot: memable_core::EngineSlot,
}

/// The parts of a store; dropped in declaration order: the readers (their
/// threads joined, their connections closed), the writer (its thread
/// joined after its last commit and checkpoint), then the lock. The write
/// connection is thus the database's last connection: closing it copies the
/// WAL into the database file and removes the WAL, so after a clean close
/// the database file alone holds every acknowledged write. (A read-only
/// connection closing last cannot do that.)
pub(crate) struct Shared {
    pub readers: Arc<Readers>,
    /// `None` for a store opened read-only.
    pub writer: Option<Writer>,
    pub counters: Arc<Counters>,
    pub durability: Durability,
    pub path: Option<PathBuf>,
    pub _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .field("durability", &self.shared.durability)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    pub(crate) fn from_shared(shared: Shared) -> Self {
        Self {
            shared: Arc::new(shared),
            slot: memable_core::EngineSlot::new(),
        }
    }

    /// Opens (or creates) the database at `path` with default settings
    /// ([`Durability::Immediate`]); see [`SqliteStoreBuilder::open`].
    ///
    /// # Examples
    ///
    /// See [`SqliteStore`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EngineError> {
        SqliteStoreBuilder::default().open(path)
    }

    /// A store in memory; see [`SqliteStoreBuilder::in_memory`].
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_sqlite::SqliteStore::in_memory().unwrap();
    /// assert_eq!(store.stats().commits, 0);
    /// ```
    pub fn in_memory() -> Result<Self, EngineError> {
        SqliteStoreBuilder::default().in_memory()
    }

    /// A builder for other settings.
    ///
    /// # Examples
    ///
    /// See [`SqliteStoreBuilder`].
    pub fn builder() -> SqliteStoreBuilder {
        SqliteStoreBuilder::default()
    }

    /// The durability setting.
    ///
    /// # Examples
    ///
    /// See [`SqliteStoreBuilder`].
    #[must_use]
    pub fn durability(&self) -> Durability {
        self.shared.durability
    }

    /// The database file, `None` for an in-memory store.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memable_sqlite::SqliteStore::in_memory().unwrap().path().is_none());
    /// ```
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// Writes a consistent copy of the database to `path`: a single
    /// SQLite file that opens as a store of its own (no journal needed: it
    /// is marked as cleanly closed) and holds every write acknowledged
    /// before the call. The engine keeps running; writes wait while SQLite
    /// copies (`VACUUM INTO` on the writer's connection, after a
    /// checkpoint, between two group commits). An in-memory store can be
    /// backed up to a file too.
    ///
    /// The copy is written under a temporary name beside `path`, checked,
    /// synced and only then moved into place, so a crash or a failure never
    /// leaves a partial file at `path`. See the crate docs, "Files and
    /// backups".
    ///
    /// # Errors
    ///
    /// [`StorageErrorKind::Unsupported`](memable_core::StorageErrorKind::Unsupported)
    /// if something is at `path` already (a backup never overwrites);
    /// [`Io`](memable_core::StorageErrorKind::Io) if the copy cannot be
    /// written; [`Poisoned`](memable_core::StorageErrorKind::Poisoned) if
    /// the store is poisoned.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, StepKind, StepRecord, StepStore, StepStoreExt};
    /// use memable_sqlite::SqliteStore;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = SqliteStore::open(dir.path().join("wf.db")).unwrap();
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
    /// store.start_instance(key.clone(), input, 0).await.unwrap();
    /// store.backup(dir.path().join("copy.db")).await.unwrap();
    ///
    /// let copy = SqliteStore::open(dir.path().join("copy.db")).unwrap();
    /// assert!(copy.get_metadata(&key).await.unwrap().is_some());
    /// # });
    /// ```
    pub async fn backup(&self, path: impl AsRef<Path>) -> Result<(), EngineError> {
        let target = BackupFile::new(path.as_ref())?;
        let temp = target.temp().to_path_buf();
        let in_memory = self.shared.path.is_none();
        self.writer("backup")?
            .run("backup", move |backend| {
                backend.vacuum_into(&temp, in_memory)
            })
            .await?;
        tokio::task::spawn_blocking(move || {
            seal_backup(target.temp())?;
            target.finish()
        })
        .await
        .map_err(|e| EngineError::storage("backup", e.to_string()))?
    }

    /// Opens the database at `path` for reading only, beside the store
    /// that holds it (an application's engine in this or another
    /// process): no lock is taken, nothing is written, no migration or
    /// recovery runs. Every read works as on a full store and sees what
    /// the holder has committed to the database (SQLite's WAL), which may
    /// trail the writes it has acknowledged by a few milliseconds (a
    /// journaled store commits held batches as soon as it is idle); every
    /// write (and [`backup`](Self::backup)) is refused with a storage
    /// error of kind [`Unsupported`](StorageErrorKind::Unsupported).
    /// An engine can be built on it to read (list, state, metadata), not
    /// started.
    ///
    /// Refused: a missing file ([`Io`](StorageErrorKind::Io)), one that is
    /// not a memable database ([`NotMemable`](StorageErrorKind::NotMemable)),
    /// a schema of another version ([`NewerFormat`](StorageErrorKind::NewerFormat)
    /// for a newer one; [`Unsupported`](StorageErrorKind::Unsupported) for an
    /// older one, which a full open migrates first).
    ///
    /// A database whose holder crashed and that no full open has recovered
    /// yet shows what its file holds, which after a power loss may lack the
    /// last acknowledged writes (its journal has them until the next full
    /// open replays it).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, StepKind, StepRecord, StepStore, StepStoreExt, StorageErrorKind};
    /// use memable_sqlite::SqliteStore;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("app.db");
    /// let app = SqliteStore::open(&path).unwrap(); // holds the file
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
    /// app.start_instance(key.clone(), input.clone(), 0).await.unwrap();
    ///
    /// let reader = SqliteStore::open_read_only(&path).unwrap();
    /// assert!(reader.get_metadata(&key).await.unwrap().is_some());
    /// let refused = reader.start_instance(key, input, 0).await.unwrap_err();
    /// assert_eq!(refused.storage_kind(), Some(StorageErrorKind::Unsupported));
    /// # });
    /// ```
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, EngineError> {
        crate::open::open_read_only(path.as_ref())
    }

    /// Whether the store was opened with [`open_read_only`](Self::open_read_only).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!memable_sqlite::SqliteStore::in_memory().unwrap().is_read_only());
    /// ```
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.shared.writer.is_none()
    }

    fn writer(&self, operation: &'static str) -> Result<&Writer, EngineError> {
        self.shared.writer.as_ref().ok_or_else(|| {
            StorageError::new(
                StorageErrorKind::Unsupported,
                operation,
                format!(
                    "{} is opened read-only; writes go through the store that holds it",
                    self.shared
                        .path
                        .as_deref()
                        .map_or_else(|| "the database".to_owned(), |p| p.display().to_string())
                ),
            )
            .into()
        })
    }

    /// Commits, operations and checkpoints so far.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = memable_sqlite::SqliteStore::in_memory().unwrap();
    /// assert_eq!(store.stats().ops, 0);
    /// ```
    #[must_use]
    pub fn stats(&self) -> StoreStats {
        self.shared.counters.stats()
    }
}

fn read_metadata(
    conn: &rusqlite::Connection,
    key: &InstanceKey,
) -> Result<Option<WorkflowMetadata>, EngineError> {
    conn.prepare_cached(&format!(
        "SELECT {METADATA_COLUMNS} FROM instances WHERE workflow = ?1 AND instance = ?2"
    ))
    .and_then(|mut stmt| {
        stmt.query_row(params![key.workflow(), key.instance()], rows::metadata)
            .optional()
    })
    .map_err(sql("get_metadata"))
}

#[async_trait]
impl StepStore for SqliteStore {
    fn engine_slot(&self) -> &memable_core::EngineSlot {
        &self.slot
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        self.writer(op.name())?.submit(op).await
    }

    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        let key = key.clone();
        self.shared
            .readers
            .read("load_instance", move |conn| {
                // Metadata and steps from the batch's one read transaction.
                let Some(metadata) = read_metadata(conn, &key)? else {
                    return Ok(None);
                };
                let steps = rows::instance_steps(conn, &key, "load_instance")?;
                Ok(Some(InstanceSnapshot { metadata, steps }))
            })
            .await
    }

    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        let (key, step_key) = (key.clone(), step_key.to_owned());
        self.shared
            .readers
            .read("get_step", move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {STEP_COLUMNS} FROM steps WHERE workflow = ?1 AND instance = ?2 AND step_key = ?3"
                ))
                .and_then(|mut stmt| stmt.query_row(params![key.workflow(), key.instance(), step_key], rows::step).optional())
                .map(|found| found.map(|(_, record)| record))
                .map_err(sql("get_step"))
            })
            .await
    }

    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        let key = key.clone();
        self.shared
            .readers
            .read("get_metadata", move |conn| read_metadata(conn, &key))
            .await
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        let filter = filter.clone();
        self.shared
            .readers
            .read("list_instances", move |conn| {
                let mut sql_text = format!("SELECT {METADATA_COLUMNS} FROM instances WHERE 1 = 1");
                let mut values: Vec<Value> = Vec::new();
                if let Some(kind) = filter.status {
                    sql_text.push_str(" AND status = ?");
                    values.push(Value::Text(kind.as_str().to_owned()));
                }
                if let Some(workflow) = &filter.workflow {
                    sql_text.push_str(" AND workflow = ?");
                    values.push(Value::Text(workflow.clone()));
                }
                let time = |t: u64| Value::Integer(i64::try_from(t).unwrap_or(i64::MAX));
                if let Some(t) = filter.created_before {
                    sql_text.push_str(" AND created_at_ms < ?");
                    values.push(time(t));
                }
                if let Some(t) = filter.created_since {
                    sql_text.push_str(" AND created_at_ms >= ?");
                    values.push(time(t));
                }
                if let Some(t) = filter.ended_before {
                    // `instances_by_end` (status, completed_at_ms) serves a
                    // retention sweep, which names the status.
                    sql_text.push_str(" AND completed_at_ms < ?");
                    values.push(time(t));
                }
                if let Some(after) = &filter.after {
                    sql_text.push_str(" AND (workflow, instance) > (?, ?)");
                    values.push(Value::Text(after.workflow().to_owned()));
                    values.push(Value::Text(after.instance().to_owned()));
                }
                sql_text.push_str(" ORDER BY workflow, instance");
                if let Some(limit) = filter.limit {
                    sql_text.push_str(" LIMIT ?");
                    values.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
                }
                let mut stmt = conn
                    .prepare_cached(&sql_text)
                    .map_err(sql("list_instances"))?;
                stmt.query_map(params_from_iter(values), rows::metadata)
                    .and_then(Iterator::collect)
                    .map_err(sql("list_instances"))
            })
            .await
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        self.shared
            .readers
            .read("due_timers", move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT deadline_ms, workflow, instance, step_key FROM timers
                         WHERE deadline_ms <= ?1 ORDER BY deadline_ms, workflow, instance, step_key LIMIT ?2",
                    )
                    .map_err(sql("due_timers"))?;
                let raw: Vec<(i64, String, String, String)> = stmt
                    .query_map(params![rows::deadline_to_sql(now_ms), i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })
                    .and_then(Iterator::collect)
                    .map_err(sql("due_timers"))?;
                raw.into_iter()
                    .map(|(deadline, workflow, instance, step_key)| {
                        Ok(TimerEntry {
                            deadline_ms: rows::deadline_from_sql(deadline),
                            instance: InstanceKey::new(&workflow, &instance)?,
                            step_key,
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        self.shared
            .readers
            .read("next_timer_deadline", |conn| {
                conn.query_row("SELECT min(deadline_ms) FROM timers", [], |row| {
                    row.get::<_, Option<i64>>(0)
                })
                .map(|d| d.map(rows::deadline_from_sql))
                .map_err(sql("next_timer_deadline"))
            })
            .await
    }
}

/// Makes the copy at `temp` a database of its own: checks it, marks it
/// cleanly closed (its journal is not copied) and leaves it in rollback
/// journal mode with no side files, closed.
fn seal_backup(temp: &Path) -> Result<(), EngineError> {
    let fail = |e: &dyn std::fmt::Display| -> EngineError {
        StorageError::new(
            StorageErrorKind::Io,
            "backup",
            format!("{} (backup copy): {e}", temp.display()),
        )
        .into()
    };
    let conn = rusqlite::Connection::open_with_flags(
        temp,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(&e))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| fail(&e))?;
    if check != "ok" {
        return Err(StorageError::new(
            StorageErrorKind::Corrupt,
            "backup",
            format!(
                "{} (backup copy) fails SQLite's check: {check}",
                temp.display()
            ),
        )
        .into());
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
        .map_err(|e| fail(&e))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(fail(&format!("could not leave WAL mode (in {mode})")));
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL; UPDATE memable_journal SET value = 0 WHERE key = 'dirty';",
    )
    .map_err(|e| fail(&e))?;
    conn.close().map_err(|(_, e)| fail(&e))
}
