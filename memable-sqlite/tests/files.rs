//! The files of a SQLite store from the user's side: `backup` while the
//! engine runs, a first open that fails (a full disk) leaving nothing
//! behind, and open errors that name their file.

use std::collections::BTreeSet;

use memable_testkit::backup;
use std::path::Path;

use memable_core::{InstanceKey, StepKind, StepRecord, StepStore, StepStoreExt, StorageErrorKind};
use memable_sqlite::{Durability, SCHEMA_VERSION, SqliteStore};

fn key(workflow: &str, instance: &str) -> InstanceKey {
    InstanceKey::new(workflow, instance).unwrap()
}

fn value(bytes: &[u8]) -> StepRecord {
    StepRecord::completed(StepKind::Step, "bytes", bytes.to_vec(), None)
}

fn input() -> StepRecord {
    StepRecord::completed(StepKind::Engine, "()", Vec::new(), None)
}

fn journal_of(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    name.into()
}

fn open_file(path: &Path, relaxed: bool) -> Result<SqliteStore, memable_core::EngineError> {
    let durability = if relaxed {
        Durability::Relaxed
    } else {
        Durability::Immediate
    };
    SqliteStore::builder()
        .durability(durability)
        .checkpoint_bytes(16 * 1024)
        .open(path)
}

const EXT: &str = "db";

const BACKUP: backup::Backup<SqliteStore> = |store, path| Box::pin(store.backup(path));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_concurrent_writes_holds_every_acknowledged_write() {
    backup::under_load_holds_every_acknowledged_write(&open_file, BACKUP, "db", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_relaxed_store_holds_every_acknowledged_write() {
    backup::under_load_holds_every_acknowledged_write(&open_file, BACKUP, "db", true).await;
}

#[tokio::test]
async fn backup_to_an_existing_path_is_refused_and_leaves_it_alone() {
    backup::to_an_existing_path_is_refused(&open_file, BACKUP, "db").await;
}

#[tokio::test]
async fn backup_into_a_missing_directory_fails_and_creates_nothing() {
    backup::into_a_missing_directory_creates_nothing(&open_file, BACKUP, "db").await;
}

#[tokio::test]
async fn a_first_open_that_runs_out_of_space_leaves_nothing_behind() {
    backup::first_open_out_of_space_leaves_nothing(
        "a_first_open_that_runs_out_of_space_leaves_nothing_behind",
        &open_file,
        EXT,
    )
    .await;
}

/// Marks the closed database at `path` as not closed cleanly.
fn mark_dirty(path: &Path) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(
            "INSERT INTO memable_journal (key, value) VALUES ('dirty', 1)
               ON CONFLICT (key) DO UPDATE SET value = 1",
        )
        .unwrap();
}

#[tokio::test]
async fn backup_of_an_in_memory_store_is_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::in_memory().unwrap();
    store
        .start_instance(key("a", "1"), input(), 0)
        .await
        .unwrap();
    store
        .commit_step(key("a", "1"), "s".into(), value(b"kept"))
        .await
        .unwrap();
    store.backup(dir.path().join("copy.db")).await.unwrap();
    let copy = SqliteStore::open(dir.path().join("copy.db")).unwrap();
    assert_eq!(
        copy.get_step(&key("a", "1"), "s").await.unwrap(),
        Some(value(b"kept"))
    );
}

#[tokio::test]
async fn a_backup_is_one_cleanly_closed_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("wf.db")).unwrap();
    store
        .start_instance(key("a", "1"), input(), 0)
        .await
        .unwrap();
    let copy = dir.path().join("copy.db");
    store.backup(&copy).await.unwrap();
    let names: BTreeSet<_> = entries(dir.path())
        .into_iter()
        .filter(|n| n.to_string_lossy().starts_with("copy"))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // Cleanly closed: it opens without its journal even when lost work is
    // refused.
    let copy = SqliteStore::builder()
        .accept_lost_journal(false)
        .open(&copy)
        .unwrap();
    assert!(copy.get_metadata(&key("a", "1")).await.unwrap().is_some());
}

fn entries(dir: &Path) -> BTreeSet<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

#[test]
fn an_empty_path_is_unsupported_and_creates_nothing() {
    let cwd = std::env::current_dir().unwrap();
    let before = entries(&cwd);
    let err = SqliteStore::open("").unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Unsupported));
    assert_eq!(entries(&cwd), before);
}

#[test]
fn a_directory_is_unsupported_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Unsupported));
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn a_path_in_a_missing_directory_is_io_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path().join("missing").join("wf.db")).unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Io));
    assert!(entries(dir.path()).is_empty());
}

/// The one test that reads messages: each open error names its file and
/// says "storage error" once.
#[tokio::test]
async fn open_errors_name_their_file_and_say_storage_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();

    let directory = dir.path().join("a-directory");
    std::fs::create_dir(&directory).unwrap();
    cases.push((
        directory.clone(),
        SqliteStore::open(&directory).unwrap_err(),
    ));

    let orphan = dir.path().join("missing").join("wf.db");
    cases.push((orphan.clone(), SqliteStore::open(&orphan).unwrap_err()));

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42; 8192]).unwrap();
    cases.push((garbage.clone(), SqliteStore::open(&garbage).unwrap_err()));

    let held = dir.path().join("held.db");
    let store = SqliteStore::open(&held).unwrap();
    cases.push((held.clone(), SqliteStore::open(&held).unwrap_err()));
    store
        .start_instance(key("a", "1"), input(), 0)
        .await
        .unwrap();

    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    cases.push((newer.clone(), SqliteStore::open(&newer).unwrap_err()));

    let lost = dir.path().join("lost.db");
    drop(SqliteStore::open(&lost).unwrap());
    mark_dirty(&lost);
    std::fs::remove_file(journal_of(&lost)).unwrap();
    cases.push((lost.clone(), SqliteStore::open(&lost).unwrap_err()));

    let bad_journal = dir.path().join("bad-journal.db");
    drop(SqliteStore::open(&bad_journal).unwrap());
    std::fs::write(journal_of(&bad_journal), vec![0x17; 4096]).unwrap();
    cases.push((
        bad_journal.clone(),
        SqliteStore::open(&bad_journal).unwrap_err(),
    ));

    let mut kinds = BTreeSet::new();
    for (path, err) in &cases {
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string()),
            "{text} does not name {}",
            path.display()
        );
        assert_eq!(text.matches("storage error").count(), 1, "{text}");
        kinds.insert(format!("{:?}", err.storage_kind().unwrap()));
    }
    let empty = SqliteStore::open("").unwrap_err().to_string();
    assert_eq!(empty.matches("storage error").count(), 1, "{empty}");
    assert!(kinds.len() >= 6, "only {kinds:?}");
}
