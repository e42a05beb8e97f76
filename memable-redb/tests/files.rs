//! The files of a redb store from the user's side: `backup` while the
//! engine runs, a first open that fails (a full disk) leaving nothing
//! behind, and open errors that name their file.

mod support;

use std::collections::BTreeSet;

use memable_testkit::backup;
use std::path::Path;

use memable_core::{StepStore, StepStoreExt, StorageErrorKind};
use memable_redb::{Durability, RedbStore};
use support::{input, key};

fn journal_of(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    name.into()
}

fn open_file(path: &Path, relaxed: bool) -> Result<RedbStore, memable_core::EngineError> {
    let durability = if relaxed {
        Durability::Relaxed
    } else {
        Durability::Immediate
    };
    RedbStore::builder()
        .durability(durability)
        .checkpoint_bytes(16 * 1024)
        .open(path)
}

const EXT: &str = "redb";

const BACKUP: backup::Backup<RedbStore> = |store, path| Box::pin(store.backup(path));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_concurrent_writes_holds_every_acknowledged_write() {
    backup::under_load_holds_every_acknowledged_write(&open_file, BACKUP, "redb", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_relaxed_store_holds_every_acknowledged_write() {
    backup::under_load_holds_every_acknowledged_write(&open_file, BACKUP, "redb", true).await;
}

#[tokio::test]
async fn backup_to_an_existing_path_is_refused_and_leaves_it_alone() {
    backup::to_an_existing_path_is_refused(&open_file, BACKUP, "redb").await;
}

#[tokio::test]
async fn backup_into_a_missing_directory_fails_and_creates_nothing() {
    backup::into_a_missing_directory_creates_nothing(&open_file, BACKUP, "redb").await;
}

#[tokio::test]
async fn backup_of_an_in_memory_store_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::in_memory().unwrap();
    let err = store
        .backup(dir.path().join("copy.redb"))
        .await
        .unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Unsupported));
    assert!(!dir.path().join("copy.redb").exists());
}

#[tokio::test]
async fn a_copy_of_the_running_file_is_refused_where_backup_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("wf.redb")).unwrap();
    store
        .start_instance(key("a", "1"), input(), 0)
        .await
        .unwrap();
    let raw = dir.path().join("raw.redb");
    std::fs::copy(dir.path().join("wf.redb"), &raw).unwrap();
    let err = RedbStore::open(&raw).unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Incomplete));
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

#[tokio::test]
async fn a_file_redb_never_finished_creating_opens_as_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wf.redb");
    // What a power loss during the first open leaves: the file sized, part
    // of the header written, no magic number, no journal.
    let mut image = vec![0u8; 1 << 20];
    image[9..64].fill(0x5a);
    std::fs::write(&path, &image).unwrap();
    let store = RedbStore::open(&path).unwrap();
    store
        .start_instance(key("a", "1"), input(), 0)
        .await
        .unwrap();
    drop(store);
    let store = RedbStore::open(&path).unwrap();
    assert!(store.get_metadata(&key("a", "1")).await.unwrap().is_some());
}

#[tokio::test]
async fn a_real_database_with_a_damaged_magic_number_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wf.redb");
    let store = RedbStore::open(&path).unwrap();
    for i in 0..20 {
        store
            .start_instance(key("a", &i.to_string()), input(), 0)
            .await
            .unwrap();
    }
    drop(store);
    std::fs::remove_file(journal_of(&path)).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..9].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    assert!(
        matches!(
            err.storage_kind(),
            Some(StorageErrorKind::NotMemable | StorageErrorKind::Corrupt)
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file is untouched"
    );
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
    let err = RedbStore::open("").unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Unsupported));
    assert_eq!(entries(&cwd), before);
}

#[test]
fn a_directory_is_unsupported_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let err = RedbStore::open(dir.path()).unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Unsupported));
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn a_path_in_a_missing_directory_is_io_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let err = RedbStore::open(dir.path().join("missing").join("wf.redb")).unwrap_err();
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
    cases.push((directory.clone(), RedbStore::open(&directory).unwrap_err()));

    let orphan = dir.path().join("missing").join("wf.redb");
    cases.push((orphan.clone(), RedbStore::open(&orphan).unwrap_err()));

    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0x42; 8192]).unwrap();
    cases.push((garbage.clone(), RedbStore::open(&garbage).unwrap_err()));

    let held = dir.path().join("held.redb");
    let store = RedbStore::open(&held).unwrap();
    cases.push((held.clone(), RedbStore::open(&held).unwrap_err()));
    store
        .start_instance(key("a", "1"), input(), 0)
        .await
        .unwrap();

    let raw = dir.path().join("raw.redb");
    std::fs::copy(&held, &raw).unwrap();
    cases.push((raw.clone(), RedbStore::open(&raw).unwrap_err()));

    let bad_journal = dir.path().join("bad-journal.redb");
    drop(RedbStore::open(&bad_journal).unwrap());
    std::fs::write(journal_of(&bad_journal), vec![0x17; 4096]).unwrap();
    cases.push((
        bad_journal.clone(),
        RedbStore::open(&bad_journal).unwrap_err(),
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
    let empty = RedbStore::open("").unwrap_err().to_string();
    assert_eq!(empty.matches("storage error").count(), 1, "{empty}");
    assert!(kinds.len() >= 5, "only {kinds:?}");
}
