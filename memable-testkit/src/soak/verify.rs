//! Checks the side-effect log and the store after the soak.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use memable_core::{Engine, EngineError, InstanceKey, decode_record};

use super::child::{STORE_FILE, WORKFLOW, expected_output, input_of, instance_id, step_keys};
use super::log::{Event, read_events};
use super::{SoakBackend, SoakConfig};

/// The soak's verdict. Its [`Display`](fmt::Display) is the one report line.
///
/// # Examples
///
/// ```
/// let report = memable_testkit::soak::SoakReport {
///     backend: "redb", kills: 3, workflows: 20, steps: 280,
///     lost: 0, reexecuted_after_commit: 0, wrong_output: 0,
/// };
/// assert!(report.passed());
/// assert_eq!(report.to_string(),
///     "crash-soak backend=redb kills=3 workflows=20 steps=280 lost=0 reexecuted_after_commit=0 wrong_output=0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoakReport {
    /// Backend name.
    pub backend: &'static str,
    /// `SIGKILL`s that landed on a running child.
    pub kills: usize,
    /// Workflows run (over every round).
    pub workflows: usize,
    /// Step records verified.
    pub steps: usize,
    /// Memoised values that changed, or stored values that differ from the
    /// first one read.
    pub lost: usize,
    /// Step closures that ran after their result was committed.
    pub reexecuted_after_commit: usize,
    /// Workflows not completed with the expected output.
    pub wrong_output: usize,
}

impl SoakReport {
    /// `true` when nothing was lost, re-executed or wrong.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.reexecuted_after_commit == 0 && self.wrong_output == 0
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "crash-soak backend={} kills={} workflows={} steps={} lost={} reexecuted_after_commit={} wrong_output={}",
            self.backend,
            self.kills,
            self.workflows,
            self.steps,
            self.lost,
            self.reexecuted_after_commit,
            self.wrong_output
        )
    }
}

#[derive(Default)]
struct StepHistory {
    first_got: Option<String>,
    values_differ: bool,
    runs_after_commit: usize,
}

pub(crate) fn verify(
    backend: &dyn SoakBackend,
    dir: &Path,
    config: &SoakConfig,
    rounds: u64,
    kills: usize,
) -> Result<SoakReport, EngineError> {
    let mut history: HashMap<(String, String), StepHistory> = HashMap::new();
    for event in read_events(dir)? {
        match event {
            Event::Run { instance, key } => {
                let entry = history.entry((instance, key)).or_default();
                if entry.first_got.is_some() {
                    entry.runs_after_commit += 1;
                }
            }
            Event::Got {
                instance,
                key,
                value,
            } => {
                let entry = history.entry((instance, key)).or_default();
                match &entry.first_got {
                    None => entry.first_got = Some(value),
                    Some(first) if *first != value => entry.values_differ = true,
                    Some(_) => {}
                }
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::storage("verify runtime", e))?;
    runtime.block_on(async {
        let store = backend.open(&dir.join(STORE_FILE))?;
        let engine = Engine::builder().store(store.clone()).build();
        let mut report = SoakReport {
            backend: backend.name(),
            kills,
            workflows: 0,
            steps: 0,
            lost: 0,
            reexecuted_after_commit: history.values().map(|h| h.runs_after_commit).sum(),
            wrong_output: 0,
        };
        for round in 0..rounds {
            for index in 0..config.workflows {
                let id = instance_id(round, index);
                report.workflows += 1;
                let expected = expected_output(input_of(round, index), config.steps);
                match engine.output::<u64>(WORKFLOW, &id).await {
                    Ok(output) if output == expected => {}
                    other => {
                        eprintln!("crash-soak: {id}: expected output {expected}, got {other:?}");
                        report.wrong_output += 1;
                    }
                }
                let key = InstanceKey::new(WORKFLOW, &id)?;
                for (step, plain) in step_keys(config.steps) {
                    report.steps += 1;
                    let stored = match store.get_step(&key, &step).await? {
                        Some(record) if plain => decode_record::<(u64, u64)>(&step, &record)
                            .map(|(v, n)| format!("{v}:{n}"))
                            .ok(),
                        Some(record) => decode_record::<u64>(&step, &record)
                            .map(|v| v.to_string())
                            .ok(),
                        None => None,
                    };
                    let seen = history.get(&(id.clone(), step.clone()));
                    let consistent = seen.is_some_and(|h| !h.values_differ && h.first_got.is_some() && h.first_got == stored);
                    if !consistent {
                        eprintln!(
                            "crash-soak: {id}/{step}: stored {stored:?}, first read {:?}, values differ: {:?}",
                            seen.and_then(|h| h.first_got.clone()),
                            seen.map(|h| h.values_differ)
                        );
                        report.lost += 1;
                    }
                }
            }
        }
        Ok(report)
    })
}
