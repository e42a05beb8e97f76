//! [`CliError`]: what a command failed with, and its exit code.

use memable_core::{EngineError, StorageErrorKind};

use crate::exit;

/// A command's failure: an exit code (see [`exit`]) and a message for
/// stderr.
///
/// # Examples
///
/// ```
/// use memable_cli::{CliError, exit};
/// let err = CliError::from(memable_core::EngineError::InstanceNotFound {
///     key: memable_core::InstanceKey::new("etl", "1").unwrap(),
/// });
/// assert_eq!(err.code(), exit::NOT_FOUND);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError {
    code: u8,
    kind: &'static str,
    message: String,
}

impl CliError {
    fn new(code: u8, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            kind,
            message: message.into(),
        }
    }

    /// A failure of the store or the machine ([`exit::FAILURE`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_cli::CliError::failure("disk").code(), memable_cli::exit::FAILURE);
    /// ```
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(exit::FAILURE, "failure", message)
    }

    /// Bad arguments ([`exit::USAGE`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_cli::CliError::usage("no").code(), memable_cli::exit::USAGE);
    /// ```
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, "usage", message)
    }

    /// No such instance or store ([`exit::NOT_FOUND`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_cli::CliError::not_found("x").code(), memable_cli::exit::NOT_FOUND);
    /// ```
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(exit::NOT_FOUND, "not_found", message)
    }

    /// The store refused the change ([`exit::REFUSED`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_cli::CliError::refused("x").code(), memable_cli::exit::REFUSED);
    /// ```
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(exit::REFUSED, "refused", message)
    }

    /// The store is held by a running application ([`exit::HELD`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_cli::CliError::held("x").code(), memable_cli::exit::HELD);
    /// ```
    pub fn held(message: impl Into<String>) -> Self {
        Self::new(exit::HELD, "held", message)
    }

    /// The exit code.
    ///
    /// # Examples
    ///
    /// See [`CliError`].
    #[must_use]
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The kind's name in `--json` errors (`failure`, `usage`,
    /// `not_found`, `refused`, `held`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_cli::CliError::held("x").kind(), "held");
    /// ```
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The message.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_cli::CliError::usage("bad").message(), "bad");
    /// ```
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<EngineError> for CliError {
    fn from(error: EngineError) -> Self {
        let message = error.to_string();
        match &error {
            EngineError::InstanceNotFound { .. } => Self::not_found(message),
            EngineError::InvalidKey { .. } | EngineError::Serialization { .. } => {
                Self::usage(message)
            }
            EngineError::InvalidState { .. }
            | EngineError::InstanceExists { .. }
            | EngineError::Cancelled { .. }
            | EngineError::SignalRejected { .. }
            | EngineError::SignalSuperseded { .. }
            | EngineError::TypeMismatch { .. }
            | EngineError::InputConflict { .. } => Self::refused(message),
            EngineError::WorkflowNotFound(_) => Self::usage(message),
            _ => match error.storage_kind() {
                Some(StorageErrorKind::Locked) => Self::held(message),
                Some(StorageErrorKind::NotMemable) => Self::usage(message),
                _ => Self::failure(message),
            },
        }
    }
}
