//! What a store costs on disk, and what a clean close leaves there.
//!
//! - 1 KiB step values take at most 1.5 × their size on disk, and 8-byte
//!   ones at most 256 bytes a step (the benchmark's targets, measured the
//!   benchmark's way: the growth of the store's files over a round of
//!   steps, after clean closes and a warm-up round of the same size).
//! - Values of every length round-trip, through overwrites (short to long,
//!   long to short, long to long), a claim, a reopen and a delete, and
//!   leave no stored value behind that no step names.
//! - After the last clone of a store is dropped, the database file alone —
//!   copied without its WAL, shared-memory or journal files — opens as a
//!   store holding every acknowledged write.

use std::path::Path;

use memable_core::StepStoreExt;
use memable_core::{
    CommitOutcome, Finish, InstanceFilter, InstanceKey, MetadataStatus, StepKind, StepRecord,
    StepState, StepStore, TimerEntry,
};
use memable_sqlite::{Durability, SqliteStore};

fn key(instance: &str) -> InstanceKey {
    InstanceKey::new("space", instance).unwrap()
}

fn value(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + seed * 7) % 251).unwrap())
        .collect()
}

fn record(bytes: Vec<u8>) -> StepRecord {
    StepRecord::completed(StepKind::Step, "Vec<u8>", bytes, None)
}

/// A record with its value reduced to its length and a checksum, so a
/// failed comparison prints something readable.
fn summary(steps: &[(String, StepRecord)]) -> Vec<(String, StepRecord, usize, u64)> {
    steps
        .iter()
        .map(|(key, record)| {
            let sum = record
                .value
                .iter()
                .enumerate()
                .map(|(i, b)| (i as u64 + 1) * u64::from(*b))
                .sum();
            let bare = StepRecord {
                value: Vec::new(),
                ..record.clone()
            };
            (key.clone(), bare, record.value.len(), sum)
        })
        .collect()
}

fn input() -> StepRecord {
    StepRecord::completed(StepKind::Engine, "()", vec![], None)
}

/// Bytes of every file in `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum()
}

