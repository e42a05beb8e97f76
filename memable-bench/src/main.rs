//! `memable-bench`: measures what durability costs, on a fresh store in a
//! temp dir, and prints one line per figure:
//!
//! ```text
//! figure=<name> backend=<memory|redb|sqlite> value=<number> unit=<unit>
//! ```
//!
//! Usage: `cargo run --release -p memable-bench -- --backend redb [--quick]
//! [--only <workload>] [--replay-rounds <n>] [--children <n>]`; `--backend postgres` uses
//! `--url postgres://…`, or starts a local server (Debian's package, fsync
//! on) for the run; `--only` runs one workload
//! (for profiling), such as `seq` or `timers`; `--replay-rounds` sets how
//! many times the long instance is replayed (5), so two callgrind runs with
//! different counts give the instructions of one replay; `--children` sets
//! the size of the `children` workload (1,000), to see how its cost grows.
//! See `docs/performance.md` for what each figure means and its target.
#![forbid(unsafe_code)]
// Figures are reported as floating-point rates from integer counts.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

mod backend;
mod figures;
mod memory;
mod postgres;
mod workloads;

use std::process::ExitCode;

use backend::Backend;

/// Sizes of every workload; `--quick` shrinks them so a run takes seconds.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    fsyncs: usize,
    seq_steps: usize,
    /// Alternating rounds of the fsync loop and the sequential workflow.
    seq_rounds: usize,
    conc_workflows: usize,
    conc_steps: usize,
    replay_steps: usize,
    /// Replays of the long instance; the figure is the best one.
    replay_rounds: usize,
    replay_many: usize,
    recovery_completed: usize,
    recovery_running: usize,
    timers_at_once: usize,
    timers_spread: usize,
    spread_ms: u64,
    suspended: usize,
    disk_steps: usize,
    /// Children of the `child_overhead` parent (and steps of its
    /// baselines).
    children: usize,
    /// Alternating rounds of the children and the steps versions.
    child_rounds: usize,
    /// Instances of the `queue` workload (each round, each way).
    queue_instances: usize,
    /// Alternating rounds of the direct and the queued dispatch.
    queue_rounds: usize,
    /// Pause between two workloads, in milliseconds.
    settle_ms: u64,
}

impl Sizes {
    const FULL: Sizes = Sizes {
        fsyncs: 1_000,
        seq_steps: 1_000,
        seq_rounds: 5,
        conc_workflows: 1_000,
        conc_steps: 10,
        replay_steps: 1_000,
        replay_rounds: 5,
        replay_many: 1_000,
        recovery_completed: 100_000,
        recovery_running: 1_000,
        timers_at_once: 1_000,
        timers_spread: 100,
        spread_ms: 2_000,
        suspended: 100_000,
        disk_steps: 20_000,
        children: 1_000,
        child_rounds: 5,
        queue_instances: 2_000,
        queue_rounds: 3,
        settle_ms: 2_000,
    };

    const QUICK: Sizes = Sizes {
        fsyncs: 50,
        seq_steps: 50,
        seq_rounds: 1,
        conc_workflows: 100,
        conc_steps: 5,
        replay_steps: 200,
        replay_rounds: 5,
        replay_many: 100,
        recovery_completed: 1_000,
        recovery_running: 50,
        timers_at_once: 100,
        timers_spread: 20,
        spread_ms: 300,
        suspended: 2_000,
        disk_steps: 1_000,
        children: 50,
        child_rounds: 1,
        queue_instances: 100,
        queue_rounds: 1,
        settle_ms: 0,
    };
}

fn main() -> ExitCode {
    let mut backend = None;
    let mut quick = false;
    let mut only: Option<String> = None;
    let mut replay_rounds: Option<usize> = None;
    let mut children: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--backend" => backend = args.next().and_then(|b| Backend::parse(&b)),
            "--only" => only = args.next(),
            "--replay-rounds" => replay_rounds = args.next().and_then(|n| n.parse().ok()),
            "--children" => children = args.next().and_then(|n| n.parse().ok()),
            "--url" => {
                if let Some(url) = args.next() {
                    backend::set_postgres_url(url);
                }
            }
            "--help" | "-h" => {
                println!(
                    "usage: memable-bench --backend <memory|redb|sqlite|postgres> [--url postgres://…] [--quick] [--only <workload>] [--replay-rounds <n>] [--children <n>]\n\
                     workloads: {}",
                    figures::WORKLOADS.join(", ")
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}; see --help");
                return ExitCode::FAILURE;
            }
        }
    }
    let Some(backend) = backend else {
        eprintln!("--backend <memory|redb|sqlite|postgres> is required");
        return ExitCode::FAILURE;
    };
    let mut sizes = if quick { Sizes::QUICK } else { Sizes::FULL };
    if let Some(rounds) = replay_rounds {
        sizes.replay_rounds = rounds.max(1);
    }
    if let Some(children) = children {
        sizes.children = children.max(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(name) = only
        .iter()
        .flat_map(|only| only.split(','))
        .find(|name| !figures::WORKLOADS.contains(name))
    {
        eprintln!(
            "unknown workload {name:?}; one of: {}",
            figures::WORKLOADS.join(", ")
        );
        return ExitCode::FAILURE;
    }
    match runtime.block_on(figures::run_all(backend, sizes, only.as_deref())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            ExitCode::FAILURE
        }
    }
}
