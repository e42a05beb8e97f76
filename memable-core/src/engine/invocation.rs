//! Starting an instance ([`InvokeBuilder`]) and following it ([`Invocation`]).

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::Engine;
use super::live::{LiveInstance, RunEnd, RunRequest};
use super::telemetry::RunReason;
use crate::key::{INPUT_KEY, OUTPUT_KEY};
use crate::{
    EngineError, InstanceKey, MetadataStatus, StartOutcome, StatusStream, StepKind, StepRecord,
    StepStoreExt, StorageError, WorkflowState, decode_record, encode_value, type_tag, validate_key,
    validate_user_key,
};
use crate::{EnqueueOutcome, QueueTicket};

/// Builds an invocation of a workflow: optional instance id and input.
/// Await it (or call [`start`](Self::start)) to start the instance.
///
/// **Idempotent ids:** with [`id`](Self::id), starting an id that already
/// exists never starts it twice. With the same input (same type, same
/// value) as the stored one, the existing instance's [`Invocation`] is
/// returned ([`Invocation::is_new`] is `false`); with a different input the
/// start fails with [`EngineError::InputConflict`] — the stored instance is
/// not touched. If that instance is `Running` in the store with no run in
/// this process (a crash left it), it is run again.
/// Without an id, a fresh time-ordered id (UUID v7) is generated.
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, EngineError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// engine.register("greet", |ctx: Context| async move {
///     let name: String = ctx.input()?;
///     Ok(format!("hello {name}"))
/// })?;
/// engine.start().await?;
/// let first = engine.invoke("greet").id("order-42").input("ada".to_string()).await?;
/// let again = engine.invoke("greet").id("order-42").input("ada".to_string()).await?;
/// assert!(first.is_new() && !again.is_new());
/// assert_eq!(again.wait_output::<String>().await?, "hello ada");
/// let other = engine.invoke("greet").id("order-42").input("bob".to_string()).await;
/// assert!(matches!(other, Err(EngineError::InputConflict { .. })));
/// # Ok(()) }
/// ```
#[must_use = "an invocation does nothing until it is awaited"]
pub struct InvokeBuilder {
    engine: Engine,
    workflow: String,
    id: Option<String>,
    input: Result<StepRecord, EngineError>,
    queue: Option<String>,
    partition: Option<String>,
    priority: Option<u8>,
    dedup: Option<String>,
}

impl InvokeBuilder {
    pub(super) fn new(engine: Engine, workflow: &str) -> Self {
        Self {
            engine,
            workflow: workflow.to_owned(),
            id: None,
            input: encode_input(&()),
            queue: None,
            partition: None,
            priority: None,
            dedup: None,
        }
    }

