//! What the stores persist: step records and instance metadata.
//!
//! Backends may store these as columns (SQL) or as the compact byte
//! encodings [`StepRecord::encode`] and [`WorkflowMetadata::encode`] (key-value
//! stores). Both encodings start with a format byte so they can evolve.
//!
//! # Record formats
//!
//! | format | written by | content after the format byte |
//! |---|---|---|
//! | 1 | memable before codec ids (still the format of [`WorkflowMetadata`]) | postcard of the record without its codec ([`StepRecordV1`]); read as [`Codec::Postcard`] |
//! | 2 | memable before step times | postcard of the record without its times ([`StepRecordV2`]) |
//! | 3 | [`StepRecord::encode`] now | postcard of the [`StepRecord`], its codec id and times included |
//!
//! # Serde layouts
//!
//! A [`StepRecord`] also travels inside serialized [`WriteOp`](crate::WriteOp)s
//! (the journal of `memable-store`), where no format byte precedes it. A
//! reader of bytes written in an older layout says so with
//! [`with_record_layout`]: the records deserialized inside its closure are
//! read in that layout and converted.
//!
//! An unknown format byte or codec id is a
//! [`StorageErrorKind::NewerFormat`] error; bytes that do not decode are
//! [`StorageErrorKind::Corrupt`].

use serde::{Deserialize, Serialize};

use crate::{Codec, EngineError, StorageError, StorageErrorKind};

/// The format byte of records written before codec ids, and of metadata.
const FORMAT_V1: u8 = 1;

/// The format byte of step records carrying their codec id, before times.
const FORMAT_V2: u8 = 2;

/// The format byte of step records carrying their codec id and times.
const STEP_FORMAT: u8 = 3;

/// The state of one step record.
///
/// # Examples
///
/// ```
/// use memable_core::StepState;
///
/// assert!(StepState::Completed.is_final());
/// assert!(!StepState::Retrying.is_final());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StepState {
    /// The step's result is committed; it is never run again.
    Completed,
    /// The step is a suspend point or timer waiting for its signal.
    Suspended,
    /// A retryable failure was recorded; `attempts` attempts were made so far.
    Retrying,
    /// Retries were exhausted: a dead letter. `Engine::resume` re-attempts it.
    Failed,
}

impl StepState {
    /// `true` for the states a plain commit never overwrites
    /// ([`Completed`](Self::Completed) and [`Suspended`](Self::Suspended)).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::StepState;
    ///
    /// assert!(StepState::Suspended.is_final());
    /// assert!(!StepState::Failed.is_final());
    /// ```
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Suspended)
    }
}

/// What created a step record.
///
/// # Examples
///
/// ```
/// use memable_core::StepKind;
///
/// assert_ne!(StepKind::Step, StepKind::Timer);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StepKind {
    /// `ctx.step(key).run(..)`.
    Step,
    /// `ctx.suspend(&point)`: completed by a signal.
    Suspend,
    /// `ctx.timer(key, duration)`: completed by the timer scheduler.
    Timer,
    /// An engine record (`_input`, `_output`, a buffered signal).
    Engine,
    /// `ctx.first_of(key)`: a group of either-or points (and optionally a
    /// deadline). Completed, its value is the key of the member whose signal
    /// won (UTF-8), or it is a [`Timer`](Self::Timer) record if the deadline
    /// won.
    Select,
    /// One point of a [`Select`](Self::Select) group. While suspended, its
    /// value is the key of its group (UTF-8): a signal to it completes the
    /// group in the same transaction, and only the first one wins.
    Member,
    /// `ctx.child(..)`: the point where a parent awaits a child workflow.
    /// Suspended while the child runs; completed by the child's end, in the
    /// same transaction (see [`ChildLink`](crate::ChildLink)).
    Child,
}

