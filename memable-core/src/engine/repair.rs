//! Repairs of stored instances: [`Engine::forget`] and [`Engine::fork`],
//! over the store transitions of the same names (see
//! [`WriteOp::Forget`](crate::WriteOp::Forget) and
//! [`WriteOp::Fork`](crate::WriteOp::Fork) for their rules).
//!
//! Neither runs a step itself. A forgotten step runs again on the
//! instance's next run ([`Engine::resume`]); a fork is written `Running`
//! and runs at once on a started engine that has its workflow, else when
//! an engine with the workflow next starts (its recovery of `Running`
//! instances) or, on a shared store, on any worker that has it.

use super::{Engine, invalid_state, not_found};
use crate::{
    EngineError, ForgetOutcome, ForkOutcome, InstanceKey, MetadataStatus, StepStoreExt,
    validate_user_key,
};

impl Engine {
    /// Forgets the results of `steps` of an instance that is not running,
    /// so they run again on its next run: the records (and a suspended
    /// point's timer) are removed in one transition, the instance's status
    /// is unchanged. Returns the keys that had a record. Call
    /// [`resume`](Engine::resume) to run it again (the other steps replay).
    ///
    /// Errors: [`InstanceNotFound`](EngineError::InstanceNotFound);
    /// [`InvalidState`](EngineError::InvalidState) for a `Running` instance
    /// (cancel it, or wait until it is suspended or ended);
    /// [`InvalidKey`](EngineError::InvalidKey) for a step key or workflow
    /// name the engine reserves (`_input`, `_queue`, …) or an invalid one.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, StepError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("etl", |ctx: Context| async move {
    ///     ctx.step("fetch").run(|| async { Ok::<_, StepError>(1u8) }).await
    /// })?;
    /// engine.start().await?;
    /// engine.invoke("etl").id("e1").await?.wait_idle().await?;
    /// assert_eq!(engine.forget("etl", "e1", &["fetch", "absent"]).await?, ["fetch"]);
    /// engine.resume("etl", "e1").await?.wait_idle().await?; // "fetch" runs again
    /// # Ok(()) }
    /// ```
    pub async fn forget(
        &self,
        workflow: &str,
        instance_id: &str,
        steps: &[&str],
    ) -> Result<Vec<String>, EngineError> {
        // Workflow names starting with `_` are the engine's (a queue's
        // reserved instance): never repaired by hand.
        validate_user_key("workflow_name", workflow)?;
        let key = InstanceKey::new(workflow, instance_id)?;
        for step in steps {
            validate_user_key("step_key", step)?;
        }
        // The store's status decides (a run that is only replaying an
        // ended instance writes nothing unless it reaches new work, which
        // sets it `Running` first): checking this process's live runs too
        // would refuse a forget just after `wait_output` returned, while
        // the run is still ending.
        let now = self.inner.clock.now_ms();
        let steps = steps.iter().map(|s| (*s).to_owned()).collect();
        match self
            .inner
            .store
            .forget_steps(key.clone(), steps, now)
            .await?
        {
            ForgetOutcome::Forgotten(keys) => {
                tracing::info!(instance = %key, forgotten = ?keys, "step results forgotten");
                Ok(keys)
            }
            ForgetOutcome::InstanceMissing => Err(not_found(&key)),
            ForgetOutcome::Running => Err(invalid_state(
                "forget steps of",
                key,
                &MetadataStatus::Running,
            )),
            ForgetOutcome::Reserved(step) => Err(reserved(&step)),
        }
    }

    /// Copies instance `from_id` of `workflow` to the new id `to_id`
    /// without the results of `without`, and without its per-run records
    /// (output, parent link, queue ticket, children still awaited): the
    /// fork is `Running`, replays what was copied and runs the rest — on
    /// this engine at once if it is started and has the workflow, else
    /// when an engine with the workflow next starts (or, on a shared
    /// store, on a worker that has it). Children the fork starts get ids
    /// derived from its id. The original is not changed.
    ///
    /// Errors: [`InstanceNotFound`](EngineError::InstanceNotFound) for a
    /// missing `from_id`; [`InstanceExists`](EngineError::InstanceExists)
    /// when `to_id` is taken; [`InvalidKey`](EngineError::InvalidKey) for
    /// an invalid id, a reserved step key or workflow name.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, StepError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("etl", |ctx: Context| async move {
    ///     ctx.step("fetch").run(|| async { Ok::<_, StepError>(1u8) }).await
    /// })?;
    /// engine.start().await?;
    /// engine.invoke("etl").id("e1").await?.wait_idle().await?;
    /// engine.fork("etl", "e1", "e1-again", &["fetch"]).await?;
    /// let fork = engine.subscribe("etl", "e1-again").await?;
    /// # drop(fork);
    /// # Ok(()) }
    /// ```
    pub async fn fork(
        &self,
        workflow: &str,
        from_id: &str,
        to_id: &str,
        without: &[&str],
    ) -> Result<(), EngineError> {
        validate_user_key("workflow_name", workflow)?;
        let from = InstanceKey::new(workflow, from_id)?;
        let to = InstanceKey::new(workflow, to_id)?;
        for step in without {
            validate_user_key("step_key", step)?;
        }
        let now = self.inner.clock.now_ms();
        let without = without.iter().map(|s| (*s).to_owned()).collect();
        match self
            .inner
            .store
            .fork_instance(from.clone(), to.clone(), without, now)
            .await?
        {
            ForkOutcome::Forked(copied) => {
                tracing::info!(from = %from, to = %to, copied = copied.len(), "instance forked");
                self.inner.run_here(&to);
                Ok(())
            }
            ForkOutcome::SourceMissing => Err(not_found(&from)),
            ForkOutcome::TargetExists(_) => Err(EngineError::InstanceExists { key: to }),
            ForkOutcome::Reserved(step) => Err(reserved(&step)),
            // Both keys were built from `workflow`.
            ForkOutcome::OtherWorkflow => Err(crate::StorageError::new(
                crate::StorageErrorKind::Other,
                "fork_instance",
                "the store answered that one workflow name is another",
            )
            .into()),
        }
    }
}

/// The error a reserved key gets (the store refused it too).
fn reserved(step: &str) -> EngineError {
    validate_user_key("step_key", step)
        .err()
        .unwrap_or_else(|| EngineError::InvalidKey {
            label: "step_key",
            value: step.to_owned(),
            reason: crate::InvalidKeyReason::Reserved,
        })
}
