//! Opening files: format version, foreign and damaged files, locking, and
//! releasing the file on drop.

mod support;

use std::io::{Seek, SeekFrom, Write};
use std::process::Command;

use memable_core::StepStoreExt;
use memable_core::{EngineError, InstanceFilter, StepStore};
use memable_redb::RedbStore;
use redb::{ReadableDatabase, TableDefinition};
use support::{input, key, text, value};

const META: TableDefinition<&str, u32> = TableDefinition::new("memable_meta");

fn storage_message(result: Result<RedbStore, EngineError>) -> String {
    match result {
        Ok(_) => panic!("the open should have failed"),
        Err(err) => {
            assert!(err.is_storage(), "not a storage error: {err:?}");
            text(&err)
        }
    }
}

/// A memable file holding two instances with a few steps.
async fn populated(path: &std::path::Path) {
    let store = RedbStore::open(path).unwrap();
    for i in 0..2 {
        let k = key("wf", &format!("i{i}"));
        store.start_instance(k.clone(), input(), 1).await.unwrap();
        for s in 0..20 {
            store
                .commit_step(k.clone(), format!("s{s}"), value(&[s; 300]))
                .await
                .unwrap();
        }
    }
}

#[test]
fn new_file_records_the_format_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.redb");
    drop(RedbStore::open(&path).unwrap());
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let format = txn
        .open_table(META)
        .unwrap()
        .get("format")
        .unwrap()
        .unwrap()
        .value();
    assert_eq!(format, 3);
}

/// A file of format 1 (before the journal) as an older memable left it.
async fn format_one_file(path: &std::path::Path) {
    populated(path).await;
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META).unwrap().insert("format", 1).unwrap();
    txn.delete_table(TableDefinition::<&str, u64>::new("memable_journal"))
        .unwrap();
    txn.commit().unwrap();
    drop(db);
    std::fs::remove_file(memable_store::journal::journal_path(path)).unwrap();
}

#[tokio::test]
async fn a_format_one_file_is_upgraded_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    format_one_file(&path).await;
    let store = RedbStore::open(&path).unwrap();
    let listed = store.list_instances(&InstanceFilter::new()).await.unwrap();
    assert!(!listed.is_empty());
    let k = key("wf", "i0");
    store
        .commit_step(k.clone(), "after-upgrade".into(), value(b"x"))
        .await
        .unwrap();
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let format = db
        .begin_read()
        .unwrap()
        .open_table(META)
        .unwrap()
        .get("format")
        .unwrap()
        .unwrap()
        .value();
    assert_eq!(format, 3);
}

/// A file of format 2 (a journal, no dirty marker) as an older memable
/// left it after a clean close.
async fn format_two_file(path: &std::path::Path) {
    populated(path).await;
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META).unwrap().insert("format", 2).unwrap();
    txn.open_table(TableDefinition::<&str, u64>::new("memable_journal"))
        .unwrap()
        .remove("dirty")
        .unwrap();
    txn.commit().unwrap();
}

#[tokio::test]
async fn a_format_two_file_is_upgraded_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.redb");
    format_two_file(&path).await;
    let store = RedbStore::open(&path).unwrap();
    let snap = store
        .load_instance(&key("wf", "i1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snap.steps.len(), 21);
    store
        .commit_step(key("wf", "i0"), "after-upgrade".into(), value(b"x"))
        .await
        .unwrap();
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(
        txn.open_table(META)
            .unwrap()
            .get("format")
            .unwrap()
            .unwrap()
            .value(),
        3
    );
    let journal = txn
        .open_table(TableDefinition::<&str, u64>::new("memable_journal"))
        .unwrap();
    assert_eq!(
        journal.get("dirty").unwrap().unwrap().value(),
        0,
        "closed cleanly"
    );
}

#[tokio::test]
async fn reopen_right_after_drop_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.redb");
    populated(&path).await;
    // `populated` dropped its store: the file must be free again at once.
    let store = RedbStore::open(&path).unwrap();
    let snap = store
        .load_instance(&key("wf", "i1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snap.steps.len(), 21);
    drop(store);
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(
        store
            .list_instances(&InstanceFilter::new())
            .await
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn empty_existing_file_is_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.redb");
    std::fs::File::create(&path).unwrap();
    drop(RedbStore::open(&path).unwrap());
    drop(RedbStore::open(&path).unwrap());
}

#[test]
fn garbage_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("short.redb", b"hello, not a database".to_vec()),
        ("text.redb", "memable ".repeat(100_000).into_bytes()),
        ("zeros.redb", vec![0_u8; 64 * 1024]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let message = storage_message(RedbStore::open(&path));
        assert!(
            message.contains("not a redb database") && message.contains(name),
            "{name}: {message}"
        );
        // Nothing was written over the foreign file.
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} was modified");
    }
}

#[tokio::test]
async fn damaged_files_are_refused_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    populated(&good).await;
    let original = std::fs::read(&good).unwrap();
    let len = original.len();

    // The header's magic number.
    let mut header = original.clone();
    header[..16].copy_from_slice(&[0xAB; 16]);
    // Every byte after the header region.
    let mut body = original.clone();
    for (i, b) in body.iter_mut().enumerate().skip(4096) {
        *b = u8::try_from(i % 251).unwrap();
    }
    // Half the file.
    let truncated = original[..len / 2].to_vec();
    // Only the pages holding step values (every copy of a 300-byte run of
    // one step's value gets one byte flipped).
    let mut pages = original.clone();
    let needle = [7_u8; 300];
    let mut flipped = 0;
    let mut at = 0;
    while let Some(pos) = pages[at..].windows(300).position(|w| w == needle) {
        pages[at + pos + 150] ^= 0xFF;
        flipped += 1;
        at += pos + 300;
    }
    assert!(flipped >= 2, "the step values were not found in the file");

    for (name, bytes) in [
        ("header", header),
        ("body", body),
        ("truncated", truncated),
        ("pages", pages),
    ] {
        let path = dir.path().join(format!("{name}.redb"));
        std::fs::write(&path, &bytes).unwrap();
        let message = storage_message(RedbStore::open(&path));
        assert!(
            message.contains(&format!("{name}.redb")) && message.contains("damaged"),
            "{name}: {message}"
        );
    }
}

