//! Typed workflows: a workflow's name, input type and output type declared
//! once as a [`Workflow`], then registered, invoked, signalled, waited on
//! and read through it, so a wrong input or output type is a compile error
//! instead of a [`TypeMismatch`](crate::EngineError::TypeMismatch) at run
//! time.
//!
//! Nothing here is a second engine API: a [`Workflow`] only carries its
//! name and types, and every call goes to the string-keyed [`Engine`]
//! methods (which stay available: an instance started through a
//! [`Workflow`] is the same instance `engine.state("name", id)` reads, and
//! the other way round).

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    Context, Engine, Invocation, InvokeBuilder, StatusStream, SuspendPoint, WorkflowState,
};
use crate::EngineError;

/// A workflow declared with its input type `I` and output type `O`.
///
/// Declare it once (a `static` or `const`), register the function under it
/// with [`register`](Self::register) — the function receives the decoded
/// input — and reach instances through [`invoke`](Self::invoke) and
/// [`instance`](Self::instance).
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, Workflow};
///
/// static GREET: Workflow<String, String> = Workflow::new("greet");
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// GREET.register(&engine, |_ctx: Context, name: String| async move { Ok(format!("hello {name}")) })?;
/// engine.start().await?;
/// let run = GREET.invoke(&engine, "ada".to_string()).id("g-1").await?;
/// assert_eq!(run.output().await?, "hello ada");
/// assert_eq!(GREET.instance(&engine, "g-1").output().await?, "hello ada");
/// // The same instance through the string-keyed API.
/// assert_eq!(engine.output::<String>("greet", "g-1").await?, "hello ada");
/// # Ok(()) }
/// ```
pub struct Workflow<I, O> {
    name: &'static str,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for Workflow<I, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I, O> Copy for Workflow<I, O> {}

impl<I, O> std::fmt::Debug for Workflow<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.name)
            .field("input", &std::any::type_name::<I>())
            .field("output", &std::any::type_name::<O>())
            .finish()
    }
}

impl<I, O> Workflow<I, O> {
    /// A workflow named `name` (checked when it is registered or invoked).
    ///
    /// # Examples
    ///
    /// ```
    /// const RESIZE: memable_core::Workflow<Vec<u8>, (u32, u32)> = memable_core::Workflow::new("resize");
    /// assert_eq!(RESIZE.name(), "resize");
    /// ```
    #[must_use]
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _types: PhantomData,
        }
    }

    /// The workflow's name.
    ///
    /// # Examples
    ///
    /// See [`Workflow::new`].
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<I, O> Workflow<I, O>
where
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Serialize + DeserializeOwned + Send + 'static,
{
    /// Registers `workflow` under this name on `engine`: it is called with
    /// the context and the instance's input, decoded as `I`, and returns
    /// `Result<O, EngineError>` (as for [`Engine::register`]).
    /// An instance whose stored input is not an `I` (started through the
    /// string API with another type) fails with the
    /// [`TypeMismatch`](EngineError::TypeMismatch) as its error.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, Workflow};
    ///
    /// static DOUBLE: Workflow<u32, u32> = Workflow::new("double");
    /// let engine = Engine::builder().build();
    /// DOUBLE.register(&engine, |_ctx: Context, n: u32| async move { Ok(n * 2) }).unwrap();
    /// let bad: Workflow<(), ()> = Workflow::new("bad/name");
    /// assert!(bad.register(&engine, |_ctx: Context, (): ()| async { Ok(()) }).is_err());
    /// ```
    pub fn register<F, Fut>(&self, engine: &Engine, workflow: F) -> Result<(), EngineError>
    where
        F: Fn(Context, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, EngineError>> + Send + 'static,
    {
        engine.register(self.name, move |ctx: Context| {
            let input = ctx.input::<I>();
            let run = input.map(|input| workflow(ctx, input));
            async move {
                match run {
                    Ok(run) => run.await,
                    Err(error) => Err(error),
                }
            }
        })
    }

    /// Starts an instance with `input`; set its id on the returned builder
    /// ([`TypedInvokeBuilder::id`]), then await it. Same idempotence as
    /// [`Engine::invoke`]: an existing id with the same input is found, with
    /// another input it is [`InputConflict`](EngineError::InputConflict).
    ///
    /// # Examples
    ///
    /// See [`Workflow`].
    pub fn invoke(&self, engine: &Engine, input: I) -> TypedInvokeBuilder<I, O> {
        TypedInvokeBuilder {
            workflow: *self,
            builder: engine.invoke(self.name).input(input),
        }
    }

    /// A handle on the instance `instance_id` of this workflow (no store
    /// read: the calls on it report a missing instance).
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    pub fn instance(
        &self,
        engine: &Engine,
        instance_id: impl Into<String>,
    ) -> WorkflowHandle<I, O> {
        WorkflowHandle {
            engine: engine.clone(),
            workflow: *self,
            id: instance_id.into(),
        }
    }
}

/// Builds a typed invocation; await it to start the instance. Made by
/// [`Workflow::invoke`].
///
/// # Examples
///
/// See [`Workflow`].
#[must_use = "an invocation does nothing until it is awaited"]
pub struct TypedInvokeBuilder<I, O> {
    workflow: Workflow<I, O>,
    builder: InvokeBuilder,
}

impl<I, O> std::fmt::Debug for TypedInvokeBuilder<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedInvokeBuilder")
            .field("workflow", &self.workflow)
            .finish_non_exhaustive()
    }
}

