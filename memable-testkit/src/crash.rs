//! Real crashes for a file backend's tests (`memable_testkit::crash`): a
//! child process (the test binary itself, running one named test) writes
//! steps and prints each acknowledgement; the parent `SIGKILL`s it, then
//! inspects or damages the files it left and checks what reopening keeps.
//!
//! A backend runs every scenario below, each in a fresh directory, with one
//! line in a test file ([`crash_tests!`](crate::crash_tests)); the child is
//! the generated test `crash_child`, which does nothing unless
//! [`child_path`] says this process is the child.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use memable_core::transitions::WriteOp;
use memable_core::{InstanceKey, StepKind, StepRecord, StepStore, StepStoreExt};
use memable_store::journal::{HEADER_LEN, Journal, RECORD_HEADER_LEN};

/// The environment variable that hands the child its database path.
pub const CHILD_ENV: &str = "MEMABLE_TESTKIT_CRASH_DB";

/// Concurrent writers in the child.
const WRITERS: u32 = 8;

/// One acknowledged step: writer `w` committed step `s<n>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The writer (instance `crash/w<writer>`).
    pub writer: u32,
    /// The step number (key `s<n>`).
    pub n: u64,
}

impl Ack {
    /// The instance the step belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// let ack = memable_testkit::crash::Ack { writer: 3, n: 0 };
    /// assert_eq!(ack.key().instance(), "w3");
    /// ```
    #[must_use]
    pub fn key(&self) -> InstanceKey {
        instance(self.writer)
    }

    /// The step's key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_testkit::crash::Ack { writer: 0, n: 7 }.step_key(), "s7");
    /// ```
    #[must_use]
    pub fn step_key(&self) -> String {
        format!("s{}", self.n)
    }

    /// The value the child committed for it.
    ///
    /// # Examples
    ///
    /// ```
    /// let ack = memable_testkit::crash::Ack { writer: 0, n: 7 };
    /// assert_eq!(ack.value().value, 7u64.to_le_bytes());
    /// ```
    #[must_use]
    pub fn value(&self) -> StepRecord {
        StepRecord::completed(StepKind::Step, "u64", self.n.to_le_bytes().to_vec(), None)
    }
}

fn instance(writer: u32) -> InstanceKey {
    InstanceKey::new("crash", &format!("w{writer}")).expect("valid test key")
}

/// The database path when this process is a crash child, else `None`.
///
/// # Examples
///
/// ```
/// // Not started by `crash_child`:
/// assert!(memable_testkit::crash::child_path().is_none());
/// ```
#[must_use]
pub fn child_path() -> Option<PathBuf> {
    std::env::var_os(CHILD_ENV).map(PathBuf::from)
}

/// The child's workload: eight concurrent writers commit steps to `store`
/// forever, printing `ack <writer> <n>` after each acknowledged commit.
/// Never returns; the parent kills the process.
///
/// # Panics
///
/// When a write fails: the parent then sees the child stop early.
///
/// # Examples
///
/// See the [module docs](self).
pub fn write_until_killed(store: Arc<dyn StepStore>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let store = Arc::clone(&store);
            writers.push(tokio::spawn(async move {
                let key = instance(writer);
                let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
                store
                    .start_instance(key.clone(), input, 1)
                    .await
                    .expect("start");
                for n in 0_u64.. {
                    let ack = Ack { writer, n };
                    store
                        .commit_step(key.clone(), ack.step_key(), ack.value())
                        .await
                        .expect("commit");
                    println!("ack {writer} {n}");
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer task");
        }
    });
}

/// Runs the test named `test` of this binary as a crash child on the
/// database at `path`, `SIGKILL`s it once it acknowledged `acks` steps, and
/// returns every step it acknowledged (those still in the pipe too).
///
/// # Panics
///
/// If the child cannot start or stops early: this is a test helper.
///
/// # Examples
///
/// See the [module docs](self).
#[must_use]
pub fn crash_child(test: &str, path: &Path, acks: usize) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the crash child");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut acked = Vec::new();
    let parse = |line: &str| {
        let (writer, n) = line.strip_prefix("ack ")?.split_once(' ')?;
        Some(Ack {
            writer: writer.parse().ok()?,
            n: n.parse().ok()?,
        })
    };
    while acked.len() < acks {
        let line = lines
            .next()
            .expect("the crash child stopped early")
            .expect("read the child's output");
        acked.extend(parse(&line));
    }
    // `Child::kill` sends SIGKILL on Unix.
    child.kill().expect("kill the crash child");
    for line in lines.map_while(Result::ok) {
        acked.extend(parse(&line));
    }
    let _ = child.wait();
    acked
}

