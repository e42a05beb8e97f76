//! What the end-to-end tests share: running the built binaries, the
//! stores they run against, and the fixture workflows.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use memable_core::{Context, Engine, RetryPolicy, StepError, StepStore};
use serde_json::Value;

#[path = "../fixture/workflows.rs"]
pub mod workflows;

/// What one run of a binary did.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// stdout as JSON, failing the test if it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {self:?}");
        })
    }

    /// The `--json` error on stderr.
    #[track_caller]
    pub fn error(&self) -> Value {
        let doc: Value = serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not a JSON error ({e}): {self:?}"));
        doc["error"].clone()
    }
}

fn run_bin(bin: &str, store: &str, args: &[&str]) -> Ran {
    let out = Command::new(bin)
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("MEMABLE_STORE")
        .output()
        .expect("the binary runs");
    Ran {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the stock `memable` binary on `store` with `args`.
pub fn memable(store: &str, args: &[&str]) -> Ran {
    run_bin(env!("CARGO_BIN_EXE_memable"), store, args)
}

/// Runs the fixture application's operator command (workflow `order` v2
/// registered) on `store` with `args`.
pub fn fixture_app(store: &str, args: &[&str]) -> Ran {
    run_bin(env!("CARGO_BIN_EXE_memable-cli-fixture-app"), store, args)
}

/// An embedded backend under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum File {
    Redb,
    Sqlite,
}

impl File {
    pub const ALL: [File; 2] = [File::Redb, File::Sqlite];

    /// A fresh store path in `dir`.
    pub fn path(self, dir: &Path) -> PathBuf {
        dir.join(match self {
            File::Redb => "app.redb",
            File::Sqlite => "app.db",
        })
    }

    /// Opens (or creates) the store at `path`, as the application does.
    pub fn open(self, path: &Path) -> Arc<dyn StepStore> {
        match self {
            File::Redb => Arc::new(memable_redb::RedbStore::open(path).expect("open redb")),
            File::Sqlite => Arc::new(memable_sqlite::SqliteStore::open(path).expect("open sqlite")),
        }
    }
}

/// Closure runs of the steps of workflow `counted`.
#[derive(Clone, Default)]
pub struct Runs {
    pub a: Arc<AtomicUsize>,
    pub b: Arc<AtomicUsize>,
}

impl Runs {
    pub fn get(&self) -> (usize, usize) {
        (self.a.load(Ordering::SeqCst), self.b.load(Ordering::SeqCst))
    }
}

/// Registers `counted`: steps `a` (1) and `b` (10), counted; outputs
/// their sum.
pub fn register_counted(engine: &Engine, runs: &Runs) {
    let runs = runs.clone();
    engine
        .register("counted", move |ctx: Context| {
            let runs = runs.clone();
            async move {
                let a_runs = Arc::clone(&runs.a);
                let a: u32 = ctx
                    .step("a")
                    .run(move || {
                        a_runs.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(1) }
                    })
                    .await?;
                let b_runs = Arc::clone(&runs.b);
                let b: u32 = ctx
                    .step("b")
                    .run(move || {
                        b_runs.fetch_add(1, Ordering::SeqCst);
                        async { Ok::<_, StepError>(10) }
                    })
                    .await?;
                Ok(a + b)
            }
        })
        .expect("register counted");
}

/// Waits until instance `workflow/id` has ended (or is suspended).
pub async fn settle(engine: &Engine, workflow: &str, id: &str) {
    let mut states = engine.subscribe(workflow, id).await.expect("subscribe");
    while let Some(state) = states.next().await {
        if state.is_terminal() || matches!(state, memable_core::WorkflowState::Suspended { .. }) {
            break;
        }
    }
}

/// The ids in a `list --json` document, in order.
pub fn ids(doc: &Value) -> Vec<String> {
    doc["instances"]
        .as_array()
        .expect("instances is an array")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Registers `flaky`: step `first` (1), then step `call` (41), which fails
/// (two attempts, no backoff, then a dead letter) while `down` is set;
/// outputs their sum. `calls` counts `call`'s attempts.
pub fn register_flaky(engine: &Engine, down: &Arc<AtomicBool>, calls: &Arc<AtomicUsize>) {
    let (down, calls) = (Arc::clone(down), Arc::clone(calls));
    engine
        .register("flaky", move |ctx: Context| {
            let (down, calls) = (Arc::clone(&down), Arc::clone(&calls));
            async move {
                let first: u32 = ctx
                    .step("first")
                    .run(|| async { Ok::<_, StepError>(1) })
                    .await?;
                let call: u32 = ctx
                    .step("call")
                    .retry(RetryPolicy::fixed(2, Duration::ZERO))
                    .run(move || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let down = down.load(Ordering::SeqCst);
                        async move {
                            if down {
                                Err(StepError::retryable("service down"))
                            } else {
                                Ok(41)
                            }
                        }
                    })
                    .await?;
                Ok(first + call)
            }
        })
        .expect("register flaky");
}
