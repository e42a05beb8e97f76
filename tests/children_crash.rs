//! A parent workflow and its child survive a `SIGKILL` of their process at
//! every point of their life, on a redb file and on an SQLite file (each
//! backend compiled in; the memory store cannot outlive a process).
//!
//! The process under test is this test binary again, running the ignored
//! test [`child_process`]: it opens the file, starts an engine and invokes
//! `order/o`, whose run
//!
//! 1. starts the child `charge` under the step key `pay` with `.start()`
//!    (its id is derived: `order:o:pay`) and **does a step, `note`, before
//!    awaiting it**;
//! 2. awaits the child (the run ends parked at `pay` until the child ends);
//! 3. once the child's output is there, does a step `ship` and finishes.
//!
//! The child's steps `a` and `b`, and the parent's `note` and `ship`, append
//! a line (`child:a`, …) to a side file each time their closure runs, so
//! closure runs are counted across processes. The process prints a marker at
//! each point and waits there until the test writes `go <marker>` on its
//! stdin; so the test knows exactly where the process is when it kills it:
//!
//! | kill at | parent | child |
//! |---|---|---|
//! | `started-not-awaited` | `Running`, the start committed, `note` not run | inside step `a` (its line written, its result not committed) |
//! | `awaited` | `Suspended` at `pay`, `note` committed | `a` committed, inside `b` |
//! | `child-completed` | woken, the child's output in its point, `ship` not run | `Completed` |
//! | `parent-completed` | `Completed` | `Completed` |
//!
//! The test checks that the store holds exactly that after the kill, then
//! starts an engine with the same workflows on the reopened file and checks:
//! the parent completes with the right output; one `charge` instance exists,
//! under its derived id, completed, listed by `Engine::children` and naming
//! its parent; and every step closure ran **once after the kill if its
//! result was not committed at the kill, never if it was** — so a closure
//! killed mid-run (after its line, before its commit) runs twice in all,
//! and any other closure once. Nothing here sleeps to synchronise: the test
//! waits for printed markers, and for the engine's own waits.
#![cfg(any(feature = "redb", feature = "sqlite"))]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memable::store::{InstanceSnapshot, StepState};
use memable::{
    Context, Engine, EngineError, InstanceFilter, InstanceKey, MetadataStatus, ParentLink,
    StepError, StepStore, Workflow, WorkflowState, child_instance_id,
};
use tokio::sync::watch;

/// How long any one wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

const ENV_DB: &str = "MEMABLE_CHILDREN_CRASH_DB";
const ENV_LOG: &str = "MEMABLE_CHILDREN_CRASH_LOG";
const ENV_BACKEND: &str = "MEMABLE_CHILDREN_CRASH_BACKEND";

/// The parent's run, right after `.start()` of the child returned.
const STARTED_NOT_AWAITED: &str = "started-not-awaited";
/// The process's main, once the parent's first run ended parked at `pay`.
const AWAITED: &str = "awaited";
/// The parent's run, right after the child's output reached it.
const CHILD_COMPLETED: &str = "child-completed";
/// The process's main, once the parent's output is there.
const PARENT_COMPLETED: &str = "parent-completed";
/// The child's step `a`, inside its closure (after its line).
const CHILD_IN_A: &str = "child-in-a";
/// The child's step `b`, inside its closure (after its line).
const CHILD_IN_B: &str = "child-in-b";

/// The parent's output when everything ran.
const EXPECTED: &str = "order of 250; charged 250+500; shipped";

static CHARGE: Workflow<u32, String> = Workflow::new("charge");
static ORDER: Workflow<u32, String> = Workflow::new("order");

/// A file backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    #[cfg(feature = "redb")]
    Redb,
    #[cfg(feature = "sqlite")]
    Sqlite,
}

