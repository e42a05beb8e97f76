//! Opening a fresh store of each backend in a directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memable_core::{EngineError, MemoryStore, StepStore};
use memable_redb::RedbStore;
use memable_sqlite::SqliteStore;

/// A backend under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redb,
    Sqlite,
}

impl Backend {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "memory" => Some(Self::Memory),
            "redb" => Some(Self::Redb),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redb => "redb",
            Self::Sqlite => "sqlite",
        }
    }

    /// The database file inside `dir`.
    pub fn path(self, dir: &Path) -> PathBuf {
        match self {
            Self::Memory => dir.join("unused"),
            Self::Redb => dir.join("bench.redb"),
            Self::Sqlite => dir.join("bench.db"),
        }
    }

    /// Opens (or creates) the store at [`path`](Self::path) with default,
    /// durable settings. For memory, `shared` is the store "reopened".
    pub fn open(self, dir: &Path, shared: &MemoryStore) -> Result<Arc<dyn StepStore>, EngineError> {
        Ok(match self {
            Self::Memory => Arc::new(shared.clone()),
            Self::Redb => Arc::new(RedbStore::open(self.path(dir))?),
            Self::Sqlite => Arc::new(SqliteStore::open(self.path(dir))?),
        })
    }

    /// Bytes the store occupies on disk in `dir` (database plus journal
    /// files).
    pub fn disk_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
    }
}
