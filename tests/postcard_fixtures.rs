//! Stores written before values carried a codec id stay readable: the
//! `tests/fixtures/postcard-v1/` redb and SQLite stores (written by
//! `examples/postcard_fixture.rs` at commit 80ed189: postcard values, record
//! format 1, SQLite schema 3, journal format 1) are opened by this build,
//! which reads their outputs, signals their suspended instances and
//! finishes them with the old step values, running no step again.
//!
//! In each store, `order/done-1` and `review/wait-1` are in the database
//! file, `review/wait-2` only in the journal (the writer aborted after it
//! suspended), so opening replays a format-1 journal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memable::{Context, Engine, EngineError, StepError, StepStore, SuspendPoint, WorkflowState};
use serde::{Deserialize, Serialize};

// The fixture's types, as in examples/postcard_fixture.rs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Price {
    net: u64,
    tax: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Receipt {
    order: u32,
    total: u64,
    lines: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Request {
    who: String,
    amount: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Profile {
    name: String,
    level: u8,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Verdict {
    who: String,
    approved: bool,
    level: u8,
    greeting: String,
    items: Vec<u32>,
    bonus: Option<u64>,
}

static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval");

/// The fixture's workflows, except that every step returns a value unlike
/// the stored one and counts its runs: a replayed step never runs.
fn register(engine: &Engine, runs: &Arc<AtomicUsize>) {
    let counter = Arc::clone(runs);
    engine
        .register("order", move |ctx: Context| {
            let runs = Arc::clone(&counter);
            async move {
                let order: u32 = ctx.input()?;
                let price = ctx
                    .step("price")
                    .run(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(Price { net: 0, tax: 0 }) }
                    })
                    .await?;
                Ok(Receipt {
                    order,
                    total: price.net + price.tax,
                    lines: Vec::new(),
                })
            }
        })
        .unwrap();
    let counter = Arc::clone(runs);
    engine
        .register("review", move |ctx: Context| {
            let runs = Arc::clone(&counter);
            async move {
                let request: Request = ctx.input()?;
                let ran = || {
                    runs.fetch_add(1, Ordering::SeqCst);
                };
                let profile = ctx
                    .step("profile")
                    .run(|| {
                        ran();
                        async {
                            Ok::<_, StepError>(Profile {
                                name: String::new(),
                                level: 0,
                            })
                        }
                    })
                    .await?;
                let greeting = ctx
                    .step("greeting")
                    .run(|| {
                        ran();
                        async { Ok::<_, StepError>(String::new()) }
                    })
                    .await?;
                let items = ctx
                    .step("items")
                    .run(|| {
                        ran();
                        async { Ok::<_, StepError>(Vec::<u32>::new()) }
                    })
                    .await?;
                let bonus = ctx
                    .step("bonus")
                    .run(|| {
                        ran();
                        async { Ok::<_, StepError>(None::<u64>) }
                    })
                    .await?;
                let approved = ctx.suspend(&APPROVAL).await?;
                assert!(!request.who.is_empty());
                Ok(Verdict {
                    who: profile.name,
                    approved,
                    level: profile.level,
                    greeting,
                    items,
                    bonus,
                })
            }
        })
        .unwrap();
}

/// A copy of one fixture directory (the committed files are never opened).
fn fixture_copy(backend: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/postcard-v1")
        .join(backend);
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// The format version in a journal file's header.
fn journal_version(path: &Path) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

fn verdict(who: &str, approved: bool, bonus: u64) -> Verdict {
    Verdict {
        who: who.to_uppercase(),
        approved,
        level: 3,
        greeting: format!("hello {who}"),
        items: vec![1, 2, 3],
        bonus: Some(bonus),
    }
}

async fn finishes_with_the_old_values(
    open: impl Fn() -> Result<Box<dyn StepStore>, EngineError>,
    db: &Path,
) {
    let journal = PathBuf::from(format!("{}.journal", db.display()));
    let before = std::fs::read(&journal).unwrap();
    assert_eq!(journal_version(&journal), 1);
    assert!(before.len() > 24 + 16, "the fixture journal holds records");

    let runs = Arc::new(AtomicUsize::new(0));
    {
        let engine = Engine::builder().store(open().unwrap()).build();
        register(&engine, &runs);
        engine.start().await.unwrap();
        assert_eq!(
            engine.output::<Receipt>("order", "done-1").await.unwrap(),
            Receipt {
                order: 7,
                total: 840,
                lines: vec!["net 700".into(), "tax 140".into()],
            }
        );
        for (id, who, approved, bonus) in [("wait-1", "ada", true, 50), ("wait-2", "bob", false, 9)]
        {
            let state = engine.state("review", id).await.unwrap();
            assert!(
                matches!(state, WorkflowState::Suspended { .. }),
                "{id}: {state}"
            );
            let out: Verdict = engine
                .signal("review", id, &APPROVAL, approved)
                .await
                .unwrap()
                .wait_output()
                .await
                .unwrap();
            assert_eq!(out, verdict(who, approved, bonus), "{id}");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 0, "a stored step ran again");
        engine.shutdown().await;
    }
    // Reopened: old and new records side by side, the journal in the current format.
    assert_eq!(journal_version(&journal), 3);
    let engine = Engine::builder().store(open().unwrap()).build();
    register(&engine, &runs);
    engine.start().await.unwrap();
    assert_eq!(
        engine
            .output::<Receipt>("order", "done-1")
            .await
            .unwrap()
            .total,
        840
    );
    assert_eq!(
        engine.output::<Verdict>("review", "wait-2").await.unwrap(),
        verdict("bob", false, 9)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redb_store_written_with_postcard_values_finishes_its_workflows() {
    let dir = fixture_copy("redb");
    let db = dir.path().join("memable.redb");
    let open = || -> Result<Box<dyn StepStore>, EngineError> {
        Ok(Box::new(memable::redb::RedbStore::open(&db)?))
    };
    finishes_with_the_old_values(open, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_store_written_with_postcard_values_finishes_its_workflows() {
    let dir = fixture_copy("sqlite");
    let db = dir.path().join("memable.db");
    let open = || -> Result<Box<dyn StepStore>, EngineError> {
        Ok(Box::new(memable::sqlite::SqliteStore::open(&db)?))
    };
    finishes_with_the_old_values(open, &db).await;
}
