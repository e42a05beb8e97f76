//! The memable engine: durable workflows by key-based memoisation.
//!
//! This crate holds the engine, the workflow [`Context`], the storage
//! contract [`StepStore`] with the in-memory [`MemoryStore`], and the error
//! types. Most users depend on the `memable` facade crate, which re-exports
//! everything here and adds the redb and SQLite backends.
//!
//! # Layers
//!
//! Each layer uses only the ones above it:
//!
//! 1. **Values, keys, codec, records** — [`InstanceKey`] and key validation
//!    (`key`), the value codecs ([`Codec`], [`encode_value`],
//!    [`decode_record`], [`decode_value`], [`type_tag`]; `codec`), and the stored records ([`StepRecord`],
//!    [`WorkflowMetadata`]; `record`).
//! 2. **Errors, clock, retry** — [`EngineError`] and [`StorageError`]
//!    (`error`), the [`Clock`] (`clock`), [`RetryPolicy`] (`retry`).
//! 3. **The store** — the contract [`StepStore`] and the typed transitions
//!    of [`StepStoreExt`] (`store`), the transition rules over any backend
//!    transaction ([`transitions`]) and the reference [`MemoryStore`]. What
//!    file backends share (writer thread, reader pool, journal, the
//!    journaled commit protocol) lives in the `memable-store` crate.
//! 4. **The engine and its run** — [`Engine`] with its builder, registry,
//!    live instances, timer scheduler and [`Invocation`]s (`engine`); one
//!    run of an instance and the [`Context`], [`StepBuilder`] and
//!    suspensions it gives the workflow (`engine::run`), which reach the
//!    store, clock and scheduler only through a narrow run environment.
//!
//! # Features
//!
//! - `test-util`: items only tests need — `ManualClock` (time that moves
//!   by hand), `AutoAdvanceClock` (time that jumps to the next deadline
//!   whenever the engine is idle) and `Engine::abort` (a simulated crash).
#![forbid(unsafe_code)]

mod clock;
mod codec;
mod engine;
mod error;
mod key;
mod record;
mod retry;
mod store;

#[cfg(feature = "test-util")]
pub use clock::{AutoAdvanceClock, ClockHold, ManualClock};
pub use clock::{Clock, EngineActivity, Sleep, SystemClock};
pub use codec::{Codec, decode_record, decode_value, encode_value, type_tag};
pub use engine::telemetry;
pub use engine::{
    BufferedSignal, ChildBuilder, ChildHandle, ChildInfo, Context, Engine, EngineBuilder,
    FanOutBuilder, FirstOf, FirstOfBuilder, Invocation, InvokeBuilder, PendingTimer, Queue,
    RetentionPolicy, RetentionRule, RetentionStats, ShutdownReport, StatusStream, StepBuilder,
    StepEntry, StepHistory, SuspendBuilder, SuspendPoint, SuspendTimeout, TerminalStatus,
    TypedInvocation, TypedInvokeBuilder, Workflow, WorkflowHandle, WorkflowState,
};
pub use engine::{CheckKind, CheckStop, DEFAULT_CHECK_TIMEOUT, InstanceCheck, TypeMismatchReport};
pub use error::{EngineError, InvalidKeyReason, StepError, StorageError, StorageErrorKind};
pub use key::{InstanceKey, MAX_KEY_LEN, validate_key, validate_user_key};
pub use record::{
    MetadataStatus, RecordLayout, StatusKind, StepKind, StepRecord, StepRecordV1, StepRecordV2,
    StepState, WorkflowMetadata, with_record_layout,
};
pub use retry::RetryPolicy;
pub use store::transitions;
pub use store::transitions::{WriteOp, WriteOutcome};
pub use store::{
    AcquireOutcome, Acquired, AdmitOutcome, CancelOutcome, ChildLink, ChildStartOutcome,
    ClaimOutcome, CommitOutcome, EngineLease, EngineSlot, EnqueueOutcome, Finish, FinishOutcome,
    FireOutcome, ForgetOutcome, ForkOutcome, InstanceFilter, InstanceSnapshot, MemoryStore,
    Ownership, ParentLink, ParkOutcome, QUEUE_WORKFLOW, QueueLimits, QueueTicket, ReviveOutcome,
    SignalOutcome, StaleEpoch, StartOutcome, StepStore, StepStoreExt, SuspendOutcome, TimerEntry,
    WaitOutcome, Workers, child_instance_id, child_link_key, queue_admission_keys,
};
