//! The files of a file store, as the backends open, clean up and back them
//! up: a check of the path a store is opened at ([`check_store_path`]), the
//! files a failed first open removes again ([`NewFiles`]), and the
//! temporary file a backup is written to and then moved into place
//! ([`BackupFile`]).
//!
//! # A file store's files
//!
//! A file store at `<db>` is `<db>` itself, its journal `<db>.journal`
//! (with `Durability::Immediate`), SQLite's `<db>-wal` and `<db>-shm`
//! while it is open, and SQLite's lock file `<db>.memable-lock`. While the
//! store runs, the journal holds acknowledged work the database file may
//! lack, and the database file may be mid-way through a commit, so a copy
//! of `<db>` alone is no backup. A backend's `backup` takes its copy on the
//! writer thread, after a checkpoint, between two batches; the copy is a
//! single, cleanly closed database file.
//!
//! # Who may touch what
//!
//! | file | created by | removed by |
//! |---|---|---|
//! | `<db>`, `<db>.journal`, lock, WAL | the first open | a failed first open ([`NewFiles::first_open`], [`NewFiles::remove`]) — never a failed open of an existing database |
//! | the backup's temporary file | [`BackupFile::new`]'s caller | [`BackupFile::finish`] (moved into place) or the drop of an unfinished [`BackupFile`] |
//! | the backup at its path | [`BackupFile::finish`], only if nothing is there | never (a backup never overwrites) |
//!
//! # Failures
//!
//! A backup that fails at any point leaves nothing at its path: the copy is
//! written under a temporary name beside it, synced, and only then linked
//! into place (refused if the path exists by then), and an unfinished
//! [`BackupFile`] removes its temporary file when dropped. A crash in the
//! middle leaves at most that temporary file (named
//! `.<name>.memable-backup-….tmp`), never a partial file at the path.
//!
//! # Examples
//!
//! ```
//! use memable_store::files::BackupFile;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("copy.db");
//! let backup = BackupFile::new(&path).unwrap();
//! std::fs::write(backup.temp(), b"a consistent copy").unwrap();
//! backup.finish().unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"a consistent copy");
//! // A second backup to the same path is refused.
//! assert!(BackupFile::new(&path).is_err());
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memable_core::{EngineError, StorageErrorKind};

use crate::storage_error;

/// Refuses a path no file store can live at, naming it: an empty path and a
/// directory ([`StorageErrorKind::Unsupported`]), a path whose parent
/// directory does not exist or is not a directory
/// ([`StorageErrorKind::Io`]). Creates nothing.
///
/// # Examples
///
/// ```
/// use memable_core::StorageErrorKind;
/// use memable_store::files::check_store_path;
///
/// let dir = tempfile::tempdir().unwrap();
/// assert!(check_store_path(&dir.path().join("wf.db")).is_ok());
/// let empty = check_store_path(std::path::Path::new("")).unwrap_err();
/// assert_eq!(empty.storage_kind(), Some(StorageErrorKind::Unsupported));
/// let directory = check_store_path(dir.path()).unwrap_err();
/// assert_eq!(directory.storage_kind(), Some(StorageErrorKind::Unsupported));
/// let orphan = check_store_path(&dir.path().join("missing/wf.db")).unwrap_err();
/// assert_eq!(orphan.storage_kind(), Some(StorageErrorKind::Io));
/// ```
pub fn check_store_path(path: &Path) -> Result<(), EngineError> {
    let op = "open";
    if path.as_os_str().is_empty() {
        return Err(storage_error(
            StorageErrorKind::Unsupported,
            op,
            "the database path is empty; give the path of a database file, such as \"workflows.db\"",
        ));
    }
    if path.is_dir() {
        return Err(storage_error(
            StorageErrorKind::Unsupported,
            op,
            format!(
                "{} is a directory; give the path of a database file inside it",
                path.display()
            ),
        ));
    }
    let parent = parent_of(path);
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(storage_error(
            StorageErrorKind::Io,
            op,
            format!(
                "{}: {} is not a directory",
                path.display(),
                parent.display()
            ),
        )),
        Err(e) => Err(storage_error(
            StorageErrorKind::Io,
            op,
            format!(
                "{}: its directory {} cannot be used ({e}); create it first",
                path.display(),
                parent.display()
            ),
        )),
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Syncs the directory holding `path`, so a created, renamed or removed
/// entry is durable (a no-op where a directory cannot be opened).
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match std::fs::File::open(parent_of(path)) {
        Ok(dir) => dir.sync_all(),
        Err(_) => Ok(()),
    }
}

