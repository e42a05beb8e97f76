//! Durable timers: the workflow sleeps on a timer that survives restarts.
//! An auto-advancing test clock makes "one day later" instant: whenever the
//! engine is idle and something sleeps on the clock, time jumps to the next
//! deadline.
//!
//! Run: `cargo run --example timer --features test-util`

use std::time::Duration;

use memable::{AutoAdvanceClock, Clock, Context, Engine, EngineError, StepError};

const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let start = 1_700_000_000_000;
    let clock = AutoAdvanceClock::new(start);
    let engine = Engine::builder().in_memory().clock(clock.clone()).build();
    engine.register("trial", |ctx: Context| async move {
        ctx.step("welcome")
            .run(|| async {
                println!("  sent welcome mail");
                Ok::<_, StepError>(())
            })
            .await?;
        ctx.timer("trial-period", DAY).await?;
        ctx.step("convert")
            .run(|| async {
                println!("  sent conversion mail");
                Ok::<_, StepError>(())
            })
            .await?;
        Ok(())
    })?;
    engine.start().await?;

    engine.invoke("trial").id("user-1").await?;
    let mut states = engine.subscribe("trial", "user-1").await?;
    while let Some(state) = states.next().await {
        println!("state: {state}");
    }
    let waited = Duration::from_millis(clock.now_ms() - start);
    println!("the clock moved by {} h", waited.as_secs() / 3600);
    assert_eq!(waited, DAY);
    Ok(())
}
