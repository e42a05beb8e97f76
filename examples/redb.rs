//! The main demo: a workflow on a redb file survives its engine.
//!
//! An engine runs two steps of an order workflow and suspends waiting for
//! payment; the engine is stopped and dropped (as in a deploy); a new engine
//! opens the same file, the payment signal arrives, and the workflow
//! finishes — the two committed steps are *not* run again.
//!
//! Run: `cargo run --example redb`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memable::redb::RedbStore;
use memable::{Context, Engine, EngineError, StepError, SuspendPoint};

static PAID: SuspendPoint<u64> = SuspendPoint::new("payment");

/// Registers the order workflow; `executions` counts step closures run.
fn register(engine: &Engine, executions: &Arc<AtomicUsize>) -> Result<(), EngineError> {
    let executions = Arc::clone(executions);
    engine.register("order", move |ctx: Context| {
        let executions = Arc::clone(&executions);
        async move {
            let item: String = ctx.input()?;
            let price = ctx
                .step("quote")
                .run(|| {
                    executions.fetch_add(1, Ordering::SeqCst);
                    println!("    running step 'quote'");
                    async { Ok::<_, StepError>(4_200u64) }
                })
                .await?;
            ctx.step("reserve")
                .run(|| {
                    executions.fetch_add(1, Ordering::SeqCst);
                    println!("    running step 'reserve' ({item})");
                    async { Ok::<_, StepError>(()) }
                })
                .await?;
            let paid = ctx.suspend(&PAID).status("waiting for payment").await?;
            let receipt = ctx
                .step("ship")
                .run(|| {
                    executions.fetch_add(1, Ordering::SeqCst);
                    println!("    running step 'ship'");
                    let item = item.clone();
                    async move {
                        Ok::<_, StepError>(format!("shipped {item}: quoted {price}, paid {paid}"))
                    }
                })
                .await?;
            Ok(receipt)
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("orders.redb");
    let executions = Arc::new(AtomicUsize::new(0));

    println!("engine 1 on {}", path.display());
    {
        let engine = Engine::builder().store(RedbStore::open(&path)?).build();
        register(&engine, &executions)?;
        engine.start().await?;
        let state = engine
            .invoke("order")
            .id("order-42")
            .input("teapot".to_string())
            .await?
            .wait_idle()
            .await?;
        println!("  order-42 is {state}");
        engine.shutdown().await;
    }
    println!(
        "engine 1 stopped after {} step executions",
        executions.load(Ordering::SeqCst)
    );

    println!("engine 2 on the same file");
    let engine = Engine::builder().store(RedbStore::open(&path)?).build();
    register(&engine, &executions)?;
    engine.start().await?;
    println!("  order-42 is {}", engine.state("order", "order-42").await?);
    let receipt: String = engine
        .signal("order", "order-42", &PAID, 4_200)
        .await?
        .wait_output()
        .await?;
    println!("  output: {receipt}");
    let total = executions.load(Ordering::SeqCst);
    println!(
        "{total} step executions in all: 'quote' and 'reserve' were replayed from the file, not re-run"
    );
    assert_eq!(total, 3);
    Ok(())
}
