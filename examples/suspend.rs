//! Human in the loop: a workflow suspends until a signal delivers a decision.
//!
//! Run: `cargo run --example suspend`

use memable::{Context, Engine, EngineError, StepError, SuspendPoint};

static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval:v1");

async fn expense(ctx: Context) -> Result<String, EngineError> {
    let amount: u32 = ctx.input()?;
    ctx.step("file")
        .run(|| async move {
            println!("  filed expense of {amount}");
            Ok::<_, StepError>(())
        })
        .await?;
    let approved = ctx
        .suspend(&APPROVAL)
        .status("waiting for a manager")
        .await?;
    let outcome = if approved { "paid" } else { "rejected" };
    ctx.step("notify")
        .run(|| async move {
            println!("  notified employee: {outcome}");
            Ok::<_, StepError>(())
        })
        .await?;
    Ok(outcome.to_string())
}

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let engine = Engine::builder().in_memory().build();
    engine.register("expense", expense)?;
    engine.start().await?;

    let state = engine
        .invoke("expense")
        .id("exp-7")
        .input(120u32)
        .await?
        .wait_idle()
        .await?;
    println!("after invoke: {state}");

    // A signal of the wrong type is refused and loses nothing.
    let err = engine
        .signal(
            "expense",
            "exp-7",
            &SuspendPoint::<String>::new("approval:v1"),
            "yes".into(),
        )
        .await
        .unwrap_err();
    println!("wrong payload type: {err}");

    let outcome: String = engine
        .signal("expense", "exp-7", &APPROVAL, true)
        .await?
        .wait_output()
        .await?;
    println!("after approval: {outcome}");

    let again = engine
        .signal("expense", "exp-7", &APPROVAL, false)
        .await
        .unwrap_err();
    println!("second signal: {again}");
    Ok(())
}
