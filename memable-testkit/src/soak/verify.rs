//! Checks the side-effect log and the store after the soak.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use memable_core::{
    Engine, EngineError, InstanceKey, MetadataStatus, StepRecord, StepState, StepStore,
    decode_record,
};

use super::child::{
    Fate, STORE_FILE, StepSpec, WORKFLOW, expected_output, fate_of, input_of, instance_id,
    step_specs,
};
use super::log::{Event, read_events};
use super::{SoakBackend, SoakConfig};

/// The soak's verdict. Its [`Display`](fmt::Display) is the one report line.
///
/// # Examples
///
/// ```
/// let report = memable_testkit::soak::SoakReport {
///     backend: "redb", kills: 3, workflows: 20, cancelled: 10, steps: 180,
///     parallel_steps: 30, cancel_violations: 0,
///     lost: 0, reexecuted_after_commit: 0, wrong_output: 0,
/// };
/// assert!(report.passed());
/// assert_eq!(report.to_string(),
///     "crash-soak backend=redb kills=3 workflows=20 cancelled=10 steps=180 parallel_steps=30 \
///      cancel_violations=0 lost=0 reexecuted_after_commit=0 wrong_output=0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoakReport {
    /// Backend name.
    pub backend: &'static str,
    /// `SIGKILL`s that landed on a running child.
    pub kills: usize,
    /// Workflows run (over every round).
    pub workflows: usize,
    /// Workflows that ended cancelled.
    pub cancelled: usize,
    /// Committed step records verified.
    pub steps: usize,
    /// Of [`steps`](Self::steps), those of parallel groups.
    pub parallel_steps: usize,
    /// Breaches of a cancel: an acknowledged cancel that did not hold to the
    /// end, a step that ran in a child started after the cancel was
    /// acknowledged, a committed step whose closure first ran after it, or
    /// a cancelled instance that was signalled.
    pub cancel_violations: usize,
    /// Memoised values that changed, stored values that differ from the
    /// first one read, or stored values that are not the step's value.
    pub lost: usize,
    /// Step closures that ran after their result was committed.
    pub reexecuted_after_commit: usize,
    /// Workflows that did not end as their fate says (completed, or
    /// cancelled), or completed with an output that is not the expected one
    /// or not the sum of their committed parts.
    pub wrong_output: usize,
}

impl SoakReport {
    /// `true` when nothing was lost, re-executed, wrong or breached a cancel.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.cancel_violations == 0
            && self.lost == 0
            && self.reexecuted_after_commit == 0
            && self.wrong_output == 0
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "crash-soak backend={} kills={} workflows={} cancelled={} steps={} parallel_steps={} \
             cancel_violations={} lost={} reexecuted_after_commit={} wrong_output={}",
            self.backend,
            self.kills,
            self.workflows,
            self.cancelled,
            self.steps,
            self.parallel_steps,
            self.cancel_violations,
            self.lost,
            self.reexecuted_after_commit,
            self.wrong_output
        )
    }
}

#[derive(Default)]
struct StepHistory {
    /// Log position of the step's first `run` line.
    first_run: Option<usize>,
    first_got: Option<String>,
    values_differ: bool,
    runs_after_commit: usize,
}

/// The first acknowledged cancel of an instance: its log position and the
/// newest process started before it.
#[derive(Clone, Copy)]
struct Ack {
    at: usize,
    /// Every process numbered above this one started after the ack: the
    /// acknowledging one, or (multi-process soak, where processes run side
    /// by side) the newest one whose `spawned` line precedes the ack.
    started_before: u64,
}

/// What the log says, by instance and step.
#[derive(Default)]
struct History {
    steps: HashMap<(String, String), StepHistory>,
    acks: HashMap<String, Ack>,
    /// `run` / `got` lines written by a process started after the
    /// instance's cancel was acknowledged.
    runs_after_cancel: usize,
}

