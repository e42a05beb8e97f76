//! Who runs an instance: ownership, epochs and the workers of a shared store.
//!
//! # The protocol
//!
//! Every instance has an [`Ownership`]: the worker that runs it now (if
//! any) and an **epoch**, a counter bumped at every acquisition.
//!
//! - **Acquire** ([`WriteOp::Acquire`](crate::WriteOp::Acquire)): a worker
//!   takes an instance that has no live owner (no owner, itself, or an
//!   owner the store judges dead) and gets the new epoch. An instance held
//!   by another live worker is refused ([`AcquireOutcome::Held`]).
//! - **Fenced writes** ([`WriteOp::Fenced`](crate::WriteOp::Fenced)): every
//!   write of a run carries the epoch it acquired. The store applies it only
//!   if that epoch is still the instance's current one and the instance is
//!   still owned; otherwise nothing is written and the answer is
//!   [`WriteOutcome::Stale`](crate::WriteOutcome::Stale). A worker that was
//!   paused or partitioned past its lease, whose instance another worker
//!   took over, can therefore never commit into it.
//! - **Release**: a fenced [`Park`](crate::WriteOp::Park) that parks the
//!   instance, or a fenced [`Finish`](crate::WriteOp::Finish) that finishes
//!   it, clears the owner (the epoch stays) in the same transaction. A
//!   signal, timer or resume that makes the instance runnable again leaves
//!   it unowned: pending work for any worker that has its workflow.
//!
//! Who judges liveness: the store ([`Transaction::owner_is_live`]). A store
//! that serves one engine (the embedded stores, guarded by their
//! [`EngineSlot`](crate::EngineSlot)) judges every other owner dead: it can
//! only be a process that is gone. A shared store (PostgreSQL) keeps a row
//! per worker renewed by [`Workers::heartbeat`] and judges by the
//! **database's** clock, never a worker's.
//!
//! Where it is kept: the embedded stores keep the ownership as the reserved
//! step record `_owner` (the default methods of
//! [`Transaction`](crate::transitions::Transaction)); a shared store keeps it in
//! columns of the instance row, where its queries for runnable work can see
//! it.
//!
//! What each failure does: a refused acquisition or a stale write writes
//! nothing; the engine drops that run without writing more (another worker
//! runs the instance). A storage error is "outcome unknown" as for every
//! write: the run stops, and the instance is acquired again later.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    Codec, EngineError, InstanceKey, MetadataStatus, StepKind, StepRecord, StorageError,
    StorageErrorKind,
};

/// The reserved step key under which the embedded stores keep an
/// instance's [`Ownership`].
pub(crate) const OWNER_KEY: &str = "_owner";

/// The type tag of the `_owner` record.
const OWNER_TAG: &str = "memable::Ownership";

/// Who runs an instance now, and the epoch of that acquisition.
///
/// # Examples
///
/// ```
/// use memable_core::Ownership;
///
/// let owned = Ownership { worker: Some("w1".into()), epoch: 3 };
/// assert!(owned.is_owned());
/// assert!(!Ownership { worker: None, epoch: 3 }.is_owned());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// The worker that acquired the instance, or `None` once its run
    /// parked or finished it (or before anyone acquired it).
    pub worker: Option<String>,
    /// Bumped at every acquisition; a write carrying another epoch is
    /// refused.
    pub epoch: u64,
}

impl Ownership {
    /// Whether a worker holds the instance.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!memable_core::Ownership { worker: None, epoch: 0 }.is_owned());
    /// ```
    #[must_use]
    pub fn is_owned(&self) -> bool {
        self.worker.is_some()
    }

    /// The `_owner` record that keeps this ownership in a store that keeps
    /// it as a step record.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::Ownership;
    ///
    /// let owned = Ownership { worker: Some("w1".into()), epoch: 3 };
    /// assert_eq!(Ownership::from_record(&owned.to_record()).unwrap(), owned);
    /// ```
    #[must_use]
    pub fn to_record(&self) -> StepRecord {
        let value = serde_json::to_vec(self).unwrap_or_default();
        let mut record = StepRecord::completed(StepKind::Engine, OWNER_TAG, value, None);
        record.codec = Codec::Json;
        record
    }

