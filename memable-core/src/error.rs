use std::fmt;
use std::time::Duration;

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

    /// A key component contains the `/` delimiter.
    #[error("invalid key component ({label}): '{value}' must not contain '/'")]
    InvalidKey {
        /// Which component was invalid (e.g. `"workflow_name"`, `"instance_id"`, `"step_key"`).
        label: &'static str,
        /// The invalid value.
        value: String,
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

    /// The workflow suspended at a step, awaiting an external signal.
    #[error("workflow suspended at step '{key}'")]
    Suspended {
        /// The step key where the workflow suspended.
        key: String,
    },

    /// A key component is empty.
    #[error("invalid key component ({label}): must not be empty")]
    EmptyKey {
        /// Which component was empty.
        label: &'static str,
    },

    /// A key component starts with `_`, which is reserved for the engine
    /// (`_input`, `_output`).
    #[error(
        "invalid key component ({label}): '{value}' starts with '_', which is reserved for the engine"
    )]
    ReservedKey {
        /// Which component was invalid.
        label: &'static str,
        /// The invalid value.
        value: String,
    },

    /// A key component is longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes.
    #[error("invalid key component ({label}): {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLong {
        /// Which component was too long.
        label: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// The engine has been stopped and refuses new work.
    #[error("engine has been stopped")]
    Stopped,

    /// No instance exists under this workflow name and instance id.
    #[error("no instance found for workflow '{workflow_name}' with id '{instance_id}'")]
    InstanceNotFound {
        /// The workflow name.
        workflow_name: String,
        /// The instance id.
        instance_id: String,
    },

    /// The instance was cancelled; its run stopped at a step boundary.
    #[error("instance '{instance_id}' of workflow '{workflow_name}' was cancelled")]
    Cancelled {
        /// The workflow name.
        workflow_name: String,
        /// The instance id.
        instance_id: String,
    },

    /// The workflow finished with an error; `error` is its message.
    #[error("instance '{instance_id}' of workflow '{workflow_name}' failed: {error}")]
    WorkflowFailed {
        /// The workflow name.
        workflow_name: String,
        /// The instance id.
        instance_id: String,
        /// The error the workflow returned, as text.
        error: String,
    },

    /// The operation is not possible in the instance's current state
    /// (for example cancelling a completed instance).
    #[error(
        "cannot {operation} instance '{instance_id}' of workflow '{workflow_name}': it is {state}"
    )]
    InvalidState {
        /// What was attempted.
        operation: &'static str,
        /// The workflow name.
        workflow_name: String,
        /// The instance id.
        instance_id: String,
        /// The state the instance is in.
        state: String,
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
        Self::Storage(StorageError {
            kind,
            operation,
            source,
        })
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
#[derive(Debug)]
pub struct StorageError {
    kind: StorageErrorKind,
    operation: &'static str,
    source: Box<dyn std::error::Error + Send + Sync>,
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
            source: source.into(),
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

/// Error returned by [`Engine::subscribe`](crate::Engine::subscribe).
///
/// Distinguishes between an instance that never existed and one that has
/// stale `Running` metadata from a crash (no live task backing it).
///
/// # Examples
///
/// ```
/// use memable_core::SubscribeError;
///
/// let err = SubscribeError::NotFound {
///     workflow_name: "etl".into(),
///     instance_id: "run-42".into(),
/// };
/// assert!(err.to_string().contains("etl"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// No instance with this workflow name and ID exists.
    #[error("no instance found for workflow '{workflow_name}' with id '{instance_id}'")]
    NotFound {
        /// The workflow name that was queried.
        workflow_name: String,
        /// The instance ID that was queried.
        instance_id: String,
    },

    /// The instance has persisted `Running` metadata but no live task.
    ///
    /// This typically indicates the process crashed while the workflow was
    /// executing. The instance may be recoverable via
    /// [`Engine::resume`](crate::Engine::resume).
    #[error(
        "instance '{instance_id}' of workflow '{workflow_name}' has stale Running metadata \
         (likely crashed) — consider calling resume()"
    )]
    StaleRunning {
        /// The workflow name.
        workflow_name: String,
        /// The instance ID with stale state.
        instance_id: String,
    },

    /// A storage operation failed while reading metadata.
    #[error("storage error: {0}")]
    Storage(StorageError),

    /// The request itself was invalid (for example a key containing `/`).
    #[error(transparent)]
    Engine(EngineError),
}

