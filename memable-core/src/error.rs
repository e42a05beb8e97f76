//! The error types: [`EngineError`] (everything the engine reports, with
//! the instance's [`InstanceKey`] where one is involved), [`StorageError`]
//! with its [`StorageErrorKind`], [`InvalidKeyReason`] and the
//! [`StepError`] that step closures return.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{InstanceKey, StatusKind};

/// Errors originating from the engine itself.
///
/// Covers storage failures (mapped by each backend), serialization failures
/// (postcard), step execution failures propagated from user closures, and
/// invalid runtime input.
///
/// # Examples
///
/// ```
/// use memable_core::EngineError;
///
/// let err = EngineError::step_failed("my-step", "connection reset", false);
/// assert!(err.to_string().contains("my-step"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A storage operation failed; [`StorageError::kind`] says what the
    /// caller can do about it (retry, reopen, upgrade, restore).
    #[error("storage error: {0}")]
    Storage(StorageError),

    /// Serialization or deserialization of a step result failed.
    #[error("serialization error for step '{key}': {source}")]
    Serialization {
        /// The step key that failed.
        key: String,
        /// The underlying serialization error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A step closure returned an error.
    #[error("step '{key}' failed: {source}")]
    StepFailed {
        /// The step key that failed.
        key: String,
        /// The underlying error from the step closure.
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Whether the original error was marked as retryable.
        retryable: bool,
    },

    /// The engine has not been started.
    #[error("engine has not been started")]
    NotStarted,

    /// No workflow is registered under the given name.
    #[error("workflow '{0}' is not registered")]
    WorkflowNotFound(String),

    /// A step exceeded its configured timeout.
    #[error("step '{key}' timed out after {duration:?}")]
    StepTimeout {
        /// The step key that timed out.
        key: String,
        /// The timeout duration that was exceeded.
        duration: Duration,
    },

    /// A key component (workflow name, instance id, step key) is refused;
    /// `reason` says why.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{validate_user_key, EngineError, InvalidKeyReason};
    ///
    /// let err = validate_user_key("step_key", "_mine").unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     EngineError::InvalidKey { label: "step_key", reason: InvalidKeyReason::Reserved, .. }
    /// ));
    /// ```
    #[error("invalid key component ({label}) {}: {reason}", shown(value))]
    InvalidKey {
        /// Which component was invalid (`"workflow_name"`, `"instance_id"`, `"step_key"`).
        label: &'static str,
        /// The invalid value.
        value: String,
        /// Why it was refused.
        reason: InvalidKeyReason,
    },

    /// The stored payload type does not match the expected type.
    ///
    /// This occurs when [`Engine::signal`](crate::Engine::signal) delivers a
    /// payload of type `T` but the workflow's suspend point expects type `U`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::EngineError;
    ///
    /// let err = EngineError::TypeMismatch {
    ///     key: "approval:v1".into(),
    ///     expected: "i32".into(),
    ///     found: "alloc::string::String".into(),
    /// };
    /// assert!(err.to_string().contains("type mismatch"));
    /// ```
    #[error("type mismatch for step '{key}': expected `{expected}`, found `{found}`")]
    TypeMismatch {
        /// The step key where the mismatch occurred.
        key: String,
        /// The type name expected by the deserializing code.
        expected: String,
        /// The type name found in the stored envelope.
        found: String,
    },

    /// A signal was rejected because the target step is not suspended.
    #[error("signal rejected for step '{key}': {reason}")]
    SignalRejected {
        /// The step key the signal targeted.
        key: String,
        /// Why the signal was rejected.
        reason: String,
    },

    /// A signal was superseded because another caller already claimed the
    /// suspended step.
    ///
    /// This is distinct from [`SignalRejected`](EngineError::SignalRejected),
    /// which means the step was never suspended or does not exist.
    /// `SignalSuperseded` means the step *was* suspended but another signal
    /// or timer already claimed it.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::EngineError;
    ///
    /// let err = EngineError::SignalSuperseded {
    ///     key: "approval:v1".into(),
    /// };
    /// assert!(err.to_string().contains("superseded"));
    /// ```
    #[error("signal superseded for step '{key}': another caller already claimed it")]
    SignalSuperseded {
        /// The step key that was already claimed.
        key: String,
    },

    /// A regular step found a `Suspended` entry in the step table.
    ///
    /// This means the step key was previously used as a suspend or timer
    /// point, and the workflow code has since changed to use the same key
    /// for a regular step. The engine refuses to silently re-execute the
    /// step because it would bypass the original suspend gate.
    ///
    /// To resolve this, either:
    /// - Use a new step key (e.g. `"review:v2"`) in the updated workflow
    /// - Drain or signal suspended instances before deploying the change
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::EngineError;
    ///
    /// let err = EngineError::SuspendedStepConflict {
    ///     key: "approval:v1".into(),
    /// };
    /// assert!(err.to_string().contains("suspended entry"));
    /// ```
    #[error(
        "step '{key}' has a suspended entry but was called as a regular step \
         — the workflow code likely changed while an instance was suspended"
    )]
    SuspendedStepConflict {
        /// The step key with the conflicting entry.
        key: String,
    },

    /// All retry attempts for a step were exhausted.
    ///
    /// The step's last error is preserved as the [`source`](std::error::Error::source).
    /// The failed result is persisted as a dead-letter entry. Calling
    /// [`Engine::resume`](crate::Engine::resume) re-attempts the step with
    /// a fresh retry budget.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::EngineError;
    ///
    /// let err = EngineError::retries_exhausted("fetch:v1", 3, "connection refused");
    /// assert!(err.to_string().contains("3 attempts"));
    /// ```
    #[error("step '{key}' failed after {attempts} attempts: {source}")]
    RetriesExhausted {
        /// The step key that exhausted its retries.
        key: String,
        /// Total number of attempts (initial + retries).
        attempts: u32,
        /// The last error from the step closure.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An [at-most-once](crate::StepBuilder::at_most_once) step's attempt
    /// began but its outcome was never recorded (a crash, a kill, an abort
    /// or a timeout while the closure ran): its side effect may or may not
    /// have happened, so the step is not run again. Every later run gets
    /// this error at the step until someone decides: the workflow (it can
    /// catch the error, check the outside system and go on under another
    /// key), or an operator — [`Engine::forget`](crate::Engine::forget)
    /// drops the record so the step runs again on the next run;
    /// [`Engine::resume`](crate::Engine::resume) or `memable resume` retry it
    /// (counting the interrupted attempt).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::EngineError;
    ///
    /// let err = EngineError::Ambiguous { key: "charge".into(), attempt: 1 };
    /// assert!(err.to_string().contains("may or may not have run"));
    /// ```
    #[error(
        "step '{key}': attempt {attempt} began but its outcome was never recorded, so it may or may not have run; an at-most-once step is not run again: handle this error in the workflow, or forget or resume the step"
    )]
    Ambiguous {
        /// The step key.
        key: String,
        /// The interrupted attempt (1 for the first).
        attempt: u32,
    },

    /// The workflow suspended at a step, awaiting an external signal.
    #[error("workflow suspended at step '{key}'")]
    Suspended {
        /// The step key where the workflow suspended.
        key: String,
    },

    /// The engine has been stopped and refuses new work.
    #[error("engine has been stopped")]
    Stopped,

    /// No instance exists under this key.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Engine, EngineError, InstanceKey};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let engine = Engine::builder().build();
    /// let err = engine.output::<u8>("etl", "404").await.unwrap_err();
    /// assert!(matches!(err, EngineError::InstanceNotFound { key } if key == InstanceKey::new("etl", "404").unwrap()));
    /// # }
    /// ```
    #[error("no instance {key}")]
    InstanceNotFound {
        /// The instance.
        key: InstanceKey,
    },

    /// The instance was cancelled: its run stopped (its step futures were
    /// dropped) and nothing commits into it any more.
    #[error("instance {key} was cancelled")]
    Cancelled {
        /// The instance.
        key: InstanceKey,
    },

    /// Another engine runs on this store handle (or a clone of it): one
    /// store handle serves one engine at a time, so an instance never runs
    /// twice at once. Shut the other engine down (or drop it) first.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use memable_core::{Engine, EngineError, MemoryStore};
    ///
    /// let store = MemoryStore::new();
    /// let first = Engine::builder().store(store.clone()).build();
    /// first.start().await.unwrap();
    /// let second = Engine::builder().store(store).build();
    /// assert!(matches!(second.start().await, Err(EngineError::StoreInUse { .. })));
    /// # }
    /// ```
    #[error("the {store} store is in use by another engine; one store handle serves one engine")]
    StoreInUse {
        /// The store's name.
        store: &'static str,
    },

    /// A [`Context`](crate::Context) was used after its run ended (for
    /// example a clone moved into a spawned task that outlived the
    /// workflow): the step neither ran nor committed. Steps belong to the
    /// workflow's own future.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EngineError, InstanceKey};
    ///
    /// let err = EngineError::RunEnded { key: InstanceKey::new("etl", "1").unwrap() };
    /// assert!(err.to_string().contains("ended"));
    /// ```
    #[error(
        "the run of {key} has ended; a step cannot run or commit from a context that outlived it"
    )]
    RunEnded {
        /// The instance.
        key: InstanceKey,
    },

    /// The workflow finished with an error; `error` is its message, as
    /// stored with the instance.
    #[error("instance {key} failed: {error}")]
    WorkflowFailed {
        /// The instance.
        key: InstanceKey,
        /// The error the workflow returned, as text.
        error: String,
    },

    /// The workflow function panicked. The run's waiters get this variant;
    /// the instance is stored as failed with the panic message (so a later
    /// [`Engine::output`](crate::Engine::output) reports
    /// [`WorkflowFailed`](EngineError::WorkflowFailed)), and
    /// [`Engine::resume`](crate::Engine::resume) runs it again.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("oops", |_ctx: Context| async move {
    ///     if true { panic!("kaboom") }
    ///     Ok(())
    /// })?;
    /// engine.start().await?;
    /// let err = engine.invoke("oops").await?.wait_output::<()>().await.unwrap_err();
    /// assert!(matches!(err, EngineError::WorkflowPanicked { message, .. } if message == "kaboom"));
    /// # Ok(()) }
    /// ```
    #[error("instance {key} panicked: {message}")]
    WorkflowPanicked {
        /// The instance.
        key: InstanceKey,
        /// The panic payload, if it was a string.
        message: String,
    },

    /// The operation is not possible in the instance's current state
    /// (for example cancelling a completed instance).
    #[error("cannot {operation} instance {key}: it is {}", state.as_str())]
    InvalidState {
        /// What was attempted.
        operation: &'static str,
        /// The instance.
        key: InstanceKey,
        /// The state the instance is in.
        state: StatusKind,
    },

    /// The store says the instance is `Running`, but no run of it is in
    /// progress in this process: a crash (or a run whose end could not be
    /// recorded) left it. [`Engine::subscribe`](crate::Engine::subscribe)
    /// reports it, and [`Engine::state`](crate::Engine::state) does for a
    /// workflow not registered in the engine. [`Engine::resume`](crate::Engine::resume) runs it
    /// again; [`Engine::start`](crate::Engine::start) does so for every such
    /// instance unless `resume_on_start(false)`.
    #[error(
        "instance {key} is running in the store with no live run (left by a crash); call resume"
    )]
    StaleRunning {
        /// The instance.
        key: InstanceKey,
    },

    /// A workflow registered with
    /// [`Engine::register_with_error`](crate::Engine::register_with_error)
    /// returned its own error; `message` is that error's `Display`, and is
    /// the message the instance fails with (waiters get
    /// [`WorkflowFailed`](EngineError::WorkflowFailed)).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = memable_core::EngineError::Workflow { message: "out of stock".into() };
    /// assert_eq!(err.to_string(), "out of stock");
    /// ```
    #[error("{message}")]
    Workflow {
        /// The workflow error's message.
        message: String,
    },

    /// [`invoke(..).id(..)`](crate::InvokeBuilder::id) named an instance
    /// that already exists with another input (another type or value): an
    /// idempotent start never silently drops the new input. The stored
    /// instance is unchanged; use another id for another input.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("charge", |ctx: Context| async move { ctx.input::<u32>() })?;
    /// engine.start().await?;
    /// engine.invoke("charge").id("order-1").input(10u32).await?;
    /// let err = engine.invoke("charge").id("order-1").input(20u32).await.unwrap_err();
    /// assert!(matches!(err, EngineError::InputConflict { .. }));
    /// # Ok(()) }
    /// ```
    #[error("instance {key} already exists with another input")]
    InputConflict {
        /// The instance.
        key: InstanceKey,
    },

    /// A step key was used twice in one run while
    /// [`EngineBuilder::strict_keys`](crate::EngineBuilder::strict_keys) is on.
    #[error(
        "step key '{key}' was used twice in one run; loops need distinct keys such as format!(\"item:{{i}}\")"
    )]
    KeyReused {
        /// The reused key.
        key: String,
    },

    /// A child workflow awaited by [`Context::child`](crate::Context::child)
    /// (or one of a [`fan_out`](crate::Context::fan_out)) failed; `error` is
    /// the message it failed with.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError, Workflow};
    ///
    /// static FLAKY: Workflow<(), ()> = Workflow::new("flaky");
    /// static CALLER: Workflow<(), String> = Workflow::new("caller");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// FLAKY.register(&engine, |_ctx: Context, ()| async move {
    ///     Err(EngineError::Workflow { message: "no stock".into() })
    /// })?;
    /// CALLER.register(&engine, |ctx: Context, ()| async move {
    ///     match ctx.child(&FLAKY, "try", ()).await {
    ///         Err(EngineError::ChildFailed { error, .. }) => Ok(format!("child failed: {error}")),
    ///         other => other.map(|()| "ok".to_string()),
    ///     }
    /// })?;
    /// engine.start().await?;
    /// assert_eq!(CALLER.invoke(&engine, ()).await?.output().await?, "child failed: no stock");
    /// # Ok(()) }
    /// ```
    #[error("child workflow {child} (step '{key}') failed: {error}")]
    ChildFailed {
        /// The parent's step key for the child.
        key: String,
        /// The child instance.
        child: InstanceKey,
        /// The error the child failed with, as text.
        error: String,
    },

    /// A child workflow awaited by [`Context::child`](crate::Context::child)
    /// was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EngineError, InstanceKey};
    /// let err = EngineError::ChildCancelled { key: "pay".into(), child: InstanceKey::new("pay", "o:1:pay").unwrap() };
    /// assert!(err.to_string().contains("cancelled"));
    /// ```
    #[error("child workflow {child} (step '{key}') was cancelled")]
    ChildCancelled {
        /// The parent's step key for the child.
        key: String,
        /// The child instance.
        child: InstanceKey,
    },

    /// A child was started or awaited under a step key that holds something
    /// else: a record of kind `found` written by a step, point or timer
    /// (the code changed it into a child), or — `found` is
    /// [`Child`](crate::StepKind::Child) — a child started detached, which
    /// cannot be awaited. Nothing was written; use a new key.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EngineError, StepKind};
    /// let err = EngineError::ChildKeyConflict { key: "pay".into(), found: StepKind::Step };
    /// assert!(err.to_string().contains("pay"));
    /// ```
    #[error(
        "step key '{key}' holds a {found:?} record, not a child this run can await; use a new key"
    )]
    ChildKeyConflict {
        /// The step key.
        key: String,
        /// The kind of record it holds.
        found: crate::StepKind,
    },

    /// An invocation named a queue this engine did not declare
    /// ([`EngineBuilder::queue`](crate::EngineBuilder::queue)), or gave a
    /// partition, priority or dedup id without any queue (`queue` is empty
    /// then). Nothing was written.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("send", |_ctx: Context| async { Ok(()) })?;
    /// engine.start().await?;
    /// let err = engine.invoke("send").queue("nowhere").await.unwrap_err();
    /// assert!(matches!(err, EngineError::UnknownQueue { queue } if queue == "nowhere"));
    /// # Ok(()) }
    /// ```
    #[error("{}", if queue.is_empty() { "a partition, priority or dedup id needs a queue".to_owned() } else { format!("no queue named '{queue}' is declared on this engine") })]
    UnknownQueue {
        /// The queue named (empty: none was).
        queue: String,
    },

    /// An invocation through a queue with a dedup id that an instance
    /// still queued or running holds (`holder`). Nothing was written; the
    /// holder can be watched instead, or the id used again once it ends.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError, Queue, SuspendPoint};
    /// static GO: SuspendPoint<()> = SuspendPoint::new("go");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().queue(Queue::new("sync")).build();
    /// engine.register("sync", |ctx: Context| async move { ctx.suspend(&GO).await })?;
    /// engine.start().await?;
    /// engine.invoke("sync").queue("sync").dedup_id("account-9").await?;
    /// let again = engine.invoke("sync").queue("sync").dedup_id("account-9").await;
    /// assert!(matches!(again, Err(EngineError::Duplicate { .. })));
    /// # Ok(()) }
    /// ```
    #[error("instance {holder} holds dedup id '{dedup}' in queue '{queue}' until it ends")]
    Duplicate {
        /// The queue.
        queue: String,
        /// The dedup id.
        dedup: String,
        /// The active instance that holds it.
        holder: InstanceKey,
    },

    /// This worker's run no longer owns the instance: another worker
    /// acquired it (this one was paused or cut off past its lease), so the
    /// write was refused and nothing of it landed. The run stops; the
    /// instance goes on under its new owner.
    #[error("instance {key} is owned by another worker now (this run's epoch {epoch} is stale)")]
    LostOwnership {
        /// The instance.
        key: InstanceKey,
        /// The epoch this run acquired.
        epoch: u64,
    },

    /// [`Engine::fork`](crate::Engine::fork) named a new id under which an
    /// instance already exists; nothing was written.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EngineError, InstanceKey};
    /// let err = EngineError::InstanceExists { key: InstanceKey::new("etl", "1").unwrap() };
    /// assert!(err.to_string().contains("already exists"));
    /// ```
    #[error("instance {key} already exists")]
    InstanceExists {
        /// The instance.
        key: InstanceKey,
    },
}