impl History {
    fn read(dir: &Path) -> Result<Self, EngineError> {
        let events = read_events(dir)?;
        let mut history = Self::default();
        let mut newest_started = 0u64;
        for (at, event) in events.iter().enumerate() {
            match event {
                Event::Spawned { generation } => {
                    newest_started = newest_started.max(*generation);
                }
                Event::Cancelled {
                    instance,
                    generation,
                } => {
                    history.acks.entry(instance.clone()).or_insert(Ack {
                        at,
                        started_before: newest_started.max(*generation),
                    });
                }
                Event::Run { .. } | Event::Got { .. } => {}
            }
        }
        for (at, event) in events.into_iter().enumerate() {
            if event
                .instance()
                .and_then(|instance| history.acks.get(instance))
                .is_some_and(|ack| event.generation() > ack.started_before)
                && matches!(event, Event::Run { .. } | Event::Got { .. })
            {
                eprintln!("crash-soak: {event:?} after the cancel was acknowledged");
                history.runs_after_cancel += 1;
            }
            match event {
                Event::Run { instance, key, .. } => {
                    let entry = history.steps.entry((instance, key)).or_default();
                    entry.first_run.get_or_insert(at);
                    if entry.first_got.is_some() {
                        entry.runs_after_commit += 1;
                    }
                }
                Event::Got {
                    instance,
                    key,
                    value,
                    ..
                } => {
                    let entry = history.steps.entry((instance, key)).or_default();
                    match &entry.first_got {
                        None => entry.first_got = Some(value),
                        Some(first) if *first != value => entry.values_differ = true,
                        Some(_) => {}
                    }
                }
                Event::Cancelled { .. } | Event::Spawned { .. } => {}
            }
        }
        Ok(history)
    }
}

pub(crate) fn verify(
    backend: &dyn SoakBackend,
    dir: &Path,
    config: &SoakConfig,
    rounds: u64,
    kills: usize,
) -> Result<SoakReport, EngineError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::storage("verify runtime", e))?;
    runtime.block_on(async {
        let store = backend.open(&dir.join(STORE_FILE))?;
        verify_store(backend.name(), store, dir, config, rounds, kills).await
    })
}

/// Checks the log in `dir` against `store` once every workflow of rounds
/// `0..rounds` ended.
pub(crate) async fn verify_store(
    backend: &'static str,
    store: Arc<dyn StepStore>,
    dir: &Path,
    config: &SoakConfig,
    rounds: u64,
    kills: usize,
) -> Result<SoakReport, EngineError> {
    let history = History::read(dir)?;
    let engine = Engine::builder().store(store.clone()).build();
    let mut report = SoakReport {
        backend,
        kills,
        workflows: 0,
        cancelled: 0,
        steps: 0,
        parallel_steps: 0,
        cancel_violations: history.runs_after_cancel,
        lost: 0,
        reexecuted_after_commit: history.steps.values().map(|h| h.runs_after_commit).sum(),
        wrong_output: 0,
    };
    for round in 0..rounds {
        for index in 0..config.workflows {
            let id = instance_id(round, index);
            let input = input_of(round, index);
            report.workflows += 1;
            let status = engine
                .get_metadata(WORKFLOW, &id)
                .await?
                .map(|meta| meta.status);
            let ack = history.acks.get(&id).copied();
            let cancelled = status == Some(MetadataStatus::Cancelled);
            if cancelled {
                report.cancelled += 1;
            }
            if ack.is_some() && !cancelled {
                eprintln!("crash-soak: {id}: cancel acknowledged, but it ended {status:?}");
                report.cancel_violations += 1;
            }
            let expected_end = if fate_of(index) == Fate::Complete {
                matches!(status, Some(MetadataStatus::Completed(_)))
            } else {
                cancelled
            };
            if !expected_end {
                eprintln!("crash-soak: {id} ({:?}) ended {status:?}", fate_of(index));
                report.wrong_output += 1;
            }
            let key = InstanceKey::new(WORKFLOW, &id)?;
            // The sum of the committed parts, for a completed instance.
            let mut parts = 0u64;
            for spec in step_specs(input, config.steps) {
                let record = store
                    .get_step(&key, &spec.key)
                    .await?
                    .filter(|r| r.state == StepState::Completed);
                if cancelled && record.is_none() {
                    // Never reached, or dropped in flight by the cancel.
                    continue;
                }
                let seen = history.steps.get(&(id.clone(), spec.key.clone()));
                parts += check_step(
                    &mut report,
                    &id,
                    &spec,
                    record.as_ref(),
                    seen,
                    cancelled,
                    ack,
                );
            }
            if matches!(status, Some(MetadataStatus::Completed(_))) {
                let expected = expected_output(input, config.steps);
                match engine.output::<u64>(WORKFLOW, &id).await {
                    Ok(output) if output == expected && output == parts => {}
                    other => {
                        eprintln!(
                            "crash-soak: {id}: expected output {expected} (its parts sum to {parts}), got {other:?}"
                        );
                        report.wrong_output += 1;
                    }
                }
            }
        }
    }
    Ok(report)
}