/// Error returned by [`Engine::state`](crate::Engine::state).
///
/// # Examples
///
/// ```
/// use memable_core::StateError;
///
/// let err = StateError::NotFound {
///     workflow_name: "etl".into(),
///     instance_id: "run-42".into(),
/// };
/// assert!(err.to_string().contains("etl"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No instance with this workflow name and ID exists.
    #[error("no instance found for workflow '{workflow_name}' with id '{instance_id}'")]
    NotFound {
        /// The workflow name that was queried.
        workflow_name: String,
        /// The instance ID that was queried.
        instance_id: String,
    },

    /// A storage operation failed while reading metadata.
    #[error("storage error: {0}")]
    Storage(StorageError),

    /// The request itself was invalid (for example a key containing `/`).
    #[error(transparent)]
    Engine(EngineError),
}

/// Error returned by step closures.
///
/// The variant communicates retry intent to the engine:
/// - [`Retryable`](StepError::Retryable) — transient failure that the engine
///   will retry according to the step's [`RetryPolicy`](crate::RetryPolicy).
/// - [`Permanent`](StepError::Permanent) — unrecoverable failure, propagated
///   immediately without retrying.
///
/// There is intentionally no blanket [`From`] implementation. Callers must
/// choose explicitly whether a given error is retryable or permanent.
///
/// # Examples
///
/// ```
/// use memable_core::StepError;
///
/// let err = StepError::permanent("invalid input");
/// assert!(err.to_string().contains("permanent"));
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

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Retryable(e) | Self::Permanent(e) => Some(e.as_ref()),
        }
    }
}

/// Lets `?` turn a [`SubscribeError`] into an [`EngineError`] in code that
/// returns the latter.
///
/// # Examples
///
/// ```
/// use memable_core::{EngineError, SubscribeError};
///
/// let err: EngineError = SubscribeError::NotFound { workflow_name: "etl".into(), instance_id: "1".into() }.into();
/// assert!(matches!(err, EngineError::InstanceNotFound { .. }));
/// ```
impl From<SubscribeError> for EngineError {
    fn from(err: SubscribeError) -> Self {
        match err {
            SubscribeError::NotFound {
                workflow_name,
                instance_id,
            } => Self::InstanceNotFound {
                workflow_name,
                instance_id,
            },
            SubscribeError::StaleRunning {
                workflow_name,
                instance_id,
            } => Self::InvalidState {
                operation: "subscribe to",
                workflow_name,
                instance_id,
                state: "running with no live run (stale after a crash; call resume)".to_owned(),
            },
            SubscribeError::Storage(source) => Self::Storage(source),
            SubscribeError::Engine(err) => err,
        }
    }
}

/// Lets `?` turn a [`StateError`] into an [`EngineError`].
///
/// # Examples
///
/// ```
/// use memable_core::{EngineError, StateError};
///
/// let err: EngineError = StateError::NotFound { workflow_name: "etl".into(), instance_id: "1".into() }.into();
/// assert!(matches!(err, EngineError::InstanceNotFound { .. }));
/// ```
impl From<StateError> for EngineError {
    fn from(err: StateError) -> Self {
        match err {
            StateError::NotFound {
                workflow_name,
                instance_id,
            } => Self::InstanceNotFound {
                workflow_name,
                instance_id,
            },
            StateError::Storage(source) => Self::Storage(source),
            StateError::Engine(err) => err,
        }
    }
}