/// One persisted step: its state, the type tag, codec and bytes of its
/// value, and bookkeeping for retries, timers and status.
///
/// # Examples
///
/// ```
/// use memable_core::{Codec, StepKind, StepRecord, StepState};
///
/// let rec = StepRecord::completed(StepKind::Step, "u32", b"42".to_vec(), None);
/// assert_eq!((rec.state, rec.codec), (StepState::Completed, Codec::Json));
/// assert_eq!(StepRecord::decode(&rec.encode()).unwrap(), rec);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AnyLayout")]
pub struct StepRecord {
    /// The record's state.
    pub state: StepState,
    /// What created it.
    pub kind: StepKind,
    /// The type tag of `value` (see [`type_tag`](crate::type_tag)); for a
    /// suspended record, the type the signal must carry.
    pub type_tag: String,
    /// The bytes of the value in [`codec`](Self::codec) (empty unless
    /// completed).
    pub value: Vec<u8>,
    /// The codec `value` is written in (see [`decode_record`](crate::decode_record)).
    pub codec: Codec,
    /// The workflow's status message current when the record was written.
    pub status: Option<String>,
    /// Attempts made so far (retrying and failed records).
    pub attempts: u32,
    /// The last error, as text (retrying and failed records).
    pub error: Option<String>,
    /// For timers: when the timer fires, in milliseconds since the Unix epoch.
    pub deadline_ms: Option<u64>,
    /// When the step began, in milliseconds since the Unix epoch: its first
    /// attempt (steps), the start of the wait (suspend points, timers,
    /// children), the write (engine records). `None` on records written
    /// before memable kept step times.
    pub started_at_ms: Option<u64>,
    /// When the record was completed: the commit of a step's result, the
    /// signal, timer or child end that completed a point. `None` while it is
    /// not completed (and on records written before memable kept step times).
    pub completed_at_ms: Option<u64>,
}

impl StepRecord {
    /// A completed record holding `value`, written in the default codec
    /// ([`Codec::Json`], as by [`encode_value`](crate::encode_value)); see
    /// [`with_codec`](Self::with_codec) for another.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{StepKind, StepRecord};
    ///
    /// let rec = StepRecord::completed(StepKind::Step, "String", vec![1, b'a'], Some("ok".into()));
    /// assert_eq!(rec.status.as_deref(), Some("ok"));
    /// ```
    #[must_use]
    pub fn completed(
        kind: StepKind,
        type_tag: impl Into<String>,
        value: Vec<u8>,
        status: Option<String>,
    ) -> Self {
        Self {
            state: StepState::Completed,
            kind,
            type_tag: type_tag.into(),
            value,
            codec: Codec::default(),
            status,
            attempts: 0,
            error: None,
            deadline_ms: None,
            started_at_ms: None,
            completed_at_ms: None,
        }
    }

    /// A suspended record waiting for a value of type `type_tag`; `deadline_ms`
    /// is set for timers.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{StepKind, StepRecord, StepState};
    ///
    /// let rec = StepRecord::suspended(StepKind::Timer, "()", None, Some(1_000));
    /// assert_eq!(rec.state, StepState::Suspended);
    /// assert_eq!(rec.deadline_ms, Some(1_000));
    /// ```
    #[must_use]
    pub fn suspended(
        kind: StepKind,
        type_tag: impl Into<String>,
        status: Option<String>,
        deadline_ms: Option<u64>,
    ) -> Self {
        Self {
            state: StepState::Suspended,
            kind,
            type_tag: type_tag.into(),
            value: Vec::new(),
            codec: Codec::default(),
            status,
            attempts: 0,
            error: None,
            deadline_ms,
            started_at_ms: None,
            completed_at_ms: None,
        }
    }

    /// A failure record: [`StepState::Retrying`] while attempts remain,
    /// [`StepState::Failed`] (a dead letter) when they are exhausted.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{StepRecord, StepState};
    ///
    /// let rec = StepRecord::failure(StepState::Failed, 3, "connection refused");
    /// assert_eq!(rec.attempts, 3);
    /// assert_eq!(rec.error.as_deref(), Some("connection refused"));
    /// ```
    #[must_use]
    pub fn failure(state: StepState, attempts: u32, error: impl Into<String>) -> Self {
        Self {
            state,
            kind: StepKind::Step,
            type_tag: String::new(),
            value: Vec::new(),
            codec: Codec::default(),
            status: None,
            attempts,
            error: Some(error.into()),
            deadline_ms: None,
            started_at_ms: None,
            completed_at_ms: None,
        }
    }

