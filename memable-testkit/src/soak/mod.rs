//! The crash-soak harness (`memable_testkit::soak`): proves with real `SIGKILL`s that a crash loses
//! nothing, that a committed step never runs again, and that a cancel holds.
//!
//! # Workload
//!
//! A child process runs `W` workflows of `S` steps on a store file. Every
//! workflow mixes plain steps, a step that fails once per process and is
//! retried, a **parallel group** of 2–4 steps (`p0`, `p1`, …, distinct keys,
//! awaited together with `join_all`; each closure pauses 0–3 ms so they
//! commit in varying order and a kill falls between them), a suspend point
//! answered by a signal, a durable timer, and typed input and output.
//!
//! Each workflow has a fate fixed by its index (`index % 4`):
//!
//! - `0`, `2` — **complete**: signalled at the suspend point, runs to the end;
//! - `1` — **cancelled while running**: just before its parallel group the
//!   workflow (workflow code, not a step, so every rerun after a kill asks
//!   again) spawns a task calling `Engine::cancel`, which lands while the
//!   parallel steps are in flight; the engine drops them;
//! - `3` — **cancelled while suspended**: the child cancels it at its
//!   suspend point instead of signalling it.
//!
//! # The log
//!
//! One file, appended with one `write` per line (`log.rs`), so lines are
//! whole and in the order they happened, across every child:
//!
//! - `run <instance> <key> <gen>` — a step closure starts, *before* it
//!   returns a value that embeds a fresh random nonce;
//! - `got <instance> <key> <value> <gen>` — the step returned to the workflow;
//! - `cancelled <instance> <gen>` — `Engine::cancel` returned `Ok`: the
//!   cancel is acknowledged (committed) from this line on. A kill between
//!   the commit and the line leaves a cancelled instance without one; the
//!   checks that need the acknowledgement then do not apply to it.
//!
//! # Checks
//!
//! The parent kills the child with `SIGKILL` at seeded random moments,
//! restarts it (the child re-invokes its round; the engine recovers the
//! rest), and once every workflow is completed or cancelled checks, from the
//! log and the store:
//!
//! - **`lost`**: a step whose memoised value changed between reads (nonces
//!   differ), whose stored value is not the one first read, or whose stored
//!   value is not the step's deterministic value — for every committed step,
//!   parallel ones included, whatever order they committed in;
//! - **`reexecuted_after_commit`**: a `run` line for a step after its first
//!   `got` line — the closure ran again after its result was committed;
//! - **`wrong_output`**: a workflow that did not end as its fate says, or a
//!   completed one whose output is not the expected one or not the sum of
//!   its committed parts (plain, retried, parallel and signalled);
//! - **`cancel_violations`**: an acknowledged cancel whose instance is not
//!   `Cancelled` at the end (it was completed or ran on), any `run`/`got`
//!   line for it from a child started after the acknowledging one (it ran
//!   again after a restart), a committed step of it whose closure first ran
//!   after the acknowledgement (it committed after the cancel), or a
//!   cancelled instance holding a signal. A cancelled instance may hold
//!   steps committed before the cancel (even ones whose `got` line the
//!   cancel pre-empted); steps it does not hold are not `lost`.
//!
//! Any backend plugs in through [`SoakBackend`]; the `crash-soak` binary
//! (crate `memable-soak`) runs it for redb and SQLite.
//!
//! # Many processes on a shared store
//!
//! [`run_shared_parent`] (module `shared`) runs the same workload and the
//! same checks with a client process and several worker processes on one
//! shared store, killing random workers (see its documentation); a
//! backend plugs in through [`SharedBackend`], and `crash-soak --backend
//! postgres` runs it on PostgreSQL. The long form:
//!
//! ```text
//! cargo run --release -p memable-soak --bin crash-soak -- --backend postgres --workers 3 --kills 200 --workflows 40
//! ```

mod child;
mod log;
mod parent;
mod shared;
mod verify;

use std::path::Path;
use std::sync::Arc;

use memable_core::{EngineError, StepStore};

pub use child::run_child;
pub use parent::{ChildArgs, run_parent};
pub use shared::{
    ProcessArgs, ROUNDS_FILE, Role, STOP_FILE, SharedBackend, SharedConfig, run_client,
    run_shared_parent, run_worker,
};
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
    /// Plain steps per workflow (plus a retried step, a parallel group, a
    /// suspend point and a timer).
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
