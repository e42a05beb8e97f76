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
//! | `instances` | `(workflow, instance)` | `status` (`running`, `suspended`, `completed`, `failed`, `cancelled`), `suspended_key`, `message` (status message or error), `created_at_ms`, `updated_at_ms`, `completed_at_ms`; index `instances_by_status (status, workflow, instance)`, partial index `instances_by_end (status, completed_at_ms)` |
//! | `steps` | `(workflow, instance, step_key)` | `state` (`completed`, `suspended`, `retrying`, `failed`), `kind`, `type_tag`, `value` (the value's bytes in its `codec`, empty when `value_id` is set), `status`, `attempts`, `error`, `deadline_ms`, `value_id` (the `step_values` row of a value longer than 256 bytes), `codec` (the value's [`Codec`](memable_core::Codec) id: 1 JSON, written now; 0 postcard, every row written before schema 4), `started_at_ms` and `completed_at_ms` (the step's times, NULL on rows written before schema 5); foreign key to `instances` |
//! | `step_values` | `id` (rowid) | `value`: a long step value, deleted with its step row by triggers |
//! | `timers` | `(deadline_ms, workflow, instance, step_key)` | — |
//! | `memable_journal` | `key` | `value`: `lsn` (last journaled batch committed), `journal_id` (the id the journal file must carry), `checkpoints`, `dirty` (1 from open to a clean close: the journal may hold work the database lacks) |
//!
//! Deadlines (`steps.deadline_ms`, `timers.deadline_ms`) span all of `u64`, so they are stored offset by 2^63 (deadline = stored value + 9223372036854775808); times in `instances` are plain milliseconds since the Unix epoch.
//!
//! To read a step's value with plain SQL: `coalesce((select value from
//! step_values where id = steps.value_id), steps.value)`; a value of codec 1
//! is JSON text (`cast(value as text)`, or SQLite's `json()` functions).
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
//! step; many concurrent workflows share commits. Reads run on two reader
//! threads with read-only connections (never on a tokio worker); each serves
//! every read queued when it wakes inside one read transaction. Statements
//! are prepared once and cached.
//!
//! # Durability and the journal
//!
//! [`Durability::Immediate`] (default) makes every acknowledged commit survive
//! process crashes and power loss. For a file store it does so with a
//! write-ahead **journal** next to the database, `<database path>.journal`
//! (format: [`memable_store::journal`]; the protocol: [`memable_store::commit`]), because one small in-place append
//! and one `fdatasync` cost less than SQLite flushing its WAL pages. For
//! every batch the writer
//!
//! 1. applies it in a savepoint of a write transaction, recording the
//!    batch's log sequence number (lsn) in `memable_journal`,
//! 2. appends the batch's operations under that lsn to the journal and
//!    flushes the journal,
//! 3. answers the callers. The transaction is committed with
//!    `synchronous = NORMAL` (written to the WAL, not flushed) after a
//!    batch of several writes, when the queue goes idle, when a reader
//!    waits, or after 64 batches or 2 ms — so the one-write batches of a
//!    lone sequential workflow share a WAL commit. Reads wait until every
//!    answered batch is committed before they open their snapshot, so a
//!    caller always reads its own writes.
//!
//! Every 2 MiB of journal, and when the store closes, the writer
//! *checkpoints*: one commit with `synchronous = FULL`, whose WAL flush makes
//! every earlier commit durable; the journal is then reused from its start.
//! Opening the store re-applies every journal record newer than the
//! database's lsn (after a power loss SQLite keeps a prefix of its commits,
//! never a damaged file, in WAL mode with `NORMAL`), flushes, and starts the
//! journal over. Keep the journal with its database: copy, move and delete
//! them together; deleting it after a crash loses the transitions
//! acknowledged since the last checkpoint. After a clean close (the last
//! clone of the store dropped) the database file alone holds everything:
//! its WAL is checkpointed into it and removed, and the journal holds
//! nothing the database lacks. A journal of another database
//! (its header carries `journal_id`), one that continues from a later lsn
//! than the database, and a file at the journal's path that is not a
//! memable journal are refused with a clear error, untouched.
//!
//! The database is marked dirty (the `dirty` row of `memable_journal`) from
//! open until a clean close. A dirty database whose journal is missing,
//! empty or cut inside its header is refused with
//! [`StorageErrorKind::Incomplete`](memable_core::StorageErrorKind::Incomplete)
//! — the work acknowledged since its last checkpoint would be missing —
//! unless the builder's
//! [`accept_lost_journal`](SqliteStoreBuilder::accept_lost_journal) says to
//! open with what the database holds. A journal damaged in the middle (a bad
//! record followed by intact later ones, not a torn tail) is refused with
//! [`StorageErrorKind::Corrupt`](memable_core::StorageErrorKind::Corrupt).
//!
//! If the journal cannot be written, the batch fails and is rolled back to
//! its savepoint (the answered batches before it are committed). If a
//! commit fails after its batches were journaled and answered, they stay
//! answered (they are in the journal) and a read that would miss them fails
//! instead. Either way the store is *poisoned*: later writes
//! fail until it is reopened, and reopening replays the journal — so a write
//! answered with such an error may turn out committed (the engine tolerates
//! lost acknowledgements).
//!
//! [`Durability::Relaxed`] keeps no journal and does not flush commits: they
//! survive process crashes, but a power loss may undo the last ones (never
//! damage the file). Opening a file with `Relaxed` first replays and removes
//! a journal left by an `Immediate` store. The in-memory store keeps no journal.
//!
//! # Files and backups
//!
//! A file store at `memable.db` is the database `memable.db`, its journal
//! `memable.db.journal` (with `Immediate`), SQLite's `memable.db-wal` and
//! `memable.db-shm` while it is open, and the lock file
//! `memable.db.memable-lock`. While the store runs, its newest commits are
//! in the WAL (and the newest acknowledged ones may be only in the
//! journal), so **a copy of `memable.db` taken while the engine runs is
//! not a backup**: it lacks what is in the WAL and the journal (and, if
//! the copy holds the dirty marker, opening it alone is refused as
//! incomplete). Copy the files only after the store is closed,
//! or call [`SqliteStore::backup`]: on the writer thread, right after a
//! checkpoint, it runs `VACUUM INTO` a temporary file beside the target
//! (a consistent snapshot holding every acknowledged write), checks the
//! copy, marks it cleanly closed, syncs it and moves it into place; the
//! result is one file that opens as a store of its own.
//!
//! Every open error names the file it is about. An empty path or a
//! directory is refused with
//! [`StorageErrorKind::Unsupported`](memable_core::StorageErrorKind::Unsupported),
//! a path whose directory does not exist with
//! [`Io`](memable_core::StorageErrorKind::Io); neither creates anything
//! (not even the lock file). A first open that fails (a full disk, say)
//! removes the files it created — the database, journal, WAL and lock
//! file — so a later open starts afresh.
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

pub use memable_store::{Durability, StoreStats};
pub use open::SqliteStoreBuilder;
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use store::SqliteStore;
