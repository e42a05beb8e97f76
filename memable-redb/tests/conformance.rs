//! The memable conformance suite on file-backed stores (each in its own temp
//! dir, reopened by really closing and reopening the file) and on the
//! in-memory store. (`FileFactory` takes a durability; the suite runs on the
//! default one to keep the debug-build test time down — relaxed durability
//! only swaps the backend's `fsync` for a no-op, and its own tests cover it.)

use std::path::PathBuf;
use std::sync::Arc;

use memable_core::{EngineError, StepStore};
use memable_redb::{Durability, RedbStore};
use memable_testkit::{Capabilities, StoreFactory, StoreFixture};

/// Fresh files in fresh temp dirs.
struct FileFactory(Durability);

struct FileFixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    durability: Durability,
    store: Option<RedbStore>,
}

#[async_trait::async_trait]
impl StoreFactory for FileFactory {
    fn name(&self) -> &'static str {
        match self.0 {
            Durability::Immediate => "redb-file",
            Durability::Relaxed => "redb-file-relaxed",
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reopen: true,
            survives_process_exit: true,
        }
    }

    async fn create(&self) -> Result<Box<dyn StoreFixture>, EngineError> {
        let dir = tempfile::tempdir().map_err(|e| EngineError::storage("tempdir", e))?;
        let path = dir.path().join("conformance.redb");
        let store = RedbStore::builder().durability(self.0).open(&path)?;
        Ok(Box::new(FileFixture {
            _dir: dir,
            path,
            durability: self.0,
            store: Some(store),
        }))
    }
}

#[async_trait::async_trait]
impl StoreFixture for FileFixture {
    fn store(&self) -> Arc<dyn StepStore> {
        let store = self
            .store
            .clone()
            .expect("the fixture always holds a store");
        Arc::new(store)
    }

    async fn reopen(&mut self) -> Result<(), EngineError> {
        // Dropping the last handle joins the writer thread and closes the
        // file, so the open below takes the file's lock afresh.
        drop(self.store.take());
        self.store = Some(
            RedbStore::builder()
                .durability(self.durability)
                .open(&self.path)?,
        );
        Ok(())
    }
}

/// Stores on redb's in-memory backend: they cannot be reopened.
struct InMemoryFactory;

struct InMemoryFixture(RedbStore);

#[async_trait::async_trait]
impl StoreFactory for InMemoryFactory {
    fn name(&self) -> &'static str {
        "redb-memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reopen: false,
            survives_process_exit: false,
        }
    }

    async fn create(&self) -> Result<Box<dyn StoreFixture>, EngineError> {
        Ok(Box::new(InMemoryFixture(RedbStore::in_memory()?)))
    }
}

#[async_trait::async_trait]
impl StoreFixture for InMemoryFixture {
    fn store(&self) -> Arc<dyn StepStore> {
        Arc::new(self.0.clone())
    }

    async fn reopen(&mut self) -> Result<(), EngineError> {
        Err(EngineError::storage(
            "reopen",
            "an in-memory redb store cannot be reopened",
        ))
    }
}

mod file {
    memable_testkit::conformance_tests!(super::FileFactory(memable_redb::Durability::Immediate));
}

mod in_memory {
    memable_testkit::conformance_tests!(super::InMemoryFactory);
}
