//! The workflows the benchmarks run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memable_core::{
    Clock, Context, Engine, EngineError, StepError, SuspendPoint, SystemClock, Workflow,
};
use tokio::sync::Mutex;

/// Resumes a suspended `suspend` workflow.
pub static WAKE: SuspendPoint<u64> = SuspendPoint::new("wake");

/// A child of [`CHILDREN`]: one step returning its input.
pub static CHILD: Workflow<u64, u64> = Workflow::new("child");

/// Input `n`: fans [`CHILD`] out over `0..n` (no bound: every child runs
/// at once) and returns the sum of their outputs.
pub static CHILDREN: Workflow<u64, u64> = Workflow::new("children");

/// Shared observations of the timer workflow.
#[derive(Default)]
pub struct Observations {
    pub started: AtomicUsize,
    pub lateness_ms: Mutex<Vec<u64>>,
}

/// Bytes of each value of the `steps_1k` workflow (a `Vec<u8>`). Values
/// were postcard (a 2-byte length prefix: 1,024 bytes stored); they are JSON
/// now, where a `Vec<u8>` is an array of decimal numbers, about 3.6 bytes a
/// byte.
pub const KIB_VALUE_LEN: usize = 1_022;

/// Registers every benchmark workflow:
/// - `one_step`: one step returning 1 (the `queue` workload's instances);
/// - `steps`: input `n`, runs `n` steps each returning an 8-byte `u64`;
/// - `steps_parallel`: input `n`, runs `n` steps all at once (joined in
///   one run), each returning an 8-byte `u64`;
/// - [`CHILDREN`] and [`CHILD`]: the same `n` steps as `n` child workflows
///   of one step each;
/// - `steps_1k`: input `n`, runs `n` steps each returning a 1,024-byte
///   value (a `Vec<u8>` of [`KIB_VALUE_LEN`] bytes, different per step);
/// - `first-step`: counts its first step in `obs.started`, then finishes;
/// - `suspend`: suspends at [`WAKE`];
/// - `timer`: input = absolute deadline (ms), sleeps on a durable timer until
///   then, and records how late it woke in `obs.lateness_ms`.
pub fn register(engine: &Engine, obs: &Arc<Observations>) -> Result<(), EngineError> {
    engine.register("one_step", |ctx: Context| async move {
        ctx.step("s")
            .run(|| async { Ok::<_, StepError>(1u64) })
            .await
    })?;
    engine.register("steps", |ctx: Context| async move {
        let n: u64 = ctx.input()?;
        let mut sum = 0u64;
        for i in 0..n {
            sum += ctx
                .step(format!("s{i}"))
                .run(|| async move { Ok::<_, StepError>(i) })
                .await?;
        }
        Ok(sum)
    })?;
    engine.register("steps_parallel", |ctx: Context| async move {
        let n: u64 = ctx.input()?;
        let ctx = &ctx;
        let steps = (0..n).map(|i| async move {
            ctx.step(format!("s{i}"))
                .run(|| async move { Ok::<_, StepError>(i) })
                .await
        });
        let mut sum = 0u64;
        for value in futures_util::future::join_all(steps).await {
            sum += value?;
        }
        Ok(sum)
    })?;
    CHILD.register(engine, |ctx: Context, i: u64| async move {
        ctx.step("s")
            .run(|| async move { Ok::<_, StepError>(i) })
            .await
    })?;
    CHILDREN.register(engine, |ctx: Context, n: u64| async move {
        let mut sum = 0u64;
        for value in ctx.fan_out(&CHILD, "c", 0..n).await? {
            sum += value?;
        }
        Ok(sum)
    })?;
    engine.register("steps_1k", |ctx: Context| async move {
        let n: u64 = ctx.input()?;
        let mut total = 0u64;
        for i in 0..n {
            let value = ctx
                .step(format!("s{i}"))
                .run(|| async move { Ok::<_, StepError>(kib_value(i)) })
                .await?;
            total += value.len() as u64;
        }
        Ok(total)
    })?;
    let seen = Arc::clone(obs);
    engine.register("first-step", move |ctx: Context| {
        let seen = Arc::clone(&seen);
        async move {
            ctx.step("first")
                .run(|| {
                    seen.started.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, StepError>(()) }
                })
                .await
        }
    })?;
    engine.register(
        "suspend",
        |ctx: Context| async move { ctx.suspend(&WAKE).await },
    )?;
    let seen = Arc::clone(obs);
    engine.register("timer", move |ctx: Context| {
        let seen = Arc::clone(&seen);
        async move {
            let deadline: u64 = ctx.input()?;
            let wait = deadline.saturating_sub(SystemClock.now_ms());
            ctx.timer("t", Duration::from_millis(wait)).await?;
            let late = SystemClock.now_ms().saturating_sub(deadline);
            ctx.step("observe")
                .run(|| {
                    let seen = Arc::clone(&seen);
                    async move {
                        seen.lateness_ms.lock().await.push(late);
                        Ok::<_, StepError>(late)
                    }
                })
                .await
        }
    })?;
    Ok(())
}

/// The value of step `i` of `steps_1k`: [`KIB_VALUE_LEN`] bytes that differ
/// from step to step (no store compresses values, but none can share them
/// either).
fn kib_value(i: u64) -> Vec<u8> {
    (0..KIB_VALUE_LEN as u64)
        .map(|j| ((i * 131 + j * 7) % 251) as u8)
        .collect()
}