impl EngineError {
    /// Creates a [`StepFailed`](EngineError::StepFailed) error.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::EngineError;
    ///
    /// let err = EngineError::step_failed("my-step", "boom", false);
    /// assert!(matches!(err, EngineError::StepFailed { .. }));
    /// ```
    pub fn step_failed(
        key: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
        retryable: bool,
    ) -> Self {
        Self::StepFailed {
            key: key.into(),
            source: source.into(),
            retryable,
        }
    }

    /// Creates a [`RetriesExhausted`](EngineError::RetriesExhausted) error.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::EngineError;
    ///
    /// let err = EngineError::retries_exhausted("fetch:v1", 3, "timeout");
    /// assert!(matches!(err, EngineError::RetriesExhausted { .. }));
    /// ```
    pub fn retries_exhausted(
        key: impl Into<String>,
        attempts: u32,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::RetriesExhausted {
            key: key.into(),
            attempts,
            source: source.into(),
        }
    }

    /// Wraps a backend error as [`Storage`](EngineError::Storage), naming
    /// the store operation that failed. The kind is
    /// [`StorageErrorKind::Io`] when `source` is an [`std::io::Error`],
    /// [`StorageErrorKind::Other`] otherwise; use [`StorageError::new`] to
    /// name another kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EngineError, StorageErrorKind};
    ///
    /// let io = std::io::Error::other("disk full");
    /// let err = EngineError::storage("commit_step", io);
    /// assert_eq!(err.storage_kind(), Some(StorageErrorKind::Io));
    /// ```
    pub fn storage(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = source.into();
        let kind = if source.is::<std::io::Error>() {
            StorageErrorKind::Io
        } else {
            StorageErrorKind::Other
        };
        Self::Storage(StorageError::new(kind, operation, source))
    }

