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
//! | `h` | the queue's [`QueueHeads`]: per priority, the next ticket number and the first one not admitted; the rate window's admission times | enqueue, admit |
//! | `p:<priority><n>` | a pending entry ([`QueueEntry`]): ticket `n` of that priority | enqueue; removed by admit, cancel, delete |
//! | `s:<i>` | slot `i` of the concurrency limit, held by an admitted instance | admit; removed when the instance ends |
//! | `ps:<partition>:<j>` | slot `j` of a partition's limit | admit; removed when the instance ends |
//! | `d:<dedup id>` | the instance holding a dedup id | enqueue; removed when it ends |
//!
//! An [`Admit`](crate::WriteOp::Admit) reads the heads and probes the K
//! slots of the limit (and a partition's slots when it meets one), then
//! reads pending entries one by one from the head of the highest priority
//! down — point reads only, so its cost does not grow with the length of
//! the queue — while the limits allow, and for each writes, together: the
//! entry removed, the slots it takes (recorded in its ticket), the
//! instance `Running` (and, for a worker of a shared store, owned by it
//! under a new epoch, as an acquisition), the heads and the rate window.
//! An entry whose partition is full is skipped and stays pending (the head
//! stops before it; later admissions look at it again). An instance holds
//! its slots from admission until it ends (completed, failed, cancelled,
//! deleted), also while it is suspended: "at most K running" means at most
//! K started and not ended. Its end removes its slots and entries in the
//! same transaction as the end.
//!
//! Who may touch what: enqueue and admit bump the queue instance's
//! `updated_at` and are the only writers of `h` and of the slots, so on a
//! store where transactions run concurrently (PostgreSQL) two of them on
//! one queue conflict and one is retried — they are serialized. An end only
//! removes its own slots and entries; an admission that does not see that
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
const HEADS_KEY: &str = "h";
const PENDING_PREFIX: &str = "p:";
const SLOT_PREFIX: &str = "s:";
const PARTITION_SLOT_PREFIX: &str = "ps:";
const DEDUP_PREFIX: &str = "d:";

/// At most this many pending entries an admission looks at beyond the
/// ones it skipped (their partition full), per priority: a long run of
/// blocked entries delays the ones behind it instead of making every
/// admission read them all.
const SCAN_LIMIT: u64 = 1_024;

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
    /// The pending entry's key (set by the enqueue, cleared by the
    /// admission).
    pub pending_key: Option<String>,
    /// The slots the instance holds (set by the admission).
    #[serde(default)]
    pub held: Vec<String>,
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
            held: Vec::new(),
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

/// A queue's heads: per priority, `(first not admitted, next ticket)`, and
/// the rate window's admission times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueueHeads {
    pub lanes: std::collections::BTreeMap<u8, (u64, u64)>,
    pub rate: Vec<u64>,
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
    /// Entries still pending (at most: entries of instances that ended
    /// while queued may still be counted).
    pub pending: usize,
    /// When the rate limit lets the next one in, if it is what holds the
    /// pending entries back.
    pub retry_at_ms: Option<u64>,
}

