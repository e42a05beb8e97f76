//! The schema, created and upgraded by numbered migrations tracked in
//! `PRAGMA user_version`, and the checks that refuse foreign databases.

use rusqlite::Connection;

use crate::error::sql;
use memable_core::{EngineError, StorageError, StorageErrorKind};

/// `PRAGMA application_id` of a memable database ("mmbl").
///
/// # Examples
///
/// ```
/// assert_eq!(memable_sqlite::APPLICATION_ID, 0x6d6d_626c);
/// ```
pub const APPLICATION_ID: i32 = 0x6d6d_626c;

/// Migration `i` upgrades the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: instances with a status index, steps keyed by (workflow, instance,
    // key) referencing their instance, timers ordered by deadline.
    "CREATE TABLE instances (
        workflow        TEXT    NOT NULL,
        instance        TEXT    NOT NULL,
        status          TEXT    NOT NULL,
        suspended_key   TEXT,
        message         TEXT,
        created_at_ms   INTEGER NOT NULL,
        updated_at_ms   INTEGER NOT NULL,
        completed_at_ms INTEGER,
        PRIMARY KEY (workflow, instance)
    ) WITHOUT ROWID;
    CREATE INDEX instances_by_status ON instances (status, workflow, instance);
    CREATE TABLE steps (
        workflow    TEXT    NOT NULL,
        instance    TEXT    NOT NULL,
        step_key    TEXT    NOT NULL,
        state       TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        type_tag    TEXT    NOT NULL,
        value       BLOB    NOT NULL,
        status      TEXT,
        attempts    INTEGER NOT NULL,
        error       TEXT,
        deadline_ms INTEGER,
        PRIMARY KEY (workflow, instance, step_key),
        FOREIGN KEY (workflow, instance) REFERENCES instances (workflow, instance) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE TABLE timers (
        deadline_ms INTEGER NOT NULL,
        workflow    TEXT    NOT NULL,
        instance    TEXT    NOT NULL,
        step_key    TEXT    NOT NULL,
        PRIMARY KEY (deadline_ms, workflow, instance, step_key)
    ) WITHOUT ROWID;",
    // 2: the write-ahead journal's bookkeeping: the lsn of the last
    // journaled batch committed, the id the journal file must carry, and a
    // count of checkpoints.
    "CREATE TABLE memable_journal (
        key   TEXT    NOT NULL PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO memable_journal (key, value) VALUES
        ('lsn', 0), ('journal_id', abs(random() >> 1)), ('checkpoints', 0);",
    // 3: large values in a rowid table of their own. A `steps` row is a
    // cell of a `WITHOUT ROWID` b-tree, whose rows spill into a 4 KiB
    // overflow page from about 1,000 bytes on (a 1 KiB value took 4.6 KiB).
    // A rowid table keeps rows of up to ~4,000 bytes in its leaf pages and,
    // its ids being appended in order, fills them. A value longer than
    // `rows::INLINE_VALUE_MAX` (256) bytes is a row of `step_values`; its
    // step row holds an empty `value` and the row's id. Triggers delete a
    // value row with its step row (an update that replaces it, a delete, the
    // cascade from `instances`). Existing long values move over.
    "CREATE TABLE step_values (
        id    INTEGER PRIMARY KEY,
        value BLOB    NOT NULL
    );
    ALTER TABLE steps ADD COLUMN value_id INTEGER;
    CREATE TRIGGER step_values_replaced AFTER UPDATE OF value_id ON steps
        WHEN old.value_id IS NOT NULL AND old.value_id IS NOT new.value_id
        BEGIN DELETE FROM step_values WHERE id = old.value_id; END;
    CREATE TRIGGER step_values_deleted AFTER DELETE ON steps
        WHEN old.value_id IS NOT NULL
        BEGIN DELETE FROM step_values WHERE id = old.value_id; END;
    CREATE TEMP TABLE memable_moved_values AS
        SELECT row_number() OVER (ORDER BY workflow, instance, step_key) AS id,
               workflow, instance, step_key
        FROM steps WHERE length(value) > 256;
    INSERT INTO step_values (id, value)
        SELECT moved.id, steps.value FROM memable_moved_values AS moved
        JOIN steps USING (workflow, instance, step_key);
    UPDATE steps SET value = x'', value_id = moved.id
        FROM memable_moved_values AS moved
        WHERE steps.workflow = moved.workflow AND steps.instance = moved.instance
          AND steps.step_key = moved.step_key;
    DROP TABLE temp.memable_moved_values;",
    // 4: the codec id of each step's value (`memable_core::Codec::id`).
    // Every row written before is postcard, id 0.
    "ALTER TABLE steps ADD COLUMN codec INTEGER NOT NULL DEFAULT 0;",
    // 5: when each step began and was completed (ms since the Unix epoch);
    // NULL on every row written before.
    "ALTER TABLE steps ADD COLUMN started_at_ms INTEGER;
    ALTER TABLE steps ADD COLUMN completed_at_ms INTEGER;",
    // 6: terminal instances by when they ended, for retention sweeps
    // (`InstanceFilter::ended_before` with a status): a sweep reads the
    // instances old enough instead of every instance of the status.
    "CREATE INDEX instances_by_end ON instances (status, completed_at_ms)
        WHERE completed_at_ms IS NOT NULL;",
];

