//! The backends this test build has compiled in, for the facade's tests.
//!
//! [`Kind::all`] is `memory` always, a redb **file** store with feature
//! `redb` and an SQLite **file** store with feature `sqlite`. [`Kind::open`]
//! gives a fresh, empty [`Backend`]: its store as an `Arc<dyn StepStore>`,
//! its name, and the temp dir that holds its file (dropped with it).
//! [`Backend::reopen`] closes the store and opens the same data again, for
//! recovery tests.
//!
//! [`backend_tests!`] turns one async test body into one `#[test]` per
//! backend (`<test>::memory`, `<test>::redb`, `<test>::sqlite`), so a failure
//! names its backend in the test's name.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use memable::{EngineError, MemoryStore, StepStore};

/// One backend the tests run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `MemoryStore` (always compiled in).
    Memory,
    /// `RedbStore` over a file in a temp dir (feature `redb`).
    #[cfg(feature = "redb")]
    Redb,
    /// `SqliteStore` over a file in a temp dir (feature `sqlite`).
    #[cfg(feature = "sqlite")]
    Sqlite,
}

impl Kind {
    /// Every backend compiled into this build, memory first.
    pub fn all() -> Vec<Kind> {
        vec![
            Kind::Memory,
            #[cfg(feature = "redb")]
            Kind::Redb,
            #[cfg(feature = "sqlite")]
            Kind::Sqlite,
        ]
    }

    /// The name used in test names and assertion messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            #[cfg(feature = "redb")]
            Kind::Redb => "redb",
            #[cfg(feature = "sqlite")]
            Kind::Sqlite => "sqlite",
        }
    }

    /// Whether every write goes to a file (and is synced).
    pub fn is_file(self) -> bool {
        self != Kind::Memory
    }

    /// A fresh, empty store of this kind (a new file in a new temp dir for
    /// the file stores).
    pub fn open(self) -> Backend {
        let dir = if self.is_file() {
            Some(tempfile::tempdir().expect("a temp dir"))
        } else {
            None
        };
        let path = dir.as_ref().map_or_else(PathBuf::new, |dir| {
            dir.path().join(match self {
                Kind::Memory => "unused",
                #[cfg(feature = "redb")]
                Kind::Redb => "memable.redb",
                #[cfg(feature = "sqlite")]
                Kind::Sqlite => "memable.db",
            })
        });
        let memory = MemoryStore::new();
        let mut backend = Backend {
            kind: self,
            store: None,
            memory,
            path,
            _dir: dir,
        };
        backend.store = Some(
            backend
                .open_store()
                .unwrap_or_else(|error| panic!("{self:?}: open failed: {error:?}")),
        );
        backend
    }
}

/// A store under test and what keeps its file alive.
pub struct Backend {
    kind: Kind,
    store: Option<Arc<dyn StepStore>>,
    /// The data of the memory backend: its clones share it, so a "reopen"
    /// hands out a clone.
    memory: MemoryStore,
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// Which backend this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The backend's name (`memory`, `redb`, `sqlite`).
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// A handle to the store (all handles share one open store).
    pub fn store(&self) -> Arc<dyn StepStore> {
        Arc::clone(self.store.as_ref().expect("the backend holds a store"))
    }

    /// `on_memory` on the memory backend, `on_file` on a file store: for
    /// counts that a synced file store cannot run in a test's time budget.
    pub fn scaled<T>(&self, on_memory: T, on_file: T) -> T {
        if self.kind.is_file() {
            on_file
        } else {
            on_memory
        }
    }

    /// Closes the store and opens the same data again. Every handle from
    /// [`store`](Self::store) (and every engine over it, after
    /// `Engine::shutdown`) must have been dropped first, or a file store
    /// refuses to open its locked file.
    pub fn reopen(&mut self) -> Result<(), EngineError> {
        // Drop the last handle first: a file store closes its file then.
        self.store = None;
        self.store = Some(self.open_store()?);
        Ok(())
    }

    fn open_store(&self) -> Result<Arc<dyn StepStore>, EngineError> {
        Ok(match self.kind {
            Kind::Memory => Arc::new(self.memory.clone()),
            #[cfg(feature = "redb")]
            Kind::Redb => Arc::new(memable::redb::RedbStore::open(&self.path)?),
            #[cfg(feature = "sqlite")]
            Kind::Sqlite => Arc::new(memable::sqlite::SqliteStore::open(&self.path)?),
        })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One `#[test]` per compiled-in backend from one async body:
///
/// ```ignore
/// backend_tests! {
///     #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
///     async fn a_test(backend) {
///         let engine = Engine::builder().store(backend.store()).build();
///         // ...
///     }
/// }
/// ```
///
/// makes `a_test::memory`, `a_test::redb` (feature `redb`) and
/// `a_test::sqlite` (feature `sqlite`), each handed a fresh
/// `backend: Backend` of its kind. The body sees the test file's items.
macro_rules! backend_tests {
    ($(
        $(#[$attr:meta])*
        async fn $name:ident($backend:ident) $body:block
    )*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[allow(unused_mut)]
            async fn body(mut $backend: $crate::support::Backend) $body

            $(#[$attr])*
            async fn memory() {
                body($crate::support::Kind::Memory.open()).await;
            }

            #[cfg(feature = "redb")]
            $(#[$attr])*
            async fn redb() {
                body($crate::support::Kind::Redb.open()).await;
            }

            #[cfg(feature = "sqlite")]
            $(#[$attr])*
            async fn sqlite() {
                body($crate::support::Kind::Sqlite.open()).await;
            }
        }
    )*};
}
pub(crate) use backend_tests;
