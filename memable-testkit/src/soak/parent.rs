//! The parent process: starts children, kills them at seeded random moments,
//! and verifies once every workflow completed.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use memable_core::EngineError;

use super::verify::{self, SoakReport};
use super::{SoakBackend, SoakConfig};

/// What a child process must be started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildArgs {
    /// The soak directory (store file and side-effect log).
    pub dir: PathBuf,
    /// The round of workflows to run.
    pub round: u64,
    /// This child's number, for the log.
    pub generation: u64,
}

/// Runs the soak: starts children with `spawn`, `SIGKILL`s them at seeded
/// random moments until `config.kills` kills landed (starting new rounds of
/// workflows while kills remain), lets the last child finish, then verifies.
///
/// `spawn` must start a process that calls [`run_child`](super::run_child)
/// with the same backend and config and the given args, exiting 0 when done.
pub fn run_parent(
    backend: &dyn SoakBackend,
    config: &SoakConfig,
    dir: &Path,
    spawn: &dyn Fn(&ChildArgs) -> std::io::Result<Child>,
) -> Result<SoakReport, EngineError> {
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let mut kills = 0usize;
    let mut generation = 0u64;
    let mut round = 0u64;
    let max_generations = (config.kills as u64 + 5) * 4;
    loop {
        generation += 1;
        if generation > max_generations {
            return Err(EngineError::storage(
                "crash-soak",
                format!("no progress after {max_generations} children"),
            ));
        }
        let args = ChildArgs {
            dir: dir.to_path_buf(),
            round,
            generation,
        };
        let mut child = spawn(&args).map_err(|e| EngineError::storage("spawn soak child", e))?;
        let kill_at = (kills < config.kills).then(|| {
            Instant::now()
                + Duration::from_millis(rng.u64(config.min_delay_ms..=config.max_delay_ms))
        });
        match wait_or_kill(&mut child, kill_at)? {
            Ended::Killed => kills += 1,
            Ended::Exited(true) if kills < config.kills => round += 1,
            Ended::Exited(true) => break,
            Ended::Exited(false) => {
                return Err(EngineError::storage(
                    "crash-soak",
                    format!("child {generation} failed (see its stderr)"),
                ));
            }
        }
    }
    verify::verify(backend, dir, config, round + 1, kills)
}

enum Ended {
    Killed,
    Exited(bool),
}

fn wait_or_kill(child: &mut Child, kill_at: Option<Instant>) -> Result<Ended, EngineError> {
    let io = |e| EngineError::storage("wait for soak child", e);
    loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            return Ok(Ended::Exited(status.success()));
        }
        if kill_at.is_some_and(|at| Instant::now() >= at) {
            // `Child::kill` sends SIGKILL on Unix.
            child.kill().map_err(io)?;
            child.wait().map_err(io)?;
            return Ok(Ended::Killed);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
