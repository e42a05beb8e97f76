//! The model test: seeded random sequences of store operations applied to
//! the store under test and to a plain reference model, compared after
//! every operation (the outcome, then the full observable state).
//!
//! `MEMABLE_MODEL_SEQUENCES` sets the number of sequences (default
//! [`StoreFactory::model_sequences`]: 300 unless the factory says fewer, of
//! 60 operations each); `MEMABLE_MODEL_SEED` sets the first seed (default
//! fixed, so runs are deterministic). A failure prints the seed, how to
//! replay it, and the operations that led there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use memable_core::StepStoreExt;
use memable_core::{
    Finish, InstanceFilter, InstanceKey, StatusKind, StepKind, StepRecord, StepState, StepStore,
};

use crate::StoreFactory;
use crate::model::{Model, Op, Outcome};
use crate::support::ok;

/// Sequences per run unless the factory or the environment says otherwise.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_testkit::cases::model::DEFAULT_SEQUENCES, 300);
/// ```
pub const DEFAULT_SEQUENCES: u64 = 300;
/// Operations per sequence.
const OPS_PER_SEQUENCE: usize = 60;
/// Default first seed.
const DEFAULT_SEED: u64 = 0x6d65_6d61_626c_6500;

const WORKFLOWS: [&str; 3] = ["a", "a-b", "ab"];
const INSTANCES: [&str; 2] = ["1", "10"];
const STEPS: [&str; 4] = ["s", "s1", "t", "t1"];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn universe() -> Vec<InstanceKey> {
    WORKFLOWS
        .iter()
        .flat_map(|w| INSTANCES.iter().map(move |i| crate::support::key(w, i)))
        .collect()
}

struct Generator {
    rng: fastrand::Rng,
    keys: Vec<InstanceKey>,
    now: u64,
    reopen: bool,
}

impl Generator {
    /// Any key of the universe; mostly an existing one once there are some.
    fn key(&mut self, model: &Model) -> InstanceKey {
        let existing = model.keys();
        if !existing.is_empty() && self.rng.u8(..4) != 0 {
            return existing[self.rng.usize(..existing.len())].clone();
        }
        self.keys[self.rng.usize(..self.keys.len())].clone()
    }

    /// Mostly a suspended step, so claims often have something to win.
    fn claim_target(&mut self, model: &Model) -> (InstanceKey, String) {
        let suspended = model.suspended_steps();
        if !suspended.is_empty() && self.rng.u8(..4) != 0 {
            return suspended[self.rng.usize(..suspended.len())].clone();
        }
        (self.key(model), self.step())
    }

    fn step(&mut self) -> String {
        STEPS[self.rng.usize(..STEPS.len())].to_owned()
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = self.rng.usize(..4);
        std::iter::repeat_with(|| self.rng.u8(..))
            .take(len)
            .collect()
    }

    fn text(&mut self) -> Option<String> {
        self.rng.bool().then(|| format!("m{}", self.rng.u8(..4)))
    }

    fn filter(&mut self, model: &Model) -> InstanceFilter {
        let mut filter = InstanceFilter::new();
        if self.rng.bool() {
            filter = filter.workflow(WORKFLOWS[self.rng.usize(..WORKFLOWS.len())]);
        }
        if self.rng.bool() {
            filter = filter.status(StatusKind::ALL[self.rng.usize(..StatusKind::ALL.len())]);
        }
        if self.rng.u8(..3) == 0 {
            filter = filter.after(self.key(model));
        }
        if self.rng.u8(..3) == 0 {
            filter = filter.limit(self.rng.usize(..4));
        }
        filter
    }

