//! [`PostgresStore`]: the [`StepStore`] implementation, and its options.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use memable_core::transitions::{WriteOp, WriteOutcome};
use std::time::Duration;

use memable_core::{
    Acquired, EngineError, EngineSlot, InstanceFilter, InstanceKey, InstanceSnapshot, StepRecord,
    StepStore, StorageError, StorageErrorKind, TimerEntry, Workers, WorkflowMetadata,
};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use crate::error::sql;
use crate::rows::{self, metadata_columns, step_columns};
use crate::schema;
use crate::writer::Writer;

/// How to connect a [`PostgresStore`].
///
/// # Examples
///
/// ```
/// use memable_postgres::PostgresOptions;
/// let options = PostgresOptions::new("postgres://app@db.internal/app").schema("billing").pool_size(8);
/// assert_eq!(options.schema_name(), "billing");
/// ```
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    url: String,
    schema: String,
    pool_size: u32,
}

impl PostgresOptions {
    /// Options for the database at `url` (`postgres://user@host:port/db`),
    /// schema `memable`, a pool of 4 read connections.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = memable_postgres::PostgresOptions::new("postgres://localhost/app");
    /// assert_eq!(options.schema_name(), "memable");
    /// ```
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: "memable".to_owned(),
            pool_size: 4,
        }
    }

    /// The PostgreSQL schema holding every table (lowercase ASCII letters,
    /// digits and `_`; created if missing). Several stores can share one
    /// database under different schemas.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = memable_postgres::PostgresOptions::new("postgres://localhost/app").schema("tenant_7");
    /// assert_eq!(options.schema_name(), "tenant_7");
    /// ```
    #[must_use]
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// Most connections of the read pool (the writer has its own one, and
    /// so has the work listener once an engine waits for work).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = memable_postgres::PostgresOptions::new("postgres://localhost/app").pool_size(16);
    /// # let _ = options;
    /// ```
    #[must_use]
    pub fn pool_size(mut self, connections: u32) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// The schema name set.
    ///
    /// # Examples
    ///
    /// See [`PostgresOptions::schema`].
    #[must_use]
    pub fn schema_name(&self) -> &str {
        &self.schema
    }
}

/// A [`StepStore`] over PostgreSQL: reads through a connection pool, writes
/// group-committed by one writer thread (see the crate documentation).
/// Clones share the pool, the writer and the engine slot.
///
/// # Examples
///
/// ```no_run
/// use memable_postgres::PostgresStore;
/// # async fn demo() -> Result<(), memable_core::EngineError> {
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1/app").await?;
/// let engine = memable_core::Engine::builder().store(store).build();
/// # let _ = engine; Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
    slot: EngineSlot,
}

struct Shared {
    pool: PgPool,
    writer: Writer,
    schema: String,
    /// Listens on the schema's work channel once an engine waits for work,
    /// on a connection of its own (`listen_pool`, one connection): a
    /// listener holding a read connection would starve a small pool and
    /// keep [`PgPool::close`] waiting for as long as the store lives.
    listener: tokio::sync::Mutex<Option<PgListener>>,
    listen_pool: PgPool,
    /// The writer's server process: notifications from it are this
    /// process's own writes, whose work its engine runs itself.
    writer_pid: Arc<std::sync::atomic::AtomicU32>,
}

/// The `LISTEN`/`NOTIFY` channel of a schema: a batch that leaves an
/// instance runnable notifies it (see the writer).
pub(crate) fn work_channel(schema: &str) -> String {
    format!("memable_work_{schema}")
}

