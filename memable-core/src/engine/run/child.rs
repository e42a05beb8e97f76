//! Child workflows: [`Context::child`] (start one, await it or not, or
//! start it detached) and [`Context::fan_out`] (many, at most K at once).
//!
//! A child is one [`StartChild`](crate::WriteOp::StartChild) transition in
//! the parent's run and an instance of its own; its end completes the
//! parent's point in the same transaction and wakes the parent (the rules:
//! [`ChildLink`](crate::ChildLink)). In the run, a child's step key works
//! like any other: its link in the snapshot means "started" (nothing is
//! written again), its completed point is its result, and a point still
//! waiting makes the run end parked there, like a suspend point.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use futures_util::future::join_all;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::super::check::CheckKind;
use super::context::Context;
use crate::key::INPUT_KEY;
use crate::store::{CHILD_CANCELLED, child_instance_id, child_link_key};
use crate::{
    ChildStartOutcome, EngineError, InstanceKey, MetadataStatus, StepKind, StepRecord, StepState,
    StepStoreExt, Workflow, decode_record, encode_value, type_tag,
};

/// Starting a child workflow from a workflow; see [`Context::child`].
///
/// Await it to start the child (once: its id is derived from the parent's
/// and the step key) and wait for its output; or call
/// [`start`](Self::start) to start it and await it later, or
/// [`detached`](Self::detached) to start it and never await it.
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, EngineError, StepError, Workflow};
///
/// static CHARGE: Workflow<u32, String> = Workflow::new("charge");
/// static ORDER: Workflow<u32, String> = Workflow::new("order");
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), EngineError> {
/// let engine = Engine::builder().build();
/// CHARGE.register(&engine, |ctx: Context, cents: u32| async move {
///     ctx.step("card").run(|| async move { Ok::<_, StepError>(format!("charged {cents}")) }).await
/// })?;
/// ORDER.register(&engine, |ctx: Context, cents: u32| async move {
///     let receipt = ctx.child(&CHARGE, "pay", cents).await?;
///     Ok(format!("order paid: {receipt}"))
/// })?;
/// engine.start().await?;
/// let order = ORDER.invoke(&engine, 250).id("o-1").await?;
/// assert_eq!(order.output().await?, "order paid: charged 250");
/// // The child is an instance of its own, its id derived from the parent's.
/// assert_eq!(CHARGE.instance(&engine, "order:o-1:pay").output().await?, "charged 250");
/// # Ok(()) }
/// ```
#[must_use = "a child does nothing until it is awaited"]
pub struct ChildBuilder<'a, I, O> {
    ctx: &'a Context,
    workflow: &'static str,
    key: String,
    input: I,
    status: Option<String>,
    _output: PhantomData<fn() -> O>,
}

/// A child started with [`ChildBuilder::start`]; await it for the child's
/// output.
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, EngineError, Workflow};
///
/// static SQUARE: Workflow<u64, u64> = Workflow::new("square");
/// static SUM: Workflow<(), u64> = Workflow::new("sum");
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), EngineError> {
/// let engine = Engine::builder().build();
/// SQUARE.register(&engine, |_ctx: Context, n: u64| async move { Ok(n * n) })?;
/// SUM.register(&engine, |ctx: Context, ()| async move {
///     // Both children run while the parent goes on.
///     let a = ctx.child(&SQUARE, "a", 3).start().await?;
///     let b = ctx.child(&SQUARE, "b", 4).start().await?;
///     assert_eq!(a.child().workflow(), "square");
///     Ok(a.await? + b.await?)
/// })?;
/// engine.start().await?;
/// assert_eq!(SUM.invoke(&engine, ()).await?.output().await?, 25);
/// # Ok(()) }
/// ```
#[must_use = "a started child is awaited by awaiting its handle"]
pub struct ChildHandle<'a, O> {
    ctx: &'a Context,
    key: String,
    child: InstanceKey,
    status: Option<String>,
    point: Option<StepRecord>,
    _output: PhantomData<fn() -> O>,
}

