//! A test storage backend: memory shared with the test, with a gate that
//! holds the writer inside `sync_data`, write failures on demand, and a
//! record of the image at every sync (what a power loss would keep).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use redb::StorageBackend;

// Independent switches of a test double, not a state machine.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Default)]
pub struct State {
    pub data: Vec<u8>,
    /// Hold the next `sync_data` until `gate_open` is set.
    pub gate_armed: bool,
    pub gate_open: bool,
    /// A writer is waiting at the gate.
    pub at_gate: bool,
    /// Fail every write.
    pub fail_writes: bool,
    /// Keep a copy of `data` at every sync.
    pub record_syncs: bool,
    pub syncs: u64,
    pub images: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Arms the gate: the next sync waits in `sync_data`.
    pub fn arm_gate(&self) {
        let mut s = self.lock();
        s.gate_armed = true;
        s.gate_open = false;
    }

    /// Blocks until a writer waits at the armed gate.
    pub fn wait_at_gate(&self) {
        let mut s = self.lock();
        while !s.at_gate {
            s = self.changed.wait(s).unwrap();
        }
    }

    pub fn open_gate(&self) {
        let mut s = self.lock();
        s.gate_open = true;
        self.changed.notify_all();
    }
}

/// A backend over `Shared`; a new one over the same `Shared` is a reopen.
#[derive(Debug, Clone)]
pub struct TestBackend(pub Arc<Shared>);

fn range_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "out of range")
}

impl StorageBackend for TestBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.0.lock().data.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let s = self.0.lock();
        let start = usize::try_from(offset).map_err(|_| range_error())?;
        let src = s
            .data
            .get(start..start + out.len())
            .ok_or_else(range_error)?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let mut s = self.0.lock();
        if s.fail_writes {
            return Err(std::io::Error::other("injected write failure"));
        }
        s.data
            .resize(usize::try_from(len).map_err(|_| range_error())?, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut s = self.0.lock();
        if s.gate_armed {
            s.at_gate = true;
            self.0.changed.notify_all();
            while !s.gate_open {
                s = self.0.changed.wait(s).unwrap();
            }
            s.gate_armed = false;
            s.at_gate = false;
        }
        s.syncs += 1;
        if s.record_syncs {
            let image = s.data.clone();
            s.images.push(image);
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut s = self.0.lock();
        if s.fail_writes {
            return Err(std::io::Error::other("injected write failure"));
        }
        let start = usize::try_from(offset).map_err(|_| range_error())?;
        s.data
            .get_mut(start..start + data.len())
            .ok_or_else(range_error)?
            .copy_from_slice(data);
        Ok(())
    }
}