/// The schema version this build writes (`PRAGMA user_version`).
///
/// # Examples
///
/// ```
/// assert_eq!(memable_sqlite::SCHEMA_VERSION, 6);
/// ```
pub const SCHEMA_VERSION: i64 = 6;

const _: () = assert!(
    MIGRATIONS.len() == 6,
    "SCHEMA_VERSION must equal the number of migrations"
);

/// Refuses foreign or newer databases, then applies pending migrations in
/// one transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), EngineError> {
    let op = "open: check schema";
    let application_id: i32 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(sql(op))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql(op))?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .map_err(sql(op))?;
    if application_id != APPLICATION_ID && (application_id != 0 || tables > 0) {
        return Err(StorageError::new(
            StorageErrorKind::NotMemable,
            op,
            format!(
                "not a memable database: application_id is {application_id:#x} with {tables} schema objects"
            ),
        )
        .into());
    }
    if version > SCHEMA_VERSION {
        return Err(StorageError::new(
            StorageErrorKind::NewerFormat,
            op,
            format!(
                "the database has schema version {version}, newer than this memable's {SCHEMA_VERSION}; upgrade memable"
            ),
        )
        .into());
    }
    let tx = conn.transaction().map_err(sql("open: migrate"))?;
    for (index, migration) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tracing::info!(to = index + 1, "applying SQLite schema migration");
        tx.execute_batch(migration).map_err(sql("open: migrate"))?;
    }
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
    ))
    .map_err(sql("open: migrate"))?;
    tx.commit().map_err(sql("open: migrate"))
}

/// The database's journal position: `(lsn, journal_id)` from
/// `memable_journal`.
pub fn journal_position(conn: &Connection) -> Result<(u64, u64), EngineError> {
    let read = |key: &str| -> Result<u64, EngineError> {
        let value: i64 = conn
            .query_row(
                "SELECT value FROM memable_journal WHERE key = ?1",
                [key],
                |row| row.get(0),
            )
            .map_err(sql("open: read the journal position"))?;
        u64::try_from(value).map_err(|_| {
            EngineError::storage(
                "open",
                format!("memable_journal holds a negative {key}: {value}"),
            )
        })
    };
    Ok((read("lsn")?, read("journal_id")?))
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use crate::rows::INLINE_VALUE_MAX;

    #[test]
    fn migration_3_moves_the_values_the_writer_would_store_apart() {
        let rule = format!("length(value) > {INLINE_VALUE_MAX}");
        assert!(MIGRATIONS[2].contains(&rule), "{rule}");
    }
}
