//! The store refuses schemas that are not memable's or are newer than it.

use memable_core::StorageErrorKind;
use memable_postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};
use memable_testkit::postgres::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_with_foreign_tables_is_not_memable() {
    let server = TestServer::shared();
    let url = server.database();
    let db = url.rsplit('/').next().unwrap();
    server
        .psql(db, "CREATE SCHEMA shop; CREATE TABLE shop.orders (id int)")
        .unwrap();
    let err = PostgresStore::connect_with(PostgresOptions::new(&url).schema("shop"))
        .await
        .unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::NotMemable));
    // Nothing was added to it.
    let tables = server
        .psql(
            db,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'shop'",
        )
        .unwrap();
    assert_eq!(tables.trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_version_is_refused() {
    let server = TestServer::shared();
    let url = server.database();
    let db = url.rsplit('/').next().unwrap();
    drop(PostgresStore::connect(&url).await.unwrap());
    server
        .psql(
            db,
            &format!(
                "UPDATE memable.memable_meta SET value = {} WHERE key = 'schema_version'",
                SCHEMA_VERSION + 1
            ),
        )
        .unwrap();
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::NewerFormat));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_connecting_at_once_both_migrate_the_same_schema() {
    let url = TestServer::shared().database();
    let (a, b) = tokio::join!(PostgresStore::connect(&url), PostgresStore::connect(&url));
    assert_eq!(a.unwrap().schema(), b.unwrap().schema());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_an_io_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PostgresStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/none"))
        .await
        .unwrap_err();
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Io));
}

/// A schema-1 database (before step times) is upgraded on connect: its
/// records read with no times, and new records keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_database_is_upgraded_and_its_records_read_without_times() {
    use memable_core::{InstanceKey, StepKind, StepRecord, StepStore, StepStoreExt};

    let server = TestServer::shared();
    let url = server.database();
    let db = url.rsplit('/').next().unwrap();
    let key = InstanceKey::new("wf", "old").unwrap();
    let old = StepRecord::completed(StepKind::Step, "u8", b"1".to_vec(), None);
    {
        let store = PostgresStore::connect(&url).await.unwrap();
        store
            .start_instance(key.clone(), old.clone(), 1)
            .await
            .unwrap();
        store
            .commit_step(key.clone(), "a".into(), old.clone())
            .await
            .unwrap();
        store.close().await;
    }
    // What schema 1 was: the steps without their time columns, and no
    // index of instances by end (schema 3).
    server
        .psql(
            db,
            "ALTER TABLE memable.steps DROP COLUMN started_at_ms, DROP COLUMN completed_at_ms; \
             DROP INDEX memable.instances_by_end; \
             UPDATE memable.memable_meta SET value = 1 WHERE key = 'schema_version'",
        )
        .unwrap();
    let store = PostgresStore::connect(&url).await.unwrap();
    let version = server
        .psql(
            db,
            "SELECT value FROM memable.memable_meta WHERE key = 'schema_version'",
        )
        .unwrap();
    assert_eq!(version.trim(), SCHEMA_VERSION.to_string());
    assert_eq!(store.get_step(&key, "a").await.unwrap(), Some(old.clone()));
    let timed = old.with_times(Some(5), Some(7));
    store
        .commit_step(key.clone(), "b".into(), timed.clone())
        .await
        .unwrap();
    assert_eq!(store.get_step(&key, "b").await.unwrap(), Some(timed));
}
