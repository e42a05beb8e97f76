//! Simulated power loss: the workload runs over a backend that keeps a copy
//! of the data at every `sync_data` (all a disk is guaranteed to hold after
//! a power cut). Every such image, in turn, must reopen cleanly and hold
//! exactly the state after the last acknowledged transition — or after the
//! one whose commit was in flight at the cut. (A cut while the file is
//! first being created may leave a file redb never finished: it must be
//! refused with a clear error.)
//!
//! The journaled store (a file store with `Durability::Immediate`) is cut
//! at every sync point of both of its files, and at every journal write
//! torn halfway.

mod support;

use std::sync::Arc;

use memable_core::StepStoreExt;
use memable_core::transitions::{WriteOp, WriteOutcome};
use memable_core::{
    Finish, InstanceFilter, MemoryStore, StatusKind, StepKind, StepRecord, StepStore, TimerEntry,
    WorkflowMetadata,
};
use memable_redb::RedbStore;
use memable_store::journal::JournalFile;
use redb::StorageBackend;
use support::backend::{Shared, TestBackend};
use support::{input, key, value};

/// Everything a store holds, read through the store interface.
#[derive(Clone, Debug, PartialEq)]
struct Dump {
    instances: Vec<(WorkflowMetadata, Vec<(String, StepRecord)>)>,
    by_status: Vec<Vec<(String, String)>>,
    timers: Vec<TimerEntry>,
}

async fn dump(store: &dyn StepStore) -> Dump {
    let mut instances = Vec::new();
    for meta in store.list_instances(&InstanceFilter::new()).await.unwrap() {
        let k = meta.key().unwrap();
        let snap = store.load_instance(&k).await.unwrap().unwrap();
        instances.push((meta, snap.steps));
    }
    let mut by_status = Vec::new();
    for kind in StatusKind::ALL {
        let listed = store
            .list_instances(&InstanceFilter::new().status(kind))
            .await
            .unwrap();
        by_status.push(
            listed
                .into_iter()
                .map(|m| (m.workflow_name, m.instance_id))
                .collect(),
        );
    }
    let timers = store.due_timers(u64::MAX, usize::MAX).await.unwrap();
    Dump {
        instances,
        by_status,
        timers,
    }
}

async fn run(store: &dyn StepStore, op: WriteOp) -> WriteOutcome {
    match op {
        WriteOp::Start { key, input, now_ms } => {
            WriteOutcome::Start(store.start_instance(key, input, now_ms).await.unwrap())
        }
        WriteOp::Commit {
            key,
            step_key,
            record,
        } => WriteOutcome::Commit(store.commit_step(key, step_key, record).await.unwrap()),
        WriteOp::Suspend {
            key,
            step_key,
            record,
            status,
            now_ms,
        } => WriteOutcome::Suspend(
            store
                .suspend_step(key, step_key, record, status, now_ms)
                .await
                .unwrap(),
        ),
        WriteOp::Claim {
            key,
            step_key,
            payload,
            now_ms,
        } => WriteOutcome::Claim(
            store
                .claim_step(key, step_key, payload, now_ms)
                .await
                .unwrap(),
        ),
        WriteOp::Finish {
            key,
            finish,
            now_ms,
        } => WriteOutcome::Finish(store.finish_instance(key, finish, now_ms).await.unwrap()),
        WriteOp::Revive { key, now_ms } => {
            WriteOutcome::Revive(store.revive_instance(key, now_ms).await.unwrap())
        }
        WriteOp::Cancel { key, now_ms } => {
            WriteOutcome::Cancel(store.cancel_instance(key, now_ms).await.unwrap())
        }
        WriteOp::Delete { key } => WriteOutcome::Delete(store.delete_instance(key).await.unwrap()),
        other @ (WriteOp::Wait { .. }
        | WriteOp::Park { .. }
        | WriteOp::Signal { .. }
        | WriteOp::Fire { .. }
        | WriteOp::Acquire { .. }
        | WriteOp::Release { .. }
        | WriteOp::StartChild { .. }
        | WriteOp::Enqueue { .. }
        | WriteOp::Admit { .. }
        | WriteOp::Forget { .. }
        | WriteOp::Fork { .. }
        | WriteOp::Resume { .. }
        | WriteOp::DeleteEnded { .. }
        | WriteOp::Fenced { .. }) => store.write(other).await.unwrap(),
    }
}

