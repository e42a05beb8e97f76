//! The side-effect log: one line per event, appended by the child with one
//! `write` each, so a `SIGKILL` never leaves half of a line behind another.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use memable_core::{EngineError, StorageError, StorageErrorKind};

/// The log file's name inside the soak directory.
pub const LOG_FILE: &str = "side-effects.log";

/// Appends events to the log.
pub struct EventLog {
    file: Mutex<File>,
    generation: u64,
}

impl EventLog {
    pub fn open(dir: &Path, generation: u64) -> Result<Self, EngineError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(LOG_FILE))
            .map_err(|e| EngineError::storage("open side-effect log", e))?;
        Ok(Self {
            file: Mutex::new(file),
            generation,
        })
    }

    /// Appends `<event> <fields…> <generation>` as one line.
    pub fn append(&self, event: &str, fields: &[&str]) -> Result<(), EngineError> {
        let mut line = String::from(event);
        for field in fields {
            line.push(' ');
            line.push_str(field);
        }
        line.push(' ');
        line.push_str(&self.generation.to_string());
        line.push('\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(line.as_bytes())
            .map_err(|e| EngineError::storage("append side-effect log", e))
    }
}

/// One parsed log line; `generation` is the child process that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A step closure is about to run.
    Run {
        instance: String,
        key: String,
        generation: u64,
    },
    /// A step returned `value` to the workflow.
    Got {
        instance: String,
        key: String,
        value: String,
        generation: u64,
    },
    /// `Engine::cancel` of `instance` returned `Ok`: the cancel is
    /// acknowledged (durable) from this line on.
    Cancelled { instance: String, generation: u64 },
    /// The parent is about to start process `generation` (written by the
    /// multi-process soak, whose processes run side by side).
    Spawned { generation: u64 },
}

impl Event {
    /// The instance the event is about (`None` for a [`Spawned`](Self::Spawned)).
    pub fn instance(&self) -> Option<&str> {
        match self {
            Self::Run { instance, .. }
            | Self::Got { instance, .. }
            | Self::Cancelled { instance, .. } => Some(instance),
            Self::Spawned { .. } => None,
        }
    }

    /// The child process that wrote the event.
    pub fn generation(&self) -> u64 {
        match self {
            Self::Run { generation, .. }
            | Self::Got { generation, .. }
            | Self::Cancelled { generation, .. }
            | Self::Spawned { generation } => *generation,
        }
    }
}

/// Parses the log, in the order it was written; lines that are not
/// well-formed (there should be none) are returned as errors.
pub fn read_events(dir: &Path) -> Result<Vec<Event>, EngineError> {
    let text = std::fs::read_to_string(dir.join(LOG_FILE))
        .map_err(|e| EngineError::storage("read side-effect log", e))?;
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let malformed = || {
                EngineError::from(StorageError::new(
                    StorageErrorKind::Corrupt,
                    "read side-effect log",
                    format!("malformed line {line:?}"),
                ))
            };
            let generation = |g: &str| g.parse::<u64>().map_err(|_| malformed());
            match fields.as_slice() {
                ["run", instance, key, g] => Ok(Event::Run {
                    instance: (*instance).to_owned(),
                    key: (*key).to_owned(),
                    generation: generation(g)?,
                }),
                ["got", instance, key, value, g] => Ok(Event::Got {
                    instance: (*instance).to_owned(),
                    key: (*key).to_owned(),
                    value: (*value).to_owned(),
                    generation: generation(g)?,
                }),
                ["cancelled", instance, g] => Ok(Event::Cancelled {
                    instance: (*instance).to_owned(),
                    generation: generation(g)?,
                }),
                ["spawned", g] => Ok(Event::Spawned {
                    generation: generation(g)?,
                }),
                _ => Err(malformed()),
            }
        })
        .collect()
}