    /// The record with its value's codec set to `codec`: for a record whose
    /// bytes were written by [`Codec::encode`] in a codec other than the
    /// default.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Codec, StepKind, StepRecord};
    ///
    /// let bytes = Codec::Postcard.encode("k", &7u32).unwrap();
    /// let rec = StepRecord::completed(StepKind::Step, "u32", bytes, None).with_codec(Codec::Postcard);
    /// assert_eq!(rec.codec, Codec::Postcard);
    /// ```
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The record with its [`started_at_ms`](Self::started_at_ms) and
    /// [`completed_at_ms`](Self::completed_at_ms) set.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{StepKind, StepRecord};
    ///
    /// let rec = StepRecord::completed(StepKind::Step, "()", b"null".to_vec(), None)
    ///     .with_times(Some(10), Some(25));
    /// assert_eq!((rec.started_at_ms, rec.completed_at_ms), (Some(10), Some(25)));
    /// ```
    #[must_use]
    pub fn with_times(mut self, started_at_ms: Option<u64>, completed_at_ms: Option<u64>) -> Self {
        self.started_at_ms = started_at_ms;
        self.completed_at_ms = completed_at_ms;
        self
    }

    /// Encodes the record as bytes (format byte 3 + postcard, the codec id
    /// and times included).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{StepKind, StepRecord};
    ///
    /// let bytes = StepRecord::completed(StepKind::Step, "()", b"null".to_vec(), None).encode();
    /// assert_eq!(bytes[0], 3);
    /// ```
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        encode_with_format(STEP_FORMAT, self)
    }

    /// Decodes bytes written by [`encode`](Self::encode), by memable before
    /// step times (format 2, read without times) or before codec ids (format
    /// 1, read as [`Codec::Postcard`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::StepRecord;
    ///
    /// assert!(StepRecord::decode(b"not a record").is_err());
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self, EngineError> {
        const OPERATION: &str = "decode step record";
        match bytes.split_first() {
            Some((&FORMAT_V1, rest)) => postcard::from_bytes::<StepRecordV1>(rest)
                .map(Self::from)
                .map_err(|e| corrupt(OPERATION, e)),
            Some((&FORMAT_V2, rest)) => postcard::from_bytes::<StepRecordV2>(rest)
                .map(Self::from)
                .map_err(|e| step_error(OPERATION, rest, e)),
            Some((&STEP_FORMAT, rest)) => with_record_layout(RecordLayout::Current, || {
                postcard::from_bytes(rest).map_err(|e| step_error(OPERATION, rest, e))
            }),
            Some((format, _)) => Err(newer_format(OPERATION, *format)),
            None => Err(corrupt(OPERATION, "empty record")),
        }
    }
}

/// The layout of a [`StepRecord`] before codec ids: what record format 1 and
/// journal format 1 hold. Only read, and only to convert into a
/// [`StepRecord`] of [`Codec::Postcard`].
///
/// # Examples
///
/// ```
/// use memable_core::{Codec, StepKind, StepRecord, StepRecordV1, StepState};
///
/// let old = StepRecordV1 {
///     state: StepState::Completed,
///     kind: StepKind::Step,
///     type_tag: "u32".into(),
///     value: vec![7],
///     status: None,
///     attempts: 0,
///     error: None,
///     deadline_ms: None,
/// };
/// let rec = StepRecord::from(old);
/// assert_eq!(rec.codec, Codec::Postcard);
/// assert_eq!(memable_core::decode_record::<u32>("k", &rec).unwrap(), 7);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // The fields of StepRecord, less its codec.
pub struct StepRecordV1 {
    pub state: StepState,
    pub kind: StepKind,
    pub type_tag: String,
    pub value: Vec<u8>,
    pub status: Option<String>,
    pub attempts: u32,
    pub error: Option<String>,
    pub deadline_ms: Option<u64>,
}

impl From<StepRecordV1> for StepRecord {
    fn from(old: StepRecordV1) -> Self {
        Self {
            state: old.state,
            kind: old.kind,
            type_tag: old.type_tag,
            value: old.value,
            codec: Codec::Postcard,
            status: old.status,
            attempts: old.attempts,
            error: old.error,
            deadline_ms: old.deadline_ms,
            started_at_ms: None,
            completed_at_ms: None,
        }
    }
}

