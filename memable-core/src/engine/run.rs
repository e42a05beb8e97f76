//! One run of an instance: load its snapshot, call the workflow, commit how
//! it ended.

use std::sync::Arc;

use tokio::sync::watch;

use super::Inner;
use super::live::{LiveInstance, RunRequest};
use crate::context::Context;
use crate::{
    EngineError, Finish, FinishOutcome, InstanceKey, MetadataStatus, StepRecord, WorkflowState,
};

/// Decrements the engine's active-run count when the run task ends, even
/// when it is dropped. It holds the counter, not the engine, so the engine
/// (and its store) can be released before `wait_all` returns.
struct ActiveRun(Arc<watch::Sender<usize>>);

impl Drop for ActiveRun {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Runs `key` until no rerun is queued behind it.
pub(crate) async fn run_loop(
    inner: Arc<Inner>,
    key: InstanceKey,
    entry: Arc<LiveInstance>,
    mut request: RunRequest,
) {
    let _active = ActiveRun(inner.active_runs());
    loop {
        if !inner.is_aborted() {
            run_once(&inner, &key, &entry, request).await;
        }
        match inner.live.run_finished(&key, &entry) {
            Some(next) => request = next,
            None => break,
        }
    }
    // Release the engine before the counter drops, so a caller of
    // `wait_all` that then drops the engine really closes the store.
    drop(entry);
    drop(inner);
}

async fn run_once(
    inner: &Arc<Inner>,
    key: &InstanceKey,
    entry: &Arc<LiveInstance>,
    request: RunRequest,
) {
    let snapshot = match inner.store.load_instance(key).await {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => {
            tracing::warn!(instance = %key, "run skipped: the instance no longer exists");
            entry.publish(WorkflowState::Failed {
                error: "the instance no longer exists".to_owned(),
            });
            return;
        }
        Err(error) => {
            tracing::error!(instance = %key, %error, "run could not load its instance");
            entry.publish(WorkflowState::Failed {
                error: error.to_string(),
            });
            return;
        }
    };
    match &snapshot.metadata.status {
        MetadataStatus::Cancelled => {
            entry.publish(WorkflowState::Cancelled);
            return;
        }
        status @ (MetadataStatus::Completed(_) | MetadataStatus::Failed(_)) if !request.resume => {
            // A stale trigger: nothing to run.
            entry.publish(WorkflowState::from(status));
            return;
        }
        _ => {}
    }
    let Some(workflow) = inner.registry().get(key.workflow()) else {
        tracing::warn!(instance = %key, "run skipped: workflow is not registered");
        entry.publish(WorkflowState::from(&snapshot.metadata.status));
        return;
    };
    let ctx = Context::new(
        Arc::clone(inner),
        key.clone(),
        Arc::clone(entry),
        snapshot,
        request.resume,
    );
    // The workflow runs as its own task so a panic in user code is caught
    // and reported as a failure instead of tearing down the run loop.
    let task = tokio::spawn(workflow(ctx.clone()));
    super::live::LiveInstances::set_abort(entry, task.abort_handle());
    let outcome = match task.await {
        Ok(outcome) => outcome,
        Err(join_error) if join_error.is_panic() => Err(EngineError::step_failed(
            "_workflow",
            format!("the workflow panicked: {}", panic_message(join_error)),
            false,
        )),
        Err(_) => return, // aborted: a simulated crash writes nothing more
    };
    if !ctx.is_suspended() {
        record_outcome(inner, key, entry, &ctx, outcome).await;
    }
}

/// Commits how a run that did not suspend ended, and publishes it.
async fn record_outcome(
    inner: &Arc<Inner>,
    key: &InstanceKey,
    entry: &Arc<LiveInstance>,
    ctx: &Context,
    outcome: Result<StepRecord, EngineError>,
) {
    if ctx.replay_changed_nothing(&outcome) {
        let state = WorkflowState::from(ctx.initial_status());
        match outcome {
            Ok(output) => entry.publish_completed(output, state),
            Err(_) => entry.publish(state),
        }
        return;
    }
    if let Err(error) = ctx.revive_if_pending().await {
        entry.publish(match error {
            EngineError::Cancelled { .. } => WorkflowState::Cancelled,
            other => WorkflowState::Failed {
                error: other.to_string(),
            },
        });
        return;
    }
    let now = inner.clock.now_ms();
    let mut completed_output = None;
    let (finish, success_state) = match outcome {
        Ok(output) => {
            let status = ctx.current_status();
            completed_output = Some(output.clone());
            (
                Finish::Completed {
                    status: status.clone(),
                    output,
                },
                WorkflowState::Completed { status },
            )
        }
        Err(EngineError::Cancelled { .. }) if entry.is_cancelled() => {
            entry.publish(WorkflowState::Cancelled);
            return;
        }
        Err(error) => {
            let message = error.to_string();
            tracing::warn!(instance = %key, error = %message, "workflow failed");
            (
                Finish::Failed(message.clone()),
                WorkflowState::Failed { error: message },
            )
        }
    };
    match inner.store.finish_instance(key.clone(), finish, now).await {
        Ok(FinishOutcome::Finished) => match completed_output {
            Some(output) => entry.publish_completed(output, success_state),
            None => entry.publish(success_state),
        },
        Ok(FinishOutcome::NotRunning(Some(status))) => entry.publish(WorkflowState::from(&status)),
        Ok(FinishOutcome::NotRunning(None)) => entry.publish(WorkflowState::Failed {
            error: "the instance was deleted while running".to_owned(),
        }),
        Err(error) => {
            tracing::error!(instance = %key, %error, "could not record how the run ended; the instance stays Running and is recovered on the next start or resume");
            entry.publish(WorkflowState::Failed {
                error: error.to_string(),
            });
        }
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    let payload = error.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
