//! Retries: a flaky step succeeds on its third attempt; a step that keeps
//! failing is dead-lettered and re-attempted by `resume`.
//!
//! Run: `cargo run --example basic`

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memable::{Context, Engine, EngineError, RetryPolicy, StepError, WorkflowState};

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let engine = Engine::builder()
        .in_memory()
        .default_retry(RetryPolicy::exponential(3, Duration::from_millis(10)))
        .build();

    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&attempts);
    engine.register("flaky", move |ctx: Context| {
        let seen = Arc::clone(&seen);
        async move {
            ctx.step("fetch")
                .retry(RetryPolicy::fixed(5, Duration::from_millis(5)))
                .run(|| {
                    let attempt = seen.fetch_add(1, Ordering::SeqCst) + 1;
                    async move {
                        println!("  fetch attempt {attempt}");
                        if attempt < 3 {
                            Err(StepError::retryable(format!("503 on attempt {attempt}")))
                        } else {
                            Ok(attempt)
                        }
                    }
                })
                .await
        }
    })?;

    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let backend_up = Arc::clone(&healthy);
    engine.register("outage", move |ctx: Context| {
        let backend_up = Arc::clone(&backend_up);
        async move {
            ctx.step("charge")
                .run(|| {
                    let up = backend_up.load(Ordering::SeqCst);
                    async move {
                        if up {
                            Ok("charged".to_string())
                        } else {
                            Err(StepError::retryable("payment service down"))
                        }
                    }
                })
                .await
        }
    })?;
    engine.start().await?;

    println!("flaky workflow:");
    let attempt: u32 = engine.invoke("flaky").await?.wait_output().await?;
    println!("  succeeded on attempt {attempt}");

    println!("outage workflow:");
    let state = engine
        .invoke("outage")
        .id("order-1")
        .await?
        .wait_idle()
        .await?;
    println!("  after 3 attempts: {state}");
    assert!(matches!(state, WorkflowState::Failed { .. }));

    healthy.store(true, Ordering::SeqCst);
    let result: String = engine
        .resume("outage", "order-1")
        .await?
        .wait_output()
        .await?;
    println!("  resume re-attempted the dead-lettered step: {result}");
    Ok(())
}