impl<I, O> TypedInvokeBuilder<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// Uses `id` as the instance id instead of a generated one.
    ///
    /// # Examples
    ///
    /// See [`Workflow`].
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.builder = self.builder.id(id);
        self
    }

    /// Starts the instance (or finds the existing one with this id); errors
    /// as for [`InvokeBuilder::start`].
    ///
    /// # Examples
    ///
    /// See [`Workflow`].
    pub async fn start(self) -> Result<TypedInvocation<I, O>, EngineError> {
        Ok(TypedInvocation {
            workflow: self.workflow,
            invocation: self.builder.start().await?,
        })
    }
}

impl<I, O> IntoFuture for TypedInvokeBuilder<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    type Output = Result<TypedInvocation<I, O>, EngineError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}

/// An [`Invocation`] whose output is known to be an `O`.
///
/// # Examples
///
/// See [`Workflow`].
pub struct TypedInvocation<I, O> {
    workflow: Workflow<I, O>,
    invocation: Invocation,
}

impl<I, O> std::fmt::Debug for TypedInvocation<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedInvocation")
            .field("workflow", &self.workflow)
            .field("invocation", &self.invocation)
            .finish()
    }
}

impl<I, O> TypedInvocation<I, O>
where
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Serialize + DeserializeOwned + Send + 'static,
{
    /// The instance id.
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    #[must_use]
    pub fn instance_id(&self) -> &str {
        self.invocation.instance_id()
    }

    /// Whether this call created the instance (see [`Invocation::is_new`]).
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    #[must_use]
    pub fn is_new(&self) -> bool {
        self.invocation.is_new()
    }

    /// Waits for the instance to end and returns its output; errors as for
    /// [`Invocation::wait_output`].
    ///
    /// # Examples
    ///
    /// See [`Workflow`].
    pub async fn output(self) -> Result<O, EngineError> {
        self.invocation.wait_output::<O>().await
    }

    /// Waits until the instance is terminal or suspended
    /// ([`Invocation::wait_idle`]).
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    pub async fn wait_idle(&self) -> Result<WorkflowState, EngineError> {
        self.invocation.wait_idle().await
    }

    /// A handle on the same instance, for signals, state and cancel.
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    #[must_use]
    pub fn handle(&self) -> WorkflowHandle<I, O> {
        self.workflow
            .instance(&self.invocation.engine, self.invocation.instance_id())
    }

    /// The untyped invocation.
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    #[must_use]
    pub fn into_untyped(self) -> Invocation {
        self.invocation
    }
}

/// One instance of a typed [`Workflow`]: signal it, read its state and
/// output, cancel or resume it, from any process that reaches the store.
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, SuspendPoint, Workflow, WorkflowState};
///
/// static REVIEW: Workflow<String, bool> = Workflow::new("review");
/// static VERDICT: SuspendPoint<bool> = SuspendPoint::new("verdict");
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// REVIEW.register(&engine, |ctx: Context, _doc: String| async move { ctx.suspend(&VERDICT).await })?;
/// engine.start().await?;
/// let run = REVIEW.invoke(&engine, "draft".to_string()).id("r-1").await?;
/// assert!(run.is_new());
/// assert!(matches!(run.wait_idle().await?, WorkflowState::Suspended { .. }));
/// let review = run.handle();
/// assert_eq!(review.instance_id(), "r-1");
/// review.signal(&VERDICT, true).await?;
/// assert!(review.wait_output().await?);
/// assert_eq!(review.state().await?, WorkflowState::Completed { status: None });
/// # Ok(()) }
/// ```
pub struct WorkflowHandle<I, O> {
    engine: Engine,
    workflow: Workflow<I, O>,
    id: String,
}