/// A workload touching every transition, with values big enough to span
/// pages.
fn workload() -> Vec<WriteOp> {
    let mut ops = Vec::new();
    let now = 1_000;
    for i in 0..4 {
        ops.push(WriteOp::Start {
            key: key("pl", &format!("i{i}")),
            input: input(),
            now_ms: now,
        });
    }
    for s in 0..6_u8 {
        for i in 0..4 {
            ops.push(WriteOp::Commit {
                key: key("pl", &format!("i{i}")),
                step_key: format!("step{s}"),
                record: value(&vec![s; 700 * usize::from(s + 1)]),
            });
        }
    }
    let timer = |deadline| StepRecord::suspended(StepKind::Timer, "()", None, Some(deadline));
    ops.push(WriteOp::Suspend {
        key: key("pl", "i0"),
        step_key: "nap".into(),
        record: timer(5_000),
        status: Some("napping".into()),
        now_ms: now + 1,
    });
    ops.push(WriteOp::Suspend {
        key: key("pl", "i1"),
        step_key: "nap".into(),
        record: timer(6_000),
        status: None,
        now_ms: now + 1,
    });
    ops.push(WriteOp::Suspend {
        key: key("pl", "i2"),
        step_key: "approval".into(),
        record: StepRecord::suspended(StepKind::Suspend, "bool", None, None),
        status: None,
        now_ms: now + 1,
    });
    ops.push(WriteOp::Claim {
        key: key("pl", "i0"),
        step_key: "nap".into(),
        payload: StepRecord::completed(StepKind::Timer, "()", vec![], None),
        now_ms: now + 2,
    });
    ops.push(WriteOp::Claim {
        key: key("pl", "i2"),
        step_key: "approval".into(),
        payload: StepRecord::completed(StepKind::Suspend, "bool", vec![1], None),
        now_ms: now + 2,
    });
    ops.push(WriteOp::Finish {
        key: key("pl", "i0"),
        finish: Finish::Completed {
            status: Some("done".into()),
            output: value(b"out"),
        },
        now_ms: now + 3,
    });
    ops.push(WriteOp::Finish {
        key: key("pl", "i2"),
        finish: Finish::Failed("boom".into()),
        now_ms: now + 3,
    });
    ops.push(WriteOp::Revive {
        key: key("pl", "i2"),
        now_ms: now + 4,
    });
    ops.push(WriteOp::Cancel {
        key: key("pl", "i1"),
        now_ms: now + 5,
    });
    ops.push(WriteOp::Delete {
        key: key("pl", "i3"),
    });
    ops.push(WriteOp::Start {
        key: key("pl", "i4"),
        input: value(&[9; 5_000]),
        now_ms: now + 6,
    });
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sync_point_image_reopens_with_everything_acknowledged() {
    let shared = Arc::new(Shared::default());
    shared.lock().record_syncs = true;
    let store = RedbStore::builder()
        .open_backend(TestBackend(Arc::clone(&shared)))
        .unwrap();
    let opened = shared.lock().syncs;
    let mirror = MemoryStore::new();

    // states[j] is the state after op j - 1 (states[0]: empty); acked[j] is
    // the sync count when op j was acknowledged.
    let mut states = vec![dump(&mirror).await];
    let mut acked = Vec::new();
    for op in workload() {
        let expected = run(&mirror, op.clone()).await;
        assert_eq!(run(&store, op).await, expected);
        acked.push(shared.lock().syncs);
        states.push(dump(&mirror).await);
    }
    assert_eq!(dump(&store).await, *states.last().unwrap());
    drop(store);

    let images = std::mem::take(&mut shared.lock().images);
    assert!(images.len() > acked.len(), "{} sync points", images.len());
    let mut checked = 0;
    for (index, image) in images.iter().enumerate() {
        let cut = index as u64 + 1; // the image holds syncs 1..=cut
        let backend = redb::backends::InMemoryBackend::new();
        backend.set_len(image.len() as u64).unwrap();
        backend.write(0, image).unwrap();
        let reopened = match RedbStore::builder().open_backend(backend) {
            Ok(store) => store,
            // A cut before the first open returned may leave a file redb
            // never finished creating: refused with a clear error.
            Err(e) if cut <= opened => {
                assert!(e.to_string().contains("not a redb database"), "{e}");
                continue;
            }
            Err(e) => panic!("image at sync {cut} does not reopen: {e}"),
        };
        let got = dump(&reopened).await;
        // Ops acknowledged by the cut must all be there; the next op may
        // have been fully written at the cut without being acknowledged.
        let done = acked.iter().take_while(|&&syncs| syncs <= cut).count();
        let allowed = &states[done..states.len().min(done + 2)];
        assert!(
            allowed.contains(&got),
            "image at sync {cut} of {}: {done} ops acknowledged, state matches none of ops {done}..={}",
            images.len(),
            done + 1
        );
        checked += 1;
    }
    assert!(checked > acked.len(), "only {checked} images reopened");
    println!(
        "{} sync points, {checked} images reopened and checked, {} ops",
        images.len(),
        acked.len()
    );
}

/// Both files of a journaled store on one simulated machine: every sync of
/// either file records a *cut* — what each file would hold after a power
/// loss right then (for each, what it held at its own last sync). Every
/// journal write also records a cut in which that write reached the disk
/// only halfway (a torn, unsynced record).
#[derive(Debug, Default)]
struct Machine {
    db: Vec<u8>,
    db_synced: Vec<u8>,
    journal: Vec<u8>,
    journal_synced: Vec<u8>,
    cuts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Number of sync cuts (torn-write cuts are not counted).
    syncs: u64,
    /// `syncs` at each cut.
    cut_syncs: Vec<u64>,
}

#[derive(Clone, Debug, Default)]
struct Shared2(Arc<std::sync::Mutex<Machine>>);

impl Shared2 {
    fn lock(&self) -> std::sync::MutexGuard<'_, Machine> {
        self.0.lock().unwrap()
    }
}