    /// The instance the error is about, for the variants that name one.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EngineError, InstanceKey};
    ///
    /// let key = InstanceKey::new("etl", "1").unwrap();
    /// assert_eq!(EngineError::Cancelled { key: key.clone() }.instance(), Some(&key));
    /// assert_eq!(EngineError::NotStarted.instance(), None);
    /// ```
    #[must_use]
    pub fn instance(&self) -> Option<&InstanceKey> {
        match self {
            Self::InstanceNotFound { key }
            | Self::Cancelled { key }
            | Self::RunEnded { key }
            | Self::WorkflowFailed { key, .. }
            | Self::WorkflowPanicked { key, .. }
            | Self::InvalidState { key, .. }
            | Self::StaleRunning { key }
            | Self::LostOwnership { key, .. }
            | Self::InputConflict { key } => Some(key),
            _ => None,
        }
    }

    /// The kind of a [`Storage`](EngineError::Storage) error; `None` for
    /// every other variant.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EngineError, StorageError, StorageErrorKind};
    ///
    /// let err: EngineError = StorageError::new(StorageErrorKind::Locked, "open", "held by pid 7").into();
    /// assert_eq!(err.storage_kind(), Some(StorageErrorKind::Locked));
    /// assert_eq!(EngineError::NotStarted.storage_kind(), None);
    /// ```
    #[must_use]
    pub fn storage_kind(&self) -> Option<StorageErrorKind> {
        match self {
            Self::Storage(e) => Some(e.kind()),
            _ => None,
        }
    }