#[tokio::test]
async fn newer_format_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.redb");
    populated(&path).await;
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("format", 4).unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(
        RedbStore::open(&path).unwrap_err().storage_kind(),
        Some(memable_core::StorageErrorKind::NewerFormat)
    );
    let message = storage_message(RedbStore::open(&path));
    assert!(
        message.contains("newer memable")
            && message.contains("format version 4")
            && message.contains("format version 3"),
        "{message}"
    );
}

#[test]
fn redb_file_of_another_application_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let table: TableDefinition<u64, u64> = TableDefinition::new("accounts");
        txn.open_table(table).unwrap().insert(1, 100).unwrap();
        txn.commit().unwrap();
    }
    let message = storage_message(RedbStore::open(&path));
    assert!(
        message.contains("not a memable database") && message.contains("accounts"),
        "{message}"
    );
    // Its tables were left alone.
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    assert_eq!(tables, ["accounts"]);
}

#[test]
fn meta_table_without_version_or_of_another_type_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let unversioned = dir.path().join("unversioned.redb");
    {
        let db = redb::Database::create(&unversioned).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("other", 7).unwrap();
        txn.commit().unwrap();
    }
    let message = storage_message(RedbStore::open(&unversioned));
    assert!(message.contains("not a memable database"), "{message}");

    let retyped = dir.path().join("retyped.redb");
    {
        let db = redb::Database::create(&retyped).unwrap();
        let txn = db.begin_write().unwrap();
        let meta: TableDefinition<u64, u64> = TableDefinition::new("memable_meta");
        txn.open_table(meta).unwrap().insert(1, 1).unwrap();
        txn.commit().unwrap();
    }
    let message = storage_message(RedbStore::open(&retyped));
    assert!(message.contains("not a memable database"), "{message}");
}

#[test]
fn second_open_in_this_process_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.redb");
    let first = RedbStore::open(&path).unwrap();
    let clone = first.clone();
    let message = storage_message(RedbStore::open(&path));
    assert!(message.contains("already open"), "{message}");
    drop(first);
    // A clone still holds the file.
    assert!(RedbStore::open(&path).is_err());
    drop(clone);
    drop(RedbStore::open(&path).unwrap());
}

const LOCK_PROBE: &str = "MEMABLE_REDB_LOCK_PROBE";

/// Parent: holds the file open and runs this same test in a child process,
/// which tries to open it and reports what happened on stdout.
#[test]
fn open_by_another_process_is_refused() {
    if let Ok(path) = std::env::var(LOCK_PROBE) {
        match RedbStore::open(&path) {
            Ok(_) => println!("PROBE opened"),
            Err(err) => println!("PROBE refused: {err}"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.redb");
    let store = RedbStore::open(&path).unwrap();
    let probe = |path: &std::path::Path| {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "open_by_another_process_is_refused",
                "--nocapture",
            ])
            .env(LOCK_PROBE, path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("PROBE ").map(str::to_owned))
            .unwrap_or_else(|| panic!("no probe line in {output:?}"))
    };
    let answer = probe(&path);
    assert!(
        answer.starts_with("refused") && answer.contains("already open"),
        "{answer}"
    );
    drop(store);
    assert_eq!(probe(&path), "opened");
}

#[test]
fn open_error_names_the_path_for_io_failures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("a.redb");
    let message = storage_message(RedbStore::open(&path));
    assert!(message.contains("missing-dir"), "{message}");
}

#[test]
fn garbage_appended_to_a_database_is_refused() {
    // Garbage appended after a valid database is not silently accepted as
    // data, and the valid prefix still opens once the tail is removed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tail.redb");
    drop(RedbStore::open(&path).unwrap());
    let len = std::fs::metadata(&path).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::End(0)).unwrap();
    file.write_all(&[0x5A; 10_000]).unwrap();
    drop(file);
    let message = storage_message(RedbStore::open(&path));
    assert!(message.contains("damaged"), "{message}");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len).unwrap();
    drop(file);
    drop(RedbStore::open(&path).unwrap());
}
