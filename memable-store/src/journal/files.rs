//! The journal beside a database file: where it lives, how it is opened and
//! removed durably, how big it is preallocated, and which of its records a
//! reopened database still lacks. Shared by the file-backed stores.

use std::path::{Path, PathBuf};

use super::Record;
use memable_core::{EngineError, StorageError, StorageErrorKind};

fn io(message: String) -> EngineError {
    StorageError::new(StorageErrorKind::Io, "open", message).into()
}

/// A journal file is extended with zeros when opened (if shorter) to the
/// checkpoint threshold plus this much (room for the batch that crosses the
/// threshold), so appends overwrite it in place, whose sync is cheaper than
/// an append's (see [`Journal::preallocate`](super::Journal::preallocate)).
///
/// # Examples
///
/// ```
/// assert_eq!(memable_store::journal::PREALLOCATE_SLACK, 64 * 1024);
/// ```
pub const PREALLOCATE_SLACK: u64 = 64 * 1024;

/// Preallocation never exceeds this, whatever the checkpoint threshold.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_store::journal::PREALLOCATE_MAX, 64 << 20);
/// ```
pub const PREALLOCATE_MAX: u64 = 64 * 1024 * 1024;

/// How many bytes to preallocate for a journal checkpointed every
/// `checkpoint_bytes`.
///
/// # Examples
///
/// ```
/// use memable_store::journal::{preallocation, PREALLOCATE_SLACK};
/// assert_eq!(preallocation(1 << 20), (1 << 20) + PREALLOCATE_SLACK);
/// ```
#[must_use]
pub fn preallocation(checkpoint_bytes: u64) -> u64 {
    checkpoint_bytes
        .saturating_add(PREALLOCATE_SLACK)
        .min(PREALLOCATE_MAX)
}

/// The journal of the database at `db`: `<db>.journal`.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// let path = memable_store::journal::journal_path(Path::new("/data/wf.redb"));
/// assert_eq!(path, Path::new("/data/wf.redb.journal"));
/// ```
#[must_use]
pub fn journal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// Opens (creating if needed) the journal file at `path`; a new file's
/// directory entry is synced so the file survives a power loss. `name`
/// names it in errors.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("wf.db.journal");
/// memable_store::journal::open_journal_file(&path, "wf.db.journal").unwrap();
/// assert!(path.exists());
/// ```
pub fn open_journal_file(path: &Path, name: &str) -> Result<std::fs::File, EngineError> {
    let existed = path.exists();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io(format!("{name}: {e}")))?;
    if !existed {
        sync_parent(path, name)?;
    }
    Ok(file)
}

/// Removes the journal file at `path` and syncs its directory.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("wf.db.journal");
/// memable_store::journal::open_journal_file(&path, "j").unwrap();
/// memable_store::journal::remove_journal_file(&path, "j").unwrap();
/// assert!(!path.exists());
/// ```
pub fn remove_journal_file(path: &Path, name: &str) -> Result<(), EngineError> {
    std::fs::remove_file(path).map_err(|e| io(format!("remove {name}: {e}")))?;
    sync_parent(path, name)
}

/// Syncs the directory holding `path`, so a created or removed entry is
/// durable (a no-op where directories cannot be opened, as on Windows).
fn sync_parent(path: &Path, name: &str) -> Result<(), EngineError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::File::open(parent) {
        Ok(dir) => dir
            .sync_all()
            .map_err(|e| io(format!("{name}: sync directory: {e}"))),
        Err(_) => Ok(()),
    }
}

/// The records of a reopened journal that its database lacks: those after
/// `db_lsn`, which must continue it without a gap. A journal that continues
/// from a later lsn belongs to a newer state of the database (or to another
/// database) and is refused with an error naming `name`.
///
/// # Examples
///
/// ```
/// use memable_store::journal::{records_after, Record};
///
/// let records = (1..=4).map(|lsn| Record { lsn, ops: vec![] }).collect();
/// let pending = records_after(records, 2, "j").unwrap();
/// assert_eq!(pending.iter().map(|r| r.lsn).collect::<Vec<_>>(), [3, 4]);
///
/// let ahead = vec![Record { lsn: 9, ops: vec![] }];
/// assert!(records_after(ahead, 2, "j").is_err());
/// ```
pub fn records_after(
    records: Vec<Record>,
    db_lsn: u64,
    name: &str,
) -> Result<Vec<Record>, EngineError> {
    let pending: Vec<Record> = records.into_iter().filter(|r| r.lsn > db_lsn).collect();
    if let Some(first) = pending.first()
        && first.lsn != db_lsn.saturating_add(1)
    {
        return Err(StorageError::new(
            StorageErrorKind::Incomplete,
            "open",
            format!(
                "{name}: journal and database do not match: the journal continues from lsn {} but the database is at lsn {db_lsn}",
                first.lsn - 1
            ),
        )
        .into());
    }
    Ok(pending)
}
