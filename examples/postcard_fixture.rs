//! Writes the `postcard-v1` fixtures: a redb store and an SQLite store as
//! memable wrote them before values carried a codec id (postcard values,
//! record format 1, journal format 1).
//!
//! The fixtures under `tests/fixtures/postcard-v1/` were made by
//! running this example at commit 80ed189 (the last commit before the codec
//! change): check that commit out in a scratch directory, copy this file into
//! its `examples/`, and run
//!
//! ```text
//! cargo run --example postcard_fixture --features redb,sqlite -- <out-dir>
//! ```
//!
//! then copy `<out-dir>/redb` and `<out-dir>/sqlite` over the fixture
//! directories, less SQLite's `-shm` and lock files (SQLite rebuilds the
//! first from the WAL). Run on a later commit, it writes the current
//! formats.
//!
//! Each store holds, in its database file (written, then closed cleanly):
//! - `order/done-1`: completed, its output a [`Receipt`];
//! - `review/wait-1`: suspended at the `approval` point, a typed input and
//!   four completed steps (a struct, a `String`, a `Vec`, an `Option`);
//!
//! and, in its journal only (the store was reopened, then the process
//! aborted right after the instance suspended):
//! - `review/wait-2`: like `wait-1`.
//!
//! `tests/postcard_fixtures.rs` opens copies of them with the current code.

use std::path::{Path, PathBuf};
use std::process::Command;

use memable::{Context, Engine, EngineError, StepError, StepStore, SuspendPoint};
use serde::{Deserialize, Serialize};

/// `order`'s step `price`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Price {
    net: u64,
    tax: u64,
}

/// `order`'s output.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Receipt {
    order: u32,
    total: u64,
    lines: Vec<String>,
}

/// `review`'s input.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Request {
    who: String,
    amount: u64,
}

/// `review`'s step `profile`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Profile {
    name: String,
    level: u8,
}

/// `review`'s output.
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

fn register(engine: &Engine) -> Result<(), EngineError> {
    engine.register("order", |ctx: Context| async move {
        let order: u32 = ctx.input()?;
        let price = ctx
            .step("price")
            .run(|| async move {
                Ok::<_, StepError>(Price {
                    net: u64::from(order) * 100,
                    tax: u64::from(order) * 20,
                })
            })
            .await?;
        Ok(Receipt {
            order,
            total: price.net + price.tax,
            lines: vec![format!("net {}", price.net), format!("tax {}", price.tax)],
        })
    })?;
    engine.register("review", |ctx: Context| async move {
        let request: Request = ctx.input()?;
        let who = request.who.clone();
        let profile = ctx
            .step("profile")
            .run(|| {
                let name = who.to_uppercase();
                async move { Ok::<_, StepError>(Profile { name, level: 3 }) }
            })
            .await?;
        let who = request.who.clone();
        let greeting = ctx
            .step("greeting")
            .run(|| {
                let greeting = format!("hello {who}");
                async move { Ok::<_, StepError>(greeting) }
            })
            .await?;
        let items = ctx
            .step("items")
            .run(|| async move { Ok::<_, StepError>(vec![1u32, 2, 3]) })
            .await?;
        let amount = request.amount;
        let bonus = ctx
            .step("bonus")
            .run(|| async move { Ok::<_, StepError>(Some(amount / 10)) })
            .await?;
        let approved = ctx.suspend(&APPROVAL).status("waiting").await?;
        Ok(Verdict {
            who: profile.name,
            approved,
            level: profile.level,
            greeting,
            items,
            bonus,
        })
    })?;
    Ok(())
}

fn open(backend: &str, path: &Path) -> Result<Box<dyn StepStore>, EngineError> {
    Ok(match backend {
        "redb" => Box::new(memable::redb::RedbStore::open(path)?),
        _ => Box::new(memable::sqlite::SqliteStore::open(path)?),
    })
}

async fn engine(backend: &str, path: &Path) -> Result<Engine, EngineError> {
    let engine = Engine::builder().store(open(backend, path)?).build();
    register(&engine)?;
    engine.start().await?;
    Ok(engine)
}

async fn suspend_review(
    engine: &Engine,
    id: &str,
    who: &str,
    amount: u64,
) -> Result<(), EngineError> {
    let state = engine
        .invoke("review")
        .id(id)
        .input(Request {
            who: who.into(),
            amount,
        })
        .await?
        .wait_idle()
        .await?;
    assert!(
        matches!(state, memable::WorkflowState::Suspended { .. }),
        "{id}: {state}"
    );
    Ok(())
}

/// The child: writes one store, then aborts.
async fn child(backend: &str, path: &Path) -> Result<(), EngineError> {
    let first = engine(backend, path).await?;
    let receipt: Receipt = first
        .invoke("order")
        .id("done-1")
        .input(7u32)
        .await?
        .wait_output()
        .await?;
    assert_eq!(receipt.total, 840);
    suspend_review(&first, "wait-1", "ada", 500).await?;
    first.shutdown().await;
    drop(first);

    let second = engine(backend, path).await?;
    suspend_review(&second, "wait-2", "bob", 90).await?;
    // A crash: the last instance is in the journal only.
    std::process::abort();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, backend, path] = args.as_slice()
        && mode == "child"
    {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(child(backend, Path::new(path)))?;
        return Ok(());
    }
    // Without an out-dir (as CI runs every example) it writes into a temp
    // dir, with this build's encodings: a smoke run of the generator.
    let scratch = tempfile::tempdir()?;
    let out = args
        .get(1)
        .map_or_else(|| scratch.path().to_path_buf(), PathBuf::from);
    for (backend, file) in [("redb", "memable.redb"), ("sqlite", "memable.db")] {
        let dir = out.join(backend);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(file);
        let status = Command::new(std::env::current_exe()?)
            .args(["child", backend, path.to_str().ok_or("a UTF-8 path")?])
            .status()?;
        assert!(!status.success(), "the child must abort");
        // The journal is preallocated with zeros, which never read as a
        // record: keep the fixture small by cutting the run of zeros at its
        // end (leaving a margin, so the last record keeps any zero bytes it
        // ends with).
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let bytes = std::fs::read(entry.path())?;
            let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |at| at + 1);
            if entry.file_name().to_string_lossy().ends_with(".journal") {
                let keep = (used + 1024).min(bytes.len());
                std::fs::write(entry.path(), &bytes[..keep])?;
            }
            println!("{}: {} bytes", entry.path().display(), bytes.len());
        }
    }
    Ok(())
}
