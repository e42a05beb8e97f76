//! Conversions between rows and memable's records.

use memable_core::{
    Codec, MetadataStatus, StatusKind, StepKind, StepRecord, StepState, WorkflowMetadata,
};
use rusqlite::Row;

/// Integers are stored as SQLite's signed 64-bit; times never reach the sign bit.
pub fn to_sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// See [`to_sql_int`].
pub fn from_sql_int(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Deadlines span all of `u64` (a `Duration::MAX` timer saturates), so they
/// are stored offset by 2^63: the signed column then sorts exactly like the
/// unsigned deadline.
pub fn deadline_to_sql(deadline: u64) -> i64 {
    i64::from_be_bytes((deadline ^ (1 << 63)).to_be_bytes())
}

/// See [`deadline_to_sql`].
pub fn deadline_from_sql(stored: i64) -> u64 {
    u64::from_be_bytes(stored.to_be_bytes()) ^ (1 << 63)
}

pub fn state_name(state: StepState) -> &'static str {
    match state {
        StepState::Completed => "completed",
        StepState::Suspended => "suspended",
        StepState::Retrying => "retrying",
        StepState::Failed => "failed",
    }
}

fn parse_state(name: &str) -> Option<StepState> {
    [
        StepState::Completed,
        StepState::Suspended,
        StepState::Retrying,
        StepState::Failed,
    ]
    .into_iter()
    .find(|s| state_name(*s) == name)
}

pub fn kind_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Step => "step",
        StepKind::Suspend => "suspend",
        StepKind::Timer => "timer",
        StepKind::Engine => "engine",
        StepKind::Select => "select",
        StepKind::Member => "member",
        StepKind::Child => "child",
    }
}

fn parse_kind(name: &str) -> Option<StepKind> {
    [
        StepKind::Step,
        StepKind::Suspend,
        StepKind::Timer,
        StepKind::Engine,
        StepKind::Select,
        StepKind::Member,
        StepKind::Child,
    ]
    .into_iter()
    .find(|k| kind_name(*k) == name)
}

fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unknown {what} {value:?} in the database").into(),
    )
}

/// The codec of a stored id (column `codec`, schema migration 4).
fn codec(id: i64) -> rusqlite::Result<Codec> {
    u8::try_from(id)
        .ok()
        .and_then(Codec::from_id)
        .ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                9,
                rusqlite::types::Type::Integer,
                format!("unknown value codec id {id} in the database: written by a newer memable?")
                    .into(),
            )
        })
}

fn missing_value() -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        4,
        rusqlite::types::Type::Blob,
        "a step names a row of step_values that is missing from the database".into(),
    )
}

/// The status columns of an instance row: `(status, suspended_key, message)`.
pub fn status_columns(status: &MetadataStatus) -> (&'static str, Option<&str>, Option<&str>) {
    let kind = status.kind().as_str();
    match status {
        MetadataStatus::Running | MetadataStatus::Cancelled => (kind, None, None),
        MetadataStatus::Suspended { key, status } => (kind, Some(key), status.as_deref()),
        MetadataStatus::Completed(message) => (kind, None, message.as_deref()),
        MetadataStatus::Failed(error) => (kind, None, Some(error)),
    }
}

/// Columns selected for an instance, in this order.
pub const METADATA_COLUMNS: &str = "workflow, instance, status, suspended_key, message, created_at_ms, updated_at_ms, completed_at_ms";

/// Reads an instance row selected with [`METADATA_COLUMNS`].
pub fn metadata(row: &Row<'_>) -> rusqlite::Result<WorkflowMetadata> {
    let status_name: String = row.get(2)?;
    let suspended_key: Option<String> = row.get(3)?;
    let message: Option<String> = row.get(4)?;
    let Some(kind) = StatusKind::parse(&status_name) else {
        return Err(corrupt("status", &status_name));
    };
    let status = MetadataStatus::from_columns(kind, suspended_key, message);
    Ok(WorkflowMetadata {
        workflow_name: row.get(0)?,
        instance_id: row.get(1)?,
        status,
        created_at_ms: from_sql_int(row.get(5)?),
        updated_at_ms: from_sql_int(row.get(6)?),
        completed_at_ms: row.get::<_, Option<i64>>(7)?.map(from_sql_int),
    })
}