/// Opens the store in `dir`, writes `instances` × `steps` steps of
/// `value_len` bytes (the instances' writes concurrent, as the benchmark's
/// workflows are) and closes it.
async fn round(dir: &Path, name: &str, instances: usize, steps: usize, value_len: usize) {
    let store = SqliteStore::open(dir.join("space.db")).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..instances {
        let store = store.clone();
        let k = key(&format!("{name}{i}"));
        tasks.spawn(async move {
            store.start_instance(k.clone(), input(), 1).await.unwrap();
            for s in 0..steps {
                store
                    .commit_step(k.clone(), format!("s{s}"), record(value(value_len, s + i)))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
}

/// Bytes on disk per step of `value_len` bytes.
async fn bytes_per_step(value_len: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (instances, steps) = (20, 50);
    round(dir.path(), "warm", instances, steps, value_len).await;
    let before = disk_bytes(dir.path());
    round(dir.path(), "d", instances, steps, value_len).await;
    let after = disk_bytes(dir.path());
    #[allow(clippy::cast_precision_loss)]
    let per_step = after.saturating_sub(before) as f64 / (instances * steps) as f64;
    per_step
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_kib_values_take_at_most_one_and_a_half_times_their_size() {
    let per_step = bytes_per_step(1_024).await;
    assert!(per_step <= 1.5 * 1_024.0, "{per_step} bytes per 1 KiB step");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_byte_values_take_at_most_256_bytes_a_step() {
    let per_step = bytes_per_step(8).await;
    assert!(per_step <= 256.0, "{per_step} bytes per 8-byte step");
}

/// Lengths around the inline limit, an overflowing one and a large one.
const LENGTHS: [usize; 10] = [0, 1, 255, 256, 257, 1_000, 1_024, 4_000, 5_000, 70_000];

/// Step rows naming a stored value that is missing, and stored values no
/// step row names (read with plain SQL, the store closed).
fn dangling(path: &Path) -> (i64, i64) {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT
               (SELECT count(*) FROM steps WHERE value_id IS NOT NULL
                  AND value_id NOT IN (SELECT id FROM step_values)),
               (SELECT count(*) FROM step_values
                  WHERE id NOT IN (SELECT value_id FROM steps WHERE value_id IS NOT NULL))",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

/// Overwrites of records that are not final: empty → long, long → short,
/// long → long; records what each step ends with in `expected`.
async fn overwrite_records_that_are_not_final(
    store: &SqliteStore,
    k: &InstanceKey,
    expected: &mut Vec<(String, StepRecord)>,
) {
    let retrying = |len: usize, seed: usize| StepRecord {
        value: value(len, seed),
        ..StepRecord::failure(StepState::Retrying, 1, "down")
    };
    let failed = StepRecord {
        value: value(5_000, 95),
        ..StepRecord::failure(StepState::Failed, 2, "gave up")
    };
    for (step, records) in [
        ("retry", vec![retrying(0, 0), record(value(2_000, 91))]),
        ("flaky", vec![retrying(1_500, 92), record(value(3, 93))]),
        ("dead", vec![retrying(1_500, 94), failed]),
    ] {
        for rec in &records {
            let outcome = store
                .commit_step(k.clone(), step.into(), rec.clone())
                .await
                .unwrap();
            assert_eq!(outcome, CommitOutcome::Committed, "{step}");
        }
        expected.push((step.to_owned(), records.last().unwrap().clone()));
    }
}

#[tokio::test]
async fn values_of_every_length_round_trip_through_overwrites_claims_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lengths.db");
    let store = SqliteStore::open(&path).unwrap();
    let k = key("lengths");
    store.start_instance(k.clone(), input(), 1).await.unwrap();
    let mut expected = Vec::new();
    for (i, len) in LENGTHS.into_iter().enumerate() {
        let step = format!("len{i:02}");
        let rec = record(value(len, i));
        store
            .commit_step(k.clone(), step.clone(), rec.clone())
            .await
            .unwrap();
        let found = store.get_step(&k, &step).await.unwrap().unwrap();
        assert_eq!(found.value.len(), len);
        assert_eq!(found, rec);
        expected.push((step, rec));
    }
    // A completed step keeps its first value.
    let kept = store
        .commit_step(k.clone(), "len07".into(), record(value(10, 99)))
        .await
        .unwrap();
    assert_eq!(kept, CommitOutcome::Kept(record(value(4_000, 7))));
    overwrite_records_that_are_not_final(&store, &k, &mut expected).await;
    // A long signal payload claims a suspended step.
    let payload = record(value(3_000, 93));
    store
        .suspend_step(
            k.clone(),
            "wait".into(),
            StepRecord::suspended(StepKind::Suspend, "Vec<u8>", None, None),
            None,
            2,
        )
        .await
        .unwrap();
    store
        .claim_step(k.clone(), "wait".into(), payload.clone(), 3)
        .await
        .unwrap();
    let claimed = store.get_step(&k, "wait").await.unwrap().unwrap();
    assert_eq!(
        (claimed.state, &claimed.value),
        (StepState::Completed, &payload.value)
    );
    expected.push(("wait".into(), claimed));
    // The output, replaced by later finishes: long → long → short.
    for (len, seed) in [(2_000, 96), (6_000, 97), (3, 98)] {
        store.revive_instance(k.clone(), 2).await.unwrap();
        let output = record(value(len, seed));
        store
            .finish_instance(
                k.clone(),
                Finish::Completed {
                    status: None,
                    output: output.clone(),
                },
                2,
            )
            .await
            .unwrap();
        assert_eq!(store.get_step(&k, "_output").await.unwrap(), Some(output));
    }
    expected.push(("_output".into(), record(value(3, 98))));
    expected.push(("_input".into(), input()));
    expected.sort_by(|a, b| a.0.cmp(&b.0));

    let loaded = store.load_instance(&k).await.unwrap().unwrap().steps;
    assert_eq!(summary(&loaded), summary(&expected));
    assert_eq!(loaded, expected);
    drop(store);
    assert_eq!(dangling(&path), (0, 0));

    // The same after a reopen; then a delete takes every value with it.
    let store = SqliteStore::open(&path).unwrap();
    let loaded = store.load_instance(&k).await.unwrap().unwrap().steps;
    assert_eq!(summary(&loaded), summary(&expected));
    assert_eq!(loaded, expected);
    assert!(store.delete_instance(k.clone()).await.unwrap());
    assert_eq!(store.load_instance(&k).await.unwrap(), None);
    drop(store);
    let stored: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM step_values", [], |row| row.get(0))
        .unwrap();
    assert_eq!(stored, 0, "values outlived their deleted instance");
}

/// Writes a finished instance, a suspended one with a timer and a running
/// one with long and short values through two clones of one store.
async fn write_everything(store: &SqliteStore) {
    let other = store.clone();
    for (instance, s) in [("a", store), ("b", &other), ("c", store)] {
        let k = key(instance);
        s.start_instance(k.clone(), input(), 10).await.unwrap();
        for (i, len) in LENGTHS.into_iter().enumerate() {
            s.commit_step(k.clone(), format!("len{i:02}"), record(value(len, i)))
                .await
                .unwrap();
        }
        // Reads too, as a running engine's: every reader connection then
        // has the WAL open.
        for _ in 0..4 {
            assert!(s.load_instance(&k).await.unwrap().is_some());
        }
    }
    drop(other);
    store
        .finish_instance(
            key("a"),
            Finish::Completed {
                status: None,
                output: record(value(2_000, 7)),
            },
            20,
        )
        .await
        .unwrap();
    store
        .suspend_step(
            key("b"),
            "nap".into(),
            StepRecord::suspended(StepKind::Timer, "()", None, Some(5_000)),
            Some("napping".into()),
            30,
        )
        .await
        .unwrap();
}

async fn assert_everything(store: &SqliteStore) {
    let listed = store.list_instances(&InstanceFilter::new()).await.unwrap();
    let statuses: Vec<_> = listed
        .iter()
        .map(|m| (m.instance_id.as_str(), m.status.clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("a", MetadataStatus::Completed(None)),
            (
                "b",
                MetadataStatus::Suspended {
                    key: "nap".into(),
                    status: Some("napping".into())
                }
            ),
            ("c", MetadataStatus::Running),
        ]
    );
    for instance in ["a", "b", "c"] {
        let k = key(instance);
        for (i, len) in LENGTHS.into_iter().enumerate() {
            let found = store.get_step(&k, &format!("len{i:02}")).await.unwrap();
            assert_eq!(
                found.map(|r| r.value),
                Some(value(len, i)),
                "{instance}/len{i:02}"
            );
        }
    }
    let output = store.get_step(&key("a"), "_output").await.unwrap().unwrap();
    assert_eq!(output.value, value(2_000, 7));
    assert_eq!(
        store.due_timers(u64::MAX, 10).await.unwrap(),
        [TimerEntry {
            deadline_ms: 5_000,
            instance: key("b"),
            step_key: "nap".into(),
        }]
    );
}

async fn the_database_file_alone_holds_everything_after_a_clean_close(durability: Durability) {
    let live = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let path = live.path().join("app.db");
    let store = SqliteStore::builder()
        .durability(durability)
        .open(&path)
        .unwrap();
    write_everything(&store).await;
    drop(store); // the last clone

    std::fs::copy(&path, copy.path().join("app.db")).unwrap();
    let store = SqliteStore::builder()
        .durability(durability)
        .open(copy.path().join("app.db"))
        .unwrap();
    assert_everything(&store).await;
}

#[tokio::test]
async fn the_database_file_alone_holds_everything_after_a_clean_close_full() {
    the_database_file_alone_holds_everything_after_a_clean_close(Durability::Immediate).await;
}

#[tokio::test]
async fn the_database_file_alone_holds_everything_after_a_clean_close_normal() {
    the_database_file_alone_holds_everything_after_a_clean_close(Durability::Relaxed).await;
}