    /// Goes through the queue `name` (declared with
    /// [`EngineBuilder::queue`](crate::EngineBuilder::queue)) instead of the
    /// workflow's default queue, if any: the instance is created queued
    /// ([`WorkflowState::Queued`]) and runs once the queue admits it.
    ///
    /// # Examples
    ///
    /// See [`Queue`](crate::Queue).
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = Some(name.into());
        self
    }

    /// The partition key in its queue: at most the queue's
    /// [`per_partition`](crate::Queue::per_partition) instances with one
    /// key hold a slot at once.
    ///
    /// # Examples
    ///
    /// See [`Queue`](crate::Queue).
    pub fn partition(mut self, key: impl Into<String>) -> Self {
        self.partition = Some(key.into());
        self
    }

    /// The priority in its queue: higher is admitted first (default 0);
    /// equal priorities go first come, first served.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, Queue};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().queue(Queue::new("jobs").default_for("job")).build();
    /// engine.register("job", |_ctx: Context| async { Ok(()) })?;
    /// engine.start().await?;
    /// engine.invoke("job").priority(9).await?.wait_output::<()>().await?;
    /// # Ok(()) }
    /// ```
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// A dedup id in its queue: while an instance with this id is queued
    /// or holds a slot, another invocation with it fails with
    /// [`Duplicate`](EngineError::Duplicate).
    ///
    /// # Examples
    ///
    /// See [`EngineError::Duplicate`].
    pub fn dedup_id(mut self, id: impl Into<String>) -> Self {
        self.dedup = Some(id.into());
        self
    }

    /// Uses `id` as the instance id instead of a generated one.
    ///
    /// # Examples
    ///
    /// See [`InvokeBuilder`].
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The instance's input, read in the workflow with
    /// [`Context::input`](crate::Context::input). It is stored with the
    /// instance and survives resume, signals and recovery.
    ///
    /// # Examples
    ///
    /// See [`InvokeBuilder`].
    pub fn input<T: Serialize + 'static>(mut self, input: T) -> Self {
        self.input = encode_input(&input);
        self
    }

    /// Enqueues the instance in `queue`: its [`Invocation`] if it was
    /// created, else the start outcome of the existing one.
    async fn enqueue(
        engine: &Engine,
        key: InstanceKey,
        input: StepRecord,
        ticket: QueueTicket,
        now: u64,
    ) -> Result<Result<Invocation, StartOutcome>, EngineError> {
        let inner = &engine.inner;
        inner.queues.check(&ticket.queue)?;
        let (queue, dedup) = (ticket.queue.clone(), ticket.dedup.clone());
        // Watched before it exists: an admission already under way (kicked
        // by another invocation) may run it to its end as soon as the
        // enqueue commits, and its states must reach this handle.
        let (guard, rx) = inner.live.subscribe(&key, || WorkflowState::Queued {
            queue: queue.clone(),
        });
        match inner.store.enqueue(key.clone(), input, ticket, now).await? {
            EnqueueOutcome::Enqueued => {
                inner.queues.kick(inner, &queue);
                Ok(Ok(Invocation {
                    engine: engine.clone(),
                    key,
                    stream: StatusStream::new(guard, rx),
                    created: true,
                }))
            }
            EnqueueOutcome::Duplicate(holder) => Err(EngineError::Duplicate {
                queue,
                dedup: dedup.unwrap_or_default(),
                holder,
            }),
            EnqueueOutcome::Exists(meta) => Ok(Err(StartOutcome::Exists(meta))),
        }
    }

    /// Starts the instance (or finds the existing one with this id).
    ///
    /// Errors: [`InputConflict`](EngineError::InputConflict) when an
    /// instance with this id exists with another input;
    /// [`NotStarted`](EngineError::NotStarted),
    /// [`WorkflowNotFound`](EngineError::WorkflowNotFound), key errors,
    /// storage errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let engine = Engine::builder().build();
    /// engine.register("noop", |_ctx: Context| async { Ok(()) }).unwrap();
    /// assert!(matches!(engine.invoke("noop").start().await, Err(EngineError::NotStarted)));
    /// # }
    /// ```
    pub async fn start(self) -> Result<Invocation, EngineError> {
        let inner = &self.engine.inner;
        inner.ensure_started()?;
        validate_user_key("workflow_name", &self.workflow)?;
        if !inner.worker.shared {
            // On a shared store any worker that has it registered runs it.
            inner.registry.ensure(&self.workflow)?;
        }
        let id = match self.id {
            Some(id) => {
                validate_key("instance_id", &id)?;
                id
            }
            None => uuid::Uuid::now_v7().to_string(),
        };
        let key = InstanceKey::new(&self.workflow, &id)?;
        let input = self.input?;
        let given = (input.type_tag.clone(), input.value.clone());
        let now = inner.clock.now_ms();
        let queue = self
            .queue
            .clone()
            .or_else(|| inner.queues.default_for(&self.workflow).map(str::to_owned));
        let started = match queue {
            Some(queue) => {
                let ticket = QueueTicket {
                    queue,
                    partition: self.partition,
                    priority: self.priority.unwrap_or(0),
                    dedup: self.dedup,
                    pending_key: None,
                    held: Vec::new(),
                };
                match Self::enqueue(&self.engine, key.clone(), input, ticket, now).await? {
                    Ok(invocation) => return Ok(invocation),
                    Err(exists) => exists,
                }
            }
            None if self.partition.is_some() || self.priority.is_some() || self.dedup.is_some() => {
                return Err(EngineError::UnknownQueue {
                    queue: String::new(),
                });
            }
            None => inner.store.start_instance(key.clone(), input, now).await?,
        };
        match started {
            StartOutcome::Started if inner.registry.get(key.workflow()).is_none() => {
                // A shared store: pending work for a worker that has the
                // workflow; this handle watches it.
                let (guard, rx) = inner
                    .live
                    .subscribe(&key, || WorkflowState::Running { status: None });
                Ok(Invocation {
                    engine: self.engine.clone(),
                    key,
                    stream: StatusStream::new(guard, rx),
                    created: true,
                })
            }
            StartOutcome::Started => {
                let (entry, rx) =
                    inner.trigger_run_from(&key, RunRequest::default(), RunReason::Start);
                Ok(Invocation::for_entry(&self.engine, key, entry, rx, true))
            }
            StartOutcome::Exists(_)
                if inner
                    .store
                    .get_step(&key, INPUT_KEY)
                    .await?
                    .is_some_and(|stored| (stored.type_tag, stored.value) != given) =>
            {
                Err(EngineError::InputConflict { key })
            }
            StartOutcome::Exists(meta)
                if meta.status == MetadataStatus::Running
                    && !inner.live.is_active(&key)
                    && inner.registry.get(key.workflow()).is_some() =>
            {
                // Running in the store with no run in this process: a crash
                // (or a start whose acknowledgement was lost) left it. Run it.
                let (entry, rx) =
                    inner.trigger_run_from(&key, RunRequest::default(), RunReason::Recovery);
                Ok(Invocation::for_entry(&self.engine, key, entry, rx, false))
            }
            StartOutcome::Exists(meta) => {
                let (guard, rx) = inner
                    .live
                    .subscribe(&key, || WorkflowState::from(&meta.status));
                Ok(Invocation {
                    engine: self.engine.clone(),
                    key,
                    stream: StatusStream::new(guard, rx),
                    created: false,
                })
            }
        }
    }
}