impl FileKind {
    fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "redb")]
            FileKind::Redb => "redb",
            #[cfg(feature = "sqlite")]
            FileKind::Sqlite => "sqlite",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            #[cfg(feature = "redb")]
            "redb" => FileKind::Redb,
            #[cfg(feature = "sqlite")]
            "sqlite" => FileKind::Sqlite,
            other => panic!("no backend {other:?} in this build"),
        }
    }

    fn open(self, path: &Path) -> Arc<dyn StepStore> {
        match self {
            #[cfg(feature = "redb")]
            FileKind::Redb => Arc::new(memable::redb::RedbStore::open(path).expect("open redb")),
            #[cfg(feature = "sqlite")]
            FileKind::Sqlite => {
                Arc::new(memable::sqlite::SqliteStore::open(path).expect("open sqlite"))
            }
        }
    }
}

/// Where the process waits for the test: each gate prints `marker <name>`
/// the first time it is reached and holds until the test wrote
/// `go <name>`. A replay passes a released gate without printing it again.
struct Gates {
    released: watch::Receiver<HashSet<String>>,
    printed: Mutex<HashSet<String>>,
}

impl Gates {
    /// Gates released by `go <name>` lines on stdin; the process exits when
    /// stdin closes (the test is gone).
    fn from_stdin() -> Arc<Self> {
        let (tx, released) = watch::channel(HashSet::new());
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if let Some(name) = line.strip_prefix("go ") {
                    tx.send_modify(|set| {
                        set.insert(name.to_owned());
                    });
                }
            }
            std::process::exit(3);
        });
        Arc::new(Self {
            released,
            printed: Mutex::default(),
        })
    }

    fn mark(&self, name: &str) {
        if self.printed.lock().expect("gates").insert(name.to_owned()) {
            println!("marker {name}");
        }
    }

    async fn pass(&self, name: &str) {
        self.mark(name);
        let mut released = self.released.clone();
        if released.wait_for(|set| set.contains(name)).await.is_err() {
            std::process::exit(3);
        }
    }
}

/// Passes `gate` in the process under test; nothing in the test process.
async fn pass(gates: Option<&Gates>, gate: &str) {
    if let Some(gates) = gates {
        gates.pass(gate).await;
    }
}

/// Appends `line` to the side file: one `write` of a short line with
/// `O_APPEND`, so a kill leaves whole lines (a `SIGKILL` keeps what was
/// written; only a power loss could drop it).
fn append(log: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the side file");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("append to the side file");
}

/// How many times each closure ran, from the side file.
fn runs(log: &Path, closure: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| *line == closure)
        .count()
}

/// Registers `charge` and `order` (see the module docs); `gates` is `None`
/// in the test process.
fn register(engine: &Engine, log: &Path, gates: Option<Arc<Gates>>) -> Result<(), EngineError> {
    let (child_log, child_gates) = (log.to_owned(), gates.clone());
    CHARGE.register(engine, move |ctx: Context, cents: u32| {
        let (log, gates) = (child_log.clone(), child_gates.clone());
        async move {
            let auth = ctx
                .step("a")
                .run(|| {
                    let (log, gates) = (log.clone(), gates.clone());
                    async move {
                        append(&log, "child:a");
                        pass(gates.as_deref(), CHILD_IN_A).await;
                        Ok::<_, StepError>(cents)
                    }
                })
                .await?;
            let capture = ctx
                .step("b")
                .run(|| {
                    let (log, gates) = (log.clone(), gates.clone());
                    async move {
                        append(&log, "child:b");
                        pass(gates.as_deref(), CHILD_IN_B).await;
                        Ok::<_, StepError>(cents * 2)
                    }
                })
                .await?;
            Ok(format!("charged {auth}+{capture}"))
        }
    })?;
    let parent_log = log.to_owned();
    ORDER.register(engine, move |ctx: Context, cents: u32| {
        let (log, gates) = (parent_log.clone(), gates.clone());
        async move {
            let payment = ctx.child(&CHARGE, "pay", cents).start().await?;
            pass(gates.as_deref(), STARTED_NOT_AWAITED).await;
            let note = ctx
                .step("note")
                .run(|| {
                    append(&log, "parent:note");
                    async move { Ok::<_, StepError>(format!("order of {cents}")) }
                })
                .await?;
            let receipt = payment.await?;
            pass(gates.as_deref(), CHILD_COMPLETED).await;
            let shipped = ctx
                .step("ship")
                .run(|| {
                    append(&log, "parent:ship");
                    async { Ok::<_, StepError>("shipped".to_owned()) }
                })
                .await?;
            Ok(format!("{note}; {receipt}; {shipped}"))
        }
    })
}

