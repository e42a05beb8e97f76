//! A database written by the schema-2 code (`tests/fixtures/schema-v2.db`)
//! is upgraded to the current schema on open: every instance, step, timer and value
//! is still there, the workflows in it continue, and a database newer than
//! this build is still refused.
//!
//! The fixture was written by memable at commit 0aa69cc (schema 2) with a
//! `ManualClock` at 1,000 ms, the workflows of [`register`] below and the
//! default `Synchronous::Full` (now `Durability::Immediate`), then checkpointed with the `sqlite3` CLI
//! (`PRAGMA wal_checkpoint(TRUNCATE)`; that code left its writes in the WAL
//! at a clean close) and kept without its journal, WAL or lock file. It
//! holds:
//!
//! | instance | status | steps |
//! |---|---|---|
//! | `order/waiting` | suspended at `approval` | `_input`, `blob`, `count`, `approval` (suspended) |
//! | `order/done` | completed, signalled with 5 | `_input`, `blob`, `count`, `approval`, `after`, `_output` |
//! | `order/crashed` | running (written through the store: a run that crashed after `blob`) | `_input`, `blob` |
//! | `nap/sleeping` | suspended at timer `t`, due at 61,000 ms | `_input`, `blob`, `t` (suspended) |
//!
//! Every `blob` is a 1,022-byte `Vec<u8>` (1,024 value bytes) and every
//! `order` input a 1,998-byte string, so schema 2 kept them in overflow
//! pages and schema 3 moves them to `step_values`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memable_core::{
    Codec, Context, Engine, InstanceFilter, InstanceKey, ManualClock, MetadataStatus, StepError,
    StepKind, StepRecord, StepState, StepStore, StorageErrorKind, SuspendPoint, TimerEntry,
    WorkflowState, type_tag,
};
use memable_sqlite::{SCHEMA_VERSION, SqliteStore};

static APPROVAL: SuspendPoint<u32> = SuspendPoint::new("approval");

fn blob(seed: u8) -> Vec<u8> {
    (0..1022u32)
        .map(|i| {
            u8::try_from(i % 256)
                .unwrap()
                .wrapping_mul(7)
                .wrapping_add(seed)
        })
        .collect()
}

fn order_input() -> String {
    "order-".repeat(333)
}

/// A copy of the fixture in a fresh directory (the committed file is never
/// opened).
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema-v2.db");
    std::fs::copy(fixture, &path).unwrap();
    (dir, path)
}

fn user_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap()
}

fn key(workflow: &str, instance: &str) -> InstanceKey {
    InstanceKey::new(workflow, instance).unwrap()
}

/// A completed record of `value` (of type `$t`), encoded as the schema-2
/// engine encoded it (postcard, before codec ids: codec id 0 after the
/// upgrade).
macro_rules! completed {
    ($kind:expr, $key:expr, $value:expr, $t:ty) => {
        StepRecord::completed(
            $kind,
            type_tag::<$t>(),
            Codec::Postcard.encode::<$t>($key, &$value).unwrap(),
            None,
        )
        .with_codec(Codec::Postcard)
    };
}

