//! `SqliteStore`: a durable memable [`StepStore`](memable_core::StepStore)
//! over SQLite (bundled: a fresh machine needs no system SQLite).
//!
//! ```
//! use memable_core::Engine;
//! use memable_sqlite::SqliteStore;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let engine = Engine::builder().store(SqliteStore::open(dir.path().join("memable.db")).unwrap()).build();
//! # let _ = engine;
//! ```
//!
//! # Schema
//!
//! Created and upgraded by numbered migrations tracked in
//! `PRAGMA user_version`; `PRAGMA application_id` is `0x6d6d626c` ("mmbl").
//! A database with a newer schema, another application's database and a
//! non-SQLite file are refused with a clear [`EngineError::Storage`](memable_core::EngineError::Storage).
//!
//! | table | key | columns |
//! |---|---|---|
//! | `instances` | `(workflow, instance)` | `status` (`running`, `suspended`, `completed`, `failed`, `cancelled`), `suspended_key`, `message` (status message or error), `created_at_ms`, `updated_at_ms`, `completed_at_ms`; index `instances_by_status (status, workflow, instance)` |
//! | `steps` | `(workflow, instance, step_key)` | `state` (`completed`, `suspended`, `retrying`, `failed`), `kind`, `type_tag`, `value` (postcard bytes), `status`, `attempts`, `error`, `deadline_ms`; foreign key to `instances` |
//! | `timers` | `(deadline_ms, workflow, instance, step_key)` | — |
//!
//! Deadlines (`steps.deadline_ms`, `timers.deadline_ms`) span all of `u64`, so they are stored offset by 2^63 (deadline = stored value + 9223372036854775808); times in `instances` are plain milliseconds since the Unix epoch.
//!
//! Any SQLite client can inspect a database, even while the engine runs:
//!
//! ```text
//! sqlite3 memable.db "select workflow, instance, status, message from instances where status = 'failed'"
//! ```
//!
//! `_input` and `_output` are rows of `steps`; keys starting with `_` are the
//! engine's.
//!
//! # Writes and reads
//!
//! One writer thread owns the write connection and **group-commits**: it
//! drains every queued write into one `BEGIN IMMEDIATE` transaction and one
//! commit, then answers each caller. A lone workflow pays one commit per
//! step; many concurrent workflows share commits. Reads run on a small pool
//! of read-only connections in tokio's blocking pool, never on a tokio
//! worker. Statements are prepared once and cached.
//!
//! # Durability
//!
//! [`Synchronous::Full`] (default) fsyncs every commit: it survives process
//! crashes and power loss. [`Synchronous::Normal`] survives process crashes
//! but a power loss may undo the last commits; it is faster.
//!
//! # One engine per database
//!
//! A store takes an exclusive advisory lock on `<file>.memable-lock` for its
//! lifetime. A second store on the same database — a second engine in
//! another process, or in this one — is **refused** with a clear error, so
//! one instance can never run twice at once and the file is never written by
//! two writers. Other readers (the `sqlite3` CLI, reporting tools) may read
//! the file at any time.
#![forbid(unsafe_code)]

mod error;
mod open;
mod readers;
mod rows;
mod schema;
mod store;
mod txn;
mod writer;

pub use open::{SqliteStoreBuilder, Synchronous};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use store::{SqliteStore, StoreStats};
