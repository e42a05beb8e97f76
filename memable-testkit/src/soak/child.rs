//! The child process: runs the soak workflows until all are complete.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memable_core::{
    Context, Engine, EngineError, InstanceFilter, MetadataStatus, RetryPolicy, StepError,
    SuspendPoint,
};

use futures_util::future::join_all;

use super::log::EventLog;
use super::{SoakBackend, SoakConfig};

/// The workflow's name.
pub const WORKFLOW: &str = "soak";
/// The store file's name inside the soak directory.
pub const STORE_FILE: &str = "soak.store";
/// The suspend point every workflow waits at; answered with `input * 7`.
pub static APPROVAL: SuspendPoint<u64> = SuspendPoint::new("approval");

/// The id of workflow `index` of `round`.
pub fn instance_id(round: u64, index: usize) -> String {
    format!("r{round}-w{index:04}")
}

/// The input of workflow `index` of `round`.
pub fn input_of(round: u64, index: usize) -> u64 {
    round * 100_000 + index as u64 + 1
}

/// The workflow index an input belongs to (inverse of [`input_of`]).
pub fn index_of(input: u64) -> usize {
    usize::try_from(input.saturating_sub(1) % 100_000).unwrap_or(0)
}

/// What the child does with a workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Signalled at its suspend point; runs to completion.
    Complete,
    /// Cancelled by a task the workflow spawns just before its parallel
    /// group, so the cancel lands while parallel steps are in flight.
    CancelRunning,
    /// Cancelled by the child while suspended at its suspend point (never
    /// signalled).
    CancelSuspended,
}

/// The fate of workflow `index` (the same in every round).
pub fn fate_of(index: usize) -> Fate {
    match index % 4 {
        1 => Fate::CancelRunning,
        3 => Fate::CancelSuspended,
        _ => Fate::Complete,
    }
}

/// How many steps workflow `index` runs in parallel (`p0`, `p1`, …).
pub fn parallel_width(index: usize) -> usize {
    2 + index % 3
}

fn deterministic(input: u64, slot: u64) -> u64 {
    input * 1_000 + slot
}

/// What the workflow with `input` must output.
pub fn expected_output(input: u64, steps: usize) -> u64 {
    step_specs(input, steps).iter().map(|s| s.value).sum()
}

/// One step record a completed workflow has, for verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepSpec {
    /// The step key.
    pub key: String,
    /// The value the step must have committed.
    pub value: u64,
    /// `true` for a step whose value is `(value, nonce)`; `false` for the
    /// suspend point, whose value is the signal's `u64`.
    pub plain: bool,
    /// `true` for a step of the parallel group.
    pub parallel: bool,
}

/// The step records a completed workflow with `input` has.
pub fn step_specs(input: u64, steps: usize) -> Vec<StepSpec> {
    let spec = |key: String, value, plain, parallel| StepSpec {
        key,
        value,
        plain,
        parallel,
    };
    let mut specs: Vec<StepSpec> = (0..steps)
        .map(|i| spec(format!("s{i}"), deterministic(input, i as u64), true, false))
        .collect();
    specs.push(spec(
        "retry".to_owned(),
        deterministic(input, 999),
        true,
        false,
    ));
    for j in 0..parallel_width(index_of(input)) {
        specs.push(spec(
            format!("p{j}"),
            deterministic(input, 500 + j as u64),
            true,
            true,
        ));
    }
    specs.push(spec(APPROVAL.key().to_owned(), input * 7, false, false));
    specs
}

/// Runs round `round` of the soak in this process until every workflow of
/// the round completed; `generation` numbers this process in the log.
pub async fn run_child(
    backend: &dyn SoakBackend,
    dir: &Path,
    config: &SoakConfig,
    round: u64,
    generation: u64,
) -> Result<(), EngineError> {
    let store = backend.open(&dir.join(STORE_FILE))?;
    let log = Arc::new(EventLog::open(dir, generation)?);
    let engine = Engine::builder()
        .store(store)
        .default_retry(RetryPolicy::fixed(3, Duration::from_millis(1)))
        .build();
    register(&engine, &log, config.steps)?;
    engine.start().await?;
    for index in 0..config.workflows {
        drop(
            engine
                .invoke(WORKFLOW)
                .id(instance_id(round, index))
                .input(input_of(round, index))
                .await?,
        );
    }
    drive_to_completion(&engine, &log, round).await?;
    engine.stop();
    engine.wait_all().await;
    Ok(())
}

