//! A short crash soak per backend: the `crash-soak` binary is run with 20
//! kills (PostgreSQL: 8 kills of 3 worker processes, with a client process
//! invoking, signalling and cancelling) and must report nothing lost,
//! re-executed or wrong, no cancel breached, and that its workload did
//! cancel instances and run parallel steps.

use std::process::Command;

fn soak(backend: &str) {
    soak_with(backend, 20, &[]);
}

fn soak_with(backend: &str, kills: u32, extra: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_crash-soak"))
        .args([
            "--backend",
            backend,
            "--kills",
            &kills.to_string(),
            "--seed",
            "42",
        ])
        .args(extra)
        .output()
        .expect("run crash-soak");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    assert!(
        output.status.success(),
        "crash-soak failed: {line}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        line.starts_with(&format!("crash-soak backend={backend} kills={kills} ")),
        "{line}"
    );
    assert!(
        line.ends_with("lost=0 reexecuted_after_commit=0 wrong_output=0"),
        "{line}"
    );
    assert!(line.contains(" cancel_violations=0 "), "{line}");
    assert!(field(line, "cancelled") > 0, "{line}");
    assert!(field(line, "parallel_steps") > 0, "{line}");
}

/// The number after `name=` in the report line.
fn field(line: &str, name: &str) -> u64 {
    line.split(' ')
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

#[test]
fn redb_survives_20_sigkills() {
    soak("redb");
}

#[test]
fn sqlite_survives_20_sigkills() {
    soak("sqlite");
}

/// Three worker processes and a client on one PostgreSQL database (a
/// server started for the test with `fsync` off, or the one at
/// `MEMABLE_TEST_PG_URL`); random
/// workers are killed and replaced. The long form is in the module
/// documentation of `memable_testkit::soak`.
#[test]
fn postgres_survives_8_sigkills_of_3_worker_processes() {
    // Without `--url` the binary makes a fresh database on that server.
    soak_with("postgres", 8, &["--workers", "3"]);
}
