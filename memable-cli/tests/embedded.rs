//! The `memable` binary end to end on real redb and SQLite files:
//! instances prepared by a library engine (the "application"), the engine
//! dropped, the binary run, its JSON and exit codes checked; then the
//! application restarted where a command leaves work for it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{
    File, Runs, fixture_app, ids, memable, register_counted, register_flaky, settle, workflows,
};
use memable_cli::exit;
use memable_core::{Engine, ManualClock, StatusKind};
use serde_json::json;

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

/// An application engine with `order` v1 and `counted` on `store`,
/// started, its clock at `at_ms`.
async fn app(
    store: std::sync::Arc<dyn memable_core::StepStore>,
    at_ms: u64,
    runs: &Runs,
) -> Engine {
    app_on_clock(store, ManualClock::new(at_ms), runs).await
}

/// [`app`] on a clock the caller moves.
async fn app_on_clock(
    store: std::sync::Arc<dyn memable_core::StepStore>,
    clock: ManualClock,
    runs: &Runs,
) -> Engine {
    let engine = Engine::builder().store(store).clock(clock).build();
    workflows::register_v1(&engine).expect("register order");
    register_counted(&engine, runs);
    engine.start().await.expect("start");
    engine
}

/// Three orders: `old` (created 3 h ago) and `o1` waiting for approval,
/// `o2` approved and completed.
async fn prepare_orders(file: File, path: &std::path::Path) {
    let runs = Runs::default();
    let now = now_ms();
    let engine = app(file.open(path), now - 3 * 3_600_000, &runs).await;
    engine
        .invoke("order")
        .id("old")
        .input(5u32)
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    engine.shutdown().await;
    drop(engine);
    let clock = ManualClock::new(now - 60_000);
    let engine = app_on_clock(file.open(path), clock.clone(), &runs).await;
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
    // Approved a minute after it was charged.
    clock.set(now);
    let done = engine
        .signal("order", "o2", &workflows::APPROVAL, true)
        .await
        .unwrap();
    assert_eq!(done.wait_output::<String>().await.unwrap(), "shipped 20");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_and_steps_print_the_stored_instances() {
    for file in File::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = file.path(dir.path());
        prepare_orders(file, &path).await;
        let store = path.to_str().unwrap();

        let all = memable(store, &["--json", "list"]);
        assert_eq!(all.code, 0, "{file:?}: {all:?}");
        assert_eq!(ids(&all.json()), ["o1", "o2", "old"], "{file:?}");
        let waiting = memable(store, &["--json", "list", "--status", "suspended"]).json();
        assert_eq!(ids(&waiting), ["o1", "old"], "{file:?}");
        assert_eq!(waiting["instances"][0]["suspended_at"], "approval");
        assert_eq!(waiting["instances"][0]["workflow"], "order");
        let old = memable(store, &["--json", "list", "--older-than", "2h"]).json();
        assert_eq!(ids(&old), ["old"], "{file:?}");
        let new = memable(
            store,
            &["--json", "list", "--newer-than", "1h", "--limit", "1"],
        )
        .json();
        assert_eq!(ids(&new), ["o1"], "{file:?}");
        // Only `o2` has ended (moments before the command ran).
        let ended = memable(store, &["--json", "list", "--ended-older-than", "1ms"]).json();
        assert_eq!(ids(&ended), ["o2"], "{file:?}");
        let ended = memable(store, &["--json", "list", "--ended-older-than", "1h"]).json();
        assert_eq!(ids(&ended), Vec::<String>::new(), "{file:?}");
        let none = memable(store, &["--json", "list", "--workflow", "other"]).json();
        assert_eq!(ids(&none), Vec::<String>::new());

        let shown = memable(store, &["--json", "show", "order", "o2"]);
        assert_eq!(shown.code, 0, "{shown:?}");
        let shown = shown.json();
        assert_eq!(shown["instance"]["status"], "completed");
        assert_eq!(shown["input"], json!(20));
        assert_eq!(shown["output"], json!("shipped 20"));
        assert_eq!(shown["steps"], json!(3));

        let steps = memable(store, &["--json", "steps", "order", "o2"]).json();
        let keys: Vec<&str> = steps["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["key"].as_str().unwrap())
            .collect();
        // In order of completion, with when each began and ended.
        assert_eq!(keys, ["charge", "approval", "ship"], "{file:?}");
        let charge = &steps["steps"][0];
        assert_eq!(charge["value"], json!(20));
        assert_eq!(charge["state"], "completed");
        assert_eq!(charge["attempts"], 1);
        let charged_at = charge["completed_at_ms"].as_u64().unwrap();
        let approval = &steps["steps"][1];
        assert_eq!(approval["kind"], "suspend");
        assert_eq!(approval["value"], json!(true));
        assert_eq!(approval["started_at_ms"].as_u64(), Some(charged_at));
        assert_eq!(
            approval["completed_at_ms"].as_u64(),
            Some(charged_at + 60_000),
            "approved a minute later"
        );
        assert_eq!(steps["buffered_signals"], json!([]));
        assert!(steps.get("engine_records").is_none());
        let with_engine = memable(store, &["--json", "steps", "order", "o2", "--all"]).json();
        assert!(
            with_engine["engine_records"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["key"] == "_input")
        );
        // A waiting instance lists its point as suspended.
        let waiting = memable(store, &["--json", "steps", "order", "o1"]).json();
        assert_eq!(waiting["steps"][1]["key"], "approval");
        assert_eq!(waiting["steps"][1]["state"], "suspended");

        // Human output is a table.
        let table = memable(store, &["list"]);
        assert_eq!(table.code, 0);
        assert!(table.stdout.starts_with("WORKFLOW"), "{table:?}");
        assert!(table.stdout.contains("suspended at approval"), "{table:?}");

        let missing = memable(store, &["--json", "show", "order", "nope"]);
        assert_eq!(missing.code, i32::from(exit::NOT_FOUND), "{missing:?}");
        assert_eq!(missing.error()["kind"], "not_found");
        let bad = memable(store, &["--json", "list", "--status", "sleeping"]);
        assert_eq!(bad.code, i32::from(exit::USAGE), "{bad:?}");
        let bad_key = memable(store, &["show", "order", "a/b"]);
        assert_eq!(bad_key.code, i32::from(exit::USAGE), "{bad_key:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_foreign_store_is_an_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["missing.redb", "missing.db", "missing"] {
        let path = dir.path().join(name);
        let ran = memable(path.to_str().unwrap(), &["--json", "list"]);
        assert_eq!(ran.code, i32::from(exit::NOT_FOUND), "{ran:?}");
        assert!(!path.exists(), "{name} was created");
    }
    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, b"not a store").unwrap();
    let ran = memable(foreign.to_str().unwrap(), &["list"]);
    assert_eq!(ran.code, i32::from(exit::USAGE), "{ran:?}");
    // An explicit backend that does not match the file is refused too.
    let ran = memable(foreign.to_str().unwrap(), &["--backend", "sqlite", "list"]);
    assert_ne!(ran.code, 0, "{ran:?}");
    assert_eq!(std::fs::read(&foreign).unwrap(), b"not a store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_held_by_a_running_application_refuses_writes_and_sqlite_still_reads() {
    for file in File::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = file.path(dir.path());
        let runs = Runs::default();
        let engine = app(file.open(&path), now_ms(), &runs).await;
        engine
            .invoke("order")
            .id("o1")
            .input(10u32)
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        // The application's own read: its writes are in the file now.
        assert!(engine.get_metadata("order", "o1").await.unwrap().is_some());
        let store = path.to_str().unwrap();

        for write in [
            vec!["--json", "cancel", "order", "o1"],
            vec!["--json", "signal", "order", "o1", "approval", "true"],
            vec!["--json", "forget", "order", "o1", "charge"],
            vec!["--json", "delete", "order", "o1"],
        ] {
            let ran = memable(store, &write);
            assert_eq!(
                ran.code,
                i32::from(exit::HELD),
                "{file:?} {write:?}: {ran:?}"
            );
            let error = ran.error();
            assert_eq!(error["kind"], "held");
            let message = error["message"].as_str().unwrap();
            assert!(
                message.contains("held by a running memable engine")
                    && message.contains("Stop the application"),
                "{message}"
            );
        }
        let read = memable(store, &["--json", "list"]);
        match file {
            File::Sqlite => {
                assert_eq!(read.code, 0, "{read:?}");
                assert_eq!(ids(&read.json()), ["o1"]);
                assert!(read.stderr.contains("read-only"), "{read:?}");
                // `charge` committed, then the point it waits at.
                let steps = memable(store, &["--json", "steps", "order", "o1"]).json();
                assert_eq!(steps["steps"][0]["key"], "charge");
                assert_eq!(steps["steps"][1]["key"], "approval");
                assert_eq!(steps["steps"][1]["state"], "suspended");
                let backup = memable(
                    store,
                    &["backup", dir.path().join("copy.db").to_str().unwrap()],
                );
                assert_eq!(backup.code, i32::from(exit::HELD), "{backup:?}");
            }
            File::Redb => {
                assert_eq!(read.code, i32::from(exit::HELD), "{read:?}");
                assert!(
                    read.error()["message"]
                        .as_str()
                        .unwrap()
                        .contains("redb lets one process")
                );
            }
        }
        // Nothing changed: the application goes on.
        let state = engine.get_metadata("order", "o1").await.unwrap().unwrap();
        assert_eq!(state.status.kind(), StatusKind::Suspended, "{file:?}");
        let done = engine
            .signal("order", "o1", &workflows::APPROVAL, true)
            .await
            .unwrap();
        assert_eq!(done.wait_output::<String>().await.unwrap(), "shipped 10");
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_sent_while_the_application_is_down_completes_it_on_restart() {
    for file in File::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = file.path(dir.path());
        prepare_orders(file, &path).await;
        let store = path.to_str().unwrap();

        let ran = memable(
            store,
            &["--json", "signal", "order", "o1", "approval", "true"],
        );
        assert_eq!(ran.code, 0, "{file:?}: {ran:?}");
        assert_eq!(
            ran.json(),
            json!({"workflow": "order", "id": "o1", "point": "approval", "outcome": "delivered"})
        );
        // A second one is refused; so are signals to ended or missing
        // instances, and bad JSON.
        let again = memable(
            store,
            &["--json", "signal", "order", "o1", "approval", "false"],
        );
        assert_eq!(again.code, i32::from(exit::REFUSED), "{again:?}");
        let ended = memable(store, &["signal", "order", "o2", "approval", "true"]);
        assert_eq!(ended.code, i32::from(exit::REFUSED), "{ended:?}");
        let missing = memable(store, &["signal", "order", "nope", "approval", "true"]);
        assert_eq!(missing.code, i32::from(exit::NOT_FOUND), "{missing:?}");
        let bad = memable(store, &["signal", "order", "old", "approval", "yes please"]);
        assert_eq!(bad.code, i32::from(exit::USAGE), "{bad:?}");
        // A point not reached yet needs its type; then it is buffered.
        let unknown = memable(store, &["signal", "order", "old", "later", "1"]);
        assert_eq!(unknown.code, i32::from(exit::USAGE), "{unknown:?}");
        let buffered = memable(
            store,
            &[
                "--json", "signal", "order", "old", "later", "1", "--type", "u32",
            ],
        );
        assert_eq!(buffered.json()["outcome"], "buffered", "{buffered:?}");
        let shown = memable(store, &["--json", "show", "order", "old"]).json();
        assert_eq!(
            shown["buffered_signals"],
            json!([{"point": "later", "type_tag": "u32", "value": 1}])
        );

        // The application restarts and finishes the order.
        let runs = Runs::default();
        let engine = app(file.open(&path), now_ms(), &runs).await;
        settle(&engine, "order", "o1").await;
        assert_eq!(
            engine.output::<String>("order", "o1").await.unwrap(),
            "shipped 10",
            "{file:?}"
        );
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_with_resume_and_fork_rerun_only_the_chosen_steps() {
    for file in File::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = file.path(dir.path());
        let runs = Runs::default();
        let engine = app(file.open(&path), now_ms(), &runs).await;
        let out: u32 = engine
            .invoke("counted")
            .id("c1")
            .await
            .unwrap()
            .wait_output()
            .await
            .unwrap();
        assert_eq!(out, 11);
        engine.shutdown().await;
        drop(engine);
        let store = path.to_str().unwrap();

        // Fork first (the fork keeps `b`), then forget `b` of the original.
        let forked = memable(
            store,
            &["--json", "fork", "counted", "c1", "c2", "--without", "a"],
        );
        assert_eq!(forked.code, 0, "{forked:?}");
        assert_eq!(
            forked.json(),
            json!({"workflow": "counted", "from": "c1", "to": "c2", "without": ["a"]})
        );
        let forgot = memable(
            store,
            &[
                "--json", "forget", "counted", "c1", "b", "nothere", "--resume",
            ],
        );
        assert_eq!(forgot.code, 0, "{file:?}: {forgot:?}");
        assert_eq!(
            forgot.json(),
            json!({"workflow": "counted", "id": "c1", "forgotten": ["b"], "resumed": true})
        );
        let listed = memable(store, &["--json", "list", "--status", "running"]).json();
        assert_eq!(ids(&listed), ["c1", "c2"], "{file:?}");

        // Refusals: a reserved key, an id taken, a missing instance, a
        // running instance.
        let reserved = memable(store, &["--json", "forget", "counted", "c1", "_input"]);
        assert_eq!(reserved.code, i32::from(exit::USAGE), "{reserved:?}");
        let taken = memable(store, &["--json", "fork", "counted", "c1", "c2"]);
        assert_eq!(taken.code, i32::from(exit::REFUSED), "{taken:?}");
        let missing = memable(store, &["--json", "fork", "counted", "nope", "c3"]);
        assert_eq!(missing.code, i32::from(exit::NOT_FOUND), "{missing:?}");
        let running = memable(store, &["--json", "forget", "counted", "c1", "a"]);
        assert_eq!(running.code, i32::from(exit::REFUSED), "{running:?}");

        // The application restarts: c1 runs `b` again, c2 runs `a` only.
        let engine = app(file.open(&path), now_ms(), &runs).await;
        settle(&engine, "counted", "c1").await;
        settle(&engine, "counted", "c2").await;
        engine.wait_all().await;
        assert_eq!(engine.output::<u32>("counted", "c1").await.unwrap(), 11);
        assert_eq!(engine.output::<u32>("counted", "c2").await.unwrap(), 11);
        assert_eq!(
            runs.get(),
            (2, 2),
            "{file:?}: a ran for c2 only, b for c1 only"
        );
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_resume_and_delete_follow_the_instance_rules() {
    for file in File::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = file.path(dir.path());
        prepare_orders(file, &path).await;
        let store = path.to_str().unwrap();

        let cancelled = memable(store, &["--json", "cancel", "order", "o1"]);
        assert_eq!(cancelled.code, 0, "{cancelled:?}");
        assert_eq!(cancelled.json()["cancelled"], true);
        let shown = memable(store, &["--json", "show", "order", "o1"]).json();
        assert_eq!(shown["instance"]["status"], "cancelled");
        let ended = memable(store, &["--json", "cancel", "order", "o2"]);
        assert_eq!(ended.code, i32::from(exit::REFUSED), "{ended:?}");
        let revive_cancelled = memable(store, &["--json", "resume", "order", "o1"]);
        assert_eq!(
            revive_cancelled.code,
            i32::from(exit::REFUSED),
            "{revive_cancelled:?}"
        );

        let resumed = memable(store, &["--json", "resume", "order", "o2"]);
        assert_eq!(resumed.code, 0, "{resumed:?}");
        assert_eq!(resumed.json()["previous_status"], "completed");

        let deleted = memable(store, &["--json", "delete", "order", "old"]);
        assert_eq!(deleted.code, 0, "{deleted:?}");
        let again = memable(store, &["--json", "delete", "order", "old"]);
        assert_eq!(again.code, i32::from(exit::NOT_FOUND), "{again:?}");
        let listed = memable(store, &["--json", "list"]).json();
        assert_eq!(ids(&listed), ["o1", "o2"], "{file:?}");

        // The resumed order replays to the same end when the application
        // restarts.
        let runs = Runs::default();
        let engine = app(file.open(&path), now_ms(), &runs).await;
        settle(&engine, "order", "o2").await;
        engine.wait_all().await;
        assert_eq!(
            engine.output::<String>("order", "o2").await.unwrap(),
            "shipped 20"
        );
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_of_a_failed_instance_retries_its_dead_letter_on_restart() {
    for file in File::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = file.path(dir.path());
        let down = Arc::new(AtomicBool::new(true));
        let calls = Arc::new(AtomicUsize::new(0));
        let start_app = |path: &std::path::Path| {
            let engine = Engine::builder()
                .store(file.open(path))
                .clock(ManualClock::new(now_ms()))
                .build();
            register_flaky(&engine, &down, &calls);
            engine
        };
        let engine = start_app(&path);
        engine.start().await.unwrap();
        let ended = engine
            .invoke("flaky")
            .id("f1")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        assert!(
            matches!(ended, memable_core::WorkflowState::Failed { .. }),
            "{ended:?}"
        );
        engine.shutdown().await;
        drop(engine);
        let store = path.to_str().unwrap();

        // The operator sees the dead letter: its attempts and error.
        let steps = memable(store, &["--json", "steps", "flaky", "f1"]).json();
        assert_eq!(steps["instance"]["status"], "failed", "{file:?}");
        let call = &steps["steps"][1];
        assert_eq!(call["key"], "call");
        assert_eq!(call["state"], "failed");
        assert_eq!(call["attempts"], 2);
        assert!(
            call["error"].as_str().unwrap().contains("service down"),
            "{call}"
        );

        // The service is back; the operator resumes the instance.
        down.store(false, Ordering::SeqCst);
        let resumed = memable(store, &["--json", "resume", "flaky", "f1"]);
        assert_eq!(resumed.code, 0, "{resumed:?}");
        assert_eq!(resumed.json()["previous_status"], "failed");

        // The application restarts: the dead letter runs again with a
        // fresh budget and the instance completes.
        let engine = start_app(&path);
        engine.start().await.unwrap();
        settle(&engine, "flaky", "f1").await;
        engine.wait_all().await;
        assert_eq!(
            engine.output::<u32>("flaky", "f1").await.unwrap(),
            42,
            "{file:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3, "{file:?}");
        engine.shutdown().await;
        drop(engine);
        let steps = memable(store, &["--json", "steps", "flaky", "f1"]).json();
        assert_eq!(steps["instance"]["status"], "completed");
        assert_eq!(steps["steps"][1]["state"], "completed");
        assert_eq!(steps["steps"][1]["value"], json!(41));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_opens_as_a_store_with_every_instance() {
    for file in File::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = file.path(dir.path());
        prepare_orders(file, &path).await;
        let store = path.to_str().unwrap();
        let copy = dir.path().join(match file {
            File::Redb => "copy.redb",
            File::Sqlite => "copy.db",
        });
        let ran = memable(store, &["--json", "backup", copy.to_str().unwrap()]);
        assert_eq!(ran.code, 0, "{file:?}: {ran:?}");
        assert_eq!(ran.json()["backup"], copy.to_str().unwrap());
        // Never over an existing file.
        let again = memable(store, &["--json", "backup", copy.to_str().unwrap()]);
        assert_eq!(again.code, i32::from(exit::REFUSED), "{again:?}");

        let listed = memable(copy.to_str().unwrap(), &["--json", "list"]).json();
        assert_eq!(ids(&listed), ["o1", "o2", "old"], "{file:?}");
        // The copy is a store of its own: the application runs on it.
        let runs = Runs::default();
        let engine = app(file.open(&copy), now_ms(), &runs).await;
        let done = engine
            .signal("order", "o1", &workflows::APPROVAL, true)
            .await
            .unwrap();
        assert_eq!(done.wait_output::<String>().await.unwrap(), "shipped 10");
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_runs_the_applications_current_code_over_stored_instances() {
    for file in File::ALL {
        let dir = tempfile::tempdir().unwrap();
        let path = file.path(dir.path());
        prepare_orders(file, &path).await;
        let store = path.to_str().unwrap();

        // The stock command has no workflows.
        let stock = memable(store, &["--json", "check", "order"]);
        assert_eq!(stock.code, i32::from(exit::USAGE), "{stock:?}");
        assert!(
            stock.error()["message"]
                .as_str()
                .unwrap()
                .contains("memable_cli::App")
        );

        // The application's command (v2 adds `pack` before `ship`). By
        // default the active instances: both wait at `approval`, which
        // v2 still reaches after `charge`.
        let active = fixture_app(store, &["--json", "check", "order"]);
        assert_eq!(active.code, 0, "{file:?}: {active:?}");
        let doc = active.json();
        assert_eq!(doc["clean"], true);
        let checked: Vec<&str> = doc["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["instance_id"].as_str().unwrap())
            .collect();
        assert_eq!(checked, ["o1", "old"]);
        assert_eq!(
            doc["instances"][0]["reached"],
            json!(["charge", "approval"])
        );
        assert_eq!(
            doc["instances"][0]["stop"],
            json!({"stop": "waiting", "key": "approval", "kind": "suspend"})
        );

        // The shipped one, as a resume would run it: `pack` is new work
        // and `ship` is never reached.
        let shipped = fixture_app(store, &["--json", "check", "order", "o2"]);
        assert_eq!(shipped.code, i32::from(exit::CHECK_PROBLEMS), "{shipped:?}");
        let doc = shipped.json();
        assert_eq!(doc["clean"], false);
        let report = &doc["instances"][0];
        assert_eq!(report["reached"], json!(["charge", "approval"]));
        assert_eq!(report["stop"]["stop"], "new_work");
        assert_eq!(report["stop"]["key"], "pack");
        assert_eq!(report["orphaned"], json!(["ship"]));
        let all = fixture_app(store, &["check", "order", "--all"]);
        assert_eq!(all.code, i32::from(exit::CHECK_PROBLEMS), "{all:?}");
        assert!(
            all.stdout.contains("PROBLEM") && all.stdout.contains("new step 'pack'"),
            "{all:?}"
        );
        assert!(
            all.stdout
                .contains("3 instance(s) of order checked, 1 with problems"),
            "{all:?}"
        );

        // A workflow the command does not register (with an instance to
        // check), a missing instance.
        let engine = app(file.open(&path), now_ms(), &Runs::default()).await;
        let out: u32 = engine
            .invoke("counted")
            .id("c1")
            .await
            .unwrap()
            .wait_output()
            .await
            .unwrap();
        assert_eq!(out, 11);
        engine.shutdown().await;
        drop(engine);
        let unknown = fixture_app(store, &["--json", "check", "counted", "--all"]);
        assert_eq!(unknown.code, i32::from(exit::USAGE), "{unknown:?}");
        assert!(
            unknown.error()["message"]
                .as_str()
                .unwrap()
                .contains("not registered")
        );
        let missing = fixture_app(store, &["--json", "check", "order", "nope"]);
        assert_eq!(missing.code, i32::from(exit::NOT_FOUND), "{missing:?}");
        // Nothing was written: the store lists what it held.
        let listed = memable(store, &["--json", "list", "--workflow", "order"]).json();
        assert_eq!(ids(&listed), ["o1", "o2", "old"]);
        let o2 = memable(store, &["--json", "show", "order", "o2"]).json();
        assert_eq!(o2["instance"]["status"], "completed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_beside_a_running_application_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = File::Sqlite.path(dir.path());
    let runs = Runs::default();
    let engine = app(File::Sqlite.open(&path), now_ms(), &runs).await;
    engine
        .invoke("order")
        .id("o1")
        .input(10u32)
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    assert!(engine.get_metadata("order", "o1").await.unwrap().is_some());
    let ran = fixture_app(path.to_str().unwrap(), &["--json", "check", "order"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(ran.json()["instances"][0]["stop"]["key"], "approval");
    engine.shutdown().await;
    let _ = Duration::ZERO;
}
