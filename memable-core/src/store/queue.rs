//! Queues: instances that wait for admission under a queue's limits.
//!
//! # The protocol
//!
//! An invocation through a queue is one [`WriteOp::Enqueue`](crate::WriteOp::Enqueue):
//! the instance is created **queued** — `Suspended` at the reserved key
//! `_queue` (status message: the queue's name), so no worker runs it — with
//! its `_input` and its [`QueueTicket`] under `_queue`. The queue itself is
//! a reserved instance, workflow `_queue`, id the queue's name (user
//! workflow names never start with `_`), whose records are:
//!
//! | key | value | written by |
//! |---|---|---|
//! | `seq` | the last ticket number (JSON `u64`) | enqueue |
//! | `p:<priority><seq>` | a pending entry ([`QueueEntry`]), in admission order | enqueue; removed by admit, cancel, delete |
//! | `a:<instance>` | an admitted entry: the instance holds a slot | admit, revive; removed when the instance ends |
//! | `d:<dedup id>` | the instance holding a dedup id | enqueue; removed when it ends |
//! | `rate` | admission times within the rate period (JSON `[u64]`) | admit |
//!
//! An [`Admit`](crate::WriteOp::Admit) takes pending entries in key order
//! (highest priority first, then first come) while the queue's limits
//! allow, and for each writes, together: the entry moved from pending to
//! admitted, the instance `Running` (and, for a worker of a shared store,
//! owned by it under a new epoch, as an acquisition), the rate window.
//! An instance holds its slot from admission until it ends (completed,
//! failed, cancelled, deleted), also while it is suspended: "at most K
//! running" means at most K started and not ended. Its end removes its
//! entries in the same transaction as the end.
//!
//! Who may touch what: enqueue and admit bump the queue instance's
//! `updated_at`, so on a store where transactions run concurrently
//! (PostgreSQL) two of them on one queue conflict and one is retried —
//! they are serialized, and no admission counts slots from a stale view.
//! An end only removes its own entries; an admission that does not see it
//! yet admits less, never more.
//!
//! Failures: every step above is inside one transition, so a crash leaves
//! all of an enqueue, an admission or an end, or none of it.

use serde::{Deserialize, Serialize};

use super::family::escape;
use super::transitions::Transaction;
use crate::key::{INPUT_KEY, QUEUE_KEY};
use crate::{
    Codec, EngineError, InstanceKey, MetadataStatus, Ownership, StepKind, StepRecord, StorageError,
    StorageErrorKind, WorkflowMetadata,
};

/// The workflow name of the reserved instances that hold queues.
pub const QUEUE_WORKFLOW: &str = "_queue";

const TICKET_TAG: &str = "memable:queue-ticket";
const ENTRY_TAG: &str = "memable:queue-entry";
const STATE_TAG: &str = "memable:queue-state";
const SEQ_KEY: &str = "seq";
const RATE_KEY: &str = "rate";
const PENDING_PREFIX: &str = "p:";
const ADMITTED_PREFIX: &str = "a:";
const DEDUP_PREFIX: &str = "d:";

/// How an instance goes through a queue: stored with it under `_queue`.
///
/// # Examples
///
/// ```
/// use memable_core::QueueTicket;
///
/// let ticket = QueueTicket::new("emails").partition("customer-7").priority(3);
/// assert_eq!(QueueTicket::from_record(&ticket.to_record()).unwrap(), ticket);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTicket {
    /// The queue's name.
    pub queue: String,
    /// The partition key: at most the queue's per-partition limit of
    /// instances with the same key hold a slot at once.
    pub partition: Option<String>,
    /// Higher is admitted first (default 0); equal priorities go first
    /// come, first served.
    pub priority: u8,
    /// While an instance with this id is queued or holds a slot, another
    /// enqueue with it is refused.
    pub dedup: Option<String>,
    /// The pending entry's key (set by the enqueue).
    pub pending_key: Option<String>,
}

impl QueueTicket {
    /// A ticket for `queue`, no partition, priority 0, no dedup id.
    ///
    /// # Examples
    ///
    /// See [`QueueTicket`].
    #[must_use]
    pub fn new(queue: impl Into<String>) -> Self {
        Self {
            queue: queue.into(),
            partition: None,
            priority: 0,
            dedup: None,
            pending_key: None,
        }
    }

    /// Sets the partition key.
    ///
    /// # Examples
    ///
    /// See [`QueueTicket`].
    #[must_use]
    pub fn partition(mut self, key: impl Into<String>) -> Self {
        self.partition = Some(key.into());
        self
    }