/// The acknowledged steps `store` lacks (or holds with another value).
///
/// # Panics
///
/// When a read fails: this is a test helper.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = memable_core::MemoryStore::new();
/// let ack = memable_testkit::crash::Ack { writer: 0, n: 0 };
/// let missing = memable_testkit::crash::missing(&store, &[ack.clone()]).await;
/// assert_eq!(missing, [ack]);
/// # });
/// ```
pub async fn missing(store: &dyn StepStore, acks: &[Ack]) -> Vec<Ack> {
    let mut missing = Vec::new();
    for ack in acks {
        let found = store
            .get_step(&ack.key(), &ack.step_key())
            .await
            .expect("read an acknowledged step");
        if found.as_ref() != Some(&ack.value()) {
            missing.push(ack.clone());
        }
    }
    missing
}

/// One record of a journal's chain, where it lies in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordAt {
    /// Byte offset of the record's header.
    pub offset: usize,
    /// Header plus payload length.
    pub len: usize,
    /// The record's lsn.
    pub lsn: u64,
    /// The steps it commits.
    pub steps: Vec<Ack>,
}

/// The records of the journal file at `path` (its valid chain), with their
/// offsets.
///
/// # Panics
///
/// If the file is not a readable journal: this is a test helper.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("j");
/// let file = std::fs::File::options().read(true).write(true).create(true).truncate(false).open(&path).unwrap();
/// let (mut journal, _) = memable_store::journal::Journal::open(file, "j", 1).unwrap();
/// journal.append(1, &[]).unwrap();
/// let records = memable_testkit::crash::journal_records(&path);
/// assert_eq!((records[0].offset, records[0].lsn), (24, 1));
/// ```
#[must_use]
pub fn journal_records(path: &Path) -> Vec<RecordAt> {
    let bytes = std::fs::read(path).expect("read the journal");
    let header = usize::try_from(HEADER_LEN).expect("small");
    let record_header = usize::try_from(RECORD_HEADER_LEN).expect("small");
    let owner = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let (_, records) =
        Journal::open(Copy(bytes.clone()), "copy", owner).expect("a readable journal");
    let mut offset = header;
    let mut out = Vec::new();
    for record in records {
        let len = u32::from_le_bytes(bytes[offset + 8..offset + 12].try_into().expect("4 bytes"));
        let len = record_header + usize::try_from(len).expect("small");
        let steps = record
            .ops
            .iter()
            .filter_map(|op| match op.unfenced() {
                WriteOp::Commit { key, step_key, .. } => Some(Ack {
                    writer: key.instance().strip_prefix('w')?.parse().ok()?,
                    n: step_key.strip_prefix('s')?.parse().ok()?,
                }),
                _ => None,
            })
            .collect();
        out.push(RecordAt {
            offset,
            len,
            lsn: record.lsn,
            steps,
        });
        offset += len;
    }
    out
}

/// A journal file in memory holding `bytes`, for reading a copy.
struct Copy(Vec<u8>);

