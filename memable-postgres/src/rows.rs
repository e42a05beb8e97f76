//! Conversions between rows and memable's records.

use memable_core::{
    Codec, EngineError, InstanceKey, MetadataStatus, StatusKind, StepKind, StepRecord, StepState,
    WorkflowMetadata,
};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::{corrupt, sql};

/// Times are stored as `BIGINT`; they never reach the sign bit.
pub fn to_sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// See [`to_sql_int`]; a negative value is corrupt.
pub fn from_sql_int(value: i64, operation: &'static str) -> Result<u64, EngineError> {
    u64::try_from(value).map_err(|_| corrupt(operation, format!("negative time {value}")))
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

const STATES: [(StepState, &str); 4] = [
    (StepState::Completed, "completed"),
    (StepState::Suspended, "suspended"),
    (StepState::Retrying, "retrying"),
    (StepState::Failed, "failed"),
];

const KINDS: [(StepKind, &str); 7] = [
    (StepKind::Step, "step"),
    (StepKind::Suspend, "suspend"),
    (StepKind::Timer, "timer"),
    (StepKind::Engine, "engine"),
    (StepKind::Select, "select"),
    (StepKind::Member, "member"),
    (StepKind::Child, "child"),
];

pub fn state_name(state: StepState) -> &'static str {
    STATES
        .iter()
        .find(|(s, _)| *s == state)
        .map_or("completed", |(_, n)| n)
}

pub fn kind_name(kind: StepKind) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("step", |(_, n)| n)
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

/// Columns selected for an instance, in the order [`metadata_at`] reads
/// them (a macro, for `concat!`).
macro_rules! metadata_columns {
    () => {
        "workflow, instance_id, status, suspended_key, message, created_at_ms, updated_at_ms, completed_at_ms"
    };
}
pub(crate) use metadata_columns;

/// A string stored as its UTF-8 bytes.
pub fn text_at(row: &PgRow, at: usize, op: &'static str) -> Result<String, EngineError> {
    let bytes: Vec<u8> = row.try_get(at).map_err(sql(op))?;
    String::from_utf8(bytes).map_err(|e| corrupt(op, format!("a string column is not UTF-8: {e}")))
}

/// A nullable string stored as its UTF-8 bytes.
pub fn opt_text_at(
    row: &PgRow,
    at: usize,
    op: &'static str,
) -> Result<Option<String>, EngineError> {
    let bytes: Option<Vec<u8>> = row.try_get(at).map_err(sql(op))?;
    bytes
        .map(|b| {
            String::from_utf8(b)
                .map_err(|e| corrupt(op, format!("a string column is not UTF-8: {e}")))
        })
        .transpose()
}

/// Reads an instance row whose columns start at `at` in the order of
/// [`METADATA_COLUMNS`] (`at` = 0 for a plain select).
pub fn metadata_at(
    row: &PgRow,
    at: usize,
    op: &'static str,
) -> Result<WorkflowMetadata, EngineError> {
    let status_name: String = row.try_get(at + 2).map_err(sql(op))?;
    let suspended_key = opt_text_at(row, at + 3, op)?;
    let message = opt_text_at(row, at + 4, op)?;
    let Some(kind) = StatusKind::parse(&status_name) else {
        return Err(corrupt(op, format!("unknown status {status_name:?}")));
    };
    let status = MetadataStatus::from_columns(kind, suspended_key, message);
    let completed: Option<i64> = row.try_get(at + 7).map_err(sql(op))?;
    Ok(WorkflowMetadata {
        workflow_name: text_at(row, at, op)?,
        instance_id: text_at(row, at + 1, op)?,
        status,
        created_at_ms: from_sql_int(row.try_get(at + 5).map_err(sql(op))?, op)?,
        updated_at_ms: from_sql_int(row.try_get(at + 6).map_err(sql(op))?, op)?,
        completed_at_ms: completed.map(|c| from_sql_int(c, op)).transpose()?,
    })
}

/// Columns selected for a step, in the order [`step_at`] reads them (a
/// macro, for `concat!`).
macro_rules! step_columns {
    () => {
        "step_key, state, kind, type_tag, value, status, attempts, error, deadline_ms, codec, started_at_ms, completed_at_ms"
    };
}
pub(crate) use step_columns;

/// Reads a step row whose columns start at `at` in the order of
/// [`STEP_COLUMNS`]: `(key, record)`.
pub fn step_at(
    row: &PgRow,
    at: usize,
    op: &'static str,
) -> Result<(String, StepRecord), EngineError> {
    let state: &str = row.try_get(at + 1).map_err(sql(op))?;
    let kind: &str = row.try_get(at + 2).map_err(sql(op))?;
    let codec_id: i16 = row.try_get(at + 9).map_err(sql(op))?;
    let attempts: i64 = row.try_get(at + 6).map_err(sql(op))?;
    let deadline: Option<i64> = row.try_get(at + 8).map_err(sql(op))?;
    let started: Option<i64> = row.try_get(at + 10).map_err(sql(op))?;
    let completed: Option<i64> = row.try_get(at + 11).map_err(sql(op))?;
    Ok((
        text_at(row, at, op)?,
        StepRecord {
            state: STATES
                .iter()
                .find(|(_, n)| *n == state)
                .map(|(s, _)| *s)
                .ok_or_else(|| corrupt(op, format!("unknown step state {state:?}")))?,
            kind: KINDS
                .iter()
                .find(|(_, n)| *n == kind)
                .map(|(k, _)| *k)
                .ok_or_else(|| corrupt(op, format!("unknown step kind {kind:?}")))?,
            type_tag: text_at(row, at + 3, op)?,
            value: row.try_get(at + 4).map_err(sql(op))?,
            status: opt_text_at(row, at + 5, op)?,
            attempts: u32::try_from(attempts)
                .map_err(|_| corrupt(op, format!("attempt count {attempts}")))?,
            error: opt_text_at(row, at + 7, op)?,
            deadline_ms: deadline.map(deadline_from_sql),
            codec: u8::try_from(codec_id)
                .ok()
                .and_then(Codec::from_id)
                .ok_or_else(|| {
                    corrupt(
                        op,
                        format!("unknown value codec id {codec_id}: written by a newer memable?"),
                    )
                })?,
            started_at_ms: started.map(|t| from_sql_int(t, op)).transpose()?,
            completed_at_ms: completed.map(|t| from_sql_int(t, op)).transpose()?,
        },
    ))
}

/// The instance key of a row whose `workflow, instance_id` start at `at`.
pub fn key_at(row: &PgRow, at: usize, op: &'static str) -> Result<InstanceKey, EngineError> {
    let workflow = text_at(row, at, op)?;
    let instance = text_at(row, at + 1, op)?;
    InstanceKey::new(&workflow, &instance)
        .map_err(|e| corrupt(op, format!("bad instance key in the database: {e}")))
}

/// Reads the `owner, epoch` columns at `at`: `None` for an instance never
/// acquired (no owner, epoch 0).
pub fn ownership_at(
    row: &PgRow,
    at: usize,
    op: &'static str,
) -> Result<Option<memable_core::Ownership>, EngineError> {
    let worker: Option<String> = row.try_get(at).map_err(sql(op))?;
    let epoch: i64 = row.try_get(at + 1).map_err(sql(op))?;
    let epoch = from_sql_int(epoch, op)?;
    Ok((worker.is_some() || epoch > 0).then_some(memable_core::Ownership { worker, epoch }))
}
