//! Live status: a subscriber follows `set_status` messages as the workflow runs.
//!
//! Run: `cargo run --example status`

use std::time::Duration;

use memable::{Context, Engine, EngineError, StepError};

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let engine = Engine::builder().in_memory().build();
    engine.register("report", |ctx: Context| async move {
        for stage in ["extract", "transform", "load"] {
            ctx.set_status(format!("{stage}ing"));
            ctx.step(stage)
                .run(|| async {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    Ok::<_, StepError>(())
                })
                .await?;
        }
        ctx.set_status("done");
        Ok(())
    })?;
    engine.start().await?;

    let mut states = engine.invoke("report").id("nightly").await?.into_stream();
    while let Some(state) = states.next().await {
        println!("state: {state}, status: {:?}", state.status());
    }
    let meta = engine.get_metadata("report", "nightly").await?;
    println!("persisted: {:?}", meta.map(|m| m.status));
    Ok(())
}
