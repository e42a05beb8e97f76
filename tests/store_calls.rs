//! What the engine asks of its store on the hot paths: a handle's output
//! comes from the run it watched, and a replay that changes nothing reads
//! one snapshot and writes nothing. Each test runs on every backend, wrapped
//! in a fault-free `FaultyStore` that counts the engine's calls.

mod support;

use std::sync::Arc;

use memable::{Context, Engine, StepError, StepStore};
use memable_testkit::{FaultyStore, StoreOp};

use support::{Backend, backend_tests};

type Counted = FaultyStore<Arc<dyn StepStore>>;

/// An engine over a counting (fault-free) store on `backend`, with `steps`:
/// input n, n steps, output their sum.
async fn engine(backend: &Backend) -> (Engine, Arc<Counted>) {
    let store = Arc::new(FaultyStore::builder(backend.store()).build());
    let engine = Engine::builder().store(Arc::clone(&store)).build();
    engine
        .register("steps", |ctx: Context| async move {
            let n: u64 = ctx.input()?;
            let mut sum = 0;
            for i in 0..n {
                sum += ctx
                    .step(format!("s{i}"))
                    .run(|| async move { Ok::<_, StepError>(i) })
                    .await?;
            }
            Ok(sum)
        })
        .unwrap();
    engine.start().await.unwrap();
    (engine, store)
}

fn reads(store: &Counted) -> [u64; 3] {
    [
        store.calls(StoreOp::GetMetadata),
        store.calls(StoreOp::GetStep),
        store.calls(StoreOp::LoadInstance),
    ]
}

fn writes(store: &Counted) -> u64 {
    StoreOp::WRITES.iter().map(|op| store.calls(*op)).sum()
}

backend_tests! {
    #[tokio::test]
    async fn wait_output_takes_the_output_of_the_run_it_watched_without_a_read(backend) {
        let (engine, store) = engine(&backend).await;
        let run = engine.invoke("steps").id("a").input(4u64).await.unwrap();
        run.wait_idle().await.unwrap();
        let before = reads(&store);
        assert_eq!(run.wait_output::<u64>().await.unwrap(), 6);
        assert_eq!(reads(&store), before, "wait_output read the store");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_replay_that_changes_nothing_reads_one_snapshot_and_writes_nothing(backend) {
        let (engine, store) = engine(&backend).await;
        let first = engine.invoke("steps").id("a").input(10u64).await.unwrap();
        assert_eq!(first.wait_output::<u64>().await.unwrap(), 45);
        let (reads_before, writes_before) = (reads(&store), writes(&store));
        let again = engine.resume("steps", "a").await.unwrap();
        assert_eq!(again.wait_output::<u64>().await.unwrap(), 45);
        let [metadata, steps, snapshots] = reads(&store);
        // `resume` checks the instance exists; the run loads one snapshot.
        assert_eq!(
            [
                metadata - reads_before[0],
                steps - reads_before[1],
                snapshots - reads_before[2]
            ],
            [1, 0, 1]
        );
        assert_eq!(writes(&store), writes_before, "a replay wrote");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_handle_on_an_existing_instance_reads_its_output_from_the_store(backend) {
        let (engine, store) = engine(&backend).await;
        let first = engine.invoke("steps").id("a").input(3u64).await.unwrap();
        assert_eq!(first.wait_output::<u64>().await.unwrap(), 3);
        // No run happens for an existing id: the output comes from the store.
        let existing = engine.invoke("steps").id("a").input(3u64).await.unwrap();
        assert!(!existing.is_new());
        let before = store.calls(StoreOp::GetStep);
        assert_eq!(existing.wait_output::<u64>().await.unwrap(), 3);
        assert_eq!(store.calls(StoreOp::GetStep), before + 1);
    }
}