    /// Returns `true` for [`Suspended`](EngineError::Suspended): the workflow
    /// is waiting for a signal or timer, not failing.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::EngineError;
    ///
    /// assert!(EngineError::Suspended { key: "approval".into() }.is_suspended());
    /// assert!(!EngineError::NotStarted.is_suspended());
    /// ```
    #[must_use]
    pub fn is_suspended(&self) -> bool {
        matches!(self, Self::Suspended { .. })
    }

    /// Returns `true` for [`Storage`](EngineError::Storage) errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::EngineError;
    ///
    /// assert!(EngineError::storage("load", "io").is_storage());
    /// ```
    #[must_use]
    pub fn is_storage(&self) -> bool {
        matches!(self, Self::Storage(_))
    }
}

/// What went wrong in a storage failure, so a caller can tell "retry"
/// from "reopen" from "upgrade" without reading the message.
///
/// # Examples
///
/// ```
/// use memable_core::{EngineError, StorageErrorKind};
///
/// fn advice(err: &EngineError) -> &'static str {
///     match err.storage_kind() {
///         Some(StorageErrorKind::Io) => "retry later",
///         Some(StorageErrorKind::Poisoned | StorageErrorKind::Closed) => "reopen the store",
///         Some(StorageErrorKind::NewerFormat) => "upgrade memable",
///         Some(_) => "see the message",
///         None => "not a storage error",
///     }
/// }
/// assert_eq!(advice(&EngineError::storage("load", std::io::Error::other("EIO"))), "retry later");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// An I/O or database call failed (disk full, a lost connection, a
    /// busy database): nothing was written, and a retry may succeed.
    Io,
    /// The store's files hold damaged data (a bad checksum, a record that
    /// does not decode, a damaged journal record followed by intact ones):
    /// restore from a backup.
    Corrupt,
    /// The file or database is not a memable store of this backend (another
    /// application's database, the other backend's file, garbage).
    NotMemable,
    /// The store was written by a newer memable: upgrade before opening it.
    NewerFormat,
    /// Another store (in this process or another) holds the file.
    Locked,
    /// Acknowledged work would be missing if the store opened (a journal
    /// missing, emptied or cut while the database says it holds
    /// unpublished work; a partial copy): restore the missing file, or
    /// follow the message to open with what is there.
    Incomplete,
    /// An earlier failure left the database and its journal possibly
    /// disagreeing: the store refuses writes until it is reopened, which
    /// recovers from the journal.
    Poisoned,
    /// The store is closed or its writer has stopped.
    Closed,
    /// The store was asked something it cannot do (a bad path, an option
    /// it does not support).
    Unsupported,
    /// Anything else a backend reports.
    Other,
}

