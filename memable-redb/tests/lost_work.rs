//! Files that never lose acknowledged work silently, after real crashes
//! (`SIGKILL` of a child that acknowledged writes): a journal damaged in the
//! middle is corrupt, a torn last record is a normal crash, a dirty database
//! whose journal is gone is incomplete unless `accept_lost_journal`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memable_core::{EngineError, StepStore};
use memable_redb::RedbStore;
use memable_testkit::crash::{self, LostJournal};

const CHILD: &str = "crash_child";

#[test]
fn crash_child() {
    if let Some(path) = crash::child_path() {
        crash::write_until_killed(Arc::new(RedbStore::open(path).unwrap()));
    }
}

fn open(path: &Path, accept_lost_journal: bool) -> Result<Arc<dyn StepStore>, EngineError> {
    let store = RedbStore::builder()
        .accept_lost_journal(accept_lost_journal)
        .open(path)?;
    Ok(Arc::new(store))
}

fn files(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let db = dir.path().join("wf.redb");
    let journal = memable_store::journal::journal_path(&db);
    (db, journal)
}

#[test]
fn a_damaged_middle_record_of_the_journal_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (db, journal) = files(&dir);
    crash::damaged_middle_record_is_corrupt(CHILD, &db, &journal, &open);
}

#[tokio::test]
async fn a_torn_last_record_opens_with_everything_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (db, journal) = files(&dir);
    crash::torn_last_record_opens_with_the_rest(CHILD, &db, &journal, &open).await;
}

#[tokio::test]
async fn a_missing_journal_after_a_crash_is_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let (db, journal) = files(&dir);
    crash::lost_journal_is_incomplete(CHILD, &db, &journal, LostJournal::Missing, &open).await;
}

#[tokio::test]
async fn an_emptied_journal_after_a_crash_is_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let (db, journal) = files(&dir);
    crash::lost_journal_is_incomplete(CHILD, &db, &journal, LostJournal::Emptied, &open).await;
}

#[tokio::test]
async fn a_journal_cut_in_its_header_after_a_crash_is_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let (db, journal) = files(&dir);
    crash::lost_journal_is_incomplete(CHILD, &db, &journal, LostJournal::HeaderCut, &open).await;
}

#[tokio::test]
async fn a_cleanly_closed_store_opens_without_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (db, journal) = files(&dir);
    crash::clean_close_opens_without_its_journal(&db, &journal, &open).await;
}