/// The layout of a [`StepRecord`] before step times: what record format 2
/// and journal format 2 hold. Only read, and only to convert into a
/// [`StepRecord`] without times.
///
/// # Examples
///
/// ```
/// use memable_core::{Codec, StepKind, StepRecord, StepRecordV2, StepState};
///
/// let old = StepRecordV2 {
///     state: StepState::Completed,
///     kind: StepKind::Step,
///     type_tag: "u32".into(),
///     value: b"7".to_vec(),
///     codec: Codec::Json,
///     status: None,
///     attempts: 0,
///     error: None,
///     deadline_ms: None,
/// };
/// let rec = StepRecord::from(old);
/// assert_eq!((rec.started_at_ms, rec.completed_at_ms), (None, None));
/// assert_eq!(memable_core::decode_record::<u32>("k", &rec).unwrap(), 7);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // The fields of StepRecord, less its times.
pub struct StepRecordV2 {
    pub state: StepState,
    pub kind: StepKind,
    pub type_tag: String,
    pub value: Vec<u8>,
    pub codec: Codec,
    pub status: Option<String>,
    pub attempts: u32,
    pub error: Option<String>,
    pub deadline_ms: Option<u64>,
}

impl From<StepRecordV2> for StepRecord {
    fn from(old: StepRecordV2) -> Self {
        Self {
            state: old.state,
            kind: old.kind,
            type_tag: old.type_tag,
            value: old.value,
            codec: old.codec,
            status: old.status,
            attempts: old.attempts,
            error: old.error,
            deadline_ms: old.deadline_ms,
            started_at_ms: None,
            completed_at_ms: None,
        }
    }
}

/// The serde layout in which [`StepRecord`]s are deserialized on this
/// thread (see [`with_record_layout`]).
///
/// # Examples
///
/// ```
/// use memable_core::{RecordLayout, with_record_layout};
///
/// assert_eq!(with_record_layout(RecordLayout::BeforeTimes, || 1 + 1), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecordLayout {
    /// The layout [`StepRecord`] serializes in now.
    #[default]
    Current,
    /// The layout before step times ([`StepRecordV2`]): record format 2,
    /// journal format 2.
    BeforeTimes,
}

thread_local! {
    static READ_LAYOUT: std::cell::Cell<RecordLayout> = const { std::cell::Cell::new(RecordLayout::Current) };
}

/// Runs `read` with every [`StepRecord`] it deserializes on this thread read
/// in `layout` (and converted to the current one); the layout in force
/// before is restored afterwards, also if `read` panics.
///
/// For a reader of bytes that embed records without a format byte of their
/// own, such as a journal of an older format.
///
/// # Examples
///
/// ```
/// use memable_core::{Codec, RecordLayout, StepKind, StepRecord, StepRecordV2, StepState, with_record_layout};
///
/// let old = StepRecordV2 {
///     state: StepState::Completed, kind: StepKind::Step, type_tag: "u8".into(),
///     value: b"1".to_vec(), codec: Codec::Json, status: None, attempts: 0,
///     error: None, deadline_ms: None,
/// };
/// let bytes = postcard::to_allocvec(&vec![old.clone()]).unwrap();
/// let read: Vec<StepRecord> =
///     with_record_layout(RecordLayout::BeforeTimes, || postcard::from_bytes(&bytes)).unwrap();
/// assert_eq!(read, vec![StepRecord::from(old)]);
/// ```
pub fn with_record_layout<R>(layout: RecordLayout, read: impl FnOnce() -> R) -> R {
    struct Restore(RecordLayout);
    impl Drop for Restore {
        fn drop(&mut self) {
            READ_LAYOUT.with(|current| current.set(self.0));
        }
    }
    let _restore = Restore(READ_LAYOUT.with(|current| current.replace(layout)));
    read()
}

/// A [`StepRecord`] deserialized in the layout [`with_record_layout`] set.
struct AnyLayout(StepRecord);

impl From<AnyLayout> for StepRecord {
    fn from(read: AnyLayout) -> Self {
        read.0
    }
}

impl<'de> Deserialize<'de> for AnyLayout {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The current layout, field for field (what `StepRecord` serializes).
        #[derive(Deserialize)]
        #[serde(rename = "StepRecord")]
        struct Current {
            state: StepState,
            kind: StepKind,
            type_tag: String,
            value: Vec<u8>,
            codec: Codec,
            status: Option<String>,
            attempts: u32,
            error: Option<String>,
            deadline_ms: Option<u64>,
            started_at_ms: Option<u64>,
            completed_at_ms: Option<u64>,
        }
        Ok(Self(match READ_LAYOUT.with(std::cell::Cell::get) {
            RecordLayout::Current => {
                let r = Current::deserialize(deserializer)?;
                StepRecord {
                    state: r.state,
                    kind: r.kind,
                    type_tag: r.type_tag,
                    value: r.value,
                    codec: r.codec,
                    status: r.status,
                    attempts: r.attempts,
                    error: r.error,
                    deadline_ms: r.deadline_ms,
                    started_at_ms: r.started_at_ms,
                    completed_at_ms: r.completed_at_ms,
                }
            }
            RecordLayout::BeforeTimes => StepRecordV2::deserialize(deserializer)?.into(),
        }))
    }
}