/// The steps of `key` with their records, as a schema-2 store returned them.
fn expected_steps(workflow: &str, instance: &str) -> Vec<(String, StepRecord)> {
    let suspended = |kind: StepKind, tag: &str, deadline_ms: Option<u64>| {
        StepRecord::suspended(kind, tag, None, deadline_ms).with_codec(Codec::Postcard)
    };
    let mut steps: Vec<(String, StepRecord)> = match (workflow, instance) {
        ("order", "waiting") => vec![
            (
                "_input".into(),
                completed!(StepKind::Engine, "_input", order_input(), String),
            ),
            (
                "blob".into(),
                completed!(StepKind::Step, "blob", blob(1), Vec<u8>),
            ),
            ("count".into(), completed!(StepKind::Step, "count", 7, u64)),
            (
                "approval".into(),
                suspended(StepKind::Suspend, type_tag::<u32>(), None),
            ),
        ],
        ("order", "done") => vec![
            (
                "_input".into(),
                completed!(StepKind::Engine, "_input", order_input(), String),
            ),
            (
                "blob".into(),
                completed!(StepKind::Step, "blob", blob(1), Vec<u8>),
            ),
            ("count".into(), completed!(StepKind::Step, "count", 7, u64)),
            (
                "approval".into(),
                completed!(StepKind::Suspend, "approval", 5, u32),
            ),
            ("after".into(), completed!(StepKind::Step, "after", 12, u64)),
            (
                "_output".into(),
                completed!(
                    StepKind::Engine,
                    "_output",
                    "1998:1022:12".to_owned(),
                    String
                ),
            ),
        ],
        ("order", "crashed") => vec![
            (
                "_input".into(),
                completed!(StepKind::Engine, "_input", order_input(), String),
            ),
            (
                "blob".into(),
                completed!(StepKind::Step, "blob", blob(1), Vec<u8>),
            ),
        ],
        ("nap", "sleeping") => vec![
            (
                "_input".into(),
                completed!(StepKind::Engine, "_input", (), ()),
            ),
            (
                "blob".into(),
                completed!(StepKind::Step, "blob", blob(2), Vec<u8>),
            ),
            (
                "t".into(),
                suspended(StepKind::Timer, type_tag::<()>(), Some(61_000)),
            ),
        ],
        other => panic!("no instance {other:?} in the fixture"),
    };
    steps.sort_by(|a, b| a.0.cmp(&b.0));
    steps
}

const INSTANCES: [(&str, &str); 4] = [
    ("nap", "sleeping"),
    ("order", "crashed"),
    ("order", "done"),
    ("order", "waiting"),
];

#[tokio::test]
async fn a_schema_2_database_is_upgraded_on_open_with_every_record() {
    let (_dir, path) = fixture_copy();
    assert_eq!(user_version(&path), 2);
    let store = SqliteStore::open(&path).unwrap();

    let listed = store.list_instances(&InstanceFilter::new()).await.unwrap();
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|m| (m.workflow_name.as_str(), m.instance_id.as_str()))
        .collect();
    assert_eq!(names, INSTANCES);
    let status = |workflow: &str, instance: &str| {
        listed
            .iter()
            .find(|m| m.workflow_name == workflow && m.instance_id == instance)
            .map(|m| m.status.clone())
            .unwrap()
    };
    assert!(matches!(
        status("order", "crashed"),
        MetadataStatus::Running
    ));
    assert!(matches!(
        status("order", "done"),
        MetadataStatus::Completed(_)
    ));
    assert!(
        matches!(status("order", "waiting"), MetadataStatus::Suspended { key, .. } if key == "approval")
    );
    assert!(
        matches!(status("nap", "sleeping"), MetadataStatus::Suspended { key, .. } if key == "t")
    );
    assert!(listed.iter().all(|m| m.created_at_ms == 1_000));

    for (workflow, instance) in INSTANCES {
        let k = key(workflow, instance);
        let snapshot = store.load_instance(&k).await.unwrap().unwrap();
        let expected = expected_steps(workflow, instance);
        assert_eq!(
            snapshot
                .steps
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>(),
            expected.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
            "{workflow}/{instance}"
        );
        for ((step, found), (_, wanted)) in snapshot.steps.iter().zip(&expected) {
            assert_eq!(found, wanted, "{workflow}/{instance}/{step}");
            // The same record through the single-step read.
            let single = store.get_step(&k, step).await.unwrap().unwrap();
            assert_eq!(&single, found, "{workflow}/{instance}/{step}");
        }
    }

    assert_eq!(store.next_timer_deadline().await.unwrap(), Some(61_000));
    assert_eq!(store.due_timers(60_999, 10).await.unwrap(), []);
    assert_eq!(
        store.due_timers(61_000, 10).await.unwrap(),
        [TimerEntry {
            deadline_ms: 61_000,
            instance: key("nap", "sleeping"),
            step_key: "t".into(),
        }]
    );
    drop(store);

    // The upgrade is recorded, and the long values (four 1 KiB blobs,
    // three 2 KB inputs) live in their own table now.
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (apart, long_inline): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM step_values),
                    (SELECT count(*) FROM steps WHERE length(value) > 256)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((apart, long_inline), (7, 0));
}

/// Counts of step closure runs, by step key.
#[derive(Default)]
struct Runs {
    blob: AtomicUsize,
    count: AtomicUsize,
    after: AtomicUsize,
}