    /// Reads an `_owner` record back.
    ///
    /// # Errors
    ///
    /// A record that is not an ownership record is a
    /// [`StorageErrorKind::Corrupt`] error.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Ownership, StepKind, StepRecord};
    ///
    /// let junk = StepRecord::completed(StepKind::Engine, "u8", vec![1], None);
    /// assert!(Ownership::from_record(&junk).is_err());
    /// ```
    pub fn from_record(record: &StepRecord) -> Result<Self, EngineError> {
        if record.type_tag != OWNER_TAG || record.codec != Codec::Json {
            return Err(corrupt("the _owner record is not an ownership record"));
        }
        serde_json::from_slice(&record.value).map_err(|e| {
            StorageError::new(StorageErrorKind::Corrupt, "read_ownership", e.to_string()).into()
        })
    }
}

fn corrupt(message: &str) -> EngineError {
    StorageError::new(
        StorageErrorKind::Corrupt,
        "read_ownership",
        message.to_owned(),
    )
    .into()
}

/// Outcome of [`StepStoreExt::acquire`](crate::StepStoreExt::acquire).
///
/// # Examples
///
/// ```
/// use memable_core::AcquireOutcome;
/// assert_ne!(AcquireOutcome::Acquired { epoch: 1 }, AcquireOutcome::InstanceMissing);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcquireOutcome {
    /// The caller owns the instance now, under this new epoch.
    Acquired {
        /// The epoch every write of the caller's run must carry.
        epoch: u64,
    },
    /// Another worker that the store judges alive holds it; nothing was
    /// written.
    Held {
        /// The holder.
        worker: String,
    },
    /// The instance is cancelled; nothing was written.
    Cancelled,
    /// No such instance.
    InstanceMissing,
}

/// Answer to a [`WriteOp::Fenced`](crate::WriteOp::Fenced) write whose epoch
/// is no longer the instance's: nothing was written.
///
/// # Examples
///
/// ```
/// let stale = memable_core::StaleEpoch { epoch: 2, current: Some(3) };
/// assert!(stale.current > Some(stale.epoch));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleEpoch {
    /// The epoch the write carried.
    pub epoch: u64,
    /// The instance's current epoch (`None`: the instance is missing),
    /// which may equal `epoch` if the ownership was released.
    pub current: Option<u64>,
}

/// An instance acquired by [`Workers::acquire_runnable`].
///
/// # Examples
///
/// ```
/// use memable_core::{Acquired, InstanceKey};
/// let a = Acquired { key: InstanceKey::new("etl", "1").unwrap(), epoch: 1 };
/// assert_eq!(a.epoch, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acquired {
    /// The instance.
    pub key: InstanceKey,
    /// The epoch its run's writes carry.
    pub epoch: u64,
}

/// The workers of a store that many engines share (PostgreSQL): liveness,
/// and finding runnable work. A store that serves one engine has none
/// ([`StepStore::workers`](crate::StepStore::workers) is `None`).
///
/// # Examples
///
/// ```
/// use memable_core::{MemoryStore, StepStore};
/// assert!(MemoryStore::new().workers().is_none());
/// ```
#[async_trait]
pub trait Workers: Send + Sync {
    /// Registers `worker`, or renews it: alive until `lease` from now by the
    /// store's clock.
    async fn heartbeat(&self, worker: &str, lease: Duration) -> Result<(), EngineError>;

    /// Marks `worker` gone at once and releases every instance it still
    /// owns, so other workers may take them over without waiting for its
    /// lease. The engine calls it at a clean shutdown, and at start before
    /// its first heartbeat: what a worker id owns before its engine started
    /// belongs to an earlier process under that id (dead, or paused — a
    /// later acquisition fences it).
    async fn retire(&self, worker: &str) -> Result<(), EngineError>;

    /// Acquires for `worker` up to `limit` runnable instances of the given
    /// workflows: `Running`, with no owner or an owner that is not alive.
    /// Each comes with its new epoch. Concurrent callers never get the same
    /// instance.
    async fn acquire_runnable(
        &self,
        worker: &str,
        workflows: &[String],
        limit: usize,
    ) -> Result<Vec<Acquired>, EngineError>;

    /// Returns when new work may be there (another process started,
    /// signalled or resumed an instance) or after `timeout`.
    async fn wait_for_work(&self, timeout: Duration);
}

/// Whether a status can be acquired: every status but `Cancelled`.
pub(crate) fn acquirable(status: &MetadataStatus) -> bool {
    !matches!(status, MetadataStatus::Cancelled)
}
