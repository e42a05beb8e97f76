//! What commands print: the `--json` documents (stable: fields are only
//! ever added) and the human tables.

use memable_core::{
    Codec, MetadataStatus, StepEntry, StepKind, StepRecord, StepState, WorkflowMetadata,
};
use serde::Serialize;
use serde_json::Value;

/// One instance, as `list` and `show` print it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct InstanceJson {
    pub workflow: String,
    pub id: String,
    /// `running`, `suspended`, `completed`, `failed`, `cancelled`.
    pub status: &'static str,
    /// The key a suspended instance waits at.
    pub suspended_at: Option<String>,
    /// The status message (suspended, completed) or the error (failed).
    pub message: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub completed_at_ms: Option<u64>,
}

impl From<&WorkflowMetadata> for InstanceJson {
    fn from(meta: &WorkflowMetadata) -> Self {
        let (suspended_at, message) = match &meta.status {
            MetadataStatus::Suspended { key, status } => (Some(key.clone()), status.clone()),
            MetadataStatus::Completed(status) => (None, status.clone()),
            MetadataStatus::Failed(error) => (None, Some(error.clone())),
            MetadataStatus::Running | MetadataStatus::Cancelled => (None, None),
        };
        Self {
            workflow: meta.workflow_name.clone(),
            id: meta.instance_id.clone(),
            status: meta.status.kind().as_str(),
            suspended_at,
            message,
            created_at_ms: meta.created_at_ms,
            updated_at_ms: meta.updated_at_ms,
            completed_at_ms: meta.completed_at_ms,
        }
    }
}

/// One step record, as `steps` prints it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct StepJson {
    pub key: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub attempts: u32,
    pub started_at_ms: Option<u64>,
    pub completed_at_ms: Option<u64>,
    pub type_tag: String,
    /// The value as JSON (`null` if none or not JSON-encoded).
    pub value: Value,
    pub value_len: usize,
    pub error: Option<String>,
    pub deadline_ms: Option<u64>,
    pub status: Option<String>,
}

impl StepJson {
    pub(crate) fn new(key: &str, record: &StepRecord) -> Self {
        Self {
            key: key.to_owned(),
            kind: kind_name(record.kind),
            state: state_name(record.state),
            attempts: record.attempts,
            started_at_ms: record.started_at_ms,
            completed_at_ms: record.completed_at_ms,
            type_tag: record.type_tag.clone(),
            value: value_of(record),
            value_len: record.value.len(),
            error: record.error.clone(),
            deadline_ms: record.deadline_ms,
            status: record.status.clone(),
        }
    }
}

impl From<&StepEntry> for StepJson {
    fn from(entry: &StepEntry) -> Self {
        Self {
            key: entry.key.clone(),
            kind: kind_name(entry.kind),
            state: state_name(entry.state),
            attempts: entry.attempts,
            started_at_ms: entry.started_at_ms,
            completed_at_ms: entry.completed_at_ms,
            type_tag: entry.type_tag.clone(),
            value: entry.value.clone().unwrap_or(Value::Null),
            value_len: entry.value_len,
            error: entry.error.clone(),
            deadline_ms: entry.deadline_ms,
            status: entry.status.clone(),
        }
    }
}

/// A record's value as JSON, `null` when it has none or it is not
/// JSON-encoded (records written by the first postcard codec).
pub(crate) fn value_of(record: &StepRecord) -> Value {
    if record.state != StepState::Completed || record.codec != Codec::Json {
        return Value::Null;
    }
    serde_json::from_slice(&record.value).unwrap_or(Value::Null)
}

pub(crate) fn kind_name(kind: StepKind) -> &'static str {
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

pub(crate) fn state_name(state: StepState) -> &'static str {
    match state {
        StepState::Completed => "completed",
        StepState::Suspended => "suspended",
        StepState::Retrying => "retrying",
        StepState::Failed => "failed",
    }
}

/// A plain table: a header row and rows, columns padded to fit.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A timestamp for people: UTC, to the second.
pub(crate) fn when(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

/// Days since 1970-01-01 to a (year, month, day) date (proleptic
/// Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A JSON value on one line, for tables.
pub(crate) fn compact(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        other => {
            let text = other.to_string();
            if text.chars().count() > 60 {
                let cut: String = text.chars().take(57).collect();
                format!("{cut}...")
            } else {
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{table, when};

    #[test]
    fn dates_are_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00");
        assert_eq!(when(1_764_700_000_000), "2025-12-02 18:26:40");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00:00");
    }

    #[test]
    fn tables_pad_columns() {
        let rows = vec![vec![
            "a".to_owned(),
            "long value".to_owned(),
            "x".to_owned(),
        ]];
        assert_eq!(
            table(&["ID", "V", "Z"], &rows),
            "ID  V           Z\na   long value  x"
        );
    }
}