impl Context {
    /// Starts the child workflow `workflow` with `input` under the step key
    /// `key`; see [`ChildBuilder`]. The child's instance id is
    /// [`child_instance_id`](crate::child_instance_id) of this instance and
    /// `key`, so a replay (or another worker) never starts it twice.
    ///
    /// Awaited, it returns the child's output. A child that failed is
    /// [`ChildFailed`](EngineError::ChildFailed) with its error; a cancelled
    /// one is [`ChildCancelled`](EngineError::ChildCancelled). Until the
    /// child ends it returns [`Suspended`](EngineError::Suspended):
    /// propagate it with `?`; the run ends parked and runs again when the
    /// child ends. Cancelling this instance cancels the children it awaits
    /// (and theirs).
    ///
    /// # Examples
    ///
    /// See [`ChildBuilder`].
    pub fn child<I, O>(
        &self,
        workflow: &Workflow<I, O>,
        key: impl Into<String>,
        input: I,
    ) -> ChildBuilder<'_, I, O> {
        ChildBuilder {
            ctx: self,
            workflow: workflow.name(),
            key: key.into(),
            input,
            status: None,
            _output: PhantomData,
        }
    }

    /// Runs one child of `workflow` per input, at most
    /// [`max_running`](FanOutBuilder::max_running) at once, and gathers
    /// their outputs in input order; see [`FanOutBuilder`]. Child `i` has
    /// the step key `<key>.<i>`.
    ///
    /// # Examples
    ///
    /// See [`FanOutBuilder`].
    pub fn fan_out<I, O>(
        &self,
        workflow: &Workflow<I, O>,
        key: impl Into<String>,
        inputs: impl IntoIterator<Item = I>,
    ) -> FanOutBuilder<'_, I, O> {
        FanOutBuilder {
            ctx: self,
            workflow: workflow.name(),
            key: key.into(),
            inputs: inputs.into_iter().collect(),
            max_running: usize::MAX,
            status: None,
            _output: PhantomData,
        }
    }

    /// Starts the child under `key` unless this instance's snapshot shows
    /// it started; returns the child's key and the point's record now
    /// (`None` for a detached child).
    async fn start_child<I: Serialize + 'static>(
        &self,
        workflow: &'static str,
        key: &str,
        input: &I,
        point: Option<StepRecord>,
    ) -> Result<(InstanceKey, Option<StepRecord>), EngineError> {
        let parent = &self.run.key;
        let child = InstanceKey::new(workflow, &child_instance_id(parent, key)?)?;
        if self.run.steps.get(&child_link_key(key)).is_some() {
            return Ok((child, self.run.steps.get(key).cloned()));
        }
        let kind = if point.is_some() {
            CheckKind::Child
        } else {
            CheckKind::DetachedChild
        };
        self.dry_new_work(key, kind, 0)?;
        self.check_active()?;
        self.go_live().await?;
        let input = StepRecord::completed(
            StepKind::Engine,
            type_tag::<I>(),
            encode_value(INPUT_KEY, input)?,
            None,
        );
        let env = &self.run.env;
        let now = env.clock.now_ms();
        let outcome = env
            .store
            .start_child(
                parent.clone(),
                key.to_owned(),
                child.clone(),
                input,
                point.clone(),
                now,
            )
            .await?;
        match outcome {
            ChildStartOutcome::Started => {
                (env.spawn)(&child);
                Ok((child, point))
            }
            ChildStartOutcome::Exists { point } => Ok((child, point)),
            ChildStartOutcome::InputConflict => Err(EngineError::InputConflict { key: child }),
            ChildStartOutcome::KeyInUse(found) => Err(EngineError::ChildKeyConflict {
                key: key.to_owned(),
                found,
            }),
            ChildStartOutcome::NotActive(Some(MetadataStatus::Cancelled)) => Err(self.cancelled()),
            ChildStartOutcome::NotActive(Some(other)) => Err(EngineError::InvalidState {
                operation: "start a child of",
                key: parent.clone(),
                state: other.kind(),
            }),
            ChildStartOutcome::NotActive(None) => Err(self.not_found()),
        }
    }

    /// The child's result if its point is completed, else `None`.
    fn child_result<O: DeserializeOwned + 'static>(
        key: &str,
        child: &InstanceKey,
        point: Option<&StepRecord>,
    ) -> Option<Result<O, EngineError>> {
        let point = point.filter(|p| p.state == StepState::Completed)?;
        if point.kind != StepKind::Child {
            return Some(Err(EngineError::ChildKeyConflict {
                key: key.to_owned(),
                found: point.kind,
            }));
        }
        Some(match &point.error {
            Some(_) if point.value == CHILD_CANCELLED => Err(EngineError::ChildCancelled {
                key: key.to_owned(),
                child: child.clone(),
            }),
            Some(error) => Err(EngineError::ChildFailed {
                key: key.to_owned(),
                child: child.clone(),
                error: error.clone(),
            }),
            None => decode_record(key, point),
        })
    }

    /// Waits for the child under `key`: its result if it has ended (asking
    /// the store, as it may have ended since the snapshot), else the run
    /// waits there.
    async fn await_child<O: DeserializeOwned + 'static>(
        &self,
        key: &str,
        child: &InstanceKey,
        point: Option<StepRecord>,
        status: Option<String>,
    ) -> Result<O, EngineError> {
        if let Some(result) = Self::child_result(key, child, point.as_ref()) {
            return self.dry_checked(key, type_tag::<O>(), result);
        }
        self.check_active()?;
        if self.dry().is_none() {
            let now = self.run.env.store.get_step(&self.run.key, key).await?;
            if let Some(result) = Self::child_result(key, child, now.as_ref()) {
                return result;
            }
        }
        self.note_waiting(key, status.or_else(|| self.current_status()));
        Err(EngineError::Suspended {
            key: key.to_owned(),
        })
    }
}

