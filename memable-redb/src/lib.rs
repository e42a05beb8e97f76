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
//! | `memable_journal` | `"lsn"`, `"journal_id"`, `"dirty"` | last journaled batch applied, id of the paired journal, 1 from open to a clean close (`u64`) |
//!
//! The status index lists `Running` or `Suspended` instances without reading
//! any other instance; timers are ordered by deadline, so the due ones and
//! the next deadline are a scan from the start.
//!
//! The format version (3) is written when a file is created and checked on
//! every open; files of format 1 (before the journal) and 2 (before the
//! dirty marker) are upgraded. An older memable refuses a format-3 file, so
//! it can never open a database without replaying its journal, nor ignore
//! its dirty marker. A file of a newer format, a file that is not a redb database, a
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
//! fails and none of them is written (for a file store with a journal, see
//! below: such a failure poisons the store, and the batch may reappear when
//! the journal is replayed).
//!
//! Reads run in redb read transactions on tokio's blocking pool, never on an
//! async worker thread. Dropping the last handle stops the writer thread and
//! closes the file before `drop` returns.
//!
//! # Durability
//!
//! [`Durability::Immediate`] (the default) makes every commit durable before
//! acknowledging it: acknowledged transitions survive a power loss.
//! [`Durability::Relaxed`] writes every commit to the file without flushing:
//! acknowledged transitions survive the process crashing or being killed,
//! not a power loss or an operating-system crash.
//!
//! ## The journal of a file store
//!
//! A durable redb commit writes several pages (header, the copy-on-write
//! path of each B-tree, allocator state) and flushes them; a lone workflow
//! would pay that per step. So a file store opened with
//! [`Durability::Immediate`] ([`RedbStore::open`], or
//! [`RedbStoreBuilder::open`]) keeps a write-ahead journal next to the
//! database, in `<database path>.journal` (for `wf.redb`: `wf.redb.journal`;
//! format: [`memable_store::journal`]; the protocol:
//! [`memable_store::commit`]). For every group-committed batch the
//! writer
//!
//! 1. applies the batch in a redb transaction committed with redb's
//!    `Durability::None` (written, not flushed) and records the batch's log
//!    sequence number (lsn) in it,
//! 2. appends the batch's operations under that lsn to the journal and
//!    flushes the journal (`fdatasync`, one small write, in place: the file
//!    is preallocated),
//! 3. acknowledges every caller (the batch is durable) and commits the redb
//!    transaction, so the callers' wake-up overlaps the commit. Reads wait
//!    until every acknowledged batch is committed before they open their
//!    snapshot, so a caller always reads its own acknowledged writes.
//!
//! When the journal holds more than [`RedbStoreBuilder::checkpoint_bytes`]
//! (2 MiB by default), and when the store closes (the last handle is
//! dropped), the writer *checkpoints*: one durable redb commit, which makes
//! every earlier commit durable, after which the journal is reused from its
//! start. Opening the store reopens the database (redb rolls back to its last
//! durable commit after a crash), then re-applies every journal record newer
//! than the database's lsn, in order, in one durable commit — operations are
//! deterministic given the prior state, so this reproduces exactly what was
//! acknowledged. Keep the journal with its database: copy, move and delete
//! them together. The database is marked dirty (`"dirty"` in
//! `memable_journal`) from open until a clean close. A missing journal of a
//! cleanly closed database is created (it held nothing the database lacks);
//! a dirty database whose journal is missing, empty or cut inside its header
//! is refused with
//! [`StorageErrorKind::Incomplete`](memable_core::StorageErrorKind::Incomplete)
//! (the transitions acknowledged since the last checkpoint would be lost)
//! unless [`RedbStoreBuilder::accept_lost_journal`] says to open with what
//! the database holds. A journal damaged in the middle (a bad record
//! followed by intact later ones, not a torn tail) is refused with
//! [`StorageErrorKind::Corrupt`](memable_core::StorageErrorKind::Corrupt). A journal
//! that belongs to another database (its header carries the id stored in
//! `memable_journal`), or that continues from a later lsn than the database
//! holds (an older copy of the database), is refused with a storage error
//! naming both files; a file at the journal's path that is not a memable
//! journal, or is of a newer format, is refused without being modified.
//!
//! If the journal cannot be written or flushed, the batch fails and is not
//! committed to redb. If a redb commit fails after its batch was journaled
//! and acknowledged, the batch stays acknowledged (it is in the journal), and
//! a read that would miss it fails instead. In both cases the database and the
//! journal may now disagree, so the store is *poisoned*: every later write
//! fails with a storage error until the store is reopened, and reopening
//! replays the journal. An operation that was answered with such
//! an error may therefore turn out committed after the reopen — the engine
//! already tolerates a lost acknowledgement (a step's closure runs at least
//! once).
//!
//! Opening a file with [`Durability::Relaxed`] first replays a journal left
//! next to it (by a store opened with `Immediate`) into a durable commit and
//! removes it; a `Relaxed` store keeps no journal. [`RedbStore::in_memory`]
//! and [`RedbStoreBuilder::open_backend`] keep no journal either: with
//! `Immediate` they flush every redb commit.
//! [`RedbStoreBuilder::open_backend_with_journal`] opens any backend with a
//! journal in any [`JournalFile`](memable_store::journal::JournalFile), as a
//! file store does (for tests that simulate a power loss).
//!
//! Opening verifies every page's checksum by default
//! ([`RedbStoreBuilder::verify_on_open`]), so a damaged file is refused at
//! open rather than failing at a later read.
//!
//! # Files and backups
//!
//! A file store at `wf.redb` is two files: the database `wf.redb` and its
//! journal `wf.redb.journal` (a `Relaxed` store: the database alone). While
//! the store runs, the journal holds acknowledged transitions that the
//! database file has only in an unflushed commit, and redb marks the open
//! file as needing repair, so **a copy of `wf.redb` taken while the engine
//! runs is not a backup**: it may lack acknowledged work, and it is marked
//! dirty, so opening it alone is refused. Copy the files only after the
//! store is closed (the last handle dropped), or call
//! [`RedbStore::backup`]: it takes the copy on the writer thread right
//! after a checkpoint (so the file holds every acknowledged write in its
//! last durable commit and nothing writes to it meanwhile), checks it,
//! marks it cleanly closed, syncs it and moves it into place; the result is
//! one file that opens as a store of its own.
//!
//! Every open error names the file it is about. An empty path or a
//! directory is refused with
//! [`StorageErrorKind::Unsupported`](memable_core::StorageErrorKind::Unsupported),
//! a path whose directory does not exist with
//! [`Io`](memable_core::StorageErrorKind::Io); neither creates anything.
//! A first open that fails (a full disk, say) removes the database and
//! journal files it created, so a later open starts afresh. A power loss
//! during the first open can leave a file redb never finished creating:
//! if redb wrote its header but not yet the magic number it writes last
//! (zeros after the header) and no journal is beside it, the file holds
//! nothing and is created anew; a file of zeros alone is refused as "not a
//! redb database" (nothing says redb wrote it) and, holding nothing, can be
//! deleted.
#![forbid(unsafe_code)]

mod backend;
mod open;
mod read;
mod store;
mod tables;
mod txn;
mod writer;

pub use memable_store::{Durability, StoreStats};
pub use open::RedbStoreBuilder;
pub use store::RedbStore;
