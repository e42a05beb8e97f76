//! The memable engine: durable workflows by key-based memoisation.
//!
//! This crate holds the engine, the workflow [`Context`], the storage
//! contract [`StepStore`] with the in-memory [`MemoryStore`], and the error
//! types. Most users depend on the `memable` facade crate, which re-exports
//! everything here and adds the redb and SQLite backends.
#![forbid(unsafe_code)]

mod clock;
mod codec;
mod context;
mod engine;
mod error;
mod key;
mod memo;
mod record;
mod retry;
mod status;
mod store;

pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use codec::{decode_value, encode_value, type_tag};
pub use context::{Context, StepBuilder, SuspendBuilder, SuspendPoint, SuspendTimeout};
pub use engine::{Engine, EngineBuilder, Invocation, InvokeBuilder};
pub use error::{
    EngineError, StateError, StepError, StorageError, StorageErrorKind, SubscribeError,
};
pub use key::{InstanceKey, MAX_KEY_LEN, validate_key, validate_user_key};
pub use record::{MetadataStatus, StatusKind, StepKind, StepRecord, StepState, WorkflowMetadata};
pub use retry::RetryPolicy;
pub use status::{StatusStream, WorkflowState};
pub use store::transitions;
pub use store::{
    CancelOutcome, ClaimOutcome, CommitOutcome, Finish, FinishOutcome, InstanceFilter,
    InstanceSnapshot, MemoryStore, ReviveOutcome, StartOutcome, StepStore, SuspendOutcome,
    TimerEntry,
};