impl<'a, I, O> ChildBuilder<'a, I, O>
where
    I: Serialize + Send + Sync + 'static,
    O: DeserializeOwned + Send + 'static,
{
    /// The status message shown while the parent waits for this child.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError, Workflow, WorkflowState, SuspendPoint};
    ///
    /// static GATE: SuspendPoint<()> = SuspendPoint::new("gate");
    /// static SLOW: Workflow<(), ()> = Workflow::new("slow");
    /// static WAITS: Workflow<(), ()> = Workflow::new("waits");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// SLOW.register(&engine, |ctx: Context, ()| async move { ctx.suspend(&GATE).await })?;
    /// WAITS.register(&engine, |ctx: Context, ()| async move {
    ///     ctx.child(&SLOW, "slow", ()).status("waiting for slow").await
    /// })?;
    /// engine.start().await?;
    /// let run = WAITS.invoke(&engine, ()).id("w").await?;
    /// assert_eq!(run.wait_idle().await?, WorkflowState::Suspended { key: "slow".into(), status: Some("waiting for slow".into()) });
    /// # Ok(()) }
    /// ```
    pub fn status(mut self, message: impl Into<String>) -> Self {
        self.status = Some(message.into());
        self
    }

    fn point(&self) -> StepRecord {
        let status = self.status.clone().or_else(|| self.ctx.current_status());
        StepRecord::suspended(StepKind::Child, type_tag::<O>(), status, None)
    }

    /// Starts the child (once) and returns a handle to await later, so the
    /// parent can go on meanwhile.
    ///
    /// # Examples
    ///
    /// See [`ChildHandle`].
    pub async fn start(self) -> Result<ChildHandle<'a, O>, EngineError> {
        let ctx = self.ctx;
        ctx.enter_step(&self.key)?;
        let point = self.point();
        let (child, point) = ctx
            .start_child(self.workflow, &self.key, &self.input, Some(point))
            .await?;
        if point.is_none() {
            return Err(detached_conflict(&self.key));
        }
        Ok(ChildHandle {
            ctx,
            key: self.key,
            child,
            status: self.status,
            point,
            _output: PhantomData,
        })
    }

    /// Starts the child (once) and returns its key without awaiting it: its
    /// end does not concern the parent, and cancelling the parent leaves it
    /// running.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError, Workflow};
    ///
    /// static EMAIL: Workflow<String, ()> = Workflow::new("email");
    /// static SIGNUP: Workflow<String, ()> = Workflow::new("signup");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// EMAIL.register(&engine, |_ctx: Context, _to: String| async move { Ok(()) })?;
    /// SIGNUP.register(&engine, |ctx: Context, who: String| async move {
    ///     ctx.child(&EMAIL, "welcome", who).detached().await?;
    ///     Ok(())
    /// })?;
    /// engine.start().await?;
    /// SIGNUP.invoke(&engine, "ann".into()).id("ann").await?.output().await?;
    /// EMAIL.instance(&engine, "signup:ann:welcome").wait_output().await?;
    /// # Ok(()) }
    /// ```
    pub async fn detached(self) -> Result<InstanceKey, EngineError> {
        let ctx = self.ctx;
        ctx.enter_step(&self.key)?;
        let (child, _) = ctx
            .start_child(self.workflow, &self.key, &self.input, None)
            .await?;
        Ok(child)
    }
}

