//! Runs `memable-bench --quick` once per backend so the program never rots:
//! it must exit 0 and print every figure, each a finite number.

use std::process::Command;

const FIGURES: [&str; 16] = [
    "fsync_per_s",
    "seq_steps_per_s",
    "conc_steps_per_s",
    "replay_steps_per_s",
    "replay_many_steps_per_s",
    "recovery_ms",
    "timer_lateness_p50_ms",
    "timer_lateness_p99_ms",
    "suspended_bytes_per_instance",
    "disk_bytes_per_step",
    "disk_bytes_per_step_1k",
    "child_overhead",
    "child_overhead_vs_seq",
    "children_per_s",
    "queue_dispatch_per_s",
    "queue_dispatch_vs_direct",
];

/// What a PostgreSQL run prints instead (no store files to measure; a
/// commit floor instead of fsync; the take-over of many workers).
const POSTGRES_FIGURES: [&str; 16] = [
    "commit_per_s",
    "seq_steps_per_s",
    "seq_per_commit",
    "conc_steps_per_s",
    "replay_steps_per_s",
    "replay_many_steps_per_s",
    "recovery_ms",
    "timer_lateness_p50_ms",
    "timer_lateness_p99_ms",
    "suspended_bytes_per_instance",
    "takeover_ms",
    "child_overhead",
    "child_overhead_vs_seq",
    "children_per_s",
    "queue_dispatch_per_s",
    "queue_dispatch_vs_direct",
];

fn quick(backend: &str) {
    let figures: &[&str] = if backend == "postgres" {
        &POSTGRES_FIGURES
    } else {
        &FIGURES
    };
    let output = Command::new(env!("CARGO_BIN_EXE_memable-bench"))
        .args(["--backend", backend, "--quick"])
        .output()
        .expect("run memable-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for figure in figures {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("figure={figure} backend={backend} value=")))
            .unwrap_or_else(|| panic!("no {figure} for {backend} in:\n{stdout}"));
        let value: f64 = line
            .split(' ')
            .find_map(|field| field.strip_prefix("value="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unparsable value in {line}"));
        assert!(value.is_finite() && value >= 0.0, "{line}");
    }
}

#[test]
fn memory_quick_run_prints_every_figure() {
    quick("memory");
}

#[test]
fn redb_quick_run_prints_every_figure() {
    quick("redb");
}

#[test]
fn sqlite_quick_run_prints_every_figure() {
    quick("sqlite");
}

#[test]
fn postgres_quick_run_prints_every_figure() {
    quick("postgres");
}
