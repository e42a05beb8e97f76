//! What the tests with worker processes share: a worker process — this
//! test binary again, running one ignored test of the same file with its
//! settings in the environment — and the lines it prints.
//!
//! A worker runs until its stdin closes ([`WorkerProcess::finish`]), or it
//! is killed; dropping a `WorkerProcess` kills it (and continues it first
//! if it was stopped), so a failed test leaves no process behind.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Waits at most `patience` for `future`; panics naming `what` if it
/// takes longer.
pub async fn within<T>(what: &str, patience: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(patience, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {patience:?}"))
}

/// A worker process and the lines it prints.
pub struct WorkerProcess {
    child: Child,
    /// Every line the process printed, in order.
    pub lines: UnboundedReceiver<String>,
    /// Sent `SIGSTOP` and not `SIGCONT` since.
    stopped: bool,
}

impl WorkerProcess {
    /// Starts the ignored test `test` of this binary as a worker, with
    /// `env` set.
    pub fn spawn(test: &str, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("test binary"));
        command
            .args(["--exact", test, "--ignored", "--nocapture"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn a worker process");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stopped: false,
        }
    }

    /// Waits at most `patience` for a line `matches` accepts and returns
    /// it; panics if the process ends first.
    pub async fn expect_line(
        &mut self,
        what: &str,
        patience: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let lines = &mut self.lines;
        within(what, patience, async {
            loop {
                match lines.recv().await {
                    Some(line) if matches(&line) => return line,
                    Some(_) => {}
                    None => panic!("the worker process ended before {what}"),
                }
            }
        })
        .await
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-KILL`) to the process.
    pub fn signal(&mut self, signal: &str) {
        self.stopped = signal == "-STOP";
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// `SIGKILL`s the process and waits until it is gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the worker process");
        self.child.wait().expect("reap the worker process");
    }

    /// Closes stdin and waits for a clean exit.
    pub fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("wait for the worker process");
        assert!(status.success(), "the worker process failed: {status}");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.stopped {
            let _ = Command::new("kill")
                .args(["-CONT", &self.child.id().to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