    /// Sets the priority.
    ///
    /// # Examples
    ///
    /// See [`QueueTicket`].
    #[must_use]
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the dedup id.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = memable_core::QueueTicket::new("emails").dedup("user-7");
    /// assert_eq!(t.dedup.as_deref(), Some("user-7"));
    /// ```
    #[must_use]
    pub fn dedup(mut self, id: impl Into<String>) -> Self {
        self.dedup = Some(id.into());
        self
    }

    /// The ticket as the record stored under `_queue`.
    ///
    /// # Examples
    ///
    /// See [`QueueTicket`].
    #[must_use]
    pub fn to_record(&self) -> StepRecord {
        json_record(TICKET_TAG, self)
    }

    /// Reads a `_queue` record back.
    ///
    /// # Errors
    ///
    /// A record that is not a ticket is a
    /// [`Corrupt`](StorageErrorKind::Corrupt) storage error.
    ///
    /// # Examples
    ///
    /// See [`QueueTicket`].
    pub fn from_record(record: &StepRecord) -> Result<Self, EngineError> {
        from_json(TICKET_TAG, "queue ticket", record)
    }
}

/// A queue's limits, as the admitting engine declares them (every engine
/// on a store must declare a queue alike).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::QueueLimits;
///
/// let limits = QueueLimits { concurrency: Some(10), per_partition: Some(1), rate: Some((100, 60_000)) };
/// assert_eq!(limits.rate, Some((100, 60_000)));
/// assert_eq!(QueueLimits::default().concurrency, None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimits {
    /// At most this many instances of the queue hold a slot at once.
    pub concurrency: Option<usize>,
    /// At most this many instances of one partition hold a slot at once.
    pub per_partition: Option<usize>,
    /// At most `n` admissions in any window of `period_ms`.
    pub rate: Option<(u32, u64)>,
}

/// One pending or admitted instance in a queue's records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueueEntry {
    pub instance: InstanceKey,
    pub partition: Option<String>,
}

/// Outcome of [`StepStoreExt::enqueue`](crate::StepStoreExt::enqueue).
///
/// # Examples
///
/// ```
/// use memable_core::EnqueueOutcome;
/// assert_eq!(EnqueueOutcome::Enqueued, EnqueueOutcome::Enqueued);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// The instance was created queued.
    Enqueued,
    /// An instance with this key already exists (whatever its status);
    /// nothing was written.
    Exists(WorkflowMetadata),
    /// Another active instance holds the ticket's dedup id (returned);
    /// nothing was written.
    Duplicate(InstanceKey),
}

/// Outcome of [`StepStoreExt::admit`](crate::StepStoreExt::admit).
///
/// # Examples
///
/// ```
/// use memable_core::AdmitOutcome;
/// let none = AdmitOutcome::default();
/// assert!(none.admitted.is_empty() && none.pending == 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmitOutcome {
    /// The instances admitted, each with the epoch its worker acquired
    /// (`None` when no worker was named).
    pub admitted: Vec<(InstanceKey, Option<u64>)>,
    /// Entries still pending.
    pub pending: usize,
    /// When the rate limit lets the next one in, if it is what holds the
    /// pending entries back.
    pub retry_at_ms: Option<u64>,
}

/// The reserved instance that holds `queue`.
pub(crate) fn queue_instance(queue: &str) -> Result<InstanceKey, EngineError> {
    InstanceKey::new(QUEUE_WORKFLOW, queue)
}

fn json_record<T: Serialize>(tag: &str, value: &T) -> StepRecord {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    StepRecord::completed(StepKind::Engine, tag, bytes, None).with_codec(Codec::Json)
}

fn from_json<T: serde::de::DeserializeOwned>(
    tag: &str,
    what: &str,
    record: &StepRecord,
) -> Result<T, EngineError> {
    if record.type_tag != tag || record.codec != Codec::Json {
        return Err(corrupt(format!("the record is not a {what}")));
    }
    serde_json::from_slice(&record.value).map_err(|e| corrupt(format!("a {what}: {e}")))
}

fn corrupt(message: String) -> EngineError {
    StorageError::new(StorageErrorKind::Corrupt, "queue", message).into()
}

fn admitted_key(instance: &InstanceKey) -> String {
    format!(
        "{ADMITTED_PREFIX}{}:{}",
        escape(instance.workflow()),
        escape(instance.instance())
    )
}

