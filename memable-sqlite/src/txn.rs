//! Row-level access inside one write transaction, for
//! [`memable_core::transitions::apply`].

use memable_core::transitions::Transaction;
use memable_core::{EngineError, InstanceKey, StepRecord, TimerEntry, WorkflowMetadata};
use rusqlite::{OptionalExtension, params};

use crate::error::sql;
use crate::rows::{self, INLINE_VALUE_MAX, METADATA_COLUMNS, STEP_COLUMNS, to_sql_int};

/// Row access on the writer connection, inside a write transaction the
/// caller opened (and commits or rolls back).
pub struct SqlTxn<'c>(pub &'c rusqlite::Connection);

impl Transaction for SqlTxn<'_> {
    fn metadata(&mut self, key: &InstanceKey) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.0
            .prepare_cached(&format!(
                "SELECT {METADATA_COLUMNS} FROM instances WHERE workflow = ?1 AND instance = ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![key.workflow(), key.instance()], rows::metadata)
                    .optional()
            })
            .map_err(sql("read metadata"))
    }

    fn put_metadata(
        &mut self,
        key: &InstanceKey,
        meta: &WorkflowMetadata,
        _previous: Option<&WorkflowMetadata>,
    ) -> Result<(), EngineError> {
        let (status, suspended_key, message) = rows::status_columns(&meta.status);
        self.0
            .prepare_cached(
                "INSERT INTO instances (workflow, instance, status, suspended_key, message, created_at_ms, updated_at_ms, completed_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (workflow, instance) DO UPDATE SET
                   status = excluded.status, suspended_key = excluded.suspended_key, message = excluded.message,
                   created_at_ms = excluded.created_at_ms, updated_at_ms = excluded.updated_at_ms,
                   completed_at_ms = excluded.completed_at_ms",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    key.workflow(),
                    key.instance(),
                    status,
                    suspended_key,
                    message,
                    to_sql_int(meta.created_at_ms),
                    to_sql_int(meta.updated_at_ms),
                    meta.completed_at_ms.map(to_sql_int),
                ])
            })
            .map(drop)
            .map_err(sql("write metadata"))
    }

    fn step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.0
            .prepare_cached(&format!(
                "SELECT {STEP_COLUMNS} FROM steps WHERE workflow = ?1 AND instance = ?2 AND step_key = ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![key.workflow(), key.instance(), step_key], rows::step)
                    .optional()
            })
            .map(|found| found.map(|(_, record)| record))
            .map_err(sql("read step"))
    }

    fn remove_step(&mut self, key: &InstanceKey, step_key: &str) -> Result<(), EngineError> {
        // Its `step_values` row goes with it (trigger `step_values_deleted`).
        self.0
            .prepare_cached(
                "DELETE FROM steps WHERE workflow = ?1 AND instance = ?2 AND step_key = ?3",
            )
            .and_then(|mut stmt| stmt.execute(params![key.workflow(), key.instance(), step_key]))
            .map_err(sql("remove step"))?;
        Ok(())
    }

    fn put_step(
        &mut self,
        key: &InstanceKey,
        step_key: &str,
        record: &StepRecord,
    ) -> Result<(), EngineError> {
        // A long value becomes a row of `step_values`; the step row names
        // it. The value row it replaces, if any, goes with the update
        // (trigger `step_values_replaced`).
        let (value, value_id): (&[u8], Option<i64>) = if record.value.len() > INLINE_VALUE_MAX {
            self.0
                .prepare_cached("INSERT INTO step_values (value) VALUES (?1)")
                .and_then(|mut stmt| stmt.execute([&record.value]))
                .map_err(sql("write step value"))?;
            (&[], Some(self.0.last_insert_rowid()))
        } else {
            (&record.value, None)
        };
        self.0
            .prepare_cached(
                "INSERT INTO steps (workflow, instance, step_key, state, kind, type_tag, value, status, attempts, error, deadline_ms, value_id, codec, started_at_ms, completed_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                 ON CONFLICT (workflow, instance, step_key) DO UPDATE SET
                   state = excluded.state, kind = excluded.kind, type_tag = excluded.type_tag,
                   value = excluded.value, status = excluded.status, attempts = excluded.attempts,
                   error = excluded.error, deadline_ms = excluded.deadline_ms,
                   value_id = excluded.value_id, codec = excluded.codec,
                   started_at_ms = excluded.started_at_ms, completed_at_ms = excluded.completed_at_ms",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    key.workflow(),
                    key.instance(),
                    step_key,
                    rows::state_name(record.state),
                    rows::kind_name(record.kind),
                    record.type_tag,
                    value,
                    record.status,
                    i64::from(record.attempts),
                    record.error,
                    record.deadline_ms.map(rows::deadline_to_sql),
                    value_id,
                    record.codec.id(),
                    record.started_at_ms.map(to_sql_int),
                    record.completed_at_ms.map(to_sql_int),
                ])
            })
            .map(drop)
            .map_err(sql("write step"))
    }

    fn steps(&mut self, key: &InstanceKey) -> Result<Vec<(String, StepRecord)>, EngineError> {
        rows::instance_steps(self.0, key, "read steps")
    }

    fn put_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError> {
        self.0
            .prepare_cached(
                "INSERT OR IGNORE INTO timers (deadline_ms, workflow, instance, step_key) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    rows::deadline_to_sql(timer.deadline_ms),
                    timer.instance.workflow(),
                    timer.instance.instance(),
                    timer.step_key
                ])
            })
            .map(drop)
            .map_err(sql("write timer"))
    }

    fn remove_timer(&mut self, timer: &TimerEntry) -> Result<(), EngineError> {
        self.0
            .prepare_cached(
                "DELETE FROM timers WHERE deadline_ms = ?1 AND workflow = ?2 AND instance = ?3 AND step_key = ?4",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    rows::deadline_to_sql(timer.deadline_ms),
                    timer.instance.workflow(),
                    timer.instance.instance(),
                    timer.step_key
                ])
            })
            .map(drop)
            .map_err(sql("remove timer"))
    }

    fn remove_instance(
        &mut self,
        key: &InstanceKey,
        _meta: &WorkflowMetadata,
    ) -> Result<(), EngineError> {
        // Their `step_values` rows go with the steps (trigger
        // `step_values_deleted`).
        for statement in [
            "DELETE FROM steps WHERE workflow = ?1 AND instance = ?2",
            "DELETE FROM instances WHERE workflow = ?1 AND instance = ?2",
        ] {
            self.0
                .prepare_cached(statement)
                .and_then(|mut stmt| stmt.execute(params![key.workflow(), key.instance()]))
                .map_err(sql("delete instance"))?;
        }
        Ok(())
    }
}
