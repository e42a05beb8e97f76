//! Backup scenarios every file store must pass, shared by the backends'
//! tests: a backup taken while writers commit holds every write
//! acknowledged before the call and opens as a store of its own; a backup
//! never overwrites a file; a backup into a missing directory creates
//! nothing.
//!
//! A backend passes its store type, how to open a file of it, and how to
//! call its `backup`:
//!
//! ```no_run
//! use std::path::Path;
//! use memable_core::{EngineError, MemoryStore};
//! use memable_testkit::backup::{self, Backup};
//!
//! // Only the shapes: a real backend opens its file store and calls its
//! // own `backup` (a MemoryStore stands in here, so this is not run).
//! fn open(_path: &Path, _relaxed: bool) -> Result<MemoryStore, EngineError> {
//!     Ok(MemoryStore::new())
//! }
//! let take: Backup<MemoryStore> = |_store, _path| Box::pin(async { Ok(()) });
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! backup::to_an_existing_path_is_refused(&open, take, "db").await;
//! # });
//! ```

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use memable_core::{
    EngineError, InstanceFilter, InstanceKey, StepKind, StepRecord, StepStore, StepStoreExt,
    StorageErrorKind,
};

/// Calls a store's `backup(path)`.
pub type Backup<S> =
    for<'a> fn(
        &'a S,
        &'a Path,
    ) -> Pin<Box<dyn Future<Output = Result<(), EngineError>> + Send + 'a>>;

/// Opens the file store at a path (`relaxed`: with `Durability::Relaxed`).
pub type Open<'a, S> = &'a dyn Fn(&Path, bool) -> Result<S, EngineError>;

const WRITERS: usize = 8;

fn key(instance: &str) -> InstanceKey {
    InstanceKey::new("backup", instance).expect("a valid key")
}

fn value(i: u64) -> StepRecord {
    StepRecord::completed(StepKind::Step, "bytes", i.to_le_bytes().to_vec(), None)
}

fn input() -> StepRecord {
    StepRecord::completed(StepKind::Engine, "()", Vec::new(), None)
}

fn journal_of(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    name.into()
}

/// Eight writers commit steps until `stop`; every acknowledged
/// `(writer, step)` is sent on `acks`.
fn spawn_writers<S: StepStore + Clone>(
    store: &S,
    stop: &Arc<AtomicBool>,
    acks: &tokio::sync::mpsc::UnboundedSender<(usize, u64)>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WRITERS)
        .map(|w| {
            let (store, stop, acks) = (store.clone(), Arc::clone(stop), acks.clone());
            tokio::spawn(async move {
                let k = key(&format!("w{w}"));
                store
                    .start_instance(k.clone(), input(), 1)
                    .await
                    .expect("start");
                for i in 0_u64.. {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    store
                        .commit_step(k.clone(), format!("s{i}"), value(i))
                        .await
                        .expect("commit");
                    let _ = acks.send((w, i));
                }
            })
        })
        .collect()
}

/// A backup taken while eight writers commit holds every write
/// acknowledged before the call, is one file (no journal, no temporary
/// file left), reads back whole and takes writes as a store of its own.
///
/// # Panics
///
/// When the backend does not behave: this is a test.
pub async fn under_load_holds_every_acknowledged_write<S: StepStore + Clone>(
    open: Open<'_, S>,
    backup: Backup<S>,
    extension: &str,
    relaxed: bool,
) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join(format!("wf.{extension}"));
    let copy = dir.path().join(format!("copy.{extension}"));
    let store = open(&path, relaxed).expect("open the store");
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let writers = spawn_writers(&store, &stop, &tx);
    drop(tx);
    let mut acked = BTreeSet::new();
    while acked.len() < 400 {
        acked.insert(rx.recv().await.expect("an acknowledgement"));
    }
    // Every write acknowledged so far must be in the copy; the writers go
    // on committing while it is taken.
    backup(&store, &copy).await.expect("backup");
    for _ in 0..50 {
        rx.recv().await.expect("writes go on after the backup");
    }
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.await.expect("a writer");
    }
    drop(store);

    assert!(!journal_of(&copy).exists(), "the copy is one file");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read the dir")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.contains("memable-backup"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let copy = open(&copy, false).expect("the copy opens as a store");
    for (w, i) in &acked {
        let record = copy
            .get_step(&key(&format!("w{w}")), &format!("s{i}"))
            .await
            .expect("read");
        assert_eq!(record, Some(value(*i)), "w{w} s{i}");
    }
    // A read of everything: every instance loads, its steps contiguous.
    let instances = copy
        .list_instances(&InstanceFilter::default())
        .await
        .expect("list");
    assert_eq!(instances.len(), WRITERS);
    for meta in instances {
        let k = meta.key().expect("a key");
        let snapshot = copy.load_instance(&k).await.expect("load").expect("there");
        let steps = snapshot.steps.len() - 1; // and `_input`
        for i in 0..steps {
            assert!(snapshot.step(&format!("s{i}")).is_some(), "{k} s{i}");
        }
    }
    // The copy is a store of its own: it takes writes.
    copy.commit_step(key("w0"), "after-restore".into(), value(0))
        .await
        .expect("the copy takes writes");
}

