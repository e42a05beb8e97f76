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