fn dedup_key(id: &str) -> String {
    format!("{DEDUP_PREFIX}{id}")
}

/// Whether `status` is "queued, not admitted yet".
pub(crate) fn is_queued(status: &MetadataStatus) -> bool {
    matches!(status, MetadataStatus::Suspended { key, .. } if key == QUEUE_KEY)
}

/// The queue's metadata, created on first use, with `updated_at = now_ms`.
fn touch_queue(
    txn: &mut impl Transaction,
    queue: &InstanceKey,
    now_ms: u64,
) -> Result<(), EngineError> {
    let previous = txn.metadata(queue)?;
    let meta = match &previous {
        Some(meta) => WorkflowMetadata {
            updated_at_ms: now_ms,
            ..meta.clone()
        },
        None => WorkflowMetadata {
            status: MetadataStatus::Suspended {
                key: QUEUE_KEY.to_owned(),
                status: None,
            },
            ..WorkflowMetadata::running(queue, now_ms)
        },
    };
    txn.put_metadata(queue, &meta, previous.as_ref())
}

/// The rule of [`WriteOp::Enqueue`](crate::WriteOp::Enqueue).
pub(crate) fn enqueue(
    txn: &mut impl Transaction,
    key: &InstanceKey,
    input: &StepRecord,
    ticket: &QueueTicket,
    now_ms: u64,
) -> Result<EnqueueOutcome, EngineError> {
    if let Some(existing) = txn.metadata(key)? {
        return Ok(EnqueueOutcome::Exists(existing));
    }
    let queue = queue_instance(&ticket.queue)?;
    if let Some(id) = &ticket.dedup
        && let Some(holder) = txn.step(&queue, &dedup_key(id))?
    {
        let holder: InstanceKey = from_json(STATE_TAG, "dedup entry", &holder)?;
        if txn
            .metadata(&holder)?
            .is_some_and(|m| !m.status.is_terminal())
        {
            return Ok(EnqueueOutcome::Duplicate(holder));
        }
    }
    let seq = match txn.step(&queue, SEQ_KEY)? {
        Some(record) => from_json::<u64>(STATE_TAG, "queue counter", &record)? + 1,
        None => 1,
    };
    let pending_key = format!(
        "{PENDING_PREFIX}{:02x}{seq:016x}",
        u8::MAX - ticket.priority
    );
    touch_queue(txn, &queue, now_ms)?;
    txn.put_step(&queue, SEQ_KEY, &json_record(STATE_TAG, &seq))?;
    let entry = QueueEntry {
        instance: key.clone(),
        partition: ticket.partition.clone(),
    };
    txn.put_step(&queue, &pending_key, &json_record(ENTRY_TAG, &entry))?;
    if let Some(id) = &ticket.dedup {
        txn.put_step(&queue, &dedup_key(id), &json_record(STATE_TAG, key))?;
    }
    let meta = WorkflowMetadata {
        status: MetadataStatus::Suspended {
            key: QUEUE_KEY.to_owned(),
            status: Some(ticket.queue.clone()),
        },
        ..WorkflowMetadata::running(key, now_ms)
    };
    txn.put_metadata(key, &meta, None)?;
    txn.put_step(key, INPUT_KEY, input)?;
    let stored = QueueTicket {
        pending_key: Some(pending_key),
        ..ticket.clone()
    };
    txn.put_step(key, QUEUE_KEY, &stored.to_record())?;
    Ok(EnqueueOutcome::Enqueued)
}