fn encode_input<T: Serialize + 'static>(input: &T) -> Result<StepRecord, EngineError> {
    Ok(StepRecord::completed(
        StepKind::Engine,
        type_tag::<T>(),
        encode_value(INPUT_KEY, input)?,
        None,
    ))
}

impl IntoFuture for InvokeBuilder {
    type Output = Result<Invocation, EngineError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}

/// A handle on one instance: its id, its live state, and its end.
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, WorkflowState};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// engine.register("noop", |_ctx: Context| async { Ok(()) })?;
/// engine.start().await?;
/// let run = engine.invoke("noop").id("n1").await?;
/// assert_eq!(run.instance_id(), "n1");
/// assert_eq!(run.wait_idle().await?, WorkflowState::Completed { status: None });
/// # Ok(()) }
/// ```
pub struct Invocation {
    pub(super) engine: Engine,
    key: InstanceKey,
    stream: StatusStream,
    created: bool,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("instance", &self.key)
            .field("state", &self.stream.current())
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

impl Invocation {
    pub(super) fn from_stream(engine: &Engine, key: InstanceKey, stream: StatusStream) -> Self {
        Self {
            engine: engine.clone(),
            key,
            stream,
            created: false,
        }
    }

    pub(super) fn for_entry(
        engine: &Engine,
        key: InstanceKey,
        entry: Arc<LiveInstance>,
        rx: watch::Receiver<WorkflowState>,
        created: bool,
    ) -> Self {
        let guard = engine.inner.live.guard_for(&key, entry);
        Self {
            engine: engine.clone(),
            key,
            stream: StatusStream::new(guard, rx),
            created,
        }
    }

    /// The instance id.
    ///
    /// # Examples
    ///
    /// See [`Invocation`].
    #[must_use]
    pub fn instance_id(&self) -> &str {
        self.key.instance()
    }

    /// The workflow name.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("noop", |_ctx: Context| async { Ok(()) })?;
    /// engine.start().await?;
    /// assert_eq!(engine.invoke("noop").await?.workflow_name(), "noop");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn workflow_name(&self) -> &str {
        self.key.workflow()
    }

    /// `true` if this call started the instance, `false` if an instance with
    /// this id already existed.
    ///
    /// # Examples
    ///
    /// See [`InvokeBuilder`].
    #[must_use]
    pub fn is_new(&self) -> bool {
        self.created
    }

