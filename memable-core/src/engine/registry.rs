//! Registered workflow functions, type-erased.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::Context;
use crate::key::OUTPUT_KEY;
use crate::{EngineError, StepKind, StepRecord, encode_value, type_tag};

/// A workflow's future, producing the `_output` record.
pub(crate) type WorkflowFuture =
    Pin<Box<dyn Future<Output = Result<StepRecord, EngineError>> + Send>>;

/// A registered workflow function.
pub(crate) type WorkflowFn = Arc<dyn Fn(Context) -> WorkflowFuture + Send + Sync>;

/// Wraps a typed workflow function so its output is encoded with its type
/// tag and its error becomes an [`EngineError`]: an `EngineError` is kept as
/// it is (so suspension, cancellation and panics are still recognised), any
/// other error type becomes [`EngineError::Workflow`] with its message.
pub(crate) fn erase<F, Fut, O, E>(workflow: F) -> WorkflowFn
where
    F: Fn(Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    O: Serialize + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    Arc::new(move |ctx: Context| -> WorkflowFuture {
        let run = workflow(ctx);
        Box::pin(async move {
            let output = run.await.map_err(into_engine_error)?;
            let bytes = encode_value(OUTPUT_KEY, &output)?;
            Ok(StepRecord::completed(
                StepKind::Engine,
                type_tag::<O>(),
                bytes,
                None,
            ))
        })
    })
}

/// A workflow's own error as an [`EngineError`]: itself if it is one.
fn into_engine_error<E: std::fmt::Display + 'static>(error: E) -> EngineError {
    let mut slot = Some(error);
    if let Some(engine) = (&mut slot as &mut dyn Any).downcast_mut::<Option<EngineError>>()
        && let Some(engine) = engine.take()
    {
        return engine;
    }
    EngineError::Workflow {
        message: slot.map(|e| e.to_string()).unwrap_or_default(),
    }
}

/// Workflow functions by name.
#[derive(Default)]
pub(crate) struct Registry {
    workflows: RwLock<HashMap<String, WorkflowFn>>,
}

impl Registry {
    pub fn insert(&self, name: &str, workflow: WorkflowFn) -> bool {
        self.workflows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), workflow)
            .is_some()
    }

    pub fn get(&self, name: &str) -> Option<WorkflowFn> {
        self.workflows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .workflows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort_unstable();
        names
    }

    pub fn ensure(&self, name: &str) -> Result<WorkflowFn, EngineError> {
        self.get(name)
            .ok_or_else(|| EngineError::WorkflowNotFound(name.to_owned()))
    }
}