    fn op(&mut self, model: &Model) -> Op {
        self.now += self.rng.u64(..3);
        let now = self.now;
        match self.rng.u32(..100) {
            0..12 => Op::Start {
                key: self.key(model),
                input: StepRecord::completed(StepKind::Engine, "in", self.bytes(), None),
                now,
            },
            12..27 => {
                let record = match self.rng.u8(..4) {
                    0 | 1 => StepRecord::completed(StepKind::Step, "v", self.bytes(), self.text()),
                    2 => StepRecord::failure(StepState::Retrying, self.rng.u32(1..4), "again"),
                    _ => StepRecord::failure(StepState::Failed, self.rng.u32(1..4), "dead"),
                };
                Op::Commit {
                    key: self.key(model),
                    step: self.step(),
                    record,
                }
            }
            27..42 => {
                let deadline = self.rng.bool().then(|| now + self.rng.u64(..40));
                let kind = if deadline.is_some() {
                    StepKind::Timer
                } else {
                    StepKind::Suspend
                };
                let record = StepRecord::suspended(kind, "sig", self.text(), deadline);
                Op::Suspend {
                    key: self.key(model),
                    step: self.step(),
                    record,
                    status: self.text(),
                    now,
                }
            }
            42..57 => {
                let (key, step) = self.claim_target(model);
                let payload = StepRecord::completed(StepKind::Suspend, "sig", self.bytes(), None);
                Op::Claim {
                    key,
                    step,
                    payload,
                    now,
                }
            }
            57..66 => {
                let finish = if self.rng.bool() {
                    let output = StepRecord::completed(StepKind::Engine, "out", self.bytes(), None);
                    Finish::Completed {
                        status: self.text(),
                        output,
                    }
                } else {
                    Finish::Failed(format!("e{}", self.rng.u8(..3)))
                };
                Op::Finish {
                    key: self.key(model),
                    finish,
                    now,
                }
            }
            66..72 => Op::Revive {
                key: self.key(model),
                now,
            },
            72..76 => Op::Cancel {
                key: self.key(model),
                now,
            },
            76..79 => Op::Delete {
                key: self.key(model),
            },
            79..81 if self.reopen => Op::Reopen,
            81..88 => {
                let now = (now + self.rng.u64(..120)).saturating_sub(10);
                let limit = if self.rng.bool() {
                    usize::MAX
                } else {
                    self.rng.usize(..4)
                };
                Op::Due { now, limit }
            }
            88..95 => Op::List(self.filter(model)),
            _ => Op::GetStep {
                key: self.key(model),
                step: self.step(),
            },
        }
    }
}

async fn run_on_store(store: &dyn StepStore, op: &Op) -> Result<Outcome, String> {
    let e = |err: memable_core::EngineError| format!("storage error: {err}");
    Ok(match op.clone() {
        Op::Start { key, input, now } => {
            Outcome::Start(store.start_instance(key, input, now).await.map_err(e)?)
        }
        Op::Commit { key, step, record } => {
            Outcome::Commit(store.commit_step(key, step, record).await.map_err(e)?)
        }
        Op::Suspend {
            key,
            step,
            record,
            status,
            now,
        } => Outcome::Suspend(
            store
                .suspend_step(key, step, record, status, now)
                .await
                .map_err(e)?,
        ),
        Op::Claim {
            key,
            step,
            payload,
            now,
        } => Outcome::Claim(store.claim_step(key, step, payload, now).await.map_err(e)?),
        Op::Finish { key, finish, now } => {
            Outcome::Finish(store.finish_instance(key, finish, now).await.map_err(e)?)
        }
        Op::Revive { key, now } => {
            Outcome::Revive(store.revive_instance(key, now).await.map_err(e)?)
        }
        Op::Cancel { key, now } => {
            Outcome::Cancel(store.cancel_instance(key, now).await.map_err(e)?)
        }
        Op::Delete { key } => Outcome::Delete(store.delete_instance(key).await.map_err(e)?),
        Op::Reopen => Outcome::Unit,
        Op::Due { now, limit } => Outcome::Due(store.due_timers(now, limit).await.map_err(e)?),
        Op::List(filter) => Outcome::List(store.list_instances(&filter).await.map_err(e)?),
        Op::GetStep { key, step } => Outcome::Step(store.get_step(&key, &step).await.map_err(e)?),
    })
}

/// Compares the whole observable state of `store` with `model`.
async fn compare_state(
    store: &dyn StepStore,
    model: &Model,
    keys: &[InstanceKey],
) -> Result<(), String> {
    let e = |err: memable_core::EngineError| format!("storage error: {err}");
    let all = store
        .list_instances(&InstanceFilter::new())
        .await
        .map_err(e)?;
    let want = model.list(&InstanceFilter::new());
    if all != want {
        return Err(format!(
            "list_instances differs:\n store: {all:?}\n model: {want:?}"
        ));
    }
    for kind in StatusKind::ALL {
        let filter = InstanceFilter::new().status(kind);
        let got = store.list_instances(&filter).await.map_err(e)?;
        let want = model.list(&filter);
        if got != want {
            return Err(format!(
                "list_instances(status {kind:?}) differs:\n store: {got:?}\n model: {want:?}"
            ));
        }
    }
    for key in keys {
        let got = store.load_instance(key).await.map_err(e)?;
        let want = model.snapshot(key);
        if got != want {
            return Err(format!(
                "load_instance({key}) differs:\n store: {got:?}\n model: {want:?}"
            ));
        }
        let meta = store.get_metadata(key).await.map_err(e)?;
        if meta != want.map(|s| s.metadata) {
            return Err(format!(
                "get_metadata({key}) differs from the model: {meta:?}"
            ));
        }
    }
    let timers = store.due_timers(u64::MAX, usize::MAX).await.map_err(e)?;
    let want = model.due(u64::MAX, usize::MAX);
    if timers != want {
        return Err(format!(
            "timer rows differ:\n store: {timers:?}\n model: {want:?}"
        ));
    }
    let next = store.next_timer_deadline().await.map_err(e)?;
    if next != model.next_deadline() {
        return Err(format!(
            "next_timer_deadline: store {next:?}, model {:?}",
            model.next_deadline()
        ));
    }
    Ok(())
}

