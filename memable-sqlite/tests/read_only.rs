//! `SqliteStore::open_read_only`: reads beside the store that holds the
//! database, no lock, no write, nothing created.

use memable_core::{
    InstanceFilter, InstanceKey, StepKind, StepRecord, StepStore, StepStoreExt, StorageErrorKind,
};
use memable_sqlite::SqliteStore;

fn input() -> StepRecord {
    StepRecord::completed(StepKind::Engine, "()", b"null".to_vec(), None)
}

#[tokio::test]
async fn reads_what_the_holder_commits_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let holder = SqliteStore::open(&path).unwrap();
    let key = InstanceKey::new("etl", "1").unwrap();
    holder
        .start_instance(key.clone(), input(), 5)
        .await
        .unwrap();
    // The holder's own read waits until its writes are committed to the
    // database (a journaled writer may hold acknowledged batches in an
    // open transaction for a moment), which is what another process sees.
    holder.get_metadata(&key).await.unwrap();

    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert!(reader.is_read_only());
    let listed = reader.list_instances(&InstanceFilter::new()).await.unwrap();
    assert_eq!(listed.len(), 1);
    // A commit after the reader opened is seen by its next read.
    let record = StepRecord::completed(StepKind::Step, "u8", b"7".to_vec(), None);
    holder
        .commit_step(key.clone(), "fetch".into(), record.clone())
        .await
        .unwrap();
    holder.get_step(&key, "fetch").await.unwrap();
    assert_eq!(reader.get_step(&key, "fetch").await.unwrap(), Some(record));

    for refused in [
        reader.delete_instance(key.clone()).await.map(drop),
        reader.cancel_instance(key.clone(), 9).await.map(drop),
        reader.backup(dir.path().join("copy.db")).await,
    ] {
        let err = refused.unwrap_err();
        assert_eq!(
            err.storage_kind(),
            Some(StorageErrorKind::Unsupported),
            "{err}"
        );
    }
    assert!(!dir.path().join("copy.db").exists());
    assert!(holder.get_metadata(&key).await.unwrap().is_some());

    // The reader holds no lock: once the holder is gone, a full open works
    // while the reader is still open.
    drop(holder);
    let reopened = SqliteStore::open(&path).unwrap();
    assert!(reopened.get_step(&key, "fetch").await.unwrap().is_some());
    drop(reader);
}

#[test]
fn refuses_missing_foreign_and_empty_files_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let err = SqliteStore::open_read_only(&missing).unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Io), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "created a file"
    );

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let err = SqliteStore::open_read_only(&empty).unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageErrorKind::NotMemable),
        "{err}"
    );

    let foreign = dir.path().join("foreign.db");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE t (x)").unwrap();
    drop(conn);
    let err = SqliteStore::open_read_only(&foreign).unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageErrorKind::NotMemable),
        "{err}"
    );

    let text = dir.path().join("text.db");
    std::fs::write(&text, b"hello, not a database at all").unwrap();
    let err = SqliteStore::open_read_only(&text).unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageErrorKind::NotMemable),
        "{err}"
    );
}