/// The persisted status of an instance.
///
/// # Examples
///
/// ```
/// use memable_core::{MetadataStatus, StatusKind};
///
/// let status = MetadataStatus::Suspended { key: "approval".into(), status: None };
/// assert_eq!(status.kind(), StatusKind::Suspended);
/// assert!(!status.is_terminal());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataStatus {
    /// A run is in progress, or must be resumed after a crash.
    Running,
    /// Waiting at a suspend point or timer.
    Suspended {
        /// The suspended step's key.
        key: String,
        /// The status message given when suspending.
        status: Option<String>,
    },
    /// Finished successfully, with the last status message.
    Completed(Option<String>),
    /// Finished with an error (its message).
    Failed(String),
    /// Cancelled by `Engine::cancel`.
    Cancelled,
}

impl MetadataStatus {
    /// Rebuilds a status from the columns a SQL store keeps it in: its
    /// kind, the key it is suspended at and its message (status message or
    /// error).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{MetadataStatus, StatusKind};
    ///
    /// let s = MetadataStatus::from_columns(StatusKind::Suspended, Some("approval".into()), None);
    /// assert_eq!(s, MetadataStatus::Suspended { key: "approval".into(), status: None });
    /// ```
    #[must_use]
    pub fn from_columns(
        kind: StatusKind,
        suspended_key: Option<String>,
        message: Option<String>,
    ) -> Self {
        match kind {
            StatusKind::Running => Self::Running,
            StatusKind::Suspended => Self::Suspended {
                key: suspended_key.unwrap_or_default(),
                status: message,
            },
            StatusKind::Completed => Self::Completed(message),
            StatusKind::Failed => Self::Failed(message.unwrap_or_default()),
            StatusKind::Cancelled => Self::Cancelled,
        }
    }

    /// The status without its data, for filtering and indexes.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{MetadataStatus, StatusKind};
    ///
    /// assert_eq!(MetadataStatus::Failed("boom".into()).kind(), StatusKind::Failed);
    /// ```
    #[must_use]
    pub fn kind(&self) -> StatusKind {
        match self {
            Self::Running => StatusKind::Running,
            Self::Suspended { .. } => StatusKind::Suspended,
            Self::Completed(_) => StatusKind::Completed,
            Self::Failed(_) => StatusKind::Failed,
            Self::Cancelled => StatusKind::Cancelled,
        }
    }

    /// `true` for `Completed`, `Failed` and `Cancelled`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::MetadataStatus;
    ///
    /// assert!(MetadataStatus::Cancelled.is_terminal());
    /// assert!(!MetadataStatus::Running.is_terminal());
    /// ```
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        self.kind().is_terminal()
    }
}

/// An instance status without its data.
///
/// # Examples
///
/// ```
/// use memable_core::StatusKind;
///
/// assert_eq!(StatusKind::Running.as_str(), "running");
/// assert_eq!(StatusKind::parse("suspended"), Some(StatusKind::Suspended));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StatusKind {
    /// See [`MetadataStatus::Running`].
    Running,
    /// See [`MetadataStatus::Suspended`].
    Suspended,
    /// See [`MetadataStatus::Completed`].
    Completed,
    /// See [`MetadataStatus::Failed`].
    Failed,
    /// See [`MetadataStatus::Cancelled`].
    Cancelled,
}

