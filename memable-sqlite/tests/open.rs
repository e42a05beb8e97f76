//! Opening bad files: each gets a clear storage error, no panic, and the
//! file is left as it was.

use std::process::Command;

use memable_core::StepStoreExt;
use memable_core::{InstanceKey, StepKind, StepRecord, StepStore};
use memable_sqlite::{Durability, SCHEMA_VERSION, SqliteStore};

fn open_error(path: &std::path::Path) -> String {
    match SqliteStore::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(error) => {
            assert!(error.is_storage(), "{error:?}");
            error.to_string()
        }
    }
}

#[test]
fn a_garbage_file_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    let garbage = b"this is not a database, just some text\n".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    let message = open_error(&path);
    assert!(message.contains("not a SQLite database"), "{message}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn a_redb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let mut bytes = b"redb".to_vec();
    bytes.resize(4096, 0x1a);
    std::fs::write(&path, &bytes).unwrap();
    assert!(open_error(&path).contains("not a SQLite database"));
}

#[test]
fn another_applications_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.db");
    let conn = rusqlite_connection(&path);
    conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER); INSERT INTO invoices VALUES (1, 99);")
        .unwrap();
    drop(conn);
    let message = open_error(&path);
    assert!(message.contains("not a memable database"), "{message}");
    // Nothing of theirs was changed.
    let conn = rusqlite_connection(&path);
    let total: i64 = conn
        .query_row("SELECT total FROM invoices", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, 99);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite_connection(&path);
    conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    drop(conn);
    let message = open_error(&path);
    assert!(message.contains("newer"), "{message}");
}

#[test]
fn a_truncated_database_gives_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            for i in 0..200 {
                let key = InstanceKey::new("w", &format!("i{i}")).unwrap();
                store
                    .start_instance(
                        key,
                        StepRecord::completed(StepKind::Engine, "()", vec![0; 500], None),
                        0,
                    )
                    .await
                    .unwrap();
            }
        });
    }
    let bytes = std::fs::read(&path).unwrap();
    // Keep the header page, damage the rest.
    let mut damaged = bytes[..bytes.len().min(4096)].to_vec();
    damaged.extend(std::iter::repeat_n(0xA5u8, 8192));
    std::fs::write(&path, &damaged).unwrap();
    let _ = std::fs::remove_file(dir.path().join("truncated.db-wal"));
    match SqliteStore::open(&path) {
        Err(error) => assert!(error.is_storage(), "{error:?}"),
        Ok(store) => {
            // SQLite may open it; reading the damaged pages must then fail cleanly.
            let rt = tokio::runtime::Runtime::new().unwrap();
            let listed = rt.block_on(store.list_instances(&memable_core::InstanceFilter::new()));
            assert!(
                listed.is_err(),
                "a damaged database listed {:?} instances",
                listed.map(|l| l.len())
            );
        }
    }
}

#[test]
fn a_second_store_on_the_same_file_is_refused_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.db");
    let first = SqliteStore::open(&path).unwrap();
    let message = open_error(&path);
    assert!(
        message.contains("in use by another memable store"),
        "{message}"
    );
    drop(first);
    // Released with the last handle.
    drop(SqliteStore::open(&path).unwrap());
}

/// Child mode: opens the database named by the env var and reports.
#[test]
fn child_opens_database() {
    let Ok(path) = std::env::var("MEMABLE_SQLITE_CHILD_OPEN") else {
        return;
    };
    match SqliteStore::open(&path) {
        Ok(_) => println!("CHILD-OPENED"),
        Err(error) => println!("CHILD-REFUSED {error}"),
    }
}

#[test]
fn a_second_process_is_refused_while_the_first_holds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let child = |path: &std::path::Path| {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_opens_database",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MEMABLE_SQLITE_CHILD_OPEN", path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let first = SqliteStore::open(&path).unwrap();
    let refused = child(&path);
    assert!(
        refused.contains("CHILD-REFUSED") && refused.contains("in use"),
        "{refused}"
    );
    drop(first);
    assert!(child(&path).contains("CHILD-OPENED"));
}

#[tokio::test]
async fn plain_sql_lists_instances_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("query.db");
    let store = SqliteStore::builder()
        .durability(Durability::Relaxed)
        .open(&path)
        .unwrap();
    for id in ["b", "a"] {
        let key = InstanceKey::new("etl", id).unwrap();
        store
            .start_instance(
                key,
                StepRecord::completed(StepKind::Engine, "()", vec![], None),
                5,
            )
            .await
            .unwrap();
    }
    let conn = rusqlite_connection(&path);
    let mut query = conn
        .prepare("select workflow, instance, status from instances order by workflow, instance")
        .unwrap();
    let rows: Vec<(String, String, String)> = query
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            ("etl".into(), "a".into(), "running".into()),
            ("etl".into(), "b".into(), "running".into())
        ]
    );
}

fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