/// The keys of a queue's records that an admission under `limits` reads
/// first — the heads and the concurrency slots — so a store that fetches
/// ahead can fetch them in one go.
///
/// # Examples
///
/// ```
/// use memable_core::{QueueLimits, queue_admission_keys};
/// let limits = QueueLimits { concurrency: Some(2), ..QueueLimits::default() };
/// assert_eq!(queue_admission_keys(&limits).len(), 3);
/// ```
#[must_use]
pub fn queue_admission_keys(limits: &QueueLimits) -> Vec<String> {
    std::iter::once(HEADS_KEY.to_owned())
        .chain((0..limits.concurrency.unwrap_or(0)).map(slot_key))
        .collect()
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

fn pending_key(priority: u8, n: u64) -> String {
    format!("{PENDING_PREFIX}{:02x}{n:016x}", u8::MAX - priority)
}

fn slot_key(i: usize) -> String {
    format!("{SLOT_PREFIX}{i:08x}")
}

fn partition_slot_key(partition: &str, j: usize) -> String {
    format!("{PARTITION_SLOT_PREFIX}{}:{j:08x}", escape(partition))
}

fn heads(txn: &mut impl Transaction, queue: &InstanceKey) -> Result<QueueHeads, EngineError> {
    match txn.step(queue, HEADS_KEY)? {
        Some(record) => from_json(STATE_TAG, "queue heads", &record),
        None => Ok(QueueHeads::default()),
    }
}

/// The free slots among `count` slots named by `name`.
fn free_slots(
    txn: &mut impl Transaction,
    queue: &InstanceKey,
    count: usize,
    name: impl Fn(usize) -> String,
) -> Result<Vec<String>, EngineError> {
    let mut free = Vec::new();
    for i in 0..count {
        let key = name(i);
        if txn.step(queue, &key)?.is_none() {
            free.push(key);
        }
    }
    // Taken from the back: the lowest slot first.
    free.reverse();
    Ok(free)
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
    let mut heads = heads(txn, &queue)?;
    let lane = heads.lanes.entry(ticket.priority).or_insert((0, 0));
    let pending_key = pending_key(ticket.priority, lane.1);
    lane.1 += 1;
    touch_queue(txn, &queue, now_ms)?;
    txn.put_step(&queue, HEADS_KEY, &json_record(STATE_TAG, &heads))?;
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
        held: Vec::new(),
        ..ticket.clone()
    };
    txn.put_step(key, QUEUE_KEY, &stored.to_record())?;
    Ok(EnqueueOutcome::Enqueued)
}

/// The rule of [`WriteOp::Admit`](crate::WriteOp::Admit).
#[allow(clippy::too_many_arguments, clippy::too_many_lines)] // one pass over the lanes
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
    let mut heads = heads(txn, &queue)?;
    let mut free = match limits.concurrency {
        Some(k) => Some(free_slots(txn, &queue, k, slot_key)?),
        None => None,
    };
    if let Some((_, period)) = limits.rate {
        heads.rate.retain(|at| at.saturating_add(period) > now_ms);
    }
    let mut outcome = AdmitOutcome::default();
    let mut partitions: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    let priorities: Vec<u8> = heads.lanes.keys().rev().copied().collect();
    // Admitted entries that lie behind a skipped one (the head stays
    // before them): not pending any more, though within the lanes' spans.
    let mut behind_skip = 0usize;
    let mut done = false;
    for priority in priorities {
        if done {
            break;
        }
        let (first, tail) = heads.lanes.get(&priority).copied().unwrap_or_default();
        let mut new_head = first;
        let mut skipped = false;
        let mut n = first;
        while n < tail && n < first.saturating_add(SCAN_LIMIT) {
            if outcome.admitted.len() >= max || free.as_ref().is_some_and(Vec::is_empty) {
                done = true;
                break;
            }
            if let Some((limit, period)) = limits.rate
                && heads.rate.len() >= limit as usize
            {
                outcome.retry_at_ms = heads.rate.iter().min().map(|t| t.saturating_add(period));
                done = true;
                break;
            }
            let key = pending_key(priority, n);
            n += 1;
            let Some(record) = txn.step(&queue, &key)? else {
                // Gone (its instance ended while queued).
                if !skipped {
                    new_head = n;
                }
                continue;
            };
            let entry: QueueEntry = from_json(ENTRY_TAG, "queue entry", &record)?;
            if workflows.is_some_and(|names| !names.iter().any(|w| w == entry.instance.workflow()))
            {
                skipped = true;
                continue;
            }
            let partition_slot = match (limits.per_partition, &entry.partition) {
                (Some(limit), Some(partition)) => {
                    if !partitions.contains_key(partition) {
                        let slots =
                            free_slots(txn, &queue, limit, |j| partition_slot_key(partition, j))?;
                        partitions.insert(partition.clone(), slots);
                    }
                    let Some(slot) = partitions.get_mut(partition).and_then(Vec::pop) else {
                        skipped = true;
                        continue;
                    };
                    Some(slot)
                }
                _ => None,
            };
            txn.remove_step(&queue, &key)?;
            if skipped {
                behind_skip += 1;
            } else {
                new_head = n;
            }
            let mut slots: Vec<String> = free
                .as_mut()
                .and_then(Vec::pop)
                .into_iter()
                .chain(partition_slot.clone())
                .collect();
            let Taken::Admitted(epoch) = take(
                txn,
                &queue,
                queue_name,
                &entry.instance,
                &slots,
                worker,
                now_ms,
            )?
            else {
                // Ended or gone meanwhile: a leftover entry, dropped; its
                // slots stay free.
                if let Some(global) = free.as_mut()
                    && limits.concurrency.is_some()
                    && !slots.is_empty()
                {
                    global.push(slots.remove(0));
                }
                if let (Some(slot), Some(partition)) = (partition_slot, &entry.partition)
                    && let Some(free_here) = partitions.get_mut(partition)
                {
                    free_here.push(slot);
                }
                continue;
            };
            if limits.rate.is_some() {
                heads.rate.push(now_ms);
            }
            outcome.admitted.push((entry.instance, epoch));
        }
        if let Some(lane) = heads.lanes.get_mut(&priority) {
            lane.0 = new_head;
        }
    }
    outcome.pending = heads
        .lanes
        .values()
        .map(|(head, tail)| usize::try_from(tail.saturating_sub(*head)).unwrap_or(usize::MAX))
        .sum::<usize>()
        .saturating_sub(behind_skip);
    let before = self::heads(txn, &queue)?;
    if !outcome.admitted.is_empty() || before != heads {
        touch_queue(txn, &queue, now_ms)?;
        txn.put_step(&queue, HEADS_KEY, &json_record(STATE_TAG, &heads))?;
    }
    Ok(outcome)
}

