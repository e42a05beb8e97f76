//! Typed input and typed output.
//!
//! Run: `cargo run --example input`

use memable::{Context, Engine, EngineError, StepError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
    items: Vec<(String, u32)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Receipt {
    order: u64,
    total_cents: u64,
}

async fn checkout(ctx: Context) -> Result<Receipt, EngineError> {
    let order: Order = ctx.input()?;
    let total_cents = ctx
        .step("price")
        .run(|| async {
            let total = order
                .items
                .iter()
                .map(|(_, cents)| u64::from(*cents))
                .sum::<u64>();
            Ok::<_, StepError>(total)
        })
        .await?;
    Ok(Receipt {
        order: order.id,
        total_cents,
    })
}

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let engine = Engine::builder().in_memory().build();
    engine.register("checkout", checkout)?;
    engine.start().await?;

    let order = Order {
        id: 42,
        items: vec![("tea".into(), 350), ("cake".into(), 425)],
    };
    println!("input: {order:?}");
    let run = engine
        .invoke("checkout")
        .id("order-42")
        .input(order)
        .await?;
    let receipt: Receipt = run.wait_output().await?;
    println!("output: {receipt:?}");

    // The output stays readable after the run.
    let stored: Receipt = engine.output("checkout", "order-42").await?;
    println!("read back later: {stored:?}");

    // Reading it as the wrong type is a clear error, not garbage.
    let wrong = engine
        .output::<String>("checkout", "order-42")
        .await
        .unwrap_err();
    println!("as the wrong type: {wrong}");
    Ok(())
}