/// Signals (or, for a [`Fate::CancelSuspended`] or [`Fate::CancelRunning`]
/// workflow, cancels) suspended workflows and resumes failed ones until every
/// workflow of `round` is completed or cancelled.
pub(crate) async fn drive_to_completion(
    engine: &Engine,
    log: &EventLog,
    round: u64,
) -> Result<(), EngineError> {
    let prefix = format!("r{round}-");
    loop {
        let instances = engine
            .list_instances(&InstanceFilter::new().workflow(WORKFLOW))
            .await?;
        let mut done = true;
        for meta in instances
            .iter()
            .filter(|m| m.instance_id.starts_with(&prefix))
        {
            match &meta.status {
                MetadataStatus::Completed(_) | MetadataStatus::Cancelled => {}
                MetadataStatus::Suspended { key, .. } if key == APPROVAL.key() => {
                    done = false;
                    let index = meta
                        .instance_id
                        .rsplit_once("-w")
                        .and_then(|(_, i)| i.parse::<usize>().ok())
                        .unwrap_or(0);
                    if fate_of(index) == Fate::Complete {
                        // Losing the race to another signal or a rerun is fine.
                        let input = input_of(round, index);
                        let _ = engine
                            .signal(WORKFLOW, &meta.instance_id, &APPROVAL, input * 7)
                            .await;
                    } else if engine.cancel(WORKFLOW, &meta.instance_id).await.is_ok() {
                        log.append("cancelled", &[&meta.instance_id])?;
                    }
                }
                MetadataStatus::Failed(error) => {
                    done = false;
                    eprintln!(
                        "soak child: {} failed ({error}); resuming",
                        meta.instance_id
                    );
                    let _ = engine.resume(WORKFLOW, &meta.instance_id).await;
                }
                _ => done = false,
            }
        }
        if done {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) fn register(
    engine: &Engine,
    log: &Arc<EventLog>,
    steps: usize,
) -> Result<(), EngineError> {
    // Keys whose first attempt already failed in this process.
    let failed_once: Arc<Mutex<HashSet<String>>> = Arc::default();
    let log = Arc::clone(log);
    // The workflow cancels itself through the engine (a cycle the child
    // process's exit ends).
    let canceller = engine.clone();
    engine.register(WORKFLOW, move |ctx: Context| {
        let log = Arc::clone(&log);
        let failed_once = Arc::clone(&failed_once);
        let canceller = canceller.clone();
        async move {
            let input: u64 = ctx.input()?;
            let index = index_of(input);
            let mut total = 0u64;
            for i in 0..steps {
                if i == steps / 4 {
                    if fate_of(index) == Fate::CancelRunning {
                        // Workflow code, not a step: every rerun after a
                        // crash asks again until a cancel is acknowledged.
                        let id = ctx.instance_id().to_owned();
                        let log = Arc::clone(&log);
                        let canceller = canceller.clone();
                        tokio::spawn(async move {
                            if canceller.cancel(WORKFLOW, &id).await.is_ok() {
                                let _ = log.append("cancelled", &[&id]);
                            }
                        });
                    }
                    let parts = join_all((0..parallel_width(index)).map(|j| {
                        let key = format!("p{j}");
                        let ctx = &ctx;
                        let log = &log;
                        let failed_once = &failed_once;
                        async move {
                            logged_step(
                                ctx,
                                log,
                                failed_once,
                                &key,
                                deterministic(input, 500 + j as u64),
                                false,
                                Duration::from_millis(fastrand::u64(0..=3)),
                            )
                            .await
                        }
                    }))
                    .await;
                    for part in parts {
                        total += part?;
                    }
                }
                if i == steps / 3 {
                    total += logged_step(
                        &ctx,
                        &log,
                        &failed_once,
                        "retry",
                        deterministic(input, 999),
                        true,
                        Duration::ZERO,
                    )
                    .await?;
                }
                if i == steps / 2 {
                    let approval = ctx
                        .suspend(&APPROVAL)
                        .status("waiting for approval")
                        .await?;
                    log.append(
                        "got",
                        &[ctx.instance_id(), APPROVAL.key(), &approval.to_string()],
                    )?;
                    total += approval;
                }
                if i == 2 * steps / 3 {
                    ctx.timer("nap", Duration::from_millis(20)).await?;
                }
                let key = format!("s{i}");
                total += logged_step(
                    &ctx,
                    &log,
                    &failed_once,
                    &key,
                    deterministic(input, i as u64),
                    false,
                    Duration::ZERO,
                )
                .await?;
            }
            Ok(total)
        }
    })
}

/// A step whose closure logs `run`, waits `pause` (so parallel steps commit
/// in varying order), and produces `(value, nonce)`; the workflow logs `got`
/// with what the step returned.
async fn logged_step(
    ctx: &Context,
    log: &Arc<EventLog>,
    failed_once: &Arc<Mutex<HashSet<String>>>,
    key: &str,
    value: u64,
    fail_first_attempt: bool,
    pause: Duration,
) -> Result<u64, EngineError> {
    let instance = ctx.instance_id().to_owned();
    let (got, nonce): (u64, u64) = ctx
        .step(key)
        .run(|| {
            let logged = log.append("run", &[&instance, key]);
            let fail = fail_first_attempt
                && failed_once
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(format!("{instance}/{key}"));
            async move {
                logged.map_err(|e| StepError::permanent(e.to_string()))?;
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                if fail {
                    return Err(StepError::retryable("first attempt fails on purpose"));
                }
                Ok((value, fastrand::u64(..)))
            }
        })
        .await?;
    log.append("got", &[&instance, key, &format!("{got}:{nonce}")])?;
    Ok(got)
}
