//! What memable's storage backends share: the write-ahead [`journal`], the
//! group-commit [`writer`] thread, the [`readers`] pool, and the one
//! journaled commit protocol ([`commit`]) with its recovery, over any
//! database that implements [`commit::Backend`], and the handling of a
//! file store's [`files`] (a failed first open, backups).
//!
//! **Internal to memable's backends and exempt from semver** (like
//! `sqlx-core`): its items may change in any release. Applications use the
//! `memable` facade and a backend crate (`memable-redb`, `memable-sqlite`),
//! which re-export the few items of this crate that users name
//! ([`Durability`], [`StoreStats`]).
//!
//! # Examples
//!
//! ```
//! use memable_store::{Durability, StoreStats};
//!
//! assert_eq!(Durability::default(), Durability::Immediate);
//! assert_eq!(StoreStats::default().commits, 0);
//! ```
#![forbid(unsafe_code)]

pub mod commit;
pub mod files;
pub mod journal;
pub mod readers;
mod stats;
pub mod writer;

pub use stats::{Counters, StoreStats};

use memable_core::{EngineError, StorageError, StorageErrorKind};

/// When a commit counts as done: one setting, named the same in every
/// file backend.
///
/// # Examples
///
/// ```
/// use memable_store::Durability;
///
/// assert_eq!(Durability::default(), Durability::Immediate);
/// assert_ne!(Durability::Relaxed, Durability::Immediate);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// An acknowledged write survives a process crash and a power loss.
    /// The default. A file store gets there through its write-ahead
    /// journal (one small flushed append per group commit) and checkpoints
    /// its database now and then; an in-memory store flushes every commit.
    #[default]
    Immediate,
    /// An acknowledged write survives the process crashing or being killed
    /// (the operating system holds the write), not a power loss or an OS
    /// crash, which may undo the last commits. No journal, no flush per
    /// commit: faster where `fsync` is slow.
    Relaxed,
}

/// A storage error of `kind` in `operation` with `message`, as an
/// [`EngineError`].
pub(crate) fn storage_error(
    kind: StorageErrorKind,
    operation: &'static str,
    message: impl Into<String>,
) -> EngineError {
    StorageError::new(kind, operation, message.into()).into()
}

/// What `error` says, without the `storage error:` prefix of its
/// `Display` when it is a storage error: for a message that wraps another
/// error, so the prefix appears once.
///
/// # Examples
///
/// ```
/// use memable_core::EngineError;
///
/// let err = EngineError::storage("commit", "disk full");
/// assert_eq!(memable_store::detail(&err), "commit: disk full");
/// ```
#[must_use]
pub fn detail(error: &EngineError) -> String {
    match error {
        EngineError::Storage(storage) => storage.to_string(),
        other => other.to_string(),
    }
}