impl Machine {
    fn cut(&mut self, journal: Vec<u8>) {
        self.cuts.push((self.db_synced.clone(), journal));
        self.cut_syncs.push(self.syncs);
    }
}

#[derive(Debug)]
struct DbFile(Shared2);

fn out_of_range() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "out of range")
}

impl StorageBackend for DbFile {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.0.lock().db.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let m = self.0.lock();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let src =
            m.db.get(start..start + out.len())
                .ok_or_else(out_of_range)?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.0.lock().db.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut m = self.0.lock();
        let Machine { db, db_synced, .. } = &mut *m;
        db_synced.clone_from(db);
        m.syncs += 1;
        let journal = m.journal_synced.clone();
        m.cut(journal);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut m = self.0.lock();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        m.db.get_mut(start..start + data.len())
            .ok_or_else(out_of_range)?
            .copy_from_slice(data);
        Ok(())
    }
}

#[derive(Debug)]
struct JournalDisk(Shared2);

fn write_into(file: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if file.len() < offset + data.len() {
        file.resize(offset + data.len(), 0);
    }
    file[offset..offset + data.len()].copy_from_slice(data);
}

impl JournalFile for JournalDisk {
    fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        Ok(self.0.lock().journal.clone())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut m = self.0.lock();
        let offset = usize::try_from(offset).map_err(|_| out_of_range())?;
        // A cut in which only half of this write reached the disk.
        let mut torn = m.journal_synced.clone();
        write_into(&mut torn, offset, &data[..data.len() / 2]);
        m.cut(torn);
        write_into(&mut m.journal, offset, data);
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        let mut m = self.0.lock();
        let Machine {
            journal,
            journal_synced,
            ..
        } = &mut *m;
        journal_synced.clone_from(journal);
        m.syncs += 1;
        let journal = m.journal_synced.clone();
        m.cut(journal);
        Ok(())
    }
}

/// A journaled store reopened from one cut.
fn reopen_cut(db: &[u8], journal: &[u8]) -> Result<RedbStore, memable_core::EngineError> {
    let backend = redb::backends::InMemoryBackend::new();
    backend.set_len(db.len() as u64).unwrap();
    backend.write(0, db).unwrap();
    let file = Shared2::default();
    file.lock().journal = journal.to_vec();
    RedbStore::builder()
        .checkpoint_bytes(4096)
        .open_backend_with_journal(backend, JournalDisk(file))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journaled_store_every_cut_of_both_files_reopens_with_everything_acknowledged() {
    let machine = Shared2::default();
    // A small checkpoint threshold: several checkpoints and journal resets
    // happen during the workload, so cuts land around them and stale
    // records sit behind new ones.
    let store = RedbStore::builder()
        .checkpoint_bytes(4096)
        .open_backend_with_journal(DbFile(machine.clone()), JournalDisk(machine.clone()))
        .unwrap();
    let opened = machine.lock().syncs;
    let mirror = MemoryStore::new();

    let mut states = vec![dump(&mirror).await];
    let mut acked = Vec::new();
    for op in workload() {
        let expected = run(&mirror, op.clone()).await;
        assert_eq!(run(&store, op).await, expected);
        acked.push(machine.lock().syncs);
        states.push(dump(&mirror).await);
    }
    assert_eq!(dump(&store).await, *states.last().unwrap());
    let checkpoints = store.stats().checkpoints;
    assert!(checkpoints >= 2, "{checkpoints} checkpoints");
    drop(store); // the final checkpoint: more cuts

    let (cuts, cut_syncs) = {
        let mut m = machine.lock();
        (
            std::mem::take(&mut m.cuts),
            std::mem::take(&mut m.cut_syncs),
        )
    };
    let mut checked = 0;
    for ((db, journal), syncs) in cuts.iter().zip(&cut_syncs) {
        let reopened = match reopen_cut(db, journal) {
            Ok(store) => store,
            Err(e) if *syncs <= opened => {
                assert!(e.to_string().contains("not a redb database"), "{e}");
                continue;
            }
            Err(e) => panic!("cut after sync {syncs} does not reopen: {e}"),
        };
        let got = dump(&reopened).await;
        let done = acked.iter().take_while(|&&s| s <= *syncs).count();
        let allowed = &states[done..states.len().min(done + 2)];
        assert!(
            allowed.contains(&got),
            "cut after sync {syncs}: {done} ops acknowledged, state matches none of ops {done}..={}",
            done + 1
        );
        drop(reopened);
        checked += 1;
    }
    assert!(checked > acked.len() * 2, "only {checked} cuts checked");
    println!(
        "{} cuts ({} syncs), {checked} reopened and checked, {} ops, {checkpoints} checkpoints",
        cuts.len(),
        cut_syncs.last().unwrap(),
        acked.len()
    );
}