impl StorageErrorKind {
    /// A short lowercase name, for messages and logs.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_core::StorageErrorKind::NewerFormat.as_str(), "newer format");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Io => "i/o",
            Self::Corrupt => "corrupt",
            Self::NotMemable => "not a memable store",
            Self::NewerFormat => "newer format",
            Self::Locked => "locked",
            Self::Incomplete => "incomplete",
            Self::Poisoned => "poisoned",
            Self::Closed => "closed",
            Self::Unsupported => "unsupported",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A storage failure: its [kind](StorageErrorKind), the store operation
/// that hit it, and the backend's error as its source.
///
/// It is the payload of [`EngineError::Storage`].
///
/// # Examples
///
/// ```
/// use memable_core::{EngineError, StorageError, StorageErrorKind};
///
/// let err: EngineError = StorageError::new(StorageErrorKind::Corrupt, "load_instance", "checksum mismatch").into();
/// let EngineError::Storage(storage) = &err else { unreachable!() };
/// assert_eq!(storage.operation(), "load_instance");
/// assert_eq!(storage.kind(), StorageErrorKind::Corrupt);
/// ```
///
/// Clones share the source, so one failure can be reported to every waiter
/// of a run.
#[derive(Clone, Debug)]
pub struct StorageError {
    kind: StorageErrorKind,
    operation: &'static str,
    source: Arc<dyn std::error::Error + Send + Sync>,
}

impl StorageError {
    /// A storage error of `kind` in `operation`, caused by `source`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{StorageError, StorageErrorKind};
    /// let err = StorageError::new(StorageErrorKind::Closed, "commit_step", "the store is closed");
    /// assert_eq!(err.to_string(), "commit_step: the store is closed");
    /// ```
    pub fn new(
        kind: StorageErrorKind,
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            operation,
            source: Arc::from(source.into()),
        }
    }

