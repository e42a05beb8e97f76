//! [`NoSync`]: the storage backend wrapper behind
//! [`Durability::Relaxed`](crate::Durability::Relaxed).

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{BackendError, StorageBackend};

/// Forwards everything to `B` except `sync_data`, which does nothing while
/// the switch is off.
///
/// Every commit is still written to the file before it is acknowledged, so
/// the data sits in the operating system's page cache and survives the
/// process being killed; it only reaches the disk when the OS flushes it.
/// A `Relaxed` file store keeps the switch on while it replays a journal
/// left by an `Immediate` one, so that replay is durable.
#[derive(Debug)]
pub(crate) struct NoSync<B>(B, Arc<AtomicBool>);

impl<B> NoSync<B> {
    /// `backend`, syncing while `sync` is set.
    pub(crate) fn new(backend: B, sync: Arc<AtomicBool>) -> Self {
        Self(backend, sync)
    }
}

impl<B: StorageBackend> StorageBackend for NoSync<B> {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        if self.1.load(Ordering::Acquire) {
            self.0.sync_data()
        } else {
            Ok(())
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.0.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.0.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.0.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.0.query_lock_range(start, end)
    }
}
