//! The journal of a file store opened with `Durability::Immediate`: commits are
//! made durable by `<db>.journal`, so a database that lost its unflushed
//! commits (a power loss) is rebuilt from it on open; a journal of another
//! database is refused; every answered write is visible to later reads.

use std::path::{Path, PathBuf};

use memable_core::StepStoreExt;
use memable_core::StorageErrorKind;
use memable_core::{InstanceKey, StepKind, StepRecord, StepStore};
use memable_sqlite::{Durability, SqliteStore};

fn key(instance: &str) -> InstanceKey {
    InstanceKey::new("journal", instance).unwrap()
}

fn record(n: u32) -> StepRecord {
    StepRecord::completed(StepKind::Step, "u32", n.to_le_bytes().to_vec(), None)
}

fn journal_of(db: &Path) -> PathBuf {
    memable_store::journal::journal_path(db)
}

async fn write_steps(store: &SqliteStore, instance: &str, steps: std::ops::Range<u32>) {
    let k = key(instance);
    if steps.start == 0 {
        let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
        store.start_instance(k.clone(), input, 1).await.unwrap();
    }
    for i in steps {
        store
            .commit_step(k.clone(), format!("s{i:03}"), record(i))
            .await
            .unwrap();
    }
}

async fn assert_steps(store: &SqliteStore, instance: &str, count: u32) {
    let snapshot = store.load_instance(&key(instance)).await.unwrap().unwrap();
    let steps: Vec<_> = snapshot
        .steps
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .collect();
    assert_eq!(steps.len(), count as usize);
    for (i, (k, r)) in steps.into_iter().enumerate() {
        let i = u32::try_from(i).unwrap();
        assert_eq!((k.as_str(), r), (format!("s{i:03}").as_str(), &record(i)));
    }
}

/// Copies the database files (not the journal) of `db` into `dir`.
fn copy_database(db: &Path, dir: &Path) {
    for suffix in ["", "-wal"] {
        let mut from = db.as_os_str().to_owned();
        from.push(suffix);
        let from = PathBuf::from(from);
        if from.exists() {
            let name = from.file_name().unwrap();
            std::fs::copy(&from, dir.join(name)).unwrap();
        }
    }
}

/// A power loss after a checkpoint: the database holds only what was
/// flushed at the checkpoint (its files as they were then), the journal
/// every batch acknowledged since. Opening rebuilds the rest from it.
async fn power_loss_image(durability: Durability) {
    let live = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let db = live.path().join("wf.db");

    let store = SqliteStore::open(&db).unwrap();
    write_steps(&store, "a", 0..5).await;
    drop(store); // clean close: a checkpoint
    copy_database(&db, image.path());

    let store = SqliteStore::open(&db).unwrap();
    write_steps(&store, "a", 5..60).await;
    write_steps(&store, "b", 0..20).await;
    // Everything above was acknowledged, so its journal records are synced.
    std::fs::copy(journal_of(&db), journal_of(&image.path().join("wf.db"))).unwrap();

    let rebuilt = image.path().join("wf.db");
    let store = SqliteStore::builder()
        .durability(durability)
        .open(&rebuilt)
        .unwrap();
    assert_steps(&store, "a", 60).await;
    assert_steps(&store, "b", 20).await;
    drop(store);
    assert_eq!(
        journal_of(&rebuilt).exists(),
        durability == Durability::Immediate,
        "a Normal open removes the journal it replayed"
    );
    // The replay was made durable: reopening finds it without the journal.
    let store = SqliteStore::builder()
        .durability(Durability::Relaxed)
        .open(&rebuilt)
        .unwrap();
    assert_steps(&store, "a", 60).await;
    drop(live);
}

#[tokio::test]
async fn a_power_loss_image_is_rebuilt_from_the_journal() {
    power_loss_image(Durability::Immediate).await;
}

#[tokio::test]
async fn a_normal_open_replays_a_journal_left_by_a_full_store_and_removes_it() {
    power_loss_image(Durability::Relaxed).await;
}

