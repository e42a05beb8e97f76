//! Files that never lose acknowledged work silently, after real crashes
//! (`SIGKILL` of a child that acknowledged writes): a journal damaged in the
//! middle is corrupt, a torn last record is a normal crash, a dirty database
//! whose journal is gone is incomplete unless `accept_lost_journal`. The
//! scenarios are `memable_testkit::crash`'s.

use std::path::Path;
use std::sync::Arc;

use memable_core::{EngineError, StepStore};
use memable_sqlite::SqliteStore;

fn open(path: &Path, accept_lost_journal: bool) -> Result<Arc<dyn StepStore>, EngineError> {
    let builder = SqliteStore::builder().accept_lost_journal(accept_lost_journal);
    Ok(Arc::new(builder.open(path)?))
}

memable_testkit::crash_tests!("wf.db", open);
