//! PostgreSQL storage backend for memable, over sqlx.
//!
//! [`PostgresStore`] keeps every table in one PostgreSQL schema (default
//! `memable`, see [`PostgresOptions::schema`]), created and migrated by the
//! store at connect (numbered migrations; a schema that is not memable's or
//! is newer than this build is refused with a typed error).
//!
//! - **Writes** go through one writer thread per store that group-commits:
//!   it drains every queued write into one transaction, prefetching the
//!   rows the batch names in one query, applying every op with
//!   [`memable_core::transitions::apply`] and flushing the batch's rows in
//!   one statement (the protocol is documented in the `writer` module).
//! - **Reads** run on a connection pool, outside the writer.
//! - **Errors** are typed: a lost connection is [`StorageErrorKind::Io`]
//!   (an uncommitted batch is retried on a new connection), undecodable
//!   data is [`StorageErrorKind::Corrupt`]; serialization failures and
//!   deadlocks are retried inside the store.
//!
//! # Examples
//!
//! ```no_run
//! use memable_postgres::{PostgresOptions, PostgresStore};
//! # async fn demo() -> Result<(), memable_core::EngineError> {
//! let store = PostgresStore::connect_with(
//!     PostgresOptions::new("postgres://postgres@127.0.0.1:5432/app").pool_size(8),
//! )
//! .await?;
//! let engine = memable_core::Engine::builder().store(store).build();
//! # let _ = engine; Ok(()) }
//! ```
//!
//! [`StorageErrorKind::Io`]: memable_core::StorageErrorKind::Io
//! [`StorageErrorKind::Corrupt`]: memable_core::StorageErrorKind::Corrupt
#![forbid(unsafe_code)]

mod error;
mod rows;
mod schema;
mod store;
mod writer;

pub use schema::SCHEMA_VERSION;
pub use store::{PostgresOptions, PostgresStore};
