//! Step timeouts: an attempt that takes too long is a retryable failure;
//! once the attempts run out the step fails with `RetriesExhausted` (its
//! source a `StepTimeout`), and the workflow chooses a fallback.
//!
//! Run: `cargo run --example timeout`

use std::time::Duration;

use memable::{Context, Engine, EngineError, RetryPolicy, StepError};

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let engine = Engine::builder().in_memory().build();
    engine.register("lookup", |ctx: Context| async move {
        let primary = ctx
            .step("primary")
            .timeout(Duration::from_millis(50))
            .retry(RetryPolicy::fixed(2, Duration::from_millis(10)))
            .run(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok::<_, StepError>("from primary".to_string())
            })
            .await;
        match primary {
            Ok(value) => Ok(value),
            Err(EngineError::RetriesExhausted {
                key,
                attempts,
                source,
            }) if matches!(source.downcast_ref(), Some(EngineError::StepTimeout { .. })) => {
                println!(
                    "  step '{key}' timed out {attempts} times ({source}); using the fallback"
                );
                ctx.step("fallback")
                    .run(|| async { Ok::<_, StepError>("from fallback".to_string()) })
                    .await
            }
            Err(other) => Err(other),
        }
    })?;
    engine.start().await?;
    let value: String = engine.invoke("lookup").await?.wait_output().await?;
    println!("result: {value}");
    Ok(())
}
