//! The `memable` binary end to end on a real PostgreSQL database (the
//! testkit's server): the application's engine may keep running, since
//! PostgreSQL serves many processes; a signal sent by the command is run
//! by the application's worker.

mod common;

use common::{Runs, fixture_app, ids, memable, register_counted, settle, workflows};
use memable_cli::exit;
use memable_core::{Engine, StepStore};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_testkit::postgres::TestServer;
use serde_json::json;

async fn connect(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::connect_with(PostgresOptions::new(url).schema(schema).pool_size(2))
        .await
        .expect("connect")
}

fn application(store: PostgresStore, runs: &Runs) -> Engine {
    let engine = Engine::builder()
        .store(std::sync::Arc::new(store) as std::sync::Arc<dyn StepStore>)
        .poll_interval(std::time::Duration::from_millis(20))
        .build();
    workflows::register_v1(&engine).expect("register");
    register_counted(&engine, runs);
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_beside_a_running_application() {
    let url = TestServer::shared().database();
    let schema = "cli_e2e";
    let runs = Runs::default();
    let engine = application(connect(&url, schema).await, &runs);
    engine.start().await.expect("start");
    for (id, amount) in [("o1", 10u32), ("o2", 20)] {
        engine
            .invoke("order")
            .id(id)
            .input(amount)
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
    }
    let out: u32 = engine
        .invoke("counted")
        .id("c1")
        .await
        .unwrap()
        .wait_output()
        .await
        .unwrap();
    assert_eq!(out, 11);
    let pg = |args: &[&str]| {
        let mut all = vec!["--pg-schema", schema];
        all.extend_from_slice(args);
        memable(&url, &all)
    };

    let listed = pg(&["--json", "list", "--workflow", "order"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert_eq!(ids(&listed.json()), ["o1", "o2"]);
    let shown = pg(&["--json", "show", "order", "o1"]).json();
    assert_eq!(shown["instance"]["suspended_at"], "approval");
    assert_eq!(shown["input"], json!(10));

    // A signal from the command: the application's worker runs it.
    let signalled = pg(&["--json", "signal", "order", "o1", "approval", "true"]);
    assert_eq!(signalled.code, 0, "{signalled:?}");
    assert_eq!(signalled.json()["outcome"], "delivered");
    settle(&engine, "order", "o1").await;
    assert_eq!(
        engine.output::<String>("order", "o1").await.unwrap(),
        "shipped 10"
    );

    let cancelled = pg(&["--json", "cancel", "order", "o2"]);
    assert_eq!(cancelled.code, 0, "{cancelled:?}");
    assert_eq!(
        engine.state("order", "o2").await.unwrap(),
        memable_core::WorkflowState::Cancelled
    );

    // Forget + resume, and a fork: the worker picks both up.
    let forgot = pg(&["--json", "forget", "counted", "c1", "b", "--resume"]);
    assert_eq!(forgot.json()["forgotten"], json!(["b"]), "{forgot:?}");
    settle(&engine, "counted", "c1").await;
    let forked = pg(&["--json", "fork", "counted", "c1", "c2", "--without", "a"]);
    assert_eq!(forked.code, 0, "{forked:?}");
    settle(&engine, "counted", "c2").await;
    engine.wait_all().await;
    assert_eq!(engine.output::<u32>("counted", "c2").await.unwrap(), 11);
    assert_eq!(runs.get(), (2, 2), "c1 ran b again, c2 ran a only");

    let steps = pg(&["--json", "steps", "counted", "c2"]).json();
    assert_eq!(steps["steps"].as_array().unwrap().len(), 2);
    let deleted = pg(&["--json", "delete", "order", "o2"]);
    assert_eq!(deleted.code, 0, "{deleted:?}");
    assert!(engine.get_metadata("order", "o2").await.unwrap().is_none());

    // Backups are PostgreSQL's own business.
    let backup = pg(&["--json", "backup", "/tmp/never-written.db"]);
    assert_eq!(backup.code, i32::from(exit::REFUSED), "{backup:?}");
    assert!(
        backup.error()["message"]
            .as_str()
            .unwrap()
            .contains("pg_dump")
    );
    let missing = pg(&["--json", "show", "order", "nope"]);
    assert_eq!(missing.code, i32::from(exit::NOT_FOUND));
    engine.shutdown().await;
    let _ = fixture_app;
}
