//! The read side: a few read-only connections, each owned by a reader
//! thread of a [`ReaderPool`], so reads never block a tokio worker. A thread
//! serves every read queued when it wakes inside one read transaction (one
//! snapshot, one lock round-trip for the whole batch).

use std::sync::Arc;

use memable_core::EngineError;
use memable_store::readers::{ReadSession, ReaderPool, Visibility};
use rusqlite::{Connection, OpenFlags};

use crate::error::sql;

/// Read connections (and reader threads) per store.
const READER_THREADS: usize = 2;

/// One reader thread's read-only connection.
pub struct Reader {
    conn: Connection,
    /// For a journaled store: batches answered before their commit.
    visibility: Option<Arc<Visibility>>,
}

impl ReadSession for Reader {
    fn begin_batch(&mut self) -> Result<(), EngineError> {
        // Every write answered so far must be in the snapshot.
        if let Some(visibility) = &self.visibility {
            visibility.wait()?;
        }
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(sql("begin read transaction"))
    }

    fn end_batch(&mut self) {
        if let Err(error) = self.conn.execute_batch("COMMIT") {
            tracing::warn!(%error, "could not end a read transaction; rolling back");
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The read side of a store.
pub struct Readers {
    pool: ReaderPool<Reader>,
}

impl Readers {
    /// Readers of `target` (a path or, for the in-memory store, a URI).
    pub fn new(
        target: &str,
        visibility: Option<&Arc<Visibility>>,
    ) -> Result<Arc<Self>, EngineError> {
        let readers = (0..READER_THREADS)
            .map(|_| {
                connect(target).map(|conn| Reader {
                    conn,
                    visibility: visibility.cloned(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Self {
            pool: ReaderPool::new("memable-sqlite-reader", readers)?,
        }))
    }

    /// Runs `read` on a reader thread, inside the read transaction of the
    /// batch it lands in.
    pub async fn read<R, F>(&self, operation: &'static str, read: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, EngineError> + Send + 'static,
    {
        self.pool
            .read(operation, move |reader| read(&reader.conn))
            .await
    }
}

fn connect(target: &str) -> Result<Connection, EngineError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(target, flags)
        .map_err(|e| EngineError::storage("open reader", e))?;
    conn.execute_batch("PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;")
        .map_err(|e| EngineError::storage("open reader", e))?;
    Ok(conn)
}