    /// The current live state, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("noop", |_ctx: Context| async { Ok(()) })?;
    /// engine.start().await?;
    /// let run = engine.invoke("noop").await?;
    /// run.wait_idle().await?;
    /// assert!(run.status().is_terminal());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn status(&self) -> WorkflowState {
        self.stream.current()
    }

    /// Waits until the instance is finished — completed, failed or
    /// cancelled — across every suspension, timer, signal and new run on
    /// the way, and returns that state. A run whose end could not be
    /// recorded ends the wait with [`WorkflowState::OutcomeUnknown`].
    ///
    /// Errors: [`Stopped`](EngineError::Stopped) if the engine stops while
    /// the instance waits (it would never be woken in this process).
    ///
    /// # Examples
    ///
    /// See [`Invocation`].
    pub async fn wait(&self) -> Result<WorkflowState, EngineError> {
        let mut stopped = self.engine.inner.stopped.subscribe();
        tokio::select! {
            biased;
            state = self.stream.terminal() => Ok(state),
            state = async {
                // The sender lives in the engine this handle holds.
                let _ = stopped.wait_for(|stopped| *stopped).await;
                self.stream.idle().await
            } => {
                if state.is_terminal() || matches!(state, WorkflowState::OutcomeUnknown { .. }) {
                    Ok(state)
                } else {
                    Err(EngineError::Stopped)
                }
            }
        }
    }

    /// Waits until no run of the instance is in progress in this process
    /// — it finished, or it waits at a point or a timer — and returns that
    /// state. Use it to drive a workflow to its next suspension in a test
    /// or a tool; [`wait`](Self::wait) waits until it is finished.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, SuspendPoint, WorkflowState};
    ///
    /// static GO: SuspendPoint<()> = SuspendPoint::new("go");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("gate", |ctx: Context| async move { ctx.suspend(&GO).await })?;
    /// engine.start().await?;
    /// let run = engine.invoke("gate").id("g").await?;
    /// assert!(matches!(run.wait_idle().await?, WorkflowState::Suspended { .. }));
    /// # Ok(()) }
    /// ```
    pub async fn wait_idle(&self) -> Result<WorkflowState, EngineError> {
        Ok(self.stream.idle().await)
    }

    /// Waits until the instance is finished (like [`wait`](Self::wait):
    /// across suspensions, timers and signals) and returns its output as `O`.
    ///
    /// Errors: [`WorkflowFailed`](EngineError::WorkflowFailed),
    /// [`WorkflowPanicked`](EngineError::WorkflowPanicked),
    /// [`Cancelled`](EngineError::Cancelled),
    /// [`Stopped`](EngineError::Stopped) if the engine stops first,
    /// [`TypeMismatch`](EngineError::TypeMismatch) for a wrong `O`, and
    /// [`Storage`](EngineError::Storage) when the run ended but the store
    /// failed to record how (the outcome is unknown; the instance runs again
    /// on the next start, resume or invoke of its id).
    ///
    /// # Examples
    ///
    /// See [`Engine`].
    pub async fn wait_output<O: DeserializeOwned + 'static>(self) -> Result<O, EngineError> {
        let state = self.wait().await?;
        // A run that ended while this handle watched left what it knows
        // beyond its state in the live entry: no store read needed.
        let end = self.stream.run_end();
        match (state, end) {
            (WorkflowState::Suspended { key, .. }, _) => Err(EngineError::Suspended { key }),
            (WorkflowState::Failed { .. }, Some(RunEnd::Panicked(message))) => {
                Err(EngineError::WorkflowPanicked {
                    key: self.key,
                    message,
                })
            }
            (WorkflowState::Failed { error }, _) => Err(EngineError::WorkflowFailed {
                key: self.key,
                error,
            }),
            (WorkflowState::OutcomeUnknown { .. }, Some(RunEnd::Unrecorded(error))) => {
                Err(EngineError::Storage(error))
            }
            (WorkflowState::OutcomeUnknown { kind, error }, _) => {
                Err(StorageError::new(kind, "wait_output", error).into())
            }
            (WorkflowState::Completed { .. }, Some(RunEnd::Completed(output))) => {
                decode_record(OUTPUT_KEY, &output)
            }
            _ => {
                self.engine
                    .output(self.key.workflow(), self.key.instance())
                    .await
            }
        }
    }

    /// Turns the handle into a [`StatusStream`] of its states.
    ///
    /// # Examples
    ///
    /// See [`StatusStream`].
    #[must_use]
    pub fn into_stream(self) -> StatusStream {
        self.stream
    }

    /// Splits the handle into its instance id and its [`StatusStream`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("noop", |_ctx: Context| async { Ok(()) })?;
    /// engine.start().await?;
    /// let (id, mut states) = engine.invoke("noop").id("x").await?.into_parts();
    /// assert_eq!(id, "x");
    /// while states.next().await.is_some() {}
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn into_parts(self) -> (String, StatusStream) {
        (self.key.instance().to_owned(), self.stream)
    }
}
