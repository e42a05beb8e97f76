//! Opening the store a command names: which backend, and what to do when
//! an embedded store is held by a running application.
//!
//! # The protocol
//!
//! 1. **Backend.** `--backend` says it, or it is detected from `--store`:
//!    a `postgres://` or `postgresql://` URL is PostgreSQL; a path ending in
//!    `.redb` is redb, one ending in `.db`, `.sqlite` or `.sqlite3` is
//!    SQLite; any other existing file is recognised by its first bytes
//!    (SQLite's and redb's file headers). A file store that does not exist
//!    is an error: the command never creates a store.
//! 2. **Access.** Each command either only reads ([`Access::Read`]) or
//!    writes ([`Access::Write`]). A file store is opened like an
//!    application opens it (with its recovery); only one process at a
//!    time may do that. If another process holds it (an application's
//!    running engine):
//!    - SQLite, read: the file is opened read-only beside the holder
//!      (`SqliteStore::open_read_only`: no lock, no write), and a note
//!      says so on stderr;
//!    - SQLite, write; redb, read or write: refused with
//!      [`exit::HELD`](crate::exit::HELD) and a message that says what
//!      holds the file and what to do.
//! 3. PostgreSQL serves many processes: every command connects as one
//!    more client (connecting checks, and if needed migrates, the schema).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memable_core::{StepStore, StorageErrorKind};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_redb::RedbStore;
use memable_sqlite::SqliteStore;

use crate::error::CliError;

/// A store backend the command can open.
///
/// # Examples
///
/// ```
/// use memable_cli::Backend;
/// assert_eq!(Backend::detect("postgres://localhost/app").unwrap(), Backend::Postgres);
/// assert_eq!(Backend::detect("app.redb").unwrap(), Backend::Redb);
/// assert_eq!(Backend::detect("app.db").unwrap(), Backend::Sqlite);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A redb file.
    Redb,
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database (URL).
    Postgres,
}

const SQLITE_HEADER: &[u8] = b"SQLite format 3\0";
const REDB_MAGIC: &[u8] = b"redb";

impl Backend {
    /// Detects the backend of `store` (a path or a URL); see the module
    /// docs for the rules.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = memable_cli::Backend::detect("/nonexistent/app.data").unwrap_err();
    /// assert_eq!(err.code(), memable_cli::exit::NOT_FOUND);
    /// ```
    pub fn detect(store: &str) -> Result<Self, CliError> {
        if store.starts_with("postgres://") || store.starts_with("postgresql://") {
            return Ok(Self::Postgres);
        }
        let path = Path::new(store);
        match path.extension().and_then(|e| e.to_str()) {
            Some("redb") => return Ok(Self::Redb),
            Some("db" | "sqlite" | "sqlite3") => return Ok(Self::Sqlite),
            _ => {}
        }
        let mut header = [0u8; 16];
        let read = std::fs::File::open(path)
            .and_then(|mut file| std::io::Read::read(&mut file, &mut header))
            .map_err(|_| missing(path))?;
        if header[..read].starts_with(SQLITE_HEADER) {
            Ok(Self::Sqlite)
        } else if header[..read].starts_with(REDB_MAGIC) {
            Ok(Self::Redb)
        } else {
            Err(CliError::usage(format!(
                "cannot tell which store {} is (neither a SQLite nor a redb file); pass --backend",
                path.display()
            )))
        }
    }

    /// The backend's name, as `--backend` spells it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_cli::Backend::Sqlite.name(), "sqlite");
    /// ```
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Redb => "redb",
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What a command does to the store.
///
/// # Examples
///
/// ```
/// assert_ne!(memable_cli::Access::Read, memable_cli::Access::Write);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Only reads.
    Read,
    /// Writes.
    Write,
}

/// An open store.
pub(crate) enum Opened {
    Redb(RedbStore),
    Sqlite {
        store: SqliteStore,
        /// Opened read-only beside the application that holds it.
        beside_holder: bool,
    },
    Postgres(PostgresStore),
}

impl Opened {
    pub(crate) fn store(&self) -> Arc<dyn StepStore> {
        match self {
            Self::Redb(store) => Arc::new(store.clone()),
            Self::Sqlite { store, .. } => Arc::new(store.clone()),
            Self::Postgres(store) => Arc::new(store.clone()),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Redb(_) => Backend::Redb,
            Self::Sqlite { .. } => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) async fn close(self) {
        if let Self::Postgres(store) = self {
            store.close().await;
        }
    }
}

fn missing(path: &Path) -> CliError {
    CliError::not_found(format!(
        "no store at {}: give the path of an existing redb or SQLite file, or a postgres:// URL",
        path.display()
    ))
}

/// Opens `store` with `backend` for `access` (see the module docs).
pub(crate) async fn open(
    store: &str,
    backend: Option<Backend>,
    access: Access,
    pg_schema: &str,
) -> Result<Opened, CliError> {
    let backend = match backend {
        Some(backend) => backend,
        None => Backend::detect(store)?,
    };
    if backend == Backend::Postgres {
        let options = PostgresOptions::new(store).schema(pg_schema);
        return PostgresStore::connect_with(options)
            .await
            .map(Opened::Postgres)
            .map_err(CliError::from);
    }
    let path = PathBuf::from(store);
    if !path.is_file() {
        return Err(missing(&path));
    }
    let opened = tokio::task::spawn_blocking({
        let path = path.clone();
        move || match backend {
            Backend::Redb => RedbStore::open(&path).map(Opened::Redb),
            _ => SqliteStore::open(&path).map(|store| Opened::Sqlite {
                store,
                beside_holder: false,
            }),
        }
    })
    .await
    .map_err(|e| CliError::failure(format!("opening {}: {e}", path.display())))?;
    match opened {
        Ok(opened) => Ok(opened),
        Err(error) if error.storage_kind() == Some(StorageErrorKind::Locked) => {
            held(&path, backend, access)
        }
        Err(error) => Err(error.into()),
    }
}

/// The answer for a file another process holds.
fn held(path: &Path, backend: Backend, access: Access) -> Result<Opened, CliError> {
    let holder = format!(
        "{} is held by a running memable engine (an application has it open)",
        path.display()
    );
    match (backend, access) {
        (Backend::Sqlite, Access::Read) => {
            let store = SqliteStore::open_read_only(path).map_err(CliError::from)?;
            tracing::info!(path = %path.display(), "store held by an application; reading it read-only");
            Ok(Opened::Sqlite {
                store,
                beside_holder: true,
            })
        }
        (Backend::Sqlite, Access::Write) => Err(CliError::held(format!(
            "{holder}; this command writes, and only the holder may write to it. \
             Stop the application and run the command again, or make the change \
             through the application's engine (an operator command built into it \
             with memable_cli::App, or Engine::signal / cancel / resume / delete / \
             forget / fork). Reads (list, show, steps) work while it runs."
        ))),
        (_, _) => Err(CliError::held(format!(
            "{holder}; redb lets one process open the file at a time, for reading \
             too. Stop the application and run the command again, or run it through \
             the application's engine (an operator command built into it with \
             memable_cli::App), or back the store up from the application \
             (RedbStore::backup) and read the copy."
        ))),
    }
}
