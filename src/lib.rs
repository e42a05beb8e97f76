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
//! This facade re-exports, by name, what a workflow author uses: the
//! [`Engine`] and its builders, the workflow [`Context`], the error types,
//! and the instance states. The storage backends come by cargo feature:
//!
//! | feature | what it adds |
//! |---|---|
//! | `redb` (default) | `memable::redb::RedbStore`, a file store over redb |
//! | `sqlite` | `memable::sqlite::SqliteStore`, a file store over SQLite |
//! | `postgres` | `memable::postgres::PostgresStore`, a store over PostgreSQL (sqlx), for many worker processes on one database |
//! | `test-util` | `ManualClock` (time moved by hand), `AutoAdvanceClock` (time that jumps to the next deadline while the engine is idle) and `Engine::abort` (a simulated crash), for tests |
//!
//! Writing a store of your own: the contract is in [`store`] (and the
//! conformance suite in the `memable-testkit` crate).
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

// The engine and a run.
pub use memable_core::{
    Context, Engine, EngineBuilder, FirstOf, FirstOfBuilder, Invocation, InvokeBuilder,
    RetryPolicy, ShutdownReport, StatusStream, StepBuilder, SuspendBuilder, SuspendPoint,
    SuspendTimeout, WorkflowState,
};
// Retention: ended instances deleted in the background.
pub use memable_core::{RetentionPolicy, RetentionRule, RetentionStats, TerminalStatus};
// Typed workflows: name, input and output declared once.
pub use memable_core::{TypedInvocation, TypedInvokeBuilder, Workflow, WorkflowHandle};
// Queues: limits enforced when work is admitted.
pub use memable_core::{Queue, QueueLimits};
// Child workflows: started from a workflow, awaited, fanned out, listed.
pub use memable_core::{
    ChildBuilder, ChildHandle, ChildInfo, FanOutBuilder, ParentLink, child_instance_id,
};
// Operating: what an instance's steps did.
pub use memable_core::{BufferedSignal, PendingTimer, StepEntry, StepHistory, StepKind, StepState};
// `check` before a deploy: a dry run of the code over stored instances.
pub use memable_core::{
    CheckKind, CheckStop, DEFAULT_CHECK_TIMEOUT, InstanceCheck, TypeMismatchReport,
};
// The names of the engine's tracing spans and events.
pub use memable_core::telemetry;
// Errors.
pub use memable_core::{EngineError, InvalidKeyReason, StepError, StorageError, StorageErrorKind};
// Instances: keys, metadata, listing.
pub use memable_core::{
    InstanceFilter, InstanceKey, MAX_KEY_LEN, MetadataStatus, StatusKind, WorkflowMetadata,
    validate_key, validate_user_key,
};
// Time.
#[cfg(feature = "test-util")]
pub use memable_core::{AutoAdvanceClock, ClockHold, ManualClock};
pub use memable_core::{Clock, EngineActivity, Sleep, SystemClock};
// Stores a user picks from.
pub use memable_core::{MemoryStore, StepStore};

/// When a file store's commit counts as done, for both file backends
/// (`RedbStoreBuilder::durability`, `SqliteStoreBuilder::durability`).
///
/// # Examples
///
/// ```
/// assert_eq!(memable::Durability::default(), memable::Durability::Immediate);
/// ```
#[cfg(any(feature = "redb", feature = "sqlite"))]
pub use memable_store::Durability;

pub mod store {
    //! The storage contract, for authors of a store of their own: implement
    //! [`StepStore`] (a name, one `write` of a [`WriteOp`], six reads) and the
    //! typed transitions of [`StepStoreExt`] come with it. Check a store with
    //! the conformance suite of the `memable-testkit` crate.
    //!
    //! ```
    //! use memable::store::{StepStore, StepStoreExt, WriteOp, WriteOutcome};
    //! use memable::{InstanceKey, MemoryStore};
    //!
    //! # tokio::runtime::Runtime::new().unwrap().block_on(async {
    //! let store = MemoryStore::new();
    //! let key = InstanceKey::new("etl", "1").unwrap();
    //! assert_eq!(store.write(WriteOp::Delete { key: key.clone() }).await.unwrap(), WriteOutcome::Delete(false));
    //! assert!(!store.delete_instance(key).await.unwrap());
    //! # });
    //! ```

    pub use memable_core::transitions::{self, Transaction, apply};
    pub use memable_core::{
        CancelOutcome, ClaimOutcome, Codec, CommitOutcome, Finish, FinishOutcome, FireOutcome,
        ForgetOutcome, ForkOutcome, InstanceSnapshot, MemoryStore, ParkOutcome, RecordLayout,
        ReviveOutcome, SignalOutcome, StartOutcome, StepKind, StepRecord, StepRecordV1,
        StepRecordV2, StepState, StepStore, StepStoreExt, SuspendOutcome, TimerEntry, WaitOutcome,
        WriteOp, WriteOutcome, decode_record, decode_value, encode_value, type_tag,
        with_record_layout,
    };
}

/// The redb backend (feature `redb`, on by default): a store in one redb
/// file and its journal.
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
    pub use memable_redb::{Durability, RedbStore, RedbStoreBuilder, StoreStats};
}

/// The PostgreSQL backend (feature `postgres`): one database shared by
/// many worker processes.
///
/// ```no_run
/// # async fn demo() -> Result<(), memable::EngineError> {
/// let store = memable::postgres::PostgresStore::connect("postgres://postgres@127.0.0.1/app").await?;
/// let engine = memable::Engine::builder().store(store).build();
/// # let _ = engine; Ok(()) }
/// ```
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use memable_postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};
}

/// The SQLite backend (feature `sqlite`): a store in one SQLite database
/// and its journal.
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
    pub use memable_sqlite::{
        APPLICATION_ID, Durability, SCHEMA_VERSION, SqliteStore, SqliteStoreBuilder, StoreStats,
    };
}