/// Reserved step key under which snapshots show an instance's ownership,
/// as the embedded stores keep it.
const OWNER_KEY: &str = "_owner";

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.shared.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` with the default options, creating
    /// or migrating schema `memable`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), memable_core::EngineError> {
    /// let store = memable_postgres::PostgresStore::connect("postgres://postgres@127.0.0.1/app").await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, EngineError> {
        Self::connect_with(PostgresOptions::new(url)).await
    }

    /// Connects with `options`: checks and migrates the schema (refusing one
    /// that is not memable's, [`StorageErrorKind::NotMemable`], or is newer,
    /// [`StorageErrorKind::NewerFormat`]) and starts the writer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use memable_postgres::{PostgresOptions, PostgresStore};
    /// # async fn demo() -> Result<(), memable_core::EngineError> {
    /// let store = PostgresStore::connect_with(
    ///     PostgresOptions::new("postgres://postgres@127.0.0.1/app").schema("orders"),
    /// ).await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn connect_with(options: PostgresOptions) -> Result<Self, EngineError> {
        let op = "connect";
        if !schema::valid_schema_name(&options.schema) {
            return Err(StorageError::new(
                StorageErrorKind::Other,
                op,
                format!(
                    "bad schema name {:?}: use lowercase ASCII letters, digits and _",
                    options.schema
                ),
            )
            .into());
        }
        let connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| StorageError::new(StorageErrorKind::Other, op, e))?
            .options([("search_path", options.schema.as_str())])
            .application_name("memable");
        // Connected lazily: the writer's first connection below reports an
        // unreachable server at once. No ping before each read (a round trip each): a read on a
        // connection the server dropped fails with kind `Io` instead.
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size)
            .test_before_acquire(false)
            .connect_lazy_with(connect.clone());
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_lazy_with(connect.clone());
        let (ready, migrated) = tokio::sync::oneshot::channel();
        let writer_pid = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let writer = Writer::spawn(
            connect,
            options.schema.clone(),
            Arc::clone(&writer_pid),
            ready,
        )?;
        migrated.await.map_err(|_| {
            StorageError::new(StorageErrorKind::Other, op, "the writer thread stopped")
        })??;
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                writer,
                schema: options.schema,
                listener: tokio::sync::Mutex::new(None),
                listen_pool,
                writer_pid,
            }),
            slot: EngineSlot::new(),
        })
    }

    /// The schema this store's tables live in.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), memable_core::EngineError> {
    /// let store = memable_postgres::PostgresStore::connect("postgres://postgres@127.0.0.1/app").await?;
    /// assert_eq!(store.schema(), "memable");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// The read pool (for an application's own queries next to memable's).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), memable_core::EngineError> {
    /// let store = memable_postgres::PostgresStore::connect("postgres://postgres@127.0.0.1/app").await?;
    /// let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(store.pool()).await.unwrap();
    /// assert_eq!(one, 1);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    /// Closes the store's connections: the work listener and the read pool
    /// (waiting for reads in progress to return theirs). The writer's
    /// connection closes when the last clone of the store is dropped.
    /// Reads after this fail with a storage error; writes still go through
    /// the writer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), memable_core::EngineError> {
    /// let store = memable_postgres::PostgresStore::connect("postgres://postgres@127.0.0.1/app").await?;
    /// store.close().await;
    /// assert!(store.pool().is_closed());
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        drop(self.shared.listener.lock().await.take());
        self.shared.listen_pool.close().await;
        self.shared.pool.close().await;
    }
}

const LOAD_INSTANCE: &str = concat!(
    "SELECT 0::int2, ",
    metadata_columns!(),
    ", owner, epoch, NULL::bytea, NULL::text, NULL::text, NULL::bytea, NULL::bytea, NULL::bytea, NULL::int8, NULL::bytea, NULL::int8, NULL::int2, NULL::int8, NULL::int8 ",
    "FROM instances WHERE workflow = $1 AND instance_id = $2 ",
    "UNION ALL SELECT 1::int2, workflow, instance_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL::text, NULL::int8, ",
    step_columns!(),
    " FROM steps WHERE workflow = $1 AND instance_id = $2"
);

async fn read_metadata(
    pool: &PgPool,
    key: &InstanceKey,
    op: &'static str,
) -> Result<Option<WorkflowMetadata>, EngineError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        metadata_columns!(),
        " FROM instances WHERE workflow = $1 AND instance_id = $2"
    ))
    .bind(key.workflow().as_bytes())
    .bind(key.instance().as_bytes())
    .fetch_optional(pool)
    .await
    .map_err(sql(op))?;
    row.map(|row| rows::metadata_at(&row, 0, op)).transpose()
}

#[async_trait]
impl StepStore for PostgresStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        self.shared.writer.submit(op).await
    }

    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        let op = "load_instance";
        // One statement, so one snapshot: the instance row (tag 0), then its
        // steps (tag 1).
        let found = sqlx::query(LOAD_INSTANCE)
            .bind(key.workflow().as_bytes())
            .bind(key.instance().as_bytes())
            .fetch_all(&self.shared.pool)
            .await
            .map_err(sql(op))?;
        let mut metadata = None;
        let mut steps = Vec::with_capacity(found.len());
        for row in &found {
            use sqlx::Row;
            let tag: i16 = row.try_get(0).map_err(sql(op))?;
            if tag == 0 {
                metadata = Some(rows::metadata_at(row, 1, op)?);
                if let Some(owner) = rows::ownership_at(row, 9, op)? {
                    steps.push((OWNER_KEY.to_owned(), owner.to_record()));
                }
            } else {
                steps.push(rows::step_at(row, 11, op)?);
            }
        }
        let Some(metadata) = metadata else {
            return Ok(None);
        };
        // Rust's order of `String`s (the key columns are bytewise too).
        steps.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(InstanceSnapshot { metadata, steps }))
    }

    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        let op = "get_step";
        if step_key == OWNER_KEY {
            let row = sqlx::query(
                "SELECT owner, epoch FROM instances WHERE workflow = $1 AND instance_id = $2",
            )
            .bind(key.workflow().as_bytes())
            .bind(key.instance().as_bytes())
            .fetch_optional(&self.shared.pool)
            .await
            .map_err(sql(op))?;
            return Ok(match row {
                Some(row) => rows::ownership_at(&row, 0, op)?.map(|o| o.to_record()),
                None => None,
            });
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            step_columns!(),
            " FROM steps WHERE workflow = $1 AND instance_id = $2 AND step_key = $3"
        ))
        .bind(key.workflow().as_bytes())
        .bind(key.instance().as_bytes())
        .bind(step_key.as_bytes())
        .fetch_optional(&self.shared.pool)
        .await
        .map_err(sql(op))?;
        row.map(|row| rows::step_at(&row, 0, op).map(|(_, r)| r))
            .transpose()
    }

    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        read_metadata(&self.shared.pool, key, "get_metadata").await
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        let op = "list_instances";
        // Key columns are bytewise (`"C"`): the order of the other stores.
        let limit = filter
            .limit
            .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let (after_workflow, after_instance) = filter
            .after
            .as_ref()
            .map(|k| (k.workflow().as_bytes(), k.instance().as_bytes()))
            .unzip();
        let found = sqlx::query(concat!(
            "SELECT ",
            metadata_columns!(),
            " FROM instances
             WHERE ($1::text IS NULL OR status = $1)
               AND ($2::bytea IS NULL OR workflow = $2)
               AND ($3::bytea IS NULL OR (workflow, instance_id) > ($3::bytea, $4::bytea))
               AND ($6::bigint IS NULL OR created_at_ms < $6)
               AND ($7::bigint IS NULL OR created_at_ms >= $7)
               AND ($8::bigint IS NULL OR completed_at_ms < $8)
             ORDER BY workflow, instance_id LIMIT $5"
        ))
        .bind(filter.status.map(memable_core::StatusKind::as_str))
        .bind(filter.workflow.as_deref().map(str::as_bytes))
        .bind(after_workflow)
        .bind(after_instance)
        .bind(limit)
        .bind(filter.created_before.map(rows::to_sql_int))
        .bind(filter.created_since.map(rows::to_sql_int))
        .bind(filter.ended_before.map(rows::to_sql_int))
        .fetch_all(&self.shared.pool)
        .await
        .map_err(sql(op))?;
        found
            .iter()
            .map(|row| rows::metadata_at(row, 0, op))
            .collect()
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        let op = "due_timers";
        let found = sqlx::query(
            "SELECT deadline_ms, workflow, instance_id, step_key FROM timers
             WHERE deadline_ms <= $1
             ORDER BY deadline_ms, workflow, instance_id, step_key LIMIT $2",
        )
        .bind(rows::deadline_to_sql(now_ms))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.shared.pool)
        .await
        .map_err(sql(op))?;
        found
            .iter()
            .map(|row| {
                use sqlx::Row;
                let deadline: i64 = row.try_get(0).map_err(sql(op))?;
                Ok(TimerEntry {
                    deadline_ms: rows::deadline_from_sql(deadline),
                    instance: rows::key_at(row, 1, op)?,
                    step_key: rows::text_at(row, 3, op)?,
                })
            })
            .collect()
    }

    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        let deadline: Option<i64> = sqlx::query_scalar("SELECT min(deadline_ms) FROM timers")
            .fetch_one(&self.shared.pool)
            .await
            .map_err(sql("next_timer_deadline"))?;
        Ok(deadline.map(rows::deadline_from_sql))
    }

    fn engine_slot(&self) -> &EngineSlot {
        &self.slot
    }

    fn workers(&self) -> Option<&dyn Workers> {
        Some(self)
    }
}

/// Many engines share one PostgreSQL schema: worker rows judged by the
/// database's clock, acquisition with `FOR UPDATE SKIP LOCKED`, wake-ups by
/// `LISTEN`/`NOTIFY`.
#[async_trait]
impl Workers for PostgresStore {
    async fn heartbeat(&self, worker: &str, lease: Duration) -> Result<(), EngineError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO workers (id, alive_until) VALUES ($1, now() + $2 * interval '1 millisecond')
             ON CONFLICT (id) DO UPDATE SET alive_until = EXCLUDED.alive_until",
        )
        .bind(worker)
        .bind(lease_ms)
        .execute(&self.shared.pool)
        .await
        .map_err(sql("heartbeat"))?;
        Ok(())
    }

    async fn retire(&self, worker: &str) -> Result<(), EngineError> {
        sqlx::query(
            "WITH gone AS (DELETE FROM workers WHERE id = $1)
             UPDATE instances SET owner = NULL WHERE owner = $1",
        )
        .bind(worker)
        .execute(&self.shared.pool)
        .await
        .map_err(sql("retire"))?;
        // What it still owned is runnable at once.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(work_channel(&self.shared.schema))
            .execute(&self.shared.pool)
            .await
            .map_err(sql("retire"))?;
        Ok(())
    }

    async fn acquire_runnable(
        &self,
        worker: &str,
        workflows: &[String],
        limit: usize,
    ) -> Result<Vec<Acquired>, EngineError> {
        let op = "acquire_runnable";
        let names: Vec<&[u8]> = workflows.iter().map(String::as_bytes).collect();
        let found = sqlx::query(
            "UPDATE instances SET owner = $1, epoch = epoch + 1
             WHERE (workflow, instance_id) IN (
                 SELECT workflow, instance_id FROM instances
                 WHERE status = 'running' AND workflow = ANY($2::bytea[])
                   AND (owner IS NULL OR owner NOT IN (SELECT id FROM workers WHERE alive_until > now()))
                 ORDER BY updated_at_ms
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             RETURNING workflow, instance_id, epoch",
        )
        .bind(worker)
        .bind(names)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.shared.pool)
        .await
        .map_err(sql(op))?;
        found
            .iter()
            .map(|row| {
                use sqlx::Row;
                let epoch: i64 = row.try_get(2).map_err(sql(op))?;
                Ok(Acquired {
                    key: rows::key_at(row, 0, op)?,
                    epoch: rows::from_sql_int(epoch, op)?,
                })
            })
            .collect()
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let mut listener = self.shared.listener.lock().await;
        if listener.is_none() {
            match PgListener::connect_with(&self.shared.listen_pool).await {
                Ok(mut new) => match new.listen(&work_channel(&self.shared.schema)).await {
                    Ok(()) => *listener = Some(new),
                    Err(error) => tracing::debug!(%error, "could not listen for work; polling"),
                },
                Err(error) => tracing::debug!(%error, "could not listen for work; polling"),
            }
        }
        let Some(active) = listener.as_mut() else {
            tokio::time::sleep(timeout).await;
            return;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, active.recv()).await {
                // This process's own writes: its engine runs that work
                // itself (what it leaves is found at the next poll).
                Ok(Ok(note))
                    if note.process_id()
                        == self
                            .shared
                            .writer_pid
                            .load(std::sync::atomic::Ordering::Relaxed) => {}
                Ok(Ok(_)) | Err(_) => return,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "the work listener failed; reconnecting");
                    *listener = None;
                    return;
                }
            }
        }
    }
}