/// `error`, naming the store file at `path` if its message does not
/// already: every open error of a file store says which file it is about.
/// The kind is kept.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use memable_core::{EngineError, StorageErrorKind};
/// use memable_store::files::naming;
///
/// let err = naming(Path::new("/data/wf.db"), EngineError::storage("open", std::io::Error::other("EIO")));
/// assert_eq!(err.storage_kind(), Some(StorageErrorKind::Io));
/// assert!(err.to_string().contains("/data/wf.db"), "{err}");
/// ```
#[must_use]
pub fn naming(path: &Path, error: EngineError) -> EngineError {
    let shown = path.display().to_string();
    match error.storage_kind() {
        Some(kind) if !error.to_string().contains(&shown) => memable_core::StorageError::new(
            kind,
            "open",
            format!("{shown}: {}", crate::detail(&error)),
        )
        .into(),
        _ => error,
    }
}

/// The files of a store that did not exist before its first open: what a
/// failed first open removes, so that it leaves nothing a later open would
/// refuse.
///
/// # Examples
///
/// ```
/// use memable_store::files::NewFiles;
///
/// let dir = tempfile::tempdir().unwrap();
/// let (db, old) = (dir.path().join("wf.db"), dir.path().join("old"));
/// std::fs::write(&old, b"kept").unwrap();
/// let created = NewFiles::missing([db.clone(), old.clone()]);
/// std::fs::write(&db, b"half-created").unwrap();
/// created.remove(); // the open failed
/// assert!(!db.exists());
/// assert!(old.exists());
/// ```
#[derive(Debug)]
#[must_use]
pub struct NewFiles {
    paths: Vec<PathBuf>,
}

impl NewFiles {
    /// The paths among `paths` where no file exists now.
    ///
    /// # Examples
    ///
    /// See [`NewFiles`].
    pub fn missing(paths: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            paths: paths
                .into_iter()
                .filter(|p| std::fs::symlink_metadata(p).is_err())
                .collect(),
        }
    }

    /// For the first open of the database at `db`: `db` and those of its
    /// `side` files that are missing now — or nothing at all if `db`
    /// exists. An open of an existing database removes nothing when it
    /// fails: its side files (a WAL written by a replay, say) may hold
    /// work the database lacks.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_store::files::NewFiles;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let (db, journal) = (dir.path().join("wf.db"), dir.path().join("wf.db.journal"));
    /// std::fs::write(&db, b"an existing database").unwrap();
    /// let created = NewFiles::first_open(&db, [journal.clone()]);
    /// std::fs::write(&journal, b"written by the failed open").unwrap();
    /// created.remove();
    /// assert!(db.exists() && journal.exists());
    /// ```
    pub fn first_open(db: &Path, side: impl IntoIterator<Item = PathBuf>) -> Self {
        if std::fs::symlink_metadata(db).is_ok() {
            return Self { paths: Vec::new() };
        }
        Self::missing(std::iter::once(db.to_path_buf()).chain(side))
    }

    /// Removes every file created since [`missing`](Self::missing) at those
    /// paths, and syncs their directory. A file that cannot be removed is
    /// logged; the open's own error is what the caller reports.
    ///
    /// # Examples
    ///
    /// See [`NewFiles`].
    pub fn remove(self) {
        let mut removed = None;
        for path in &self.paths {
            match std::fs::remove_file(path) {
                Ok(()) => {
                    tracing::info!(file = %path.display(), "removed a file the failed first open created");
                    removed = Some(path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "could not remove a file the failed first open created");
                }
            }
        }
        if let Some(path) = removed
            && let Err(e) = sync_parent(path)
        {
            tracing::warn!(file = %path.display(), error = %e, "could not sync the directory after removing files");
        }
    }
}

