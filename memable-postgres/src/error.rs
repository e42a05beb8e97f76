//! Mapping sqlx errors into the engine's typed storage errors.

use memable_core::{StorageError, StorageErrorKind};

/// SQLSTATE of a serialization failure (`40001`) or a deadlock (`40P01`):
/// the transaction can simply be run again.
pub fn is_retryable(error: &sqlx::Error) -> bool {
    matches!(sqlstate(error).as_deref(), Some("40001" | "40P01"))
}

fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(std::borrow::Cow::into_owned),
        _ => None,
    }
}

/// Whether the connection is gone (refused, dropped, terminated by the
/// server): the work of an uncommitted transaction on it is lost and safe
/// to run again on a new connection.
pub fn is_connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // 57P01 admin_shutdown (pg_terminate_backend), 57P02 crash_shutdown,
        // 57P03 cannot_connect_now, class 08: connection exceptions.
        sqlx::Error::Database(_) => {
            sqlstate(error).is_some_and(|code| code.starts_with("08") || code.starts_with("57P"))
        }
        _ => false,
    }
}

/// The kind of storage error a sqlx error is.
pub fn kind_of(error: &sqlx::Error) -> StorageErrorKind {
    if is_connection_lost(error) {
        return StorageErrorKind::Io;
    }
    match error {
        sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StorageErrorKind::Corrupt,
        _ => StorageErrorKind::Other,
    }
}

/// A storage error for `error` in `operation`, of its precise kind.
pub fn storage(operation: &'static str, error: sqlx::Error) -> StorageError {
    StorageError::new(kind_of(&error), operation, error)
}

/// `map_err` adapter naming the store operation.
pub fn sql(operation: &'static str) -> impl Fn(sqlx::Error) -> memable_core::EngineError {
    move |error| storage(operation, error).into()
}

/// A value in the database that memable cannot read.
pub fn corrupt(operation: &'static str, what: String) -> memable_core::EngineError {
    StorageError::new(StorageErrorKind::Corrupt, operation, what).into()
}
