//! Opening a fresh store of each backend in a directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::OnceLock;

use memable_core::{EngineError, MemoryStore, StepStore};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_redb::RedbStore;
use memable_sqlite::SqliteStore;

/// A backend under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redb,
    Sqlite,
    /// A PostgreSQL server ([`postgres_url`]); each store is a fresh schema.
    Postgres,
}

/// The database the postgres backend uses: `--url`, or a database on a
/// server started for the run (fsync on, as in production).
static POSTGRES_URL: OnceLock<String> = OnceLock::new();

/// Sets the database of the postgres backend (`--url`).
pub fn set_postgres_url(url: String) {
    let _ = POSTGRES_URL.set(url);
}

/// The database of the postgres backend, starting a local server (with
/// fsync) the first time if `--url` was not given.
pub fn postgres_url() -> &'static str {
    POSTGRES_URL.get_or_init(|| {
        memable_testkit::postgres::TestServer::shared_with(
            memable_testkit::postgres::ServerOptions { fsync: true },
        )
        .database()
    })
}

/// The schema standing for the store "file" in `dir`.
fn schema_of(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    format!("bench_{:016x}", hasher.finish())
}

impl Backend {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "memory" => Some(Self::Memory),
            "redb" => Some(Self::Redb),
            "sqlite" => Some(Self::Sqlite),
            "postgres" => Some(Self::Postgres),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redb => "redb",
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// The database file inside `dir`.
    pub fn path(self, dir: &Path) -> PathBuf {
        match self {
            Self::Memory | Self::Postgres => dir.join("unused"),
            Self::Redb => dir.join("bench.redb"),
            Self::Sqlite => dir.join("bench.db"),
        }
    }

    /// Opens (or creates) the store at [`path`](Self::path) with default,
    /// durable settings. For memory, `shared` is the store "reopened"; for
    /// postgres, the schema named after `dir`.
    pub async fn open(
        self,
        dir: &Path,
        shared: &MemoryStore,
    ) -> Result<Arc<dyn StepStore>, EngineError> {
        Ok(match self {
            Self::Memory => Arc::new(shared.clone()),
            Self::Redb => Arc::new(RedbStore::open(self.path(dir))?),
            Self::Sqlite => Arc::new(SqliteStore::open(self.path(dir))?),
            Self::Postgres => Arc::new(self.open_postgres(dir).await?),
        })
    }

    /// Another handle (another worker) on the postgres store of `dir`.
    pub async fn open_postgres(self, dir: &Path) -> Result<PostgresStore, EngineError> {
        PostgresStore::connect_with(
            PostgresOptions::new(postgres_url())
                .schema(schema_of(dir))
                .pool_size(8),
        )
        .await
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