/// Runs one seeded sequence; on a mismatch returns the message and the log.
async fn run_sequence(
    factory: &dyn StoreFactory,
    seed: u64,
    outcomes: &mut BTreeMap<String, u64>,
) -> Result<(), (String, String)> {
    let mut fixture = ok(factory.create().await, "StoreFactory::create");
    let mut store: Arc<dyn StepStore> = fixture.store();
    let keys = universe();
    let mut generator = Generator {
        rng: fastrand::Rng::with_seed(seed),
        keys: keys.clone(),
        now: 1_000,
        reopen: factory.capabilities().reopen,
    };
    let mut model = Model::default();
    let mut log = String::new();
    for i in 0..OPS_PER_SEQUENCE {
        let op = generator.op(&model);
        let _ = writeln!(log, "  {i:>2}: {op:?}");
        if matches!(op, Op::Reopen) {
            drop(store);
            fixture
                .reopen()
                .await
                .map_err(|err| (format!("reopen failed: {err}"), log.clone()))?;
            store = fixture.store();
        }
        let want = model.apply(&op);
        let got = run_on_store(&*store, &op)
            .await
            .map_err(|m| (m, log.clone()))?;
        if got != want {
            return Err((
                format!("op {i} answered {got:?}, the model says {want:?}"),
                log,
            ));
        }
        *outcomes.entry(label(&got)).or_default() += 1;
        compare_state(&*store, &model, &keys)
            .await
            .map_err(|m| (format!("after op {i}: {m}"), log.clone()))?;
    }
    Ok(())
}

/// The outcome's variant path, e.g. `Claim(Claimed)`, for coverage counts.
fn label(outcome: &Outcome) -> String {
    let text = format!("{outcome:?}");
    let mut depth = 0;
    let end = text
        .char_indices()
        .find(|&(_, c)| {
            if c == '(' {
                depth += 1;
            }
            depth == 2 || c == ' ' || c == '{' || (depth == 1 && c == ')')
        })
        .map_or(text.len(), |(i, _)| i);
    let mut label = text[..end].to_owned();
    if depth >= 1 {
        label.push(')');
    }
    label
}

/// Outcomes every full run must reach, so the generator cannot silently
/// stop exercising a transition.
const MUST_SEE: [&str; 8] = [
    "Start(Started)",
    "Commit(Committed)",
    "Commit(Kept)",
    "Suspend(Suspended)",
    "Claim(Claimed)",
    "Claim(InstanceNotSuspended)",
    "Finish(Finished)",
    "Cancel(Cancelled)",
];

/// Hundreds of seeded random sequences (start, commit, suspend, claim,
/// finish, revive, cancel, delete, reopen, timer and listing reads) over
/// look-alike keys, compared with the reference model after every
/// operation.
pub async fn model_random_sequences(factory: &dyn StoreFactory) {
    let sequences = env_u64("MEMABLE_MODEL_SEQUENCES").unwrap_or_else(|| factory.model_sequences());
    let first = env_u64("MEMABLE_MODEL_SEED").unwrap_or(DEFAULT_SEED);
    let mut outcomes = BTreeMap::new();
    for n in 0..sequences {
        let seed = first.wrapping_add(n);
        if let Err((message, log)) = run_sequence(factory, seed, &mut outcomes).await {
            panic!(
                "model test failed on {} with seed {seed}: {message}\n\
                 replay: MEMABLE_MODEL_SEED={seed} MEMABLE_MODEL_SEQUENCES=1\n\
                 operations:\n{log}",
                factory.name()
            );
        }
    }
    println!(
        "model test on {}: {sequences} sequences x {OPS_PER_SEQUENCE} ops from seed {first}; outcomes: {outcomes:?}",
        factory.name()
    );
    if sequences >= 100 {
        for outcome in MUST_SEE {
            assert!(
                outcomes.contains_key(outcome),
                "the model test never reached {outcome}: {outcomes:?}"
            );
        }
    }
}
