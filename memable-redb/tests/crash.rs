//! A child process commits steps and prints each acknowledged one; it is
//! killed with SIGKILL mid-workload, and the reopened file must hold every
//! step it acknowledged. With `Durability::Immediate` the store is the
//! journaled one (redb commits unflushed, the journal replayed on reopen),
//! once with its default checkpoint threshold and once with a tiny one.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use memable_core::StepStore;
use memable_core::StepStoreExt;
use memable_redb::{Durability, RedbStore};
use support::{input, key, value};

const CHILD_DB: &str = "MEMABLE_REDB_CRASH_DB";
const CHILD_DURABILITY: &str = "MEMABLE_REDB_CRASH_DURABILITY";
const WRITERS: usize = 8;

/// Child: eight concurrent writers commit steps forever, printing
/// `ACK <instance> <step>` after each acknowledged commit.
async fn child(path: &str, durability: Durability, checkpoint_bytes: Option<u64>) {
    let mut builder = RedbStore::builder().durability(durability);
    if let Some(bytes) = checkpoint_bytes {
        builder = builder.checkpoint_bytes(bytes);
    }
    let store = builder.open(path).unwrap();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let k = key("crash", &format!("w{w}"));
                store.start_instance(k.clone(), input(), 1).await.unwrap();
                println!("ACK w{w} _input");
                for i in 0_u64.. {
                    let step = format!("s{i}");
                    store
                        .commit_step(k.clone(), step.clone(), value(&i.to_le_bytes()))
                        .await
                        .unwrap();
                    println!("ACK w{w} {step}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn parent(test: &str, durability: Durability, checkpoints: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .env(CHILD_DB, &path)
        .env(
            CHILD_DURABILITY,
            if checkpoints {
                "Checkpoints".to_owned()
            } else {
                format!("{durability:?}")
            },
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    while acked.len() < 400 {
        let line = lines.next().expect("child output ended early").unwrap();
        if let Some(ack) = line.strip_prefix("ACK ") {
            acked.push(ack.to_owned());
        }
    }
    // `Child::kill` sends SIGKILL on Unix.
    child.kill().unwrap();
    // Acknowledgements still in the pipe count too.
    for line in lines {
        if let Some(ack) = line.unwrap().strip_prefix("ACK ") {
            acked.push(ack.to_owned());
        }
    }
    child.wait().unwrap();

    let store = RedbStore::open(&path).unwrap();
    for ack in &acked {
        let (instance, step) = ack.split_once(' ').unwrap();
        let record = store.get_step(&key("crash", instance), step).await.unwrap();
        let record = record.unwrap_or_else(|| panic!("acknowledged {ack} is missing"));
        if let Some(i) = step.strip_prefix('s') {
            let i: u64 = i.parse().unwrap();
            assert_eq!(record, value(&i.to_le_bytes()), "{ack}");
        }
    }
    // Steps of each writer are contiguous: nothing after a gap.
    for w in 0..WRITERS {
        let snap = store
            .load_instance(&key("crash", &format!("w{w}")))
            .await
            .unwrap();
        if let Some(snap) = snap {
            let n = snap.steps.len() - 1;
            for i in 0..n {
                assert!(snap.step(&format!("s{i}")).is_some(), "w{w} s{i} missing");
            }
        }
    }
}

fn child_settings() -> Option<(String, Durability, Option<u64>)> {
    let path = std::env::var(CHILD_DB).ok()?;
    let (durability, checkpoint_bytes) = match std::env::var(CHILD_DURABILITY).ok()?.as_str() {
        "Relaxed" => (Durability::Relaxed, None),
        // A tiny checkpoint threshold: the kill lands among checkpoints and
        // journal resets.
        "Checkpoints" => (Durability::Immediate, Some(2048)),
        _ => (Durability::Immediate, None),
    };
    Some((path, durability, checkpoint_bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_workload_keeps_every_acknowledged_step() {
    if let Some((path, durability, checkpoint_bytes)) = child_settings() {
        return child(&path, durability, checkpoint_bytes).await;
    }
    parent(
        "sigkill_mid_workload_keeps_every_acknowledged_step",
        Durability::Immediate,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_relaxed_durability_keeps_every_acknowledged_step() {
    if let Some((path, durability, checkpoint_bytes)) = child_settings() {
        return child(&path, durability, checkpoint_bytes).await;
    }
    parent(
        "sigkill_with_relaxed_durability_keeps_every_acknowledged_step",
        Durability::Relaxed,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_among_journal_checkpoints_keeps_every_acknowledged_step() {
    if let Some((path, durability, checkpoint_bytes)) = child_settings() {
        return child(&path, durability, checkpoint_bytes).await;
    }
    for _ in 0..3 {
        parent(
            "sigkill_among_journal_checkpoints_keeps_every_acknowledged_step",
            Durability::Immediate,
            true,
        )
        .await;
    }
}
