//! Cancellation: a suspended instance is cancelled; its timer is dropped and
//! later signals are rejected.
//!
//! Run: `cargo run --example cancel`

use std::time::Duration;

use memable::{Context, Engine, EngineError, SuspendPoint};

static REPLY: SuspendPoint<String> = SuspendPoint::new("reply");

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let engine = Engine::builder().in_memory().build();
    engine.register("reminder", |ctx: Context| async move {
        ctx.timer("wait", Duration::from_secs(3600)).await?;
        Ok(())
    })?;
    engine.register("question", |ctx: Context| async move {
        ctx.suspend(&REPLY).await
    })?;
    engine.start().await?;

    engine
        .invoke("reminder")
        .id("r1")
        .await?
        .wait_idle()
        .await?;
    engine.cancel("reminder", "r1").await?;
    println!("reminder: {}", engine.state("reminder", "r1").await?);

    engine
        .invoke("question")
        .id("q1")
        .await?
        .wait_idle()
        .await?;
    engine.cancel("question", "q1").await?;
    let err = engine
        .signal("question", "q1", &REPLY, "too late".into())
        .await
        .unwrap_err();
    println!("signal after cancel: {err}");
    Ok(())
}