impl StatusKind {
    /// Every status, in declaration order.
    pub const ALL: [StatusKind; 5] = [
        Self::Running,
        Self::Suspended,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// A stable lowercase name, usable as a database column value.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_core::StatusKind::Cancelled.as_str(), "cancelled");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Suspended => "suspended",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a name written by [`as_str`](Self::as_str).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_core::StatusKind::parse("nope"), None);
    /// ```
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// `true` for `Completed`, `Failed` and `Cancelled`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(memable_core::StatusKind::Completed.is_terminal());
    /// ```
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// The metadata of one instance.
///
/// # Examples
///
/// ```
/// use memable_core::{InstanceKey, MetadataStatus, WorkflowMetadata};
///
/// let key = InstanceKey::new("etl", "run-1").unwrap();
/// let meta = WorkflowMetadata::running(&key, 1_000);
/// assert_eq!(meta.status, MetadataStatus::Running);
/// assert_eq!(WorkflowMetadata::decode(&meta.encode()).unwrap(), meta);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowMetadata {
    /// The workflow name.
    pub workflow_name: String,
    /// The instance id.
    pub instance_id: String,
    /// The current status.
    pub status: MetadataStatus,
    /// When the instance was started (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When the status last changed.
    pub updated_at_ms: u64,
    /// When the instance reached a terminal status.
    pub completed_at_ms: Option<u64>,
}

impl WorkflowMetadata {
    /// Metadata of a freshly started instance.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, WorkflowMetadata};
    ///
    /// let meta = WorkflowMetadata::running(&InstanceKey::new("a", "1").unwrap(), 5);
    /// assert_eq!((meta.created_at_ms, meta.updated_at_ms), (5, 5));
    /// ```
    #[must_use]
    pub fn running(key: &crate::InstanceKey, now_ms: u64) -> Self {
        Self {
            workflow_name: key.workflow().to_owned(),
            instance_id: key.instance().to_owned(),
            status: MetadataStatus::Running,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            completed_at_ms: None,
        }
    }

    /// The instance key this metadata belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, WorkflowMetadata};
    ///
    /// let key = InstanceKey::new("a", "1").unwrap();
    /// assert_eq!(WorkflowMetadata::running(&key, 0).key().unwrap(), key);
    /// ```
    pub fn key(&self) -> Result<crate::InstanceKey, EngineError> {
        crate::InstanceKey::new(&self.workflow_name, &self.instance_id)
    }

    /// Encodes the metadata as bytes (format byte 1 + postcard).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{InstanceKey, WorkflowMetadata};
    ///
    /// let meta = WorkflowMetadata::running(&InstanceKey::new("a", "1").unwrap(), 0);
    /// assert!(!meta.encode().is_empty());
    /// ```
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        encode_with_format(FORMAT_V1, self)
    }

    /// Decodes bytes written by [`encode`](Self::encode).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::WorkflowMetadata;
    ///
    /// assert!(WorkflowMetadata::decode(&[]).is_err());
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self, EngineError> {
        decode_with_format(bytes, "decode instance metadata")
    }
}

fn encode_with_format<T: Serialize>(format: u8, value: &T) -> Vec<u8> {
    let mut out = vec![format];
    // Serializing these plain structs into a Vec cannot fail.
    postcard::to_io(value, &mut out).expect("record encoding into a Vec is infallible");
    out
}

fn decode_with_format<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    operation: &'static str,
) -> Result<T, EngineError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => postcard::from_bytes(rest).map_err(|e| corrupt(operation, e)),
        Some((format, _)) => Err(newer_format(operation, *format)),
        None => Err(corrupt(operation, "empty record")),
    }
}

fn corrupt(operation: &'static str, source: impl std::fmt::Display) -> EngineError {
    StorageError::new(StorageErrorKind::Corrupt, operation, source.to_string()).into()
}

fn newer_format(operation: &'static str, format: u8) -> EngineError {
    StorageError::new(
        StorageErrorKind::NewerFormat,
        operation,
        format!("unknown record format {format}: written by a newer memable?"),
    )
    .into()
}