impl<'a, I, O> IntoFuture for ChildBuilder<'a, I, O>
where
    I: Serialize + Send + Sync + 'static,
    O: DeserializeOwned + Send + 'static,
{
    type Output = Result<O, EngineError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.start().await?.await })
    }
}

impl<O> ChildHandle<'_, O> {
    /// The child instance.
    ///
    /// # Examples
    ///
    /// See [`ChildHandle`].
    #[must_use]
    pub fn child(&self) -> &InstanceKey {
        &self.child
    }
}

impl<'a, O: DeserializeOwned + Send + 'static> IntoFuture for ChildHandle<'a, O> {
    type Output = Result<O, EngineError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            self.ctx
                .await_child(&self.key, &self.child, self.point, self.status)
                .await
        })
    }
}

/// Many children of one workflow, at most K running at once, their
/// outputs gathered in input order; see [`Context::fan_out`].
///
/// Each run of the parent starts children in input order while fewer than
/// K of them are running, then waits; every child's end wakes the parent,
/// which starts the next. Awaited, it returns one result per input once
/// every child has ended (a failed child's result is its
/// [`ChildFailed`](EngineError::ChildFailed) error; the others still run),
/// and [`Suspended`](EngineError::Suspended) until then.
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, EngineError, Workflow};
///
/// static RESIZE: Workflow<u32, u32> = Workflow::new("resize");
/// static ALBUM: Workflow<Vec<u32>, Vec<u32>> = Workflow::new("album");
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), EngineError> {
/// let engine = Engine::builder().build();
/// RESIZE.register(&engine, |_ctx: Context, px: u32| async move { Ok(px / 2) })?;
/// ALBUM.register(&engine, |ctx: Context, photos: Vec<u32>| async move {
///     let sizes = ctx.fan_out(&RESIZE, "resize", photos).max_running(2).await?;
///     sizes.into_iter().collect()
/// })?;
/// engine.start().await?;
/// let album = ALBUM.invoke(&engine, vec![800, 600, 1024, 64]).await?;
/// assert_eq!(album.output().await?, vec![400, 300, 512, 32]);
/// # Ok(()) }
/// ```
#[must_use = "a fan-out does nothing until it is awaited"]
pub struct FanOutBuilder<'a, I, O> {
    ctx: &'a Context,
    workflow: &'static str,
    key: String,
    inputs: Vec<I>,
    max_running: usize,
    status: Option<String>,
    _output: PhantomData<fn() -> O>,
}

