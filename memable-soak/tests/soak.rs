//! A short crash soak per backend: the `crash-soak` binary is run with 20
//! kills and must report nothing lost, re-executed or wrong.

use std::process::Command;

fn soak(backend: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_crash-soak"))
        .args(["--backend", backend, "--kills", "20", "--seed", "42"])
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
        line.starts_with(&format!("crash-soak backend={backend} kills=20 ")),
        "{line}"
    );
    assert!(
        line.ends_with("lost=0 reexecuted_after_commit=0 wrong_output=0"),
        "{line}"
    );
}

#[test]
fn redb_survives_20_sigkills() {
    soak("redb");
}

#[test]
fn sqlite_survives_20_sigkills() {
    soak("sqlite");
}
