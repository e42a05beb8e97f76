//! The crash-soak harness (`memable_testkit::soak`): proves with real `SIGKILL`s that a crash loses
//! nothing and that a committed step never runs again.
//!
//! A child process runs `W` workflows of `S` steps on a store file. Every
//! workflow mixes plain steps, a step that fails once per process and is
//! retried, a suspend point answered by a signal, a durable timer, and typed
//! input and output. Each step closure appends `run <instance> <key> <gen>` to
//! a side-effect log *before* returning a value that embeds a fresh random
//! nonce; after the step returns, the workflow appends
//! `got <instance> <key> <value> <gen>`. The parent kills the child with
//! `SIGKILL` at seeded random moments, restarts it, and once every workflow
//! completed checks, from the log and the store:
//!
//! - **`lost`**: a step whose memoised value changed between reads (nonces
//!   differ), or whose stored value is not the one first read;
//! - **`reexecuted_after_commit`**: a `run` line for a step after its first
//!   `got` line — the closure ran again after its result was committed;
//! - **`wrong_output`**: a workflow whose output is not the expected one.
//!
//! Any backend plugs in through [`SoakBackend`]; the `crash-soak` binary
//! (crate `memable-soak`) runs it for redb and SQLite.

mod child;
mod log;
mod parent;
mod verify;

use std::path::Path;
use std::sync::Arc;

use memable_core::{EngineError, StepStore};

pub use child::run_child;
pub use parent::{ChildArgs, run_parent};
pub use verify::SoakReport;

/// A store backend the soak can open by file path, in any process.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use std::sync::Arc;
/// use memable_core::{EngineError, StepStore};
/// use memable_testkit::soak::SoakBackend;
///
/// // A real backend opens its file (e.g. `RedbStore::open(path)`); a memory
/// // store cannot survive the child process and is only a stand-in here.
/// struct Memory;
/// impl SoakBackend for Memory {
///     fn name(&self) -> &'static str { "memory" }
///     fn open(&self, _path: &Path) -> Result<Arc<dyn StepStore>, EngineError> {
///         Ok(Arc::new(memable_core::MemoryStore::new()))
///     }
/// }
/// assert_eq!(Memory.name(), "memory");
/// ```
pub trait SoakBackend: Send + Sync + 'static {
    /// The name printed in the report line (`redb`, `sqlite`).
    fn name(&self) -> &'static str;
    /// Opens (creating if needed) the store file at `path`.
    fn open(&self, path: &Path) -> Result<Arc<dyn StepStore>, EngineError>;
}

/// What the soak runs.
///
/// # Examples
///
/// ```
/// let config = memable_testkit::soak::SoakConfig { kills: 5, ..Default::default() };
/// assert_eq!(config.workflows, 40);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoakConfig {
    /// Workflows per run.
    pub workflows: usize,
    /// Plain steps per workflow (plus a retried step, a suspend point and a timer).
    pub steps: usize,
    /// `SIGKILL`s to land before letting the child finish.
    pub kills: usize,
    /// Seed of the kill moments and of the soak's random choices.
    pub seed: u64,
    /// Kill moments are drawn uniformly from `min_delay_ms..=max_delay_ms`
    /// after the child starts.
    pub min_delay_ms: u64,
    /// See [`min_delay_ms`](Self::min_delay_ms).
    pub max_delay_ms: u64,
}

impl Default for SoakConfig {
    fn default() -> Self {
        Self {
            workflows: 40,
            steps: 12,
            kills: 20,
            seed: 1,
            min_delay_ms: 5,
            max_delay_ms: 120,
        }
    }
}
