//! A connection the server drops (`pg_terminate_backend`) never loses an
//! acknowledged write: the writer's uncommitted batch is run again on a new
//! connection, or the caller gets a typed `Io` error.

use std::time::Duration;

use memable_core::{CommitOutcome, InstanceKey, StepKind, StepRecord, StepStore, StepStoreExt};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_testkit::postgres::TestServer;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

fn record(value: u8) -> StepRecord {
    StepRecord::completed(StepKind::Step, "u8", vec![value], None)
}

/// The pid of the store's writer session, once `ready` holds for it
/// (bounded: a writer that never gets there fails the test).
async fn writer_pid(admin: &mut PgConnection, db: &str, waiting_for_lock: bool) -> i32 {
    for _ in 0..1_000 {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'memable-writer'
             AND ($2 = false OR wait_event_type = 'Lock')",
        )
        .bind(db)
        .bind(waiting_for_lock)
        .fetch_optional(&mut *admin)
        .await
        .unwrap();
        if let Some(pid) = pid {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the writer session never showed up in pg_stat_activity (waiting for a lock: {waiting_for_lock})"
    );
}

async fn setup(schema: &str) -> (String, String, PostgresStore, InstanceKey) {
    let url = TestServer::shared().database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let store = PostgresStore::connect_with(PostgresOptions::new(&url).schema(schema))
        .await
        .unwrap();
    let key = InstanceKey::new("wf", "1").unwrap();
    store
        .start_instance(key.clone(), record(0), 1)
        .await
        .unwrap();
    (url, db, store, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_terminated_mid_transaction_is_retried_and_the_write_lands() {
    let (url, db, store, key) = setup("loss").await;
    // Hold the instance row so the writer's batch blocks inside its
    // transaction (in the prefetch's FOR UPDATE).
    let mut holder = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM loss.instances WHERE workflow = $1 FOR UPDATE")
        .bind(b"wf".as_slice())
        .execute(&mut holder)
        .await
        .unwrap();
    let writing = {
        let store = store.clone();
        let key = key.clone();
        tokio::spawn(async move { store.commit_step(key, "charge".into(), record(7)).await })
    };
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let pid = writer_pid(&mut admin, &db, true).await;
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(terminated);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();

    let outcome = writing.await.unwrap();
    assert_eq!(outcome.unwrap(), CommitOutcome::Committed);
    assert_eq!(
        store.get_step(&key, "charge").await.unwrap(),
        Some(record(7))
    );
    // Durable: a new store on the same schema reads it.
    drop(store);
    let again = PostgresStore::connect_with(PostgresOptions::new(&url).schema("loss"))
        .await
        .unwrap();
    assert_eq!(
        again.get_step(&key, "charge").await.unwrap(),
        Some(record(7))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_writer_connection_terminated_reconnects_for_the_next_write() {
    let (url, db, store, key) = setup("idle_loss").await;
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let pid = writer_pid(&mut admin, &db, false).await;
    let _: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        store
            .commit_step(key.clone(), "after".into(), record(3))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(
        store.get_step(&key, "after").await.unwrap(),
        Some(record(3))
    );
}
