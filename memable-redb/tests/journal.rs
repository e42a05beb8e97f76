//! The journal of a file store opened with `Durability::Immediate`: clean
//! close, crash images, mismatched and foreign journals, a missing journal,
//! recovery by a `Relaxed` open, and the poisoned writer.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memable_core::StepStore;
use memable_core::StepStoreExt;
use memable_core::StorageErrorKind;
use memable_redb::{Durability, RedbStore};
use memable_store::journal::{Journal, JournalFile};
use redb::ReadableDatabase;
use support::backend::{Shared, TestBackend};
use support::{input, key, value};

const JOURNAL: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("memable_journal");

fn journal_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// The database's journal lsn and id, read with plain redb.
fn lsn_and_id(db: &Path) -> (u64, u64) {
    let db = redb::Database::open(db).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(JOURNAL).unwrap();
    let lsn = table.get("lsn").unwrap().map_or(0, |v| v.value());
    let id = table.get("journal_id").unwrap().unwrap().value();
    (lsn, id)
}

async fn write_steps(store: &RedbStore, instance: &str, steps: std::ops::Range<u32>) {
    let k = key("j", instance);
    if steps.start == 0 {
        store.start_instance(k.clone(), input(), 1).await.unwrap();
    }
    for i in steps {
        store
            .commit_step(k.clone(), format!("s{i}"), value(&i.to_le_bytes()))
            .await
            .unwrap();
    }
}

async fn assert_steps(store: &RedbStore, instance: &str, count: u32) {
    let snap = store
        .load_instance(&key("j", instance))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("instance {instance} is missing"));
    for i in 0..count {
        let record = snap
            .step(&format!("s{i}"))
            .unwrap_or_else(|| panic!("{instance} s{i} is missing"));
        assert_eq!(*record, value(&i.to_le_bytes()));
    }
}

#[tokio::test]
async fn a_clean_close_leaves_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wf.redb");
    let store = RedbStore::open(&path).unwrap();
    write_steps(&store, "a", 0..20).await;
    drop(store);

    let (lsn, id) = lsn_and_id(&path);
    assert_eq!(lsn, 21, "one lsn per commit");
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(journal_of(&path))
        .unwrap();
    let (_, records) = Journal::open(file, "wf.redb.journal", id).unwrap();
    assert!(
        records.iter().all(|r| r.lsn <= lsn),
        "records newer than the database: {:?}",
        records.iter().map(|r| r.lsn).collect::<Vec<_>>()
    );

    let store = RedbStore::open(&path).unwrap();
    assert_steps(&store, "a", 20).await;
}

/// Copies both files while the store is open and idle: what a crash (or a
/// power loss, as every commit is synced in the journal) would leave.
fn crash_image(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::copy(journal_of(from), journal_of(to)).unwrap();
}

#[tokio::test]
async fn a_crash_image_is_replayed_by_immediate_and_relaxed_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wf.redb");
    let store = RedbStore::open(&path).unwrap();
    write_steps(&store, "a", 0..30).await;
    assert_eq!(store.stats().checkpoints, 0);
    let immediate = dir.path().join("immediate.redb");
    let relaxed = dir.path().join("relaxed.redb");
    crash_image(&path, &immediate);
    crash_image(&path, &relaxed);

    let (lsn, _) = lsn_and_id(&immediate);
    assert!(lsn < 31, "the database file alone is behind (lsn {lsn})");
    let reopened = RedbStore::open(&immediate).unwrap();
    assert_steps(&reopened, "a", 30).await;
    write_steps(&reopened, "a", 30..35).await;
    drop(reopened);
    let reopened = RedbStore::open(&immediate).unwrap();
    assert_steps(&reopened, "a", 35).await;
    drop(reopened);

    let reopened = RedbStore::builder()
        .durability(Durability::Relaxed)
        .open(&relaxed)
        .unwrap();
    assert_steps(&reopened, "a", 30).await;
    assert!(
        !journal_of(&relaxed).exists(),
        "a relaxed open removes the replayed journal"
    );
    write_steps(&reopened, "a", 30..32).await;
    drop(reopened);
    // Back to Immediate: a new journal, everything there.
    let reopened = RedbStore::open(&relaxed).unwrap();
    assert_steps(&reopened, "a", 32).await;
    drop(reopened);
    drop(store);
}

#[tokio::test]
async fn a_journal_of_another_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.redb");
    let b = dir.path().join("b.redb");
    for path in [&a, &b] {
        let store = RedbStore::open(path).unwrap();
        write_steps(&store, "x", 0..3).await;
    }
    std::fs::copy(journal_of(&b), journal_of(&a)).unwrap();
    let before = std::fs::read(journal_of(&a)).unwrap();
    let err = RedbStore::open(&a).unwrap_err();
    let message = err.to_string();
    assert_eq!(
        err.storage_kind(),
        Some(StorageErrorKind::Incomplete),
        "{message}"
    );
    // The refusal names the journal it is about.
    assert!(message.contains("a.redb.journal"), "{message}");
    assert_eq!(std::fs::read(journal_of(&a)).unwrap(), before, "untouched");
}