impl memable_store::journal::JournalFile for Copy {
    fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        Ok(self.0.clone())
    }
    fn write_at(&mut self, _: u64, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Flips one byte inside the payload of the record at `record` of the
/// journal file at `path`: a bad checksum in place.
///
/// # Panics
///
/// If the file cannot be read or written: this is a test helper.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("j");
/// std::fs::write(&path, [0u8; 64]).unwrap();
/// let record = memable_testkit::crash::RecordAt { offset: 24, len: 20, lsn: 1, steps: vec![] };
/// memable_testkit::crash::flip_payload_byte(&path, &record);
/// assert_ne!(std::fs::read(&path).unwrap()[24 + 18], 0);
/// ```
pub fn flip_payload_byte(path: &Path, record: &RecordAt) {
    let mut bytes = std::fs::read(path).expect("read the journal");
    let at = record.offset + usize::try_from(RECORD_HEADER_LEN).expect("small") + 2;
    bytes[at.min(record.offset + record.len - 1)] ^= 0x5a;
    std::fs::write(path, bytes).expect("write the journal");
}

/// Overwrites the second half of the record `record` of the journal at
/// `path` with zeros, as a crash in the middle of its write would leave it.
///
/// # Panics
///
/// If the file cannot be read or written: this is a test helper.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("j");
/// std::fs::write(&path, [7u8; 64]).unwrap();
/// let record = memable_testkit::crash::RecordAt { offset: 24, len: 20, lsn: 1, steps: vec![] };
/// memable_testkit::crash::tear(&path, &record);
/// assert_eq!(std::fs::read(&path).unwrap()[43], 0);
/// ```
pub fn tear(path: &Path, record: &RecordAt) {
    let mut bytes = std::fs::read(path).expect("read the journal");
    let end = record.offset + record.len;
    bytes[record.offset + record.len / 2..end].fill(0);
    std::fs::write(path, bytes).expect("write the journal");
}

/// Opens the backend's store at a path; `true` opens with
/// `accept_lost_journal(true)`.
pub type OpenStore<'a> =
    &'a dyn Fn(&Path, bool) -> Result<Arc<dyn StepStore>, memable_core::EngineError>;

/// How a scenario takes the journal away after the crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostJournal {
    /// Deleted.
    Missing,
    /// Truncated to 0 bytes.
    Emptied,
    /// Truncated inside its 24-byte header.
    HeaderCut,
}

fn kind(
    result: Result<Arc<dyn StepStore>, memable_core::EngineError>,
) -> memable_core::StorageErrorKind {
    match result {
        Ok(_) => panic!("the store opened"),
        Err(e) => e
            .storage_kind()
            .unwrap_or_else(|| panic!("not a storage error: {e}")),
    }
}

/// A crash child (test `child` of this binary) acknowledged hundreds of
/// batches into the journal `journal` of `db`; one record in the middle of
/// the journal is then damaged: opening must fail with
/// [`StorageErrorKind::Corrupt`](memable_core::StorageErrorKind::Corrupt),
/// not drop every acknowledged batch behind it.
///
/// # Panics
///
/// When the backend does not behave: this is a test.
///
/// # Examples
///
/// A backend's test file runs every scenario with
/// [`crash_tests!`](crate::crash_tests).
pub fn damaged_middle_record_is_corrupt(child: &str, file: &str, open: OpenStore<'_>) {
    let (_dir, db, journal) = files(file);
    let (db, journal) = (db.as_path(), journal.as_path());
    let _acks = crash_child(child, db, 600);
    let records = journal_records(journal);
    assert!(records.len() >= 3, "only {} journal records", records.len());
    flip_payload_byte(journal, &records[records.len() / 2]);
    assert_eq!(
        kind(open(db, false)),
        memable_core::StorageErrorKind::Corrupt
    );
    assert_eq!(
        kind(open(db, true)),
        memable_core::StorageErrorKind::Corrupt,
        "accepting a lost journal does not accept a damaged one"
    );
}

