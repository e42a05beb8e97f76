//! Retention: the engine deletes ended instances in the background once a
//! rule says they are old enough — here completed `report`s after 7 days,
//! failed ones after 30, and nothing that still waits. An auto-advancing
//! test clock makes the days instant: whenever the engine is idle, time
//! jumps to the next sweep.
//!
//! Run: `cargo run --example retention --features test-util`

use std::time::Duration;

use memable::{
    AutoAdvanceClock, Context, Engine, EngineError, InstanceFilter, RetentionPolicy, RetentionRule,
    SuspendPoint, TerminalStatus,
};

const DAY: Duration = Duration::from_secs(24 * 3600);
static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval");

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let start = 1_700_000_000_000;
    let clock = AutoAdvanceClock::new(start);
    let policy = RetentionPolicy::new()
        .rule(
            RetentionRule::new(7 * DAY)
                .workflow("report")
                .statuses([TerminalStatus::Completed]),
        )
        .rule(
            RetentionRule::new(30 * DAY)
                .workflow("report")
                .statuses([TerminalStatus::Failed]),
        )
        .interval(Duration::from_secs(3600))
        .batch_size(100);
    let engine = Engine::builder()
        .in_memory()
        .clock(clock.clone())
        .retention(policy)
        .build();
    engine.register_with_error("report", |ctx: Context| async move {
        match ctx.input::<String>().as_deref() {
            Ok("fail") => Err("no data".to_string()),
            Ok("approve") => ctx
                .suspend(&APPROVAL)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    })?;
    engine.start().await?;

    for (id, input) in [
        ("mon", "ok"),
        ("tue", "ok"),
        ("wed", "fail"),
        ("thu", "approve"),
    ] {
        engine
            .invoke("report")
            .id(id)
            .input(input)
            .await?
            .wait_idle()
            .await?;
    }
    let list = |engine: Engine| async move {
        let ids: Vec<String> = engine
            .list_instances(&InstanceFilter::new().workflow("report"))
            .await?
            .into_iter()
            .map(|m| format!("{} ({:?})", m.instance_id, m.status.kind()))
            .collect();
        Ok::<_, EngineError>(ids.join(", "))
    };
    println!("day 0: {}", list(engine.clone()).await?);

    // The clock runs ahead by itself, so these lines print once the
    // deletions happened, at whatever day the clock has reached by then.
    let mut stats = engine.retention_stats();
    for (deleted, what) in [(2, "completed after 7 days"), (3, "failed after 30 days")] {
        let done = *stats
            .wait_for(|s| s.deleted >= deleted)
            .await
            .expect("engine alive");
        println!(
            "{what}: {} left (deleted so far: {}, in {} hourly sweeps)",
            list(engine.clone()).await?,
            done.deleted,
            done.sweeps
        );
    }
    // The waiting instance was never touched.
    assert!(engine.get_metadata("report", "thu").await?.is_some());
    assert!(engine.get_metadata("report", "mon").await?.is_none());
    engine.shutdown().await;
    Ok(())
}
