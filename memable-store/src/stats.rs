//! Commit counters of a writer and the [`StoreStats`] a store reports.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a store's writer has done since the store was opened, for tests
/// and benchmarks: with many concurrent writers, `ops` grows faster than
/// `commits` (group commit).
///
/// # Examples
///
/// ```
/// use memable_store::Counters;
///
/// let counters = Counters::default();
/// counters.count_commit(3);
/// let stats = counters.stats();
/// assert_eq!((stats.commits, stats.ops, stats.largest_batch), (1, 3, 3));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Batches committed (with a journal: made durable by the journal; a
    /// backend may share one database transaction among several).
    pub commits: u64,
    /// Write operations (transitions) committed.
    pub ops: u64,
    /// The most operations committed in one batch.
    pub largest_batch: u64,
    /// Checkpoints of the journal (durable database commits after which
    /// the journal starts over); 0 for a store without a journal.
    pub checkpoints: u64,
}

/// The counters behind [`StoreStats`], shared by a writer and its store.
///
/// # Examples
///
/// See [`StoreStats`].
#[derive(Debug, Default)]
pub struct Counters {
    commits: AtomicU64,
    ops: AtomicU64,
    largest_batch: AtomicU64,
    checkpoints: AtomicU64,
}

impl Counters {
    /// Counts one durable batch of `ops` operations.
    ///
    /// # Examples
    ///
    /// See [`StoreStats`].
    pub fn count_commit(&self, ops: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.ops.fetch_add(ops, Ordering::Relaxed);
        self.largest_batch.fetch_max(ops, Ordering::Relaxed);
    }

    /// Counts one checkpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// let counters = memable_store::Counters::default();
    /// counters.count_checkpoint();
    /// assert_eq!(counters.stats().checkpoints, 1);
    /// ```
    pub fn count_checkpoint(&self) {
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    ///
    /// # Examples
    ///
    /// See [`StoreStats`].
    #[must_use]
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.commits.load(Ordering::Relaxed),
            ops: self.ops.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
        }
    }
}
