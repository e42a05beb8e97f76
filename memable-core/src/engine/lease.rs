//! The engine's hold on its store handle's [`EngineSlot`]: taken by
//! `Engine::start`, freed by `shutdown`, by `abort`, when the engine is
//! dropped, or once the engine is stopped and no run is in progress — so
//! a new engine (a new version of the code) may take over a stopped one's
//! store while an instance never runs in two engines at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{EngineLease, EngineSlot};

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct StoreLease {
    lease: Mutex<Option<EngineLease>>,
    stopped: AtomicBool,
}

impl StoreLease {
    fn lock(&self) -> MutexGuard<'_, Option<EngineLease>> {
        self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `slot` unless this engine holds it already; `false` if another
    /// engine holds it.
    pub(crate) fn take(&self, slot: &EngineSlot) -> bool {
        let mut lease = self.lock();
        if lease.is_none() {
            *lease = slot.try_take();
        }
        lease.is_some()
    }

    /// Marks the engine stopped: the next [`release_if_idle`](Self::release_if_idle)
    /// with no run in progress frees the slot.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Frees the slot if the engine is stopped; called when the number of
    /// runs in progress reached zero.
    pub(crate) fn release_if_idle(&self) {
        if self.stopped.load(Ordering::Acquire) {
            self.release();
        }
    }

    /// Frees the slot.
    pub(crate) fn release(&self) {
        self.lock().take();
    }
}
