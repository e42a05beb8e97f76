//! The schema, created and upgraded by numbered migrations whose count is
//! the `schema_version` row of `memable_meta`, and the checks that refuse
//! foreign or newer schemas.
//!
//! Every table lives in one PostgreSQL schema (default `memable`), reached
//! through each connection's `search_path`. Migrating runs in one
//! transaction that first takes a transaction-scoped advisory lock on the
//! schema's name, so processes connecting at once migrate one after the
//! other (the later ones find the work done).

use memable_core::{EngineError, StorageError, StorageErrorKind};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::error::sql;

/// Migration `i` upgrades the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: instances (with the owner and epoch of many workers) and their
    // indexes, steps keyed by (workflow, instance, key), timers ordered by
    // deadline, worker heartbeats. Keys and free-form strings (which may
    // hold NUL, which PostgreSQL's TEXT cannot) are their UTF-8 bytes in
    // BYTEA columns, which also sort bytewise as Rust's `str` does and the
    // other stores list them.
    "CREATE TABLE instances (
        workflow        BYTEA  NOT NULL,
        instance_id     BYTEA  NOT NULL,
        status          TEXT   NOT NULL,
        suspended_key   BYTEA,
        message         BYTEA,
        created_at_ms   BIGINT NOT NULL,
        updated_at_ms   BIGINT NOT NULL,
        completed_at_ms BIGINT,
        owner           TEXT,
        epoch           BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (workflow, instance_id)
    );
    CREATE INDEX instances_by_status ON instances (status, workflow, instance_id);
    CREATE INDEX instances_by_owner ON instances (owner) WHERE owner IS NOT NULL;
    CREATE INDEX instances_runnable ON instances (workflow, updated_at_ms, owner)
        WHERE status = 'running';
    CREATE TABLE steps (
        workflow    BYTEA  NOT NULL,
        instance_id BYTEA  NOT NULL,
        step_key    BYTEA  NOT NULL,
        state       TEXT     NOT NULL,
        kind        TEXT     NOT NULL,
        type_tag    BYTEA    NOT NULL,
        value       BYTEA    NOT NULL,
        status      BYTEA,
        attempts    BIGINT   NOT NULL,
        error       BYTEA,
        deadline_ms BIGINT,
        codec       SMALLINT NOT NULL,
        PRIMARY KEY (workflow, instance_id, step_key)
    );
    CREATE TABLE timers (
        deadline_ms BIGINT NOT NULL,
        workflow    BYTEA  NOT NULL,
        instance_id BYTEA  NOT NULL,
        step_key    BYTEA  NOT NULL,
        PRIMARY KEY (deadline_ms, workflow, instance_id, step_key)
    );
    CREATE TABLE workers (
        id          TEXT        PRIMARY KEY,
        alive_until TIMESTAMPTZ NOT NULL,
        started_at  TIMESTAMPTZ NOT NULL DEFAULT now()
    );",
    // 2: when each step began and was completed (ms since the Unix epoch);
    // NULL on every row written before.
    "ALTER TABLE steps ADD COLUMN started_at_ms BIGINT;
    ALTER TABLE steps ADD COLUMN completed_at_ms BIGINT;",
    // 3: terminal instances by when they ended, for retention sweeps
    // (`InstanceFilter::ended_before` with a status): a sweep reads the
    // instances old enough instead of every instance of the status.
    "CREATE INDEX instances_by_end ON instances (status, completed_at_ms)
        WHERE completed_at_ms IS NOT NULL;",
];

/// The schema version this build writes (`memable_meta.schema_version`).
///
/// # Examples
///
/// ```
/// assert_eq!(memable_postgres::SCHEMA_VERSION, 3);
/// ```
pub const SCHEMA_VERSION: i64 = 3;

const _: () = assert!(
    MIGRATIONS.len() == 3,
    "SCHEMA_VERSION must equal the number of migrations"
);

/// Whether `name` is a schema name memable accepts: lowercase ASCII
/// letters, digits and `_`, not starting with a digit, at most 63 bytes
/// (so it never needs quoting).
pub fn valid_schema_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Refuses a foreign or newer schema, then creates the schema or applies
/// its pending migrations in one transaction.
pub async fn migrate(conn: &mut PgConnection, schema: &str) -> Result<(), EngineError> {
    let op = "connect: migrate the schema";
    let mut tx = conn.begin().await.map_err(sql(op))?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('memable:' || $1, 0))")
        .bind(schema)
        .execute(&mut *tx)
        .await
        .map_err(sql(op))?;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_one(&mut *tx)
    .await
    .map_err(sql(op))?;
    let has_meta: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'memable_meta')",
    )
    .bind(schema)
    .fetch_one(&mut *tx)
    .await
    .map_err(sql(op))?;
    let version: Option<i64> = if has_meta {
        sqlx::query_scalar("SELECT value FROM memable_meta WHERE key = 'schema_version'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql(op))?
    } else {
        None
    };
    let version = match version {
        Some(version) => version,
        None if tables > 0 => {
            return Err(StorageError::new(
                StorageErrorKind::NotMemable,
                op,
                format!(
                    "schema {schema:?} holds {tables} tables but no memable schema version: not memable's; pick another schema name"
                ),
            )
            .into());
        }
        None => 0,
    };
    if version > SCHEMA_VERSION {
        return Err(StorageError::new(
            StorageErrorKind::NewerFormat,
            op,
            format!(
                "schema {schema:?} has version {version}, newer than this memable's {SCHEMA_VERSION}; upgrade memable"
            ),
        )
        .into());
    }
    if version == SCHEMA_VERSION {
        return tx.commit().await.map_err(sql(op));
    }
    if version == 0 {
        // The name is checked by `valid_schema_name`: no quoting needed.
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE {schema}.memable_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);"
        ))
        .execute(&mut *tx)
        .await
        .map_err(sql(op))?;
    }
    for (index, migration) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tracing::info!(
            schema,
            to = index + 1,
            "applying PostgreSQL schema migration"
        );
        sqlx::raw_sql(&format!("SET LOCAL search_path TO {schema}; {migration}"))
            .execute(&mut *tx)
            .await
            .map_err(sql(op))?;
    }
    sqlx::raw_sql(&format!(
        "INSERT INTO {schema}.memable_meta (key, value) VALUES ('schema_version', {SCHEMA_VERSION})
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    ))
    .execute(&mut *tx)
    .await
    .map_err(sql(op))?;
    tx.commit().await.map_err(sql(op))
}