    /// What went wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{StorageError, StorageErrorKind};
    /// assert_eq!(StorageError::new(StorageErrorKind::Locked, "open", "busy").kind(), StorageErrorKind::Locked);
    /// ```
    #[must_use]
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// The store operation that failed (for example `"commit_step"`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EngineError, StorageError};
    ///
    /// let EngineError::Storage(e) = EngineError::storage("open", "locked") else { unreachable!() };
    /// assert_eq!(e.operation(), "open");
    /// ```
    #[must_use]
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The same error with another kind (a backend that learns more about a
    /// failure after wrapping it).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{StorageError, StorageErrorKind};
    /// let err = StorageError::new(StorageErrorKind::Other, "open", "bad magic").with_kind(StorageErrorKind::NotMemable);
    /// assert_eq!(err.kind(), StorageErrorKind::NotMemable);
    /// ```
    #[must_use]
    pub fn with_kind(mut self, kind: StorageErrorKind) -> Self {
        self.kind = kind;
        self
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.operation, self.source)
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Wraps a [`StorageError`] as [`EngineError::Storage`].
///
/// # Examples
///
/// ```
/// use memable_core::{EngineError, StorageError, StorageErrorKind};
/// let err: EngineError = StorageError::new(StorageErrorKind::Io, "open", "EIO").into();
/// assert!(err.is_storage());
/// ```
impl From<StorageError> for EngineError {
    fn from(err: StorageError) -> Self {
        Self::Storage(err)
    }
}

/// Error returned by step closures.
///
/// The variant communicates retry intent to the engine:
/// - [`Retryable`](StepError::Retryable) — transient failure that the engine
///   will retry according to the step's [`RetryPolicy`](crate::RetryPolicy).
/// - [`Permanent`](StepError::Permanent) — unrecoverable failure, propagated
///   immediately without retrying.
///
/// Any [`std::error::Error`]` + Send + Sync + 'static` converts into a
/// [`Retryable`](StepError::Retryable) one, so `?` works inside a step
/// closure on `io::Error`, `ParseIntError` and the like; mark a failure
/// that retrying cannot fix with [`StepError::permanent`].
///
/// Because of that conversion `StepError` is not itself a
/// [`std::error::Error`] (it would convert into itself); it is `Display`
/// and `Debug`, and [`source`](StepError::source) gives the wrapped error.
///
/// # Examples
///
/// ```
/// use memable_core::StepError;
///
/// let err = StepError::permanent("invalid input");
/// assert!(err.to_string().contains("permanent"));
///
/// fn parse(s: &str) -> Result<u32, StepError> {
///     Ok(s.parse::<u32>()?) // a ParseIntError: retryable
/// }
/// assert!(matches!(parse("x"), Err(StepError::Retryable(_))));
/// ```
#[derive(Debug)]
pub enum StepError {
    /// A transient failure that may succeed on retry.
    Retryable(Box<dyn std::error::Error + Send + Sync>),
    /// An unrecoverable failure.
    Permanent(Box<dyn std::error::Error + Send + Sync>),
}

impl StepError {
    /// Creates a [`Retryable`](StepError::Retryable) error.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::StepError;
    ///
    /// let err = StepError::retryable("timeout");
    /// assert!(matches!(err, StepError::Retryable(_)));
    /// ```
    pub fn retryable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Retryable(source.into())
    }

    /// Creates a [`Permanent`](StepError::Permanent) error.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::StepError;
    ///
    /// let err = StepError::permanent("bad input");
    /// assert!(matches!(err, StepError::Permanent(_)));
    /// ```
    pub fn permanent(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Permanent(source.into())
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable(e) => write!(f, "retryable: {e}"),
            Self::Permanent(e) => write!(f, "permanent: {e}"),
        }
    }
}