/// A format-2 record that did not decode: an unknown codec id (the codec
/// follows the value, so a record written by a newer memable with a new
/// codec fails there) is [`StorageErrorKind::NewerFormat`], anything else
/// [`StorageErrorKind::Corrupt`].
fn step_error(operation: &'static str, rest: &[u8], e: postcard::Error) -> EngineError {
    #[derive(Deserialize)]
    struct Head {
        _state: StepState,
        _kind: StepKind,
        _type_tag: String,
        _value: Vec<u8>,
        codec: u8,
    }
    match postcard::from_bytes::<Head>(rest) {
        Ok(head) if Codec::from_id(head.codec).is_none() => StorageError::new(
            StorageErrorKind::NewerFormat,
            operation,
            format!(
                "unknown value codec id {}: written by a newer memable?",
                head.codec
            ),
        )
        .into(),
        _ => corrupt(operation, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_record_format_is_a_storage_error() {
        let mut bytes = StepRecord::completed(StepKind::Step, "u8", vec![1], None).encode();
        bytes[0] = 99;
        let err = StepRecord::decode(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("unknown record format 99"),
            "{err}"
        );
    }

    #[test]
    fn truncated_record_is_a_storage_error() {
        let bytes = StepRecord::failure(StepState::Retrying, 2, "x").encode();
        assert!(
            StepRecord::decode(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .is_storage()
        );
    }

    #[test]
    fn format_1_records_read_as_postcard() {
        let old = StepRecordV1 {
            state: StepState::Completed,
            kind: StepKind::Engine,
            type_tag: "String".into(),
            value: postcard::to_allocvec("hi").unwrap(),
            status: Some("st".into()),
            attempts: 0,
            error: None,
            deadline_ms: Some(9),
        };
        let mut bytes = vec![1];
        bytes.extend(postcard::to_allocvec(&old).unwrap());
        let rec = StepRecord::decode(&bytes).unwrap();
        assert_eq!(rec.codec, Codec::Postcard);
        assert_eq!(rec, StepRecord::from(old));
        assert_eq!(crate::decode_record::<String>("k", &rec).unwrap(), "hi");
    }

    #[test]
    fn codec_and_times_round_trip_through_format_3() {
        for codec in [Codec::Postcard, Codec::Json] {
            let rec = StepRecord::completed(StepKind::Step, "u8", vec![1], None)
                .with_codec(codec)
                .with_times(Some(3), Some(u64::MAX));
            let bytes = rec.encode();
            assert_eq!(bytes[0], 3);
            assert_eq!(StepRecord::decode(&bytes).unwrap(), rec);
        }
    }

    #[test]
    fn format_2_records_read_without_times() {
        let old = StepRecordV2 {
            state: StepState::Retrying,
            kind: StepKind::Step,
            type_tag: String::new(),
            value: vec![],
            codec: Codec::Json,
            status: None,
            attempts: 2,
            error: Some("503".into()),
            deadline_ms: None,
        };
        let mut bytes = vec![2];
        bytes.extend(postcard::to_allocvec(&old).unwrap());
        let rec = StepRecord::decode(&bytes).unwrap();
        assert_eq!(rec, StepRecord::from(old));
        assert_eq!((rec.attempts, rec.started_at_ms), (2, None));
    }

    #[test]
    fn the_read_layout_applies_inside_its_closure_only() {
        let now = StepRecord::completed(StepKind::Step, "u8", b"1".to_vec(), None)
            .with_times(Some(1), Some(2));
        let bytes = postcard::to_allocvec(&now).unwrap();
        // Read as the old layout, the current bytes do not decode as the
        // same record; outside the closure they do again.
        let as_old: Result<StepRecord, _> =
            with_record_layout(RecordLayout::BeforeTimes, || postcard::from_bytes(&bytes));
        assert_ne!(as_old.ok(), Some(now.clone()));
        assert_eq!(postcard::from_bytes::<StepRecord>(&bytes).unwrap(), now);
        // JSON, a self-describing format, round-trips in the current layout.
        let json = serde_json::to_string(&now).unwrap();
        assert_eq!(serde_json::from_str::<StepRecord>(&json).unwrap(), now);
    }

    #[test]
    fn an_unknown_codec_id_is_a_newer_format() {
        let rec = StepRecord::completed(StepKind::Step, "u8", vec![1], None);
        let mut bytes = rec.encode();
        // format, state, kind, tag (len + 2 bytes), value (len + 1 byte), codec
        let at = 1 + 1 + 1 + 3 + 2;
        assert_eq!(bytes[at], Codec::Json.id());
        bytes[at] = 9;
        let err = StepRecord::decode(&bytes).unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::NewerFormat));
        bytes[0] = 4;
        let err = StepRecord::decode(&bytes).unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::NewerFormat));
    }

    #[test]
    fn status_kind_names_round_trip() {
        for kind in StatusKind::ALL {
            assert_eq!(StatusKind::parse(kind.as_str()), Some(kind));
        }
    }
}
