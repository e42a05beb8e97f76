//! [`RedbBackend`]: redb's side of the journaled commit protocol of
//! [`memable_store::commit`] — its write transaction, its row access and
//! its durability mapping.
//!
//! A journaled store (a file with `Durability::Immediate`) commits each
//! batch with redb's `Durability::None` (written, not flushed) and makes
//! them durable at a checkpoint: an empty commit with redb's
//! `Durability::Immediate`, which flushes every earlier commit. A store
//! without a journal commits each batch with the store's own durability
//! (`Relaxed` stores run over a backend whose sync does nothing).

use std::sync::Arc;

use memable_core::{EngineError, StorageError, StorageErrorKind};
use memable_store::commit::{Backend, Committed, Marker};
use redb::{Database, WriteTransaction};

use crate::tables::{DIRTY_KEY, JOURNAL, LSN_KEY};
use crate::txn::RedbTxn;

/// The writer handle of a redb store.
pub(crate) type Writer = memable_store::commit::Writer<RedbBackend>;

/// A failed redb call: an I/O or database failure (nothing was written).
fn redb_error<E: Into<redb::Error>>(operation: &'static str) -> impl FnOnce(E) -> EngineError {
    move |e| StorageError::new(StorageErrorKind::Io, operation, e.into()).into()
}

/// The writer's side of a redb database.
pub(crate) struct RedbBackend {
    pub(crate) db: Arc<Database>,
    /// Batches commit without a flush (a journal makes them durable).
    journaled: bool,
    txn: Option<WriteTransaction>,
}

impl RedbBackend {
    pub(crate) fn new(db: Arc<Database>, journaled: bool) -> Self {
        Self {
            db,
            journaled,
            txn: None,
        }
    }

    fn txn(&self) -> Result<&WriteTransaction, EngineError> {
        self.txn
            .as_ref()
            .ok_or_else(|| EngineError::storage("write", "no write transaction is open"))
    }
}

impl Backend for RedbBackend {
    type Rows<'a> = RedbTxn<'a>;

    fn begin_batch(&mut self) -> Result<(), EngineError> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(redb_error("begin write transaction"))?;
        if self.journaled {
            txn.set_durability(redb::Durability::None)
                .map_err(redb_error("non-durable write transaction"))?;
        }
        self.txn = Some(txn);
        Ok(())
    }

    fn rows(&mut self) -> Result<RedbTxn<'_>, EngineError> {
        Ok(RedbTxn::new(self.txn()?))
    }

    fn record_lsn(&mut self, lsn: u64) -> Result<(), EngineError> {
        self.txn()?
            .open_table(JOURNAL)
            .map_err(redb::Error::from)
            .and_then(|mut table| {
                table
                    .insert(LSN_KEY, lsn)
                    .map(drop)
                    .map_err(redb::Error::from)
            })
            .map_err(redb_error::<redb::Error>("record lsn"))
    }

    fn abort_batch(&mut self) {
        if let Some(txn) = self.txn.take()
            && let Err(e) = txn.abort()
        {
            tracing::warn!(error = %e, "memable-redb abort failed");
        }
    }

    fn commit_batch(&mut self) -> Result<Committed, EngineError> {
        let txn = self
            .txn
            .take()
            .ok_or_else(|| EngineError::storage("commit", "no write transaction is open"))?;
        txn.commit().map_err(redb_error("commit"))?;
        Ok(Committed::Visible)
    }

    fn checkpoint(&mut self, marker: Marker) -> Result<(), EngineError> {
        let op = "checkpoint";
        // redb's default durability: this commit flushes every earlier one.
        let txn = self.db.begin_write().map_err(redb_error(op))?;
        txn.open_table(JOURNAL)
            .map_err(redb::Error::from)
            .and_then(|mut table| {
                table
                    .insert(DIRTY_KEY, u64::from(marker == Marker::Dirty))
                    .map(drop)
                    .map_err(redb::Error::from)
            })
            .map_err(redb_error::<redb::Error>(op))?;
        txn.commit().map_err(redb_error(op))
    }
}