impl StepError {
    /// The wrapped error.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = memable_core::StepError::retryable("503");
    /// assert_eq!(err.source().to_string(), "503");
    /// ```
    #[must_use]
    pub fn source(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        match self {
            Self::Retryable(e) | Self::Permanent(e) => e.as_ref(),
        }
    }
}

/// Any error converts into a [`Retryable`](StepError::Retryable) step error,
/// for `?` in step closures.
///
/// # Examples
///
/// ```
/// use memable_core::StepError;
/// let err: StepError = std::io::Error::other("connection reset").into();
/// assert!(matches!(err, StepError::Retryable(_)));
/// ```
impl<E: std::error::Error + Send + Sync + 'static> From<E> for StepError {
    fn from(error: E) -> Self {
        Self::Retryable(Box::new(error))
    }
}

/// Why a key component was refused ([`EngineError::InvalidKey`]).
///
/// # Examples
///
/// ```
/// use memable_core::{validate_key, EngineError, InvalidKeyReason, MAX_KEY_LEN};
///
/// let long = "k".repeat(MAX_KEY_LEN + 1);
/// let Err(EngineError::InvalidKey { reason, .. }) = validate_key("step_key", &long) else { unreachable!() };
/// assert_eq!(reason, InvalidKeyReason::TooLong { len: MAX_KEY_LEN + 1, max: MAX_KEY_LEN });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidKeyReason {
    /// The component is empty.
    Empty,
    /// The component contains `/`, the delimiter of stored keys.
    ContainsSlash,
    /// The component starts with `_`, which is reserved for the engine
    /// (`_input`, `_output`).
    Reserved,
    /// The component is longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
}

impl fmt::Display for InvalidKeyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("must not be empty"),
            Self::ContainsSlash => f.write_str("must not contain '/'"),
            Self::Reserved => f.write_str("starts with '_', which is reserved for the engine"),
            Self::TooLong { len, max } => {
                write!(f, "{len} bytes exceeds the limit of {max} bytes")
            }
        }
    }
}

/// A key value for a message: quoted, and cut after 64 characters.
fn shown(value: &str) -> String {
    const SHOWN: usize = 64;
    match value.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("'{}…'", &value[..cut]),
        None => format!("'{value}'"),
    }
}
