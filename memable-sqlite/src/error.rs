//! Mapping rusqlite errors into the engine's storage error.

use memable_core::EngineError;

/// `map_err` adapter naming the store operation.
pub fn sql(operation: &'static str) -> impl Fn(rusqlite::Error) -> EngineError {
    move |error| EngineError::storage(operation, error)
}
