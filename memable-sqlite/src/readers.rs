//! A small pool of read-only connections, used from tokio's blocking pool
//! so reads never block a tokio worker.

use std::sync::{Arc, Condvar, Mutex};

use memable_core::EngineError;
use rusqlite::{Connection, OpenFlags};

/// Read connections open at most; more readers wait for one to be free
/// (opening a connection costs far more than waiting for a read).
const MAX_CONNECTIONS: usize = 8;

/// The read side of a store.
pub struct Readers {
    target: String,
    pool: Mutex<Pool>,
    freed: Condvar,
}

struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

impl Readers {
    /// Readers of `target` (a path or, for the in-memory store, a URI).
    pub fn new(target: String) -> Result<Arc<Self>, EngineError> {
        let readers = Arc::new(Self {
            target,
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        });
        // Open one now so a database readers cannot open fails at open time.
        let conn = readers.take()?;
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

    /// An idle connection, a new one if fewer than the maximum are open, or
    /// the next one freed.
    fn take(&self) -> Result<Connection, EngineError> {
        let mut pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(conn);
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                let conn = self.connect();
                if conn.is_err() {
                    self.pool
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .open -= 1;
                    self.freed.notify_one();
                }
                return conn;
            }
            pool = self
                .freed
                .wait(pool)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn put_back(&self, conn: Connection) {
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .idle
            .push(conn);
        self.freed.notify_one();
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
            let conn = readers.take()?;
            let result = read(&conn);
            readers.put_back(conn);
            result
        })
        .await
        .map_err(|e| EngineError::storage(operation, e))?
    }
}