/// What [`take`] did with one entry.
enum Taken {
    /// Its instance is no longer queued: nothing was written.
    Leftover,
    /// Admitted, with the epoch of the worker's acquisition, if any.
    Admitted(Option<u64>),
}

/// Admits one queued instance into `slots`: the slots written, its ticket
/// updated, the instance `Running` (and acquired by `worker`).
fn take(
    txn: &mut impl Transaction,
    queue: &InstanceKey,
    queue_name: &str,
    instance: &InstanceKey,
    slots: &[String],
    worker: Option<&str>,
    now_ms: u64,
) -> Result<Taken, EngineError> {
    let Some(meta) = txn.metadata(instance)?.filter(|m| is_queued(&m.status)) else {
        return Ok(Taken::Leftover);
    };
    let holder = json_record(STATE_TAG, instance);
    for slot in slots {
        txn.put_step(queue, slot, &holder)?;
    }
    let ticket = match txn.step(instance, QUEUE_KEY)? {
        Some(record) => QueueTicket::from_record(&record)?,
        None => QueueTicket::new(queue_name),
    };
    let ticket = QueueTicket {
        pending_key: None,
        held: slots.to_vec(),
        ..ticket
    };
    txn.put_step(instance, QUEUE_KEY, &ticket.to_record())?;
    let running = WorkflowMetadata {
        status: MetadataStatus::Running,
        updated_at_ms: now_ms,
        ..meta.clone()
    };
    txn.put_metadata(instance, &running, Some(&meta))?;
    let Some(worker) = worker else {
        return Ok(Taken::Admitted(None));
    };
    let epoch = txn.ownership(instance)?.map_or(0, |o| o.epoch) + 1;
    txn.put_ownership(
        instance,
        &Ownership {
            worker: Some(worker.to_owned()),
            epoch,
        },
    )?;
    Ok(Taken::Admitted(Some(epoch)))
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
    for slot in &ticket.held {
        txn.remove_step(&queue, slot)?;
    }
    if let Some(pending) = &ticket.pending_key {
        txn.remove_step(&queue, pending)?;
    }
    if !ticket.held.is_empty() || ticket.pending_key.is_some() {
        // Left: a later end (after a resume) frees nothing of another's.
        let left = QueueTicket {
            held: Vec::new(),
            pending_key: None,
            ..ticket.clone()
        };
        txn.put_step(key, QUEUE_KEY, &left.to_record())?;
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
