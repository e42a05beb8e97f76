//! [`EngineSlot`]: one engine per store handle.
//!
//! A store handle and its clones share one slot. An engine takes it when it
//! starts and holds it (an [`EngineLease`]) until it is shut down, aborted
//! or dropped; a second engine started on the same handle, or on a clone of
//! it, is refused with [`EngineError::StoreInUse`](crate::EngineError::StoreInUse)
//! instead of running the same instances a second time at once. The slot
//! guards one process; between processes a file store's lock does, and the
//! many-workers stores fence by epoch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The slot a store's engine holds; clones share it. A store keeps one and
/// returns it from [`StepStore::engine_slot`](super::StepStore::engine_slot).
///
/// # Examples
///
/// ```
/// use memable_core::EngineSlot;
///
/// let slot = EngineSlot::new();
/// let shared = slot.clone();
/// let lease = slot.try_take().expect("free");
/// assert!(shared.try_take().is_none());
/// drop(lease);
/// assert!(shared.try_take().is_some());
/// ```
#[derive(Clone, Debug, Default)]
pub struct EngineSlot {
    taken: Arc<AtomicBool>,
}

impl EngineSlot {
    /// A free slot.
    ///
    /// # Examples
    ///
    /// See [`EngineSlot`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the slot, or `None` if an engine holds it.
    ///
    /// # Examples
    ///
    /// See [`EngineSlot`].
    #[must_use]
    pub fn try_take(&self) -> Option<EngineLease> {
        self.taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| EngineLease {
                taken: Arc::clone(&self.taken),
            })
    }
}

/// A taken [`EngineSlot`]; dropping it frees the slot.
///
/// # Examples
///
/// See [`EngineSlot`].
#[derive(Debug)]
pub struct EngineLease {
    taken: Arc<AtomicBool>,
}

impl Drop for EngineLease {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::Release);
    }
}