/// After a crash, the last record of the journal is torn: the store opens
/// and holds every acknowledged step but those of that record.
///
/// # Panics
///
/// When the backend does not behave: this is a test.
///
/// # Examples
///
/// See [`damaged_middle_record_is_corrupt`].
pub async fn torn_last_record_opens_with_the_rest(child: &str, file: &str, open: OpenStore<'_>) {
    let (_dir, db, journal) = files(file);
    let (db, journal) = (db.as_path(), journal.as_path());
    let acks = crash_child(child, db, 600);
    let records = journal_records(journal);
    let last = records.last().expect("journal records");
    tear(journal, last);
    let store = open(db, false).expect("a torn tail opens");
    let gone = missing(store.as_ref(), &acks).await;
    assert!(
        gone.iter().all(|ack| last.steps.contains(ack)),
        "lost acknowledged steps outside the torn record: {gone:?}"
    );
    let k = instance(0);
    store
        .commit_step(k, "after".into(), Ack { writer: 0, n: 0 }.value())
        .await
        .expect("the store writes after the recovery");
}

/// After a crash (the database is dirty) the journal is lost as `how`
/// says: opening is refused with
/// [`StorageErrorKind::Incomplete`](memable_core::StorageErrorKind::Incomplete);
/// with `accept_lost_journal(true)` it opens, and after its clean close the
/// store opens without the override again.
///
/// # Panics
///
/// When the backend does not behave: this is a test.
///
/// # Examples
///
/// See [`damaged_middle_record_is_corrupt`].
pub async fn lost_journal_is_incomplete(
    child: &str,
    file: &str,
    how: LostJournal,
    open: OpenStore<'_>,
) {
    let (_dir, db, journal) = files(file);
    let (db, journal) = (db.as_path(), journal.as_path());
    let acks = crash_child(child, db, 300);
    match how {
        LostJournal::Missing => std::fs::remove_file(journal).expect("remove the journal"),
        LostJournal::Emptied => std::fs::write(journal, b"").expect("empty the journal"),
        LostJournal::HeaderCut => {
            let bytes = std::fs::read(journal).expect("read the journal");
            std::fs::write(journal, &bytes[..10]).expect("cut the journal");
        }
    }
    assert_eq!(
        kind(open(db, false)),
        memable_core::StorageErrorKind::Incomplete,
        "{how:?}"
    );
    let store = open(db, true).expect("accept_lost_journal opens");
    // What the database held is there; the lost work may be missing.
    let held = acks.len() - missing(store.as_ref(), &acks).await.len();
    let extra = Ack {
        writer: 1,
        n: 1_000_000,
    };
    let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
    // Started again if the database lost it with the journal.
    store
        .start_instance(extra.key(), input, 1)
        .await
        .expect("start");
    store
        .commit_step(extra.key(), extra.step_key(), extra.value())
        .await
        .expect("the store writes");
    drop(store);
    let store = open(db, false).expect("cleanly closed: opens without the override");
    assert_eq!(
        acks.len() - missing(store.as_ref(), &acks).await.len(),
        held
    );
    assert!(missing(store.as_ref(), &[extra]).await.is_empty());
}

/// A store closed cleanly whose journal was then deleted opens (without the
/// override) and holds everything.
///
/// # Panics
///
/// When the backend does not behave: this is a test.
///
/// # Examples
///
/// See [`damaged_middle_record_is_corrupt`].
pub async fn clean_close_opens_without_its_journal(file: &str, open: OpenStore<'_>) {
    let (_dir, db, journal) = files(file);
    let (db, journal) = (db.as_path(), journal.as_path());
    let store = open(db, false).expect("open");
    let acks: Vec<Ack> = (0..50)
        .map(|n| Ack {
            writer: n % 3,
            n: u64::from(n),
        })
        .collect();
    for writer in 0..3 {
        let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
        store
            .start_instance(instance(writer), input, 1)
            .await
            .expect("start");
    }
    for ack in &acks {
        store
            .commit_step(ack.key(), ack.step_key(), ack.value())
            .await
            .expect("commit");
    }
    drop(store);
    std::fs::remove_file(journal).expect("remove the journal");
    let store = open(db, false).expect("a clean database opens without its journal");
    assert_eq!(missing(store.as_ref(), &acks).await, []);
}

/// A fresh directory, the database `file` in it and its journal.
fn files(file: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join(file);
    let journal = memable_store::journal::journal_path(&db);
    (dir, db, journal)
}
