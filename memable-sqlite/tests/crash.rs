//! A child process commits steps and is killed with SIGKILL mid-workload;
//! the reopened database holds every commit the child was told succeeded.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use memable_core::StepStoreExt;
use memable_core::{InstanceKey, StepKind, StepRecord, StepState, StepStore};
use memable_sqlite::SqliteStore;

const ENV: &str = "MEMABLE_SQLITE_CRASH_CHILD";

/// Child mode: commits steps from 8 concurrent writers forever, printing
/// `ack <writer> <n>` after each acknowledged commit.
#[test]
fn crash_child_writes_until_killed() {
    let Ok(path) = std::env::var(ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let store = SqliteStore::open(&path).unwrap();
        let key = InstanceKey::new("crash", "one").unwrap();
        store
            .start_instance(
                key.clone(),
                StepRecord::completed(StepKind::Engine, "()", vec![], None),
                0,
            )
            .await
            .unwrap();
        println!("ready");
        let mut writers = Vec::new();
        for writer in 0..8u32 {
            let (store, key) = (store.clone(), key.clone());
            writers.push(tokio::spawn(async move {
                for n in 0u32.. {
                    let value = format!("{writer}:{n}").into_bytes();
                    store
                        .commit_step(
                            key.clone(),
                            format!("w{writer}-{n}"),
                            StepRecord::completed(StepKind::Step, "v", value, None),
                        )
                        .await
                        .unwrap();
                    println!("ack {writer} {n}");
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

#[test]
fn every_acknowledged_commit_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writes_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ack ") {
            let (writer, n) = rest.split_once(' ').unwrap();
            acked.push((writer.to_owned(), n.to_owned()));
            if acked.len() == 300 {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 300);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&path).unwrap();
        let key = InstanceKey::new("crash", "one").unwrap();
        let snapshot = store.load_instance(&key).await.unwrap().expect("instance");
        for (writer, n) in &acked {
            let record = snapshot
                .step(&format!("w{writer}-{n}"))
                .unwrap_or_else(|| panic!("lost w{writer}-{n}"));
            assert_eq!(record.state, StepState::Completed);
            assert_eq!(record.value, format!("{writer}:{n}").into_bytes());
        }
        // The store keeps working after the crash.
        store
            .commit_step(
                key,
                "after".into(),
                StepRecord::completed(StepKind::Step, "v", vec![1], None),
            )
            .await
            .unwrap();
    });
}