#[tokio::test]
async fn a_journal_ahead_of_its_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wf.redb");
    let store = RedbStore::open(&path).unwrap();
    write_steps(&store, "a", 0..3).await;
    drop(store);
    // An older copy of the database (lsn 4)...
    let old = std::fs::read(&path).unwrap();
    let store = RedbStore::open(&path).unwrap();
    write_steps(&store, "b", 0..3).await;
    drop(store); // lsn 8, journal reset
    let store = RedbStore::open(&path).unwrap();
    write_steps(&store, "c", 0..3).await; // lsns 9..=12 in the journal
    let journal = std::fs::read(journal_of(&path)).unwrap();
    drop(store);

    // ...with the journal of a later cycle: lsns 5..=8 are lost.
    let broken = dir.path().join("broken.redb");
    std::fs::write(&broken, old).unwrap();
    std::fs::write(journal_of(&broken), &journal).unwrap();
    let err = RedbStore::open(&broken).unwrap_err();
    let message = err.to_string();
    assert_eq!(
        err.storage_kind(),
        Some(StorageErrorKind::Incomplete),
        "{message}"
    );
    assert!(message.contains("broken.redb.journal"), "{message}");
    assert_eq!(std::fs::read(journal_of(&broken)).unwrap(), journal);
}

#[tokio::test]
async fn a_foreign_file_at_the_journal_path_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wf.redb");
    drop(RedbStore::open(&path).unwrap());
    let foreign = b"these are somebody else's notes, not a journal".to_vec();
    std::fs::write(journal_of(&path), &foreign).unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageErrorKind::NotMemable),
        "{err}"
    );
    assert_eq!(std::fs::read(journal_of(&path)).unwrap(), foreign);
}

#[tokio::test]
async fn a_missing_journal_next_to_a_database_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wf.redb");
    let store = RedbStore::open(&path).unwrap();
    write_steps(&store, "a", 0..5).await;
    drop(store);
    std::fs::remove_file(journal_of(&path)).unwrap();
    let store = RedbStore::open(&path).unwrap();
    assert!(journal_of(&path).exists());
    assert_steps(&store, "a", 5).await;
    write_steps(&store, "a", 5..8).await;
    drop(store);
    let store = RedbStore::open(&path).unwrap();
    assert_steps(&store, "a", 8).await;
}

#[tokio::test]
async fn checkpoints_follow_the_threshold_and_the_file_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wf.redb");
    let store = RedbStore::builder()
        .checkpoint_bytes(16 * 1024)
        .open(&path)
        .unwrap();
    write_steps(&store, "a", 0..2_000).await;
    let stats = store.stats();
    assert!(stats.checkpoints >= 2, "{stats:?}");
    let journal = std::fs::metadata(journal_of(&path)).unwrap().len();
    assert!(journal < 96 * 1024, "journal of {journal} bytes");
    let db = std::fs::metadata(&path).unwrap().len();
    assert!(db < 4 * 1024 * 1024, "database of {db} bytes");
    drop(store);
    let store = RedbStore::open(&path).unwrap();
    assert_steps(&store, "a", 2_000).await;
}

/// A journal file in memory whose syncs can be made to fail (the write
/// itself still lands, as it would in the page cache).
#[derive(Clone, Default)]
struct FlakyJournal(Arc<Mutex<(Vec<u8>, bool)>>);

impl JournalFile for FlakyJournal {
    fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        Ok(self.0.lock().unwrap().0.clone())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let file = &mut self.0.lock().unwrap().0;
        let offset = usize::try_from(offset).unwrap();
        if file.len() < offset + data.len() {
            file.resize(offset + data.len(), 0);
        }
        file[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.0.lock().unwrap().1 {
            return Err(std::io::Error::other("injected sync failure"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_journal_failure_poisons_the_writer_and_reopening_replays() {
    let shared = Arc::new(Shared::default());
    let journal = FlakyJournal::default();
    let store = RedbStore::builder()
        .open_backend_with_journal(TestBackend(Arc::clone(&shared)), journal.clone())
        .unwrap();
    write_steps(&store, "a", 0..3).await;

    journal.0.lock().unwrap().1 = true;
    let k = key("j", "a");
    let err = store
        .commit_step(k.clone(), "s3".into(), value(&3_u32.to_le_bytes()))
        .await
        .unwrap_err();
    assert!(err.is_storage(), "{err}");
    journal.0.lock().unwrap().1 = false;
    // Poisoned: later writes fail, reads still work.
    let err = store
        .commit_step(k.clone(), "s4".into(), value(b"x"))
        .await
        .unwrap_err();
    assert_eq!(
        err.storage_kind(),
        Some(StorageErrorKind::Poisoned),
        "{err}"
    );
    assert!(store.get_step(&k, "s3").await.unwrap().is_none());
    assert_steps(&store, "a", 3).await;
    drop(store);

    // The failed batch reached the journal file: reopening replays it (an
    // op answered with an error may turn out committed).
    let store = RedbStore::builder()
        .open_backend_with_journal(TestBackend(Arc::clone(&shared)), journal.clone())
        .unwrap();
    assert_steps(&store, "a", 4).await;
    assert!(store.get_step(&k, "s4").await.unwrap().is_none());
}

/// A journaled batch is answered as soon as its journal record is synced,
/// before its redb commit: a read issued after the answer must still see
/// the write (the reader threads wait for the commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_visible_to_every_read_issued_after_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("wf.redb")).unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let store = store.clone();
        writers.spawn(async move {
            let k = key("vis", &format!("w{w}"));
            store.start_instance(k.clone(), input(), 1).await.unwrap();
            for i in 0..150u32 {
                let step = format!("s{i}");
                store
                    .commit_step(k.clone(), step.clone(), value(&i.to_le_bytes()))
                    .await
                    .unwrap();
                let read = store.get_step(&k, &step).await.unwrap();
                assert!(read.is_some(), "{k}/{step} answered but not visible");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
}