impl<I, O> Clone for WorkflowHandle<I, O> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            workflow: self.workflow,
            id: self.id.clone(),
        }
    }
}

impl<I, O> std::fmt::Debug for WorkflowHandle<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowHandle")
            .field("workflow", &self.workflow)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<I, O> WorkflowHandle<I, O>
where
    I: Serialize + DeserializeOwned + Send + 'static,
    O: Serialize + DeserializeOwned + Send + 'static,
{
    /// The instance id.
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    #[must_use]
    pub fn instance_id(&self) -> &str {
        &self.id
    }

    /// The workflow this instance belongs to.
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    #[must_use]
    pub fn workflow(&self) -> Workflow<I, O> {
        self.workflow
    }

    /// Delivers `value` to the point `point` ([`Engine::signal`]).
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    pub async fn signal<T: Serialize + 'static>(
        &self,
        point: &SuspendPoint<T>,
        value: T,
    ) -> Result<TypedInvocation<I, O>, EngineError> {
        let invocation = self
            .engine
            .signal(self.workflow.name, &self.id, point, value)
            .await?;
        Ok(TypedInvocation {
            workflow: self.workflow,
            invocation,
        })
    }

    /// The instance's state ([`Engine::state`]).
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    pub async fn state(&self) -> Result<WorkflowState, EngineError> {
        self.engine.state(self.workflow.name, &self.id).await
    }

    /// Follows the instance's states ([`Engine::subscribe`]).
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    pub async fn subscribe(&self) -> Result<StatusStream, EngineError> {
        self.engine.subscribe(self.workflow.name, &self.id).await
    }

    /// The output of the completed instance, now ([`Engine::output`]):
    /// [`InvalidState`](EngineError::InvalidState) while it runs or waits.
    ///
    /// # Examples
    ///
    /// See [`Workflow`].
    pub async fn output(&self) -> Result<O, EngineError> {
        self.engine.output::<O>(self.workflow.name, &self.id).await
    }

    /// Waits for the instance to end, then returns its output (a failed
    /// instance is [`WorkflowFailed`](EngineError::WorkflowFailed), a
    /// cancelled one [`Cancelled`](EngineError::Cancelled)).
    ///
    /// # Examples
    ///
    /// See [`WorkflowHandle`].
    pub async fn wait_output(&self) -> Result<O, EngineError> {
        let mut states = self.subscribe().await?;
        while states.next().await.is_some() {}
        self.output().await
    }

    /// Cancels the instance ([`Engine::cancel`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, EngineError, Workflow};
    ///
    /// static NAP: Workflow<u64, ()> = Workflow::new("nap");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// NAP.register(&engine, |ctx: Context, secs: u64| async move { ctx.timer("t", Duration::from_secs(secs)).await })?;
    /// engine.start().await?;
    /// let nap = NAP.invoke(&engine, 3600).id("n-1").await?;
    /// nap.wait_idle().await?;
    /// nap.handle().cancel().await?;
    /// assert!(matches!(nap.handle().wait_output().await, Err(EngineError::Cancelled { .. })));
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self) -> Result<(), EngineError> {
        self.engine.cancel(self.workflow.name, &self.id).await
    }

    /// Runs the instance again from the top ([`Engine::resume`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, Workflow};
    ///
    /// static ECHO: Workflow<u8, u8> = Workflow::new("echo");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// ECHO.register(&engine, |_ctx: Context, n: u8| async move { Ok(n) })?;
    /// engine.start().await?;
    /// ECHO.invoke(&engine, 7).id("e").await?.output().await?;
    /// assert_eq!(ECHO.instance(&engine, "e").resume().await?.output().await?, 7);
    /// # Ok(()) }
    /// ```
    pub async fn resume(&self) -> Result<TypedInvocation<I, O>, EngineError> {
        let invocation = self.engine.resume(self.workflow.name, &self.id).await?;
        Ok(TypedInvocation {
            workflow: self.workflow,
            invocation,
        })
    }
}
