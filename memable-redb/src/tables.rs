//! The table layout and the file format version.
//!
//! Keys are redb tuples, compared element by element, so a per-instance
//! range scan over `(workflow, instance, step)` can never reach the rows of
//! an instance whose id merely starts with the same characters.

use memable_core::{EngineError, InstanceKey, StatusKind};
use redb::TableDefinition;

/// The format this build writes and reads, stored under [`FORMAT_KEY`].
/// Format 2 added the journal (the `memable_journal` table and the
/// `<file>.journal` beside the database); format 3 adds the dirty marker
/// ([`DIRTY_KEY`]), which a format-2 memable would ignore — opening a
/// database whose journal is gone as if nothing were missing. Files of
/// formats 1 and 2 are upgraded on open; an older memable refuses a
/// format-3 file.
pub(crate) const FORMAT_VERSION: u32 = 3;

/// The format before the journal, upgraded on open.
pub(crate) const FORMAT_WITHOUT_JOURNAL: u32 = 1;

/// The format with a journal but without the dirty marker, upgraded on
/// open.
pub(crate) const FORMAT_WITHOUT_DIRTY: u32 = 2;

/// Key of the format version in [`META`].
pub(crate) const FORMAT_KEY: &str = "format";

/// `"format"` → format version.
pub(crate) const META: TableDefinition<&str, u32> = TableDefinition::new("memable_meta");

/// The journal bookkeeping of a file store opened with
/// `Durability::Immediate`: [`LSN_KEY`] → the lsn of the last journaled
/// batch applied, [`JOURNAL_ID_KEY`] → the id written in the header of the
/// journal file paired with this database, [`DIRTY_KEY`] → 1 while the
/// journal may hold acknowledged work the database lacks (from open to a
/// clean close), 0 or absent otherwise.
pub(crate) const JOURNAL: TableDefinition<&str, u64> = TableDefinition::new("memable_journal");

/// Key of the last applied lsn in [`JOURNAL`].
pub(crate) const LSN_KEY: &str = "lsn";

/// Key of the journal id in [`JOURNAL`].
pub(crate) const JOURNAL_ID_KEY: &str = "journal_id";

/// Key of the dirty marker in [`JOURNAL`].
pub(crate) const DIRTY_KEY: &str = "dirty";

/// `(workflow, instance)` → encoded `WorkflowMetadata`.
pub(crate) const INSTANCES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("memable_instances");

/// `(status code, workflow, instance)` → `()`: finds the instances of one
/// status without scanning the others.
pub(crate) const BY_STATUS: TableDefinition<(u8, &str, &str), ()> =
    TableDefinition::new("memable_instances_by_status");

/// `(workflow, instance, step key)` → encoded `StepRecord`.
pub(crate) const STEPS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("memable_steps");

/// `(deadline ms, workflow, instance, step key)` → `()`, earliest first.
pub(crate) const TIMERS: TableDefinition<(u64, &str, &str, &str), ()> =
    TableDefinition::new("memable_timers");

/// The stored code of a status in [`BY_STATUS`]. Part of the file format:
/// never renumber.
pub(crate) fn status_code(kind: StatusKind) -> u8 {
    match kind {
        StatusKind::Running => 0,
        StatusKind::Suspended => 1,
        StatusKind::Completed => 2,
        StatusKind::Failed => 3,
        StatusKind::Cancelled => 4,
    }
}

/// Rebuilds an instance key read back from a table.
pub(crate) fn instance_key(
    operation: &'static str,
    workflow: &str,
    instance: &str,
) -> Result<InstanceKey, EngineError> {
    InstanceKey::new(workflow, instance).map_err(|e| {
        EngineError::storage(operation, format!("stored instance key is invalid: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_distinct() {
        let mut codes: Vec<u8> = StatusKind::ALL.into_iter().map(status_code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), StatusKind::ALL.len());
    }
}
