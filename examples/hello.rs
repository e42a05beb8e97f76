//! The smallest workflow: two memoised steps, run, then resumed.
//!
//! Run: `cargo run --example hello`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memable::{Context, Engine, EngineError, StepError};

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let calls = Arc::new(AtomicUsize::new(0));
    let engine = Engine::builder().in_memory().build();
    let counter = Arc::clone(&calls);
    engine.register("hello", move |ctx: Context| {
        let counter = Arc::clone(&counter);
        async move {
            let name: String = ctx.input()?;
            let greeting = ctx
                .step("greet")
                .run(|| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let name = name.clone();
                    async move { Ok::<_, StepError>(format!("Hello, {name}!")) }
                })
                .await?;
            let shouted = ctx
                .step("shout")
                .run(|| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let greeting = greeting.clone();
                    async move { Ok::<_, StepError>(greeting.to_uppercase()) }
                })
                .await?;
            Ok(shouted)
        }
    })?;
    engine.start().await?;

    let run = engine
        .invoke("hello")
        .id("first")
        .input("world".to_string())
        .await?;
    let output: String = run.wait_output().await?;
    println!(
        "output: {output}  (step closures run: {})",
        calls.load(Ordering::SeqCst)
    );

    // Running the instance again replays both steps from their committed results.
    let again: String = engine.resume("hello", "first").await?.wait_output().await?;
    println!(
        "resumed output: {again}  (step closures run: {}, unchanged)",
        calls.load(Ordering::SeqCst)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    Ok(())
}