/// Checks one step record of instance `id` (`None`: missing or not
/// completed) against what the log saw; returns its value.
fn check_step(
    report: &mut SoakReport,
    id: &str,
    spec: &StepSpec,
    record: Option<&StepRecord>,
    seen: Option<&StepHistory>,
    cancelled: bool,
    ack: Option<Ack>,
) -> u64 {
    report.steps += 1;
    if spec.parallel {
        report.parallel_steps += 1;
    }
    let stored = record.and_then(|record| {
        if spec.plain {
            decode_record::<(u64, u64)>(&spec.key, record).ok()
        } else {
            decode_record::<u64>(&spec.key, record).ok().map(|v| (v, 0))
        }
    });
    let stored_text = stored.map(|(v, n)| {
        if spec.plain {
            format!("{v}:{n}")
        } else {
            v.to_string()
        }
    });
    let value_right = stored.is_some_and(|(v, _)| v == spec.value);
    // A cancelled instance may hold a step whose commit won the race with
    // the cancel but whose `got` line the cancel pre-empted.
    let consistent = seen.is_some_and(|h| {
        !h.values_differ
            && if cancelled && h.first_got.is_none() {
                stored_text.is_some()
            } else {
                h.first_got.is_some() && h.first_got == stored_text
            }
    });
    if !consistent || !value_right {
        eprintln!(
            "crash-soak: {id}/{}: stored {stored_text:?} (must be {}), first read {:?}, values differ: {:?}",
            spec.key,
            spec.value,
            seen.and_then(|h| h.first_got.clone()),
            seen.map(|h| h.values_differ)
        );
        report.lost += 1;
    }
    // A step whose closure first ran after the cancel was acknowledged
    // committed after it: it must not exist.
    if let Some(ack) = ack
        && spec.plain
        && seen
            .and_then(|h| h.first_run)
            .is_none_or(|run| run > ack.at)
    {
        eprintln!(
            "crash-soak: {id}/{}: committed, but first ran after the cancel was acknowledged",
            spec.key
        );
        report.cancel_violations += 1;
    }
    if cancelled && !spec.plain {
        eprintln!("crash-soak: {id}: a cancelled instance was signalled");
        report.cancel_violations += 1;
    }
    stored.map_or(0, |(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::log::LOG_FILE;

    fn history(lines: &str) -> History {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG_FILE), lines).unwrap();
        History::read(dir.path()).unwrap()
    }

    #[test]
    fn a_run_in_a_child_started_after_the_cancel_ack_is_a_violation() {
        let h = history(
            "run r0-w0001 s0 1\ngot r0-w0001 s0 1:9 1\ncancelled r0-w0001 1\n\
             run r0-w0001 s1 1\nrun r0-w0001 s2 2\ngot r0-w0001 s2 2:9 2\n",
        );
        // `s1` ran in the acknowledging child (a race the store refuses);
        // `s2`'s run and got came from a later child.
        assert_eq!(h.runs_after_cancel, 2);
        let ack = h.acks["r0-w0001"];
        assert_eq!((ack.at, ack.started_before), (2, 1));
        let first_run = |key: &str| h.steps[&("r0-w0001".to_owned(), key.to_owned())].first_run;
        assert!(first_run("s0").is_some_and(|at| at < ack.at));
        assert!(first_run("s1").is_some_and(|at| at > ack.at));
    }

    #[test]
    fn the_first_ack_counts_and_other_instances_are_unaffected() {
        let h = history(
            "cancelled r0-w0003 1\nrun r0-w0000 s0 2\ncancelled r0-w0003 2\nrun r0-w0003 s0 1\n",
        );
        assert_eq!(h.acks["r0-w0003"].at, 0);
        assert!(!h.acks.contains_key("r0-w0000"));
        assert_eq!(h.runs_after_cancel, 0);
    }

    #[test]
    fn side_by_side_processes_count_only_when_started_after_the_ack() {
        // Processes 1 (client) and 2, 3 (workers) run side by side; the
        // client acknowledges the cancel; process 4 starts after it.
        let h = history(
            "spawned 1\nspawned 2\nspawned 3\nrun r0-w0003 s0 2\n\
             cancelled r0-w0003 1\nrun r0-w0003 s1 3\nspawned 4\nrun r0-w0003 s2 4\n",
        );
        // Lines of 2 and 3 (started before the ack) are races the store
        // refuses; the line of 4 is a run after a restart.
        assert_eq!(h.runs_after_cancel, 1);
        assert_eq!(h.acks["r0-w0003"].started_before, 3);
    }

    #[test]
    fn a_malformed_line_is_a_corrupt_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG_FILE), "cancelled r0-w0001 x\n").unwrap();
        let error = History::read(dir.path()).err().unwrap();
        assert_eq!(
            error.storage_kind(),
            Some(memable_core::StorageErrorKind::Corrupt)
        );
    }
}
