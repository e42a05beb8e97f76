//! A durable memable [`StepStore`](memable_core::StepStore) over
//! [redb](https://docs.rs/redb), the default backend of memable.
//!
//! ```
//! use memable_redb::RedbStore;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = RedbStore::open(dir.path().join("workflows.redb")).unwrap();
//! // Engine::builder().store(store) …
//! # drop(store);
//! ```
//!
//! [`RedbStore::in_memory`] gives the same store without a file (redb's
//! in-memory backend), and [`RedbStore::builder`] sets the [`Durability`].
//!
//! # Tables
//!
//! Keys are redb tuples, compared element by element, never concatenated
//! strings, so a scan of one instance's steps cannot reach the rows of an
//! instance whose id shares a prefix.
//!
//! | table | key | value |
//! |---|---|---|
//! | `memable_meta` | `"format"` | format version (`u32`) |
//! | `memable_instances` | `(workflow, instance)` | encoded metadata |
//! | `memable_instances_by_status` | `(status, workflow, instance)` | `()` |
//! | `memable_steps` | `(workflow, instance, step key)` | encoded step record |
//! | `memable_timers` | `(deadline ms, workflow, instance, step key)` | `()` |
//!
//! The status index lists `Running` or `Suspended` instances without reading
//! any other instance; timers are ordered by deadline, so the due ones and
//! the next deadline are a scan from the start.
//!
//! The format version is written when a file is created and checked on every
//! open. A file of a newer format, a file that is not a redb database, a
//! redb database without memable's tables, a damaged file, and a file that
//! another process (or another store in this process) has open are all
//! refused with a clear [`EngineError::Storage`](memable_core::EngineError)
//! — never a panic.
//!
//! # Group commit
//!
//! One writer thread owns every write transaction. Each write call is queued
//! to it; the writer takes everything queued (up to 4096 operations), applies
//! each operation in one redb transaction, commits once, and answers each
//! caller with its own outcome (a lost compare-and-set is an outcome, not a
//! failure of the batch). A lone sequential workflow pays one commit per
//! step; a thousand concurrent ones share commits ([`RedbStore::stats`]
//! shows how many). If one operation fails with a storage error, the batch
//! is rolled back and its operations are retried one transaction each, so
//! only that operation fails; if a commit fails, every operation of the batch
//! fails and none of them is written.
//!
//! Reads run in redb read transactions on tokio's blocking pool, never on an
//! async worker thread. Dropping the last handle stops the writer thread and
//! closes the file before `drop` returns.
//!
//! # Durability
//!
//! [`Durability::Immediate`] (the default) flushes every commit to the disk
//! before acknowledging it: acknowledged transitions survive a power loss.
//! [`Durability::Relaxed`] writes every commit to the file without flushing:
//! acknowledged transitions survive the process crashing or being killed,
//! not a power loss or an operating-system crash.
//!
//! Opening verifies every page's checksum by default
//! ([`RedbStoreBuilder::verify_on_open`]), so a damaged file is refused at
//! open rather than failing at a later read. A power loss during the very
//! first open of a new file (before [`RedbStore::open`] returned) can leave
//! a file redb never finished creating; it is refused as "not a redb
//! database" and, holding nothing, can be deleted.
#![forbid(unsafe_code)]

mod backend;
mod open;
mod read;
mod store;
mod tables;
mod txn;
mod writer;

pub use open::{Durability, RedbStoreBuilder};
pub use store::{RedbStore, StoreStats};