/// The process under test (see the module docs): started by the other
/// tests of this file with its settings in the environment.
#[test]
#[ignore = "the process the other tests of this file start and kill"]
fn child_process() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (db, log) = (PathBuf::from(var(ENV_DB)), PathBuf::from(var(ENV_LOG)));
    let kind = FileKind::parse(&var(ENV_BACKEND));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let gates = Gates::from_stdin();
        let engine = Engine::builder().store(kind.open(&db)).build();
        register(&engine, &log, Some(Arc::clone(&gates))).expect("register");
        engine.start().await.expect("start the engine");
        let order = ORDER.invoke(&engine, 250).id("o").await.expect("invoke");
        let state = order.wait_idle().await.expect("wait_idle");
        assert!(
            matches!(&state, WorkflowState::Suspended { key, .. } if key == "pay"),
            "{state:?}"
        );
        gates.mark(AWAITED);
        assert_eq!(order.output().await.expect("the output"), EXPECTED);
        gates.mark(PARENT_COMPLETED);
        std::future::pending::<()>().await;
    });
}

/// Where the test kills the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Point {
    StartedNotAwaited,
    Awaited,
    ChildCompleted,
    ParentCompleted,
}

/// The process's life in stages: the markers that show it reached a
/// stage's point (all of them, in any order), and the gates that let it go
/// on from there.
const STAGES: [(Point, &[&str], &[&str]); 4] = [
    (
        Point::StartedNotAwaited,
        &[STARTED_NOT_AWAITED, CHILD_IN_A],
        &[STARTED_NOT_AWAITED, CHILD_IN_A],
    ),
    (Point::Awaited, &[AWAITED, CHILD_IN_B], &[CHILD_IN_B]),
    (
        Point::ChildCompleted,
        &[CHILD_COMPLETED],
        &[CHILD_COMPLETED],
    ),
    (Point::ParentCompleted, &[PARENT_COMPLETED], &[]),
];

/// The process under test and its markers.
struct Process {
    child: Child,
    stdin: ChildStdin,
    markers: Receiver<String>,
    seen: HashSet<String>,
}

