//! The memable conformance suite on file-backed SQLite stores (each in its
//! own temp dir, reopened by really closing and reopening the file) and on
//! the in-memory store.

use std::path::PathBuf;
use std::sync::Arc;

use memable_core::{EngineError, StepStore};
use memable_sqlite::SqliteStore;
use memable_testkit::{Capabilities, StoreFactory, StoreFixture};

/// Fresh files in fresh temp dirs.
struct FileFactory;

struct FileFixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Option<SqliteStore>,
}

#[async_trait::async_trait]
impl StoreFactory for FileFactory {
    fn name(&self) -> &'static str {
        "sqlite-file"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reopen: true,
            survives_process_exit: true,
        }
    }

    async fn create(&self) -> Result<Box<dyn StoreFixture>, EngineError> {
        let dir = tempfile::tempdir().map_err(|e| EngineError::storage("tempdir", e))?;
        let path = dir.path().join("conformance.db");
        let store = SqliteStore::open(&path)?;
        Ok(Box::new(FileFixture {
            _dir: dir,
            path,
            store: Some(store),
        }))
    }
}

#[async_trait::async_trait]
impl StoreFixture for FileFixture {
    fn store(&self) -> Arc<dyn StepStore> {
        Arc::new(
            self.store
                .clone()
                .expect("the fixture always holds a store"),
        )
    }

    async fn reopen(&mut self) -> Result<(), EngineError> {
        // Dropping the last handle joins the writer thread and releases the
        // lock file, so the open below really reopens the database.
        drop(self.store.take());
        self.store = Some(SqliteStore::open(&self.path)?);
        Ok(())
    }
}

/// In-memory stores: they cannot be reopened.
struct InMemoryFactory;

struct InMemoryFixture(SqliteStore);

#[async_trait::async_trait]
impl StoreFactory for InMemoryFactory {
    fn name(&self) -> &'static str {
        "sqlite-memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reopen: false,
            survives_process_exit: false,
        }
    }

    async fn create(&self) -> Result<Box<dyn StoreFixture>, EngineError> {
        Ok(Box::new(InMemoryFixture(SqliteStore::in_memory()?)))
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
            "an in-memory SQLite store cannot be reopened",
        ))
    }
}

mod file {
    memable_testkit::conformance_tests!(super::FileFactory);
}

mod in_memory {
    memable_testkit::conformance_tests!(super::InMemoryFactory);
}