impl<I, O> FanOutBuilder<'_, I, O>
where
    I: Serialize + Send + Sync + 'static,
    O: DeserializeOwned + Send + 'static,
{
    /// At most `k` children running at once (at least 1; the default is no
    /// limit).
    ///
    /// # Examples
    ///
    /// See [`FanOutBuilder`].
    pub fn max_running(mut self, k: usize) -> Self {
        self.max_running = k.max(1);
        self
    }

    /// The status message shown while the parent waits for the children.
    ///
    /// # Examples
    ///
    /// See [`ChildBuilder::status`].
    pub fn status(mut self, message: impl Into<String>) -> Self {
        self.status = Some(message.into());
        self
    }

    async fn resolve(self) -> Result<Vec<Result<O, EngineError>>, EngineError> {
        let ctx = self.ctx;
        let status = self.status.clone().or_else(|| ctx.current_status());
        let mut children = Vec::with_capacity(self.inputs.len());
        for i in 0..self.inputs.len() {
            let key = format!("{}.{i}", self.key);
            ctx.enter_step(&key)?;
            let child = InstanceKey::new(self.workflow, &child_instance_id(&ctx.run.key, &key)?)?;
            let started = ctx.run.steps.get(&child_link_key(&key)).is_some();
            let point = ctx.run.steps.get(&key).cloned();
            if started && point.is_none() {
                return Err(detached_conflict(&key));
            }
            children.push(Slot {
                key,
                child,
                started,
                point,
            });
        }
        let mut running = children.iter().filter(|c| c.is_running()).count();
        // Children are started in batches, each batch at once, so their
        // starts share the store's commits.
        loop {
            let room = self.max_running.saturating_sub(running);
            let batch: Vec<usize> = (0..children.len())
                .filter(|&i| !children[i].started)
                .take(room)
                .collect();
            if batch.is_empty() {
                break;
            }
            ctx.go_live().await?;
            let starts = batch.iter().map(|&i| {
                let point =
                    StepRecord::suspended(StepKind::Child, type_tag::<O>(), status.clone(), None);
                ctx.start_child(
                    self.workflow,
                    &children[i].key,
                    &self.inputs[i],
                    Some(point),
                )
            });
            let started = join_all(starts).await;
            for (&i, outcome) in batch.iter().zip(started) {
                let (_, now) = outcome?;
                let slot = &mut children[i];
                slot.started = true;
                slot.point = now;
                if slot.point.is_none() {
                    return Err(detached_conflict(&slot.key));
                }
                if slot.is_running() {
                    running += 1;
                }
            }
        }
        let mut results = Vec::with_capacity(children.len());
        let mut waiting = false;
        for slot in &children {
            if let Some(result) = Context::child_result(&slot.key, &slot.child, slot.point.as_ref())
            {
                results.push(ctx.dry_checked(&slot.key, type_tag::<O>(), result));
            } else {
                if slot.started {
                    ctx.note_waiting(&slot.key, status.clone());
                }
                waiting = true;
            }
        }
        if waiting {
            ctx.check_active()?;
            return Err(EngineError::Suspended { key: self.key });
        }
        Ok(results)
    }
}

/// A key that holds a detached child, awaited.
fn detached_conflict(key: &str) -> EngineError {
    EngineError::ChildKeyConflict {
        key: key.to_owned(),
        found: StepKind::Child,
    }
}

/// One child of a fan-out, as this run knows it.
struct Slot {
    key: String,
    child: InstanceKey,
    started: bool,
    point: Option<StepRecord>,
}

impl Slot {
    fn is_running(&self) -> bool {
        self.started
            && self
                .point
                .as_ref()
                .is_some_and(|p| p.state != StepState::Completed)
    }
}

impl<'a, I, O> IntoFuture for FanOutBuilder<'a, I, O>
where
    I: Serialize + Send + Sync + 'static,
    O: DeserializeOwned + Send + 'static,
{
    type Output = Result<Vec<Result<O, EngineError>>, EngineError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.resolve())
    }
}