impl Process {
    fn spawn(kind: FileKind, db: &Path, log: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "child_process", "--ignored", "--nocapture"])
            .env(ENV_DB, db)
            .env(ENV_LOG, log)
            .env(ENV_BACKEND, kind.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the process under test");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, markers) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The test harness may print on the same line before it.
                if let Some((_, name)) = line.split_once("marker ")
                    && tx.send(name.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            markers,
            seen: HashSet::new(),
        }
    }

    /// Waits until the process printed every marker of `names`.
    fn expect(&mut self, names: &[&str]) {
        let deadline = Instant::now() + PATIENCE;
        while !names.iter().all(|name| self.seen.contains(*name)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.markers.recv_timeout(left) {
                Ok(name) => {
                    self.seen.insert(name);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {names:?} within {PATIENCE:?}; seen {:?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the process ended ({:?}) before {names:?}; seen {:?}",
                    self.child.wait(),
                    self.seen
                ),
            }
        }
    }

    fn release(&mut self, gates: &[&str]) {
        for gate in gates {
            writeln!(self.stdin, "go {gate}").expect("write to the process");
        }
        self.stdin.flush().expect("flush to the process");
    }

    fn kill(mut self) {
        // `Child::kill` sends SIGKILL on Unix.
        self.child.kill().expect("SIGKILL the process");
        self.child.wait().expect("reap the process");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A failed test leaves no process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `step` of `snapshot` holds a committed result.
fn committed(snapshot: Option<&InstanceSnapshot>, step: &str) -> bool {
    snapshot
        .and_then(|s| s.step(step))
        .is_some_and(|record| record.state == StepState::Completed)
}

/// The closures, with the instance and step whose result they produce.
const CLOSURES: [(&str, bool, &str); 4] = [
    ("parent:note", true, "note"),
    ("parent:ship", true, "ship"),
    ("child:a", false, "a"),
    ("child:b", false, "b"),
];

/// Kills the process at `point`, then checks what the store holds and
/// what an engine on the reopened file makes of it.
fn crash_at(kind: FileKind, point: Point) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join(match kind.name() {
        "redb" => "family.redb",
        _ => "family.db",
    });
    let log = dir.path().join("closures.log");
    let mut process = Process::spawn(kind, &db, &log);
    for (stage, markers, gates) in STAGES {
        process.expect(markers);
        if stage == point {
            break;
        }
        process.release(gates);
    }
    process.kill();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(recover(kind, &db, &log, point));
}

/// The parent and the child of every test.
fn family() -> (InstanceKey, InstanceKey) {
    let parent = InstanceKey::new("order", "o").unwrap();
    let child_id = child_instance_id(&parent, "pay").unwrap();
    assert_eq!(child_id, "order:o:pay");
    (parent, InstanceKey::new("charge", &child_id).unwrap())
}

/// Checks what the kill left, finishes the family with an engine on the
/// reopened file, then checks the family and how often each closure ran.
async fn recover(kind: FileKind, db: &Path, log: &Path, point: Point) {
    let what = format!("{} killed at {point:?}", kind.name());
    let store = kind.open(db);
    let at_kill = state_at_kill(store.as_ref(), log, point, &what).await;

    // An engine on the reopened file finishes the family.
    let engine = Engine::builder().store(store).build();
    register(&engine, log, None).unwrap();
    engine.start().await.unwrap();
    let output = tokio::time::timeout(PATIENCE, ORDER.instance(&engine, "o").wait_output())
        .await
        .unwrap_or_else(|_| panic!("{what}: the parent did not complete within {PATIENCE:?}"));
    assert_eq!(output.unwrap(), EXPECTED, "{what}");
    check_family(&engine, &what).await;
    engine.shutdown().await;

    // Each closure: at most once before the kill (nothing retried in one
    // process); after it, never again if its result was committed, exactly
    // once if not (a closure killed after its line but before its commit
    // runs twice in all, and only such a one).
    for (closure, was_committed, before) in at_kill {
        let after = runs(log, closure) - before;
        assert!(before <= 1, "{what}: {closure} ran {before} times before");
        if was_committed {
            assert_eq!(
                (before, after),
                (1, 0),
                "{what}: {closure}, committed at the kill, ran again"
            );
        } else {
            assert_eq!(
                after, 1,
                "{what}: {closure}, not committed at the kill, ran {after} times after"
            );
        }
    }
    // And so, per point: which closures were cut mid-run and ran twice.
    let twice: Vec<&str> = CLOSURES
        .iter()
        .map(|c| c.0)
        .filter(|closure| runs(log, closure) == 2)
        .collect();
    let expected_twice: &[&str] = match point {
        Point::StartedNotAwaited => &["child:a"],
        Point::Awaited => &["child:b"],
        Point::ChildCompleted | Point::ParentCompleted => &[],
    };
    assert_eq!(twice, expected_twice, "{what}");
}

/// Checks that the store after the kill holds exactly what `point` says
/// (module docs); returns each closure with whether its result was
/// committed and how often it had run.
async fn state_at_kill(
    store: &dyn StepStore,
    log: &Path,
    point: Point,
    what: &str,
) -> Vec<(&'static str, bool, usize)> {
    let (parent, child) = family();
    // What the kill left: exactly what the point says (module docs).
    let parent_at_kill = store.load_instance(&parent).await.unwrap();
    let child_at_kill = store.load_instance(&child).await.unwrap();
    let parent_snap = parent_at_kill
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: the parent is missing"));
    let child_snap = child_at_kill
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: the child was not started with the parent's start"));
    assert!(
        parent_snap.step("_child:pay").is_some(),
        "{what}: no link to the child"
    );
    let point_done = committed(parent_at_kill.as_ref(), "pay");
    let state = (
        &parent_snap.metadata.status,
        point_done,
        committed(parent_at_kill.as_ref(), "note"),
        committed(parent_at_kill.as_ref(), "ship"),
        &child_snap.metadata.status,
        committed(child_at_kill.as_ref(), "a"),
        committed(child_at_kill.as_ref(), "b"),
    );
    let as_expected = match point {
        Point::StartedNotAwaited => matches!(
            state,
            (
                MetadataStatus::Running,
                false,
                false,
                false,
                MetadataStatus::Running,
                false,
                false
            )
        ),
        Point::Awaited => matches!(
            state,
            (
                MetadataStatus::Suspended { key, .. },
                false,
                true,
                false,
                MetadataStatus::Running,
                true,
                false
            ) if key == "pay"
        ),
        Point::ChildCompleted => matches!(
            state,
            (
                MetadataStatus::Running,
                true,
                true,
                false,
                MetadataStatus::Completed(_),
                true,
                true
            )
        ),
        Point::ParentCompleted => matches!(
            state,
            (
                MetadataStatus::Completed(_),
                true,
                true,
                true,
                MetadataStatus::Completed(_),
                true,
                true
            )
        ),
    };
    assert!(as_expected, "{what}: the store after the kill is {state:?}");
    CLOSURES
        .iter()
        .map(|&(closure, of_parent, step)| {
            let snapshot = if of_parent {
                parent_at_kill.as_ref()
            } else {
                child_at_kill.as_ref()
            };
            (closure, committed(snapshot, step), runs(log, closure))
        })
        .collect()
}

/// One child, under its derived id, completed, linked both ways.
async fn check_family(engine: &Engine, what: &str) {
    let (parent, child) = family();
    let child_id = child.instance();
    let charges = engine
        .list_instances(&InstanceFilter::new().workflow("charge"))
        .await
        .unwrap();
    assert_eq!(charges.len(), 1, "{what}: {charges:?}");
    assert_eq!(charges[0].instance_id, child_id, "{what}");
    assert!(
        matches!(charges[0].status, MetadataStatus::Completed(_)),
        "{what}: {charges:?}"
    );
    assert_eq!(
        CHARGE.instance(engine, child_id).output().await.unwrap(),
        "charged 250+500",
        "{what}"
    );
    let children = engine.children("order", "o").await.unwrap();
    assert_eq!(children.len(), 1, "{what}: {children:?}");
    assert_eq!(children[0].step_key, "pay", "{what}");
    assert_eq!(children[0].child, child, "{what}");
    assert!(!children[0].detached, "{what}");
    assert!(
        matches!(
            children[0].metadata.as_ref().map(|m| &m.status),
            Some(MetadataStatus::Completed(_))
        ),
        "{what}: {children:?}"
    );
    assert_eq!(
        engine.parent("charge", child_id).await.unwrap(),
        Some(ParentLink {
            parent,
            step_key: "pay".into(),
            detached: false,
        }),
        "{what}"
    );
}

/// One test per backend and point: `<backend>::killed_<point>`.
macro_rules! crash_tests {
    ($($backend:ident: $kind:expr;)*) => {$(
        mod $backend {
            use super::{FileKind, Point, crash_at};

            #[test]
            fn killed_started_not_awaited() {
                crash_at($kind, Point::StartedNotAwaited);
            }

            #[test]
            fn killed_awaited() {
                crash_at($kind, Point::Awaited);
            }

            #[test]
            fn killed_child_completed() {
                crash_at($kind, Point::ChildCompleted);
            }

            #[test]
            fn killed_parent_completed() {
                crash_at($kind, Point::ParentCompleted);
            }
        }
    )*};
}

#[cfg(feature = "redb")]
crash_tests! { redb: FileKind::Redb; }

#[cfg(feature = "sqlite")]
crash_tests! { sqlite: FileKind::Sqlite; }
