//! Rough throughput figures (ignored; run in release):
//! `cargo test --release -p memable-redb --test throughput -- --ignored --nocapture`.

mod support;

use std::time::Instant;

use memable_core::StepStoreExt;
use memable_redb::{Durability, RedbStore};
use support::{input, key, value};

async fn figures(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::builder()
        .durability(durability)
        .open(dir.path().join("t.redb"))
        .unwrap();
    let k = key("bench", "seq");
    store.start_instance(k.clone(), input(), 1).await.unwrap();
    let n = 500;
    let started = Instant::now();
    for i in 0..n {
        store
            .commit_step(k.clone(), format!("s{i}"), value(&[1; 100]))
            .await
            .unwrap();
    }
    let seq = f64::from(n) / started.elapsed().as_secs_f64();

    let before = store.stats();
    let started = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let k = key("bench", &format!("w{w}"));
                store.start_instance(k.clone(), input(), 1).await.unwrap();
                for i in 0..10 {
                    store
                        .commit_step(k.clone(), format!("s{i}"), value(&[1; 100]))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = store.stats();
    let ops = after.ops - before.ops;
    let commits = after.commits - before.commits;
    #[allow(clippy::cast_precision_loss)]
    let concurrent = ops as f64 / elapsed;
    println!(
        "{durability:?}: sequential {seq:.0} commits/s; 1000 concurrent writers {concurrent:.0} ops/s in {commits} commits (largest batch {})",
        after.largest_batch
    );
    assert_eq!(ops, 11_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput figures, run in release"]
async fn throughput_figures() {
    figures(Durability::Immediate).await;
    figures(Durability::Relaxed).await;
}