/// A backup being written: a temporary file beside its path, moved into
/// place by [`finish`](Self::finish) and removed if dropped before.
///
/// # Examples
///
/// See the [module docs](self).
#[derive(Debug)]
pub struct BackupFile {
    path: PathBuf,
    temp: PathBuf,
    placed: bool,
}

/// Distinguishes the temporary files of concurrent backups in one process.
static BACKUPS: AtomicU64 = AtomicU64::new(0);

fn exists_error(path: &Path) -> EngineError {
    storage_error(
        StorageErrorKind::Unsupported,
        "backup",
        format!(
            "{} already exists; a backup never overwrites a file: choose a new path or remove the old file first",
            path.display()
        ),
    )
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> EngineError {
    storage_error(
        StorageErrorKind::Io,
        "backup",
        format!("{}: {what}: {e}", path.display()),
    )
}

impl BackupFile {
    /// Starts a backup to `path`: refused with
    /// [`StorageErrorKind::Unsupported`] if something is at `path` already
    /// (or `path` is empty), with [`StorageErrorKind::Io`] if its directory
    /// does not exist. Creates nothing; the caller writes the copy at
    /// [`temp`](Self::temp).
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn new(path: &Path) -> Result<Self, EngineError> {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(exists_error(path));
        }
        check_store_path(path).map_err(|e| match e.storage_kind() {
            Some(kind) => storage_error(kind, "backup", crate::detail(&e)),
            None => e,
        })?;
        let name = path
            .file_name()
            .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
        let temp = parent_of(path).join(format!(
            ".{name}.memable-backup-{}-{}.tmp",
            std::process::id(),
            BACKUPS.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            placed: false,
        })
    }

    /// Where the copy is to be written.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    #[must_use]
    pub fn temp(&self) -> &Path {
        &self.temp
    }

    /// The path the backup goes to.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let backup = memable_store::files::BackupFile::new(&dir.path().join("b.db")).unwrap();
    /// assert_eq!(backup.path(), dir.path().join("b.db"));
    /// ```
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the copy, links it into place (refused if a file appeared at
    /// the path meanwhile), removes the temporary name and syncs the
    /// directory: the backup is durable when this returns.
    ///
    /// # Errors
    ///
    /// [`StorageErrorKind::Io`] if the copy cannot be synced or moved,
    /// [`StorageErrorKind::Unsupported`] if the path is taken; the
    /// temporary file is removed either way.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    pub fn finish(mut self) -> Result<(), EngineError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.temp)
            .map_err(|e| io_error(&self.temp, "open the copy", &e))?;
        file.sync_all()
            .map_err(|e| io_error(&self.temp, "sync the copy", &e))?;
        drop(file);
        // A hard link never replaces an existing file; where links are not
        // supported, a checked rename (which could race) is the fallback.
        match std::fs::hard_link(&self.temp, &self.path) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.temp);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(exists_error(&self.path));
            }
            Err(_) => {
                if std::fs::symlink_metadata(&self.path).is_ok() {
                    return Err(exists_error(&self.path));
                }
                std::fs::rename(&self.temp, &self.path)
                    .map_err(|e| io_error(&self.path, "move the copy into place", &e))?;
            }
        }
        self.placed = true;
        sync_parent(&self.path).map_err(|e| io_error(&self.path, "sync its directory", &e))
    }
}

impl Drop for BackupFile {
    fn drop(&mut self) {
        if self.placed {
            return;
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = self.temp.as_os_str().to_owned();
            name.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_backup_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let backup = BackupFile::new(&path).unwrap();
        std::fs::write(backup.temp(), b"partial").unwrap();
        drop(backup);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_path_taken_meanwhile_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        let backup = BackupFile::new(&path).unwrap();
        std::fs::write(backup.temp(), b"copy").unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        let err = backup.finish().unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::Unsupported));
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_backup_into_a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = BackupFile::new(&dir.path().join("no/b.db")).unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::Io));
    }
}