/// A backup to a path that exists is refused (`Unsupported`) and leaves
/// that file and the store unharmed.
///
/// # Panics
///
/// When the backend does not behave: this is a test.
pub async fn to_an_existing_path_is_refused<S: StepStore>(
    open: Open<'_, S>,
    backup: Backup<S>,
    extension: &str,
) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = open(&dir.path().join(format!("wf.{extension}")), false).expect("open");
    let taken = dir.path().join(format!("taken.{extension}"));
    std::fs::write(&taken, b"precious").expect("write");
    let err = backup(&store, &taken).await.expect_err("refused");
    assert_eq!(
        err.storage_kind(),
        Some(StorageErrorKind::Unsupported),
        "{err}"
    );
    assert_eq!(std::fs::read(&taken).expect("read"), b"precious");
    store
        .start_instance(key("1"), input(), 0)
        .await
        .expect("the store is unharmed");
}

/// A backup into a directory that does not exist fails (`Io`) and creates
/// nothing.
///
/// # Panics
///
/// When the backend does not behave: this is a test.
pub async fn into_a_missing_directory_creates_nothing<S: StepStore>(
    open: Open<'_, S>,
    backup: Backup<S>,
    extension: &str,
) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = open(&dir.path().join(format!("wf.{extension}")), false).expect("open");
    let target = dir.path().join("missing").join(format!("copy.{extension}"));
    let err = backup(&store, &target).await.expect_err("refused");
    assert_eq!(err.storage_kind(), Some(StorageErrorKind::Io), "{err}");
    assert!(!dir.path().join("missing").exists());
}

/// The variable that tells a test binary it runs as the child of
/// [`first_open_out_of_space_leaves_nothing`], naming the file to open.
pub const CHILD_DB: &str = "MEMABLE_TESTKIT_FIRST_OPEN_DB";

/// Runs this test binary's `test` as a child whose files may not grow
/// beyond `limit` bytes (writes past it fail with `EFBIG`, like a full
/// disk); true if its open succeeded.
fn open_in_child(test: &str, path: &Path, limit: u64) -> bool {
    let output = std::process::Command::new("sh")
        .arg("-c")
        // An ignored SIGXFSZ stays ignored across `exec`: the write fails
        // instead of killing the child.
        .arg(r#"trap '' XFSZ; exec prlimit --fsize="$1" -- "$2" --exact "$3" --nocapture"#)
        .arg("sh")
        .arg(limit.to_string())
        .arg(std::env::current_exe().expect("this test binary"))
        .arg(test)
        .env(CHILD_DB, path)
        .output()
        .expect("run the child (needs sh and prlimit)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    if stdout.contains("CHILD OPENED") {
        true
    } else {
        assert!(
            stdout.contains("CHILD FAILED"),
            "the child did not report: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        false
    }
}

/// A first open that fails for want of space (a child process under a
/// file-size limit, from 0 bytes to 64 MiB) leaves no file behind, and a
/// plain open of the same path then works and keeps what it is given.
/// `test` is the name of the calling `#[test]`: the test binary runs it
/// again as the child, where this function only opens and reports.
///
/// # Panics
///
/// When the backend does not behave: this is a test.
pub async fn first_open_out_of_space_leaves_nothing<S: StepStore>(
    test: &str,
    open: Open<'_, S>,
    extension: &str,
) {
    if let Ok(path) = std::env::var(CHILD_DB) {
        match open(Path::new(&path), false) {
            Ok(_) => println!("CHILD OPENED"),
            Err(e) => println!("CHILD FAILED {:?}", e.storage_kind()),
        }
        return;
    }
    let mut failed = 0;
    let mut opened = false;
    for limit in [
        0,
        512,
        4 << 10,
        32 << 10,
        128 << 10,
        1 << 20,
        4 << 20,
        64 << 20,
    ] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join(format!("wf.{extension}"));
        if open_in_child(test, &path, limit) {
            opened = true;
            break;
        }
        failed += 1;
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read the dir")
            .map(|e| e.expect("an entry").file_name())
            .collect();
        assert!(left.is_empty(), "limit {limit}: left behind {left:?}");
        let store = open(&path, false).expect("a plain open works");
        store
            .start_instance(key("1"), input(), 0)
            .await
            .expect("start");
        drop(store);
        let store = open(&path, false).expect("it reopens");
        assert!(store.get_metadata(&key("1")).await.expect("read").is_some());
    }
    assert!(failed > 0, "no limit made the first open fail");
    assert!(opened, "no limit let the first open succeed");
}
