//! The child process: runs the soak workflows until all are complete.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use memable_core::{
    Context, Engine, EngineError, InstanceFilter, MetadataStatus, RetryPolicy, StepError,
    SuspendPoint,
};

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

fn deterministic(input: u64, slot: u64) -> u64 {
    input * 1_000 + slot
}

/// What the workflow with `input` must output.
pub fn expected_output(input: u64, steps: usize) -> u64 {
    let plain: u64 = (0..steps as u64).map(|i| deterministic(input, i)).sum();
    plain + deterministic(input, 999) + input * 7
}

/// The keys of the step records a completed workflow has, for verification:
/// `(key, is_plain_step)`.
pub fn step_keys(steps: usize) -> Vec<(String, bool)> {
    let mut keys: Vec<(String, bool)> = (0..steps).map(|i| (format!("s{i}"), true)).collect();
    keys.push(("retry".to_owned(), true));
    keys.push((APPROVAL.key().to_owned(), false));
    keys
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
    drive_to_completion(&engine, round).await
}

/// Signals suspended workflows and resumes failed ones until every workflow
/// of `round` is complete.
async fn drive_to_completion(engine: &Engine, round: u64) -> Result<(), EngineError> {
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
                MetadataStatus::Completed(_) => {}
                MetadataStatus::Suspended { key, .. } if key == APPROVAL.key() => {
                    done = false;
                    let input: u64 = meta
                        .instance_id
                        .rsplit_once("-w")
                        .and_then(|(_, i)| i.parse::<usize>().ok())
                        .map_or(0, |i| input_of(round, i));
                    // Losing the race to another signal or a rerun is fine.
                    let _ = engine
                        .signal(WORKFLOW, &meta.instance_id, &APPROVAL, input * 7)
                        .await;
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
            engine.stop();
            engine.wait_all().await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn register(engine: &Engine, log: &Arc<EventLog>, steps: usize) -> Result<(), EngineError> {
    // Keys whose first attempt already failed in this process.
    let failed_once: Arc<Mutex<HashSet<String>>> = Arc::default();
    let log = Arc::clone(log);
    engine.register(WORKFLOW, move |ctx: Context| {
        let log = Arc::clone(&log);
        let failed_once = Arc::clone(&failed_once);
        async move {
            let input: u64 = ctx.input()?;
            let mut total = 0u64;
            for i in 0..steps {
                if i == steps / 3 {
                    total += logged_step(
                        &ctx,
                        &log,
                        &failed_once,
                        "retry",
                        deterministic(input, 999),
                        true,
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
                )
                .await?;
            }
            Ok(total)
        }
    })
}

/// A step whose closure logs `run` before producing `(value, nonce)`; the
/// workflow logs `got` with what the step returned.
async fn logged_step(
    ctx: &Context,
    log: &Arc<EventLog>,
    failed_once: &Arc<Mutex<HashSet<String>>>,
    key: &str,
    value: u64,
    fail_first_attempt: bool,
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