/// Values longer than this many bytes are stored apart, as a row of
/// `step_values` (schema migration 3): inside a `steps` row of a `WITHOUT
/// ROWID` table a value of about 1,000 bytes or more spills into an
/// overflow page of its own, while `step_values` keeps rows of up to ~4,000
/// bytes in its leaf pages and fills them. Shorter values stay in their
/// step row, read without a second lookup.
pub const INLINE_VALUE_MAX: usize = 256;

/// The columns selected for a step from `steps` (not aliased), in the order
/// [`step`] reads them; the value comes from `step_values` when the row
/// holds its id.
macro_rules! step_columns {
    () => {
        "step_key, state, kind, type_tag, \
         CASE WHEN value_id IS NULL THEN value \
         ELSE (SELECT step_values.value FROM step_values WHERE step_values.id = steps.value_id) END, \
         status, attempts, error, deadline_ms, codec, started_at_ms, completed_at_ms"
    };
}

/// Columns selected for a step from `steps`, in this order.
pub const STEP_COLUMNS: &str = step_columns!();

/// Reads a step row selected with [`STEP_COLUMNS`]: `(key, record)`.
pub fn step(row: &Row<'_>) -> rusqlite::Result<(String, StepRecord)> {
    // Borrowed from the row: no allocation for the two enum columns.
    let state = row.get_ref(1)?.as_str()?;
    let kind = row.get_ref(2)?.as_str()?;
    Ok((
        row.get(0)?,
        StepRecord {
            state: parse_state(state).ok_or_else(|| corrupt("step state", state))?,
            kind: parse_kind(kind).ok_or_else(|| corrupt("step kind", kind))?,
            type_tag: row.get(3)?,
            // NULL only when the value row a step names is missing.
            value: row
                .get::<_, Option<Vec<u8>>>(4)?
                .ok_or_else(missing_value)?,
            status: row.get(5)?,
            attempts: u32::try_from(row.get::<_, i64>(6)?).unwrap_or(u32::MAX),
            error: row.get(7)?,
            deadline_ms: row.get::<_, Option<i64>>(8)?.map(deadline_from_sql),
            codec: codec(row.get(9)?)?,
            started_at_ms: row.get::<_, Option<i64>>(10)?.map(from_sql_int),
            completed_at_ms: row.get::<_, Option<i64>>(11)?.map(from_sql_int),
        },
    ))
}

/// Every step record of `key`, sorted by step key.
///
/// The query has no `ORDER BY`: with one, SQLite (built with `STAT4`)
/// re-prepares the statement on every execution, which cost more than the
/// whole read. The rows come in primary-key order; sorting them again here
/// checks that in one pass.
pub fn instance_steps(
    conn: &rusqlite::Connection,
    key: &memable_core::InstanceKey,
    operation: &'static str,
) -> Result<Vec<(String, StepRecord)>, memable_core::EngineError> {
    let mut stmt = conn
        .prepare_cached(INSTANCE_STEPS)
        .map_err(crate::error::sql(operation))?;
    let mut steps: Vec<(String, StepRecord)> = stmt
        .query_map(rusqlite::params![key.workflow(), key.instance()], step)
        .and_then(Iterator::collect)
        .map_err(crate::error::sql(operation))?;
    steps.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(steps)
}

/// The columns are [`STEP_COLUMNS`].
const INSTANCE_STEPS: &str = concat!(
    "SELECT ",
    step_columns!(),
    " FROM steps WHERE workflow = ?1 AND instance = ?2"
);
