//! Garbage files and the other backend's files: each backend refuses them
//! with a clear storage error, without a panic and without touching them.

use memable::redb::RedbStore;
use memable::sqlite::SqliteStore;

/// The refusal's message, once it is known to be a refusal of a file that
/// is not a memable store of that backend.
fn not_memable<T: std::fmt::Debug>(result: Result<T, memable::EngineError>) -> String {
    match result {
        Ok(store) => panic!("opened: {store:?}"),
        Err(error) => {
            assert_eq!(
                error.storage_kind(),
                Some(memable::StorageErrorKind::NotMemable),
                "{error:?}"
            );
            error.to_string()
        }
    }
}

fn garbage(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join("garbage.bin");
    let bytes: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[test]
fn redb_refuses_a_garbage_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = garbage(dir.path());
    let message = not_memable(RedbStore::open(&path));
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn sqlite_refuses_a_garbage_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = garbage(dir.path());
    let message = not_memable(SqliteStore::open(&path));
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn redb_refuses_a_memable_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memable.db");
    drop(SqliteStore::open(&path).unwrap());
    let before = std::fs::read(&path).unwrap();
    let message = not_memable(RedbStore::open(&path));
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Still a working SQLite store afterwards.
    drop(SqliteStore::open(&path).unwrap());
}

#[test]
fn sqlite_refuses_a_memable_redb_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memable.redb");
    drop(RedbStore::open(&path).unwrap());
    let before = std::fs::read(&path).unwrap();
    let message = not_memable(SqliteStore::open(&path));
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    drop(RedbStore::open(&path).unwrap());
}
