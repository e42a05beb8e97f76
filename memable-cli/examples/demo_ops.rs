//! An application's own operator command, built with `memable_cli::App`:
//! every `memable` command plus `check`, which runs this code — the next
//! version of the demo's `order` workflow, with a new `insure` step before
//! `ship` — over the instances `demo_store` wrote (see `docs/cli.md`).
//!
//! ```text
//! cargo run -p memable-cli --example demo_store -- demo.db
//! cargo run -p memable-cli --example demo_ops -- --store demo.db check order
//! ```

#![forbid(unsafe_code)]

use memable_core::{Context, Engine, EngineError, StepError, SuspendPoint};

static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval");

/// The workflows of the next deploy, registered the way the application
/// registers them on its own engine.
fn register(engine: &Engine) -> Result<(), EngineError> {
    engine.register("order", |ctx: Context| async move {
        let (_id, amount): (String, u32) = ctx.input()?;
        let charged: u32 = ctx
            .step("charge")
            .run(move || async move { Ok::<_, StepError>(amount) })
            .await?;
        if !ctx.suspend(&APPROVAL).await? {
            return Ok(format!("refunded {charged}"));
        }
        let policy: String = ctx
            .step("insure")
            .run(move || async move { Ok::<_, StepError>(format!("policy-{charged}")) })
            .await?;
        let label: String = ctx
            .step("ship")
            .run(move || async move { Ok::<_, StepError>(format!("parcel-{charged}")) })
            .await?;
        Ok(format!("shipped {label} ({policy})"))
    })
}

fn main() -> std::process::ExitCode {
    memable_cli::App::new("demo-ops").workflows(register).main()
}