/// The rule of [`WriteOp::Admit`](crate::WriteOp::Admit).
#[allow(clippy::too_many_arguments)]
pub(crate) fn admit(
    txn: &mut impl Transaction,
    queue_name: &str,
    limits: &QueueLimits,
    workflows: Option<&[String]>,
    worker: Option<&str>,
    max: usize,
    now_ms: u64,
) -> Result<AdmitOutcome, EngineError> {
    let queue = queue_instance(queue_name)?;
    if txn.metadata(&queue)?.is_none() {
        return Ok(AdmitOutcome::default());
    }
    let mut pending = Vec::new();
    let mut admitted = Vec::new();
    let mut rate: Vec<u64> = Vec::new();
    for (step_key, record) in txn.steps(&queue)? {
        if step_key.starts_with(PENDING_PREFIX) {
            pending.push((
                step_key,
                from_json::<QueueEntry>(ENTRY_TAG, "queue entry", &record)?,
            ));
        } else if step_key.starts_with(ADMITTED_PREFIX) {
            admitted.push(from_json::<QueueEntry>(ENTRY_TAG, "queue entry", &record)?);
        } else if step_key == RATE_KEY {
            rate = from_json(STATE_TAG, "rate window", &record)?;
        }
    }
    if let Some((_, period)) = limits.rate {
        rate.retain(|at| at.saturating_add(period) > now_ms);
    }
    let mut outcome = AdmitOutcome::default();
    let mut holding = admitted.len();
    let mut left = pending.len();
    for (pending_key, entry) in pending {
        if outcome.admitted.len() >= max || limits.concurrency.is_some_and(|k| holding >= k) {
            break;
        }
        if let Some((n, period)) = limits.rate
            && rate.len() >= n as usize
        {
            outcome.retry_at_ms = rate.iter().min().map(|first| first.saturating_add(period));
            break;
        }
        if workflows.is_some_and(|names| !names.iter().any(|n| n == entry.instance.workflow())) {
            continue;
        }
        if let (Some(limit), Some(partition)) = (limits.per_partition, &entry.partition)
            && admitted
                .iter()
                .filter(|a| a.partition.as_ref() == Some(partition))
                .count()
                >= limit
        {
            continue;
        }
        txn.remove_step(&queue, &pending_key)?;
        left -= 1;
        let Some(meta) = txn
            .metadata(&entry.instance)?
            .filter(|m| is_queued(&m.status))
        else {
            // Ended or gone meanwhile (its end removes its entry; this is a
            // leftover): drop it.
            continue;
        };
        txn.put_step(
            &queue,
            &admitted_key(&entry.instance),
            &json_record(ENTRY_TAG, &entry),
        )?;
        let running = WorkflowMetadata {
            status: MetadataStatus::Running,
            updated_at_ms: now_ms,
            ..meta.clone()
        };
        txn.put_metadata(&entry.instance, &running, Some(&meta))?;
        let epoch = match worker {
            Some(worker) => {
                let epoch = txn.ownership(&entry.instance)?.map_or(0, |o| o.epoch) + 1;
                txn.put_ownership(
                    &entry.instance,
                    &Ownership {
                        worker: Some(worker.to_owned()),
                        epoch,
                    },
                )?;
                Some(epoch)
            }
            None => None,
        };
        if limits.rate.is_some() {
            rate.push(now_ms);
        }
        holding += 1;
        outcome.admitted.push((entry.instance.clone(), epoch));
        admitted.push(entry);
    }
    outcome.pending = left;
    if !outcome.admitted.is_empty() {
        touch_queue(txn, &queue, now_ms)?;
        if limits.rate.is_some() {
            txn.put_step(&queue, RATE_KEY, &json_record(STATE_TAG, &rate))?;
        }
    }
    Ok(outcome)
}

/// The ticket of `key`, if it went through a queue.
fn ticket_of(
    txn: &mut impl Transaction,
    key: &InstanceKey,
) -> Result<Option<QueueTicket>, EngineError> {
    txn.step(key, QUEUE_KEY)?
        .map(|record| QueueTicket::from_record(&record))
        .transpose()
}

/// An instance ends (finish, cancel, delete): its entries leave its queue.
pub(crate) fn leave(txn: &mut impl Transaction, key: &InstanceKey) -> Result<(), EngineError> {
    let Some(ticket) = ticket_of(txn, key)? else {
        return Ok(());
    };
    let queue = queue_instance(&ticket.queue)?;
    txn.remove_step(&queue, &admitted_key(key))?;
    if let Some(pending) = &ticket.pending_key {
        txn.remove_step(&queue, pending)?;
    }
    if let Some(id) = &ticket.dedup {
        let holder = dedup_key(id);
        if let Some(record) = txn.step(&queue, &holder)?
            && from_json::<InstanceKey>(STATE_TAG, "dedup entry", &record)? == *key
        {
            txn.remove_step(&queue, &holder)?;
        }
    }
    Ok(())
}

/// A revived instance that went through a queue holds a slot again.
pub(crate) fn rejoin(txn: &mut impl Transaction, key: &InstanceKey) -> Result<(), EngineError> {
    let Some(ticket) = ticket_of(txn, key)? else {
        return Ok(());
    };
    let queue = queue_instance(&ticket.queue)?;
    let entry = QueueEntry {
        instance: key.clone(),
        partition: ticket.partition,
    };
    txn.put_step(&queue, &admitted_key(key), &json_record(ENTRY_TAG, &entry))
}
