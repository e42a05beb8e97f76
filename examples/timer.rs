//! Durable timers: the workflow sleeps on a timer that survives restarts.
//! A manual clock makes "one day later" instant.
//!
//! Run: `cargo run --example timer --features test-util`

use std::time::Duration;

use memable::{Context, Engine, EngineError, ManualClock, StepError, WorkflowState};

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let clock = ManualClock::new(1_700_000_000_000);
    let engine = Engine::builder().in_memory().clock(clock.clone()).build();
    engine.register("trial", |ctx: Context| async move {
        ctx.step("welcome")
            .run(|| async {
                println!("  sent welcome mail");
                Ok::<_, StepError>(())
            })
            .await?;
        ctx.timer("trial-period", Duration::from_secs(24 * 3600))
            .await?;
        ctx.step("convert")
            .run(|| async {
                println!("  sent conversion mail");
                Ok::<_, StepError>(())
            })
            .await?;
        Ok(())
    })?;
    engine.start().await?;

    let state = engine
        .invoke("trial")
        .id("user-1")
        .await?
        .wait_idle()
        .await?;
    println!("after invoke: {state}");
    assert!(matches!(state, WorkflowState::Suspended { .. }));

    println!("advancing the clock by one day");
    let mut states = engine.subscribe("trial", "user-1").await?;
    clock.advance(Duration::from_secs(24 * 3600));
    while let Some(state) = states.next().await {
        println!("state: {state}");
    }
    Ok(())
}
