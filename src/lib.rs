//! # memable
//!
//! An embeddable durable execution engine. A workflow is an async function;
//! each side effect is a *step* named by a string key whose result is
//! committed to an embedded database before the workflow moves on. After a
//! crash, a deploy, a signal or a timer, the workflow runs again from the top
//! and every step with a committed result returns it instead of running —
//! **key-based memoisation**, so changed code keeps working on in-flight
//! workflows.
//!
//! This facade re-exports [`memable_core`] and, by cargo feature, the storage
//! backends: `redb` (default) as [`redb::RedbStore`] and `sqlite` as
//! `sqlite::SqliteStore`.
//!
//! ```
//! use memable::{Context, Engine, EngineError, StepError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), EngineError> {
//! let engine = Engine::builder().in_memory().build();
//! engine.register("greet", |ctx: Context| async move {
//!     let name: String = ctx.input()?;
//!     ctx.step("greet")
//!         .run(|| {
//!             let name = name.clone();
//!             async move { Ok::<_, StepError>(format!("hello {name}")) }
//!         })
//!         .await
//! })?;
//! engine.start().await?;
//! let out: String = engine.invoke("greet").input("ada".to_string()).await?.wait_output().await?;
//! assert_eq!(out, "hello ada");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub use memable_core::*;

/// The redb backend (feature `redb`, on by default).
///
/// ```
/// use memable::Engine;
/// use memable::redb::RedbStore;
///
/// let dir = tempfile::tempdir().unwrap();
/// let engine = Engine::builder().store(RedbStore::open(dir.path().join("app.redb")).unwrap()).build();
/// # let _ = engine;
/// ```
#[cfg(feature = "redb")]
pub mod redb {
    pub use memable_redb::*;
}

/// The SQLite backend (feature `sqlite`).
///
/// ```
/// use memable::Engine;
/// use memable::sqlite::SqliteStore;
///
/// let dir = tempfile::tempdir().unwrap();
/// let engine = Engine::builder().store(SqliteStore::open(dir.path().join("app.db")).unwrap()).build();
/// # let _ = engine;
/// ```
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use memable_sqlite::*;
}