#[tokio::test]
async fn a_clean_close_leaves_a_journal_with_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    let store = SqliteStore::open(&db).unwrap();
    write_steps(&store, "a", 0..30).await;
    drop(store);
    // With the database's own files only, the database is complete.
    let copy = tempfile::tempdir().unwrap();
    copy_database(&db, copy.path());
    let store = SqliteStore::open(copy.path().join("wf.db")).unwrap();
    assert_steps(&store, "a", 30).await;
}

#[tokio::test]
async fn a_journal_of_another_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    drop(SqliteStore::open(&a).unwrap());
    drop(SqliteStore::open(&b).unwrap());
    std::fs::copy(journal_of(&b), journal_of(&a)).unwrap();
    let error = SqliteStore::open(&a).expect_err("a foreign journal");
    assert_eq!(
        error.storage_kind(),
        Some(StorageErrorKind::Incomplete),
        "{error}"
    );
}

#[tokio::test]
async fn a_foreign_file_at_the_journal_path_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    drop(SqliteStore::open(&db).unwrap());
    let garbage = b"not a journal at all, just some bytes".repeat(10);
    std::fs::write(journal_of(&db), &garbage).unwrap();
    assert!(SqliteStore::open(&db).is_err());
    assert_eq!(std::fs::read(journal_of(&db)).unwrap(), garbage);
}

/// A journaled batch is answered as soon as its journal record is synced,
/// before its SQLite commit: a read issued after the answer must still see
/// the write (the reader threads wait for the commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_visible_to_every_read_issued_after_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("wf.db")).unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let store = store.clone();
        writers.spawn(async move {
            let k = key(&format!("w{w}"));
            let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
            store.start_instance(k.clone(), input, 1).await.unwrap();
            for i in 0..150u32 {
                let step = format!("s{i}");
                store
                    .commit_step(k.clone(), step.clone(), record(i))
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

#[tokio::test]
async fn checkpoints_keep_the_journal_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wf.db");
    let store = SqliteStore::open(&db).unwrap();
    let journal_size = std::fs::metadata(journal_of(&db)).unwrap().len();
    // Ops of over 100 bytes: 30,000 of them cross the 2 MiB threshold.
    let big = |i: u32| {
        StepRecord::completed(StepKind::Step, "bytes", vec![7; 100 + i as usize % 7], None)
    };
    let k = key("big");
    let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
    store.start_instance(k.clone(), input, 1).await.unwrap();
    let mut batch = tokio::task::JoinSet::new();
    for i in 0..30_000u32 {
        let (store, k) = (store.clone(), k.clone());
        let value = big(i);
        batch.spawn(async move { store.commit_step(k, format!("s{i}"), value).await });
        if batch.len() >= 64 {
            batch.join_next().await.unwrap().unwrap().unwrap();
        }
    }
    while let Some(done) = batch.join_next().await {
        done.unwrap().unwrap();
    }
    assert!(store.stats().checkpoints >= 1, "{:?}", store.stats());
    assert_eq!(
        std::fs::metadata(journal_of(&db)).unwrap().len(),
        journal_size,
        "the journal is reused in place"
    );
}

/// A lone writer's one-write batches are held in an open transaction; a
/// read issued after each answer must still see the write (the writer
/// commits as soon as a reader waits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_writers_held_batches_are_visible_to_its_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("wf.db")).unwrap();
    let k = key("lone");
    let input = StepRecord::completed(StepKind::Engine, "()", vec![], None);
    store.start_instance(k.clone(), input, 1).await.unwrap();
    for i in 0..300u32 {
        let step = format!("s{i}");
        store
            .commit_step(k.clone(), step.clone(), record(i))
            .await
            .unwrap();
        if i % 3 == 0 {
            let read = store.get_step(&k, &step).await.unwrap();
            assert_eq!(read, Some(record(i)), "{step} answered but not visible");
        }
    }
    let snapshot = store.load_instance(&k).await.unwrap().unwrap();
    assert_eq!(snapshot.steps.len(), 301);
}