/// The fixture's workflows, as they were when it was written.
fn register(engine: &Engine, runs: &Arc<Runs>) {
    let seen = Arc::clone(runs);
    engine
        .register("order", move |ctx: Context| {
            let seen = Arc::clone(&seen);
            async move {
                let input: String = ctx.input()?;
                let b = ctx
                    .step("blob")
                    .run(|| {
                        seen.blob.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(blob(1)) }
                    })
                    .await?;
                let n = ctx
                    .step("count")
                    .run(|| {
                        seen.count.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(7u64) }
                    })
                    .await?;
                let approval = ctx.suspend(&APPROVAL).await?;
                let after = ctx
                    .step("after")
                    .run(|| {
                        seen.after.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, StepError>(u64::from(approval) + n) }
                    })
                    .await?;
                Ok(format!("{}:{}:{after}", input.len(), b.len()))
            }
        })
        .unwrap();
    let seen = Arc::clone(runs);
    engine
        .register("nap", move |ctx: Context| {
            let seen = Arc::clone(&seen);
            async move {
                let b = ctx
                    .step("blob")
                    .run(|| {
                        seen.blob.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(blob(2)) }
                    })
                    .await?;
                ctx.timer("t", Duration::from_secs(60)).await?;
                Ok(format!("woke:{}", b.len()))
            }
        })
        .unwrap();
}

#[tokio::test]
async fn the_workflows_of_an_upgraded_database_continue() {
    let (_dir, path) = fixture_copy();
    let clock = ManualClock::new(1_000);
    let store = SqliteStore::open(&path).unwrap();
    let engine = Engine::builder()
        .store(store.clone())
        .clock(clock.clone())
        .build();
    let runs = Arc::new(Runs::default());
    register(&engine, &runs);
    engine.start().await.unwrap();

    // The crashed run is recovered: `blob` is memoised, `count` runs, and it
    // waits for its approval. A resume queues behind that run and settles
    // where it does.
    let state = engine
        .resume("order", "crashed")
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    assert!(
        matches!(state, WorkflowState::Suspended { .. }),
        "{state:?}"
    );

    for instance in ["waiting", "crashed"] {
        let output: String = engine
            .signal("order", instance, &APPROVAL, 5u32)
            .await
            .unwrap()
            .wait_output()
            .await
            .unwrap();
        assert_eq!(output, "1998:1022:12", "{instance}");
    }
    assert_eq!(
        engine.output::<String>("order", "done").await.unwrap(),
        "1998:1022:12"
    );

    let mut sleeping = engine.subscribe("nap", "sleeping").await.unwrap();
    clock.advance(Duration::from_secs(60));
    let mut last = None;
    while let Some(state) = sleeping.next().await {
        last = Some(state);
    }
    assert_eq!(last, Some(WorkflowState::Completed { status: None }));
    assert_eq!(
        engine.output::<String>("nap", "sleeping").await.unwrap(),
        "woke:1022"
    );

    // Only the work the fixture had not done ran.
    assert_eq!(
        runs.blob.load(Ordering::SeqCst),
        0,
        "a stored blob ran again"
    );
    assert_eq!(runs.count.load(Ordering::SeqCst), 1);
    assert_eq!(runs.after.load(Ordering::SeqCst), 2);
    let big = store
        .get_step(&key("order", "crashed"), "blob")
        .await
        .unwrap();
    assert_eq!(
        big.map(|r| (r.state, r.value)),
        Some((
            StepState::Completed,
            Codec::Postcard.encode("blob", &blob(1)).unwrap()
        ))
    );
    assert_eq!(store.next_timer_deadline().await.unwrap(), None);
    engine.shutdown().await;
}

#[test]
fn a_database_newer_than_this_build_is_still_refused_and_untouched() {
    let (_dir, path) = fixture_copy();
    let newer = SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {newer}"))
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    match SqliteStore::open(&path) {
        Ok(_) => panic!("a schema-{newer} database opened"),
        Err(error) => assert_eq!(
            error.storage_kind(),
            Some(StorageErrorKind::NewerFormat),
            "{error:?}"
        ),
    }
    assert_eq!(user_version(&path), newer);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
