//! A small pool of read-only connections, used from tokio's blocking pool
//! so reads never block a tokio worker.

use std::sync::{Arc, Mutex};

use memable_core::EngineError;
use rusqlite::{Connection, OpenFlags};

/// Idle read connections kept open.
const MAX_IDLE: usize = 4;

/// The read side of a store.
pub struct Readers {
    target: String,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Readers of `target` (a path or, for the in-memory store, a URI).
    pub fn new(target: String) -> Result<Arc<Self>, EngineError> {
        let readers = Arc::new(Self {
            target,
            idle: Mutex::new(Vec::new()),
        });
        // Open one now so a database readers cannot open fails at open time.
        let conn = readers.connect()?;
        readers.put_back(conn);
        Ok(readers)
    }

    fn connect(&self) -> Result<Connection, EngineError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.target, flags)
            .map_err(|e| EngineError::storage("open reader", e))?;
        conn.execute_batch("PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;")
            .map_err(|e| EngineError::storage("open reader", e))?;
        Ok(conn)
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Runs `read` on a pooled connection in tokio's blocking pool.
    pub async fn read<R, F>(
        self: &Arc<Self>,
        operation: &'static str,
        read: F,
    ) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, EngineError> + Send + 'static,
    {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let popped = readers
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let conn = match popped {
                Some(conn) => conn,
                None => readers.connect()?,
            };
            let result = read(&conn);
            readers.put_back(conn);
            result
        })
        .await
        .map_err(|e| EngineError::storage(operation, e))?
    }
}
