//! The multi-process soak: many worker processes and a client on one shared
//! store (PostgreSQL), with real `SIGKILL`s of workers.
//!
//! # Processes
//!
//! - **The client** (one process, never killed): an engine that registers
//!   **no workflow** (capacity is moot: it can acquire nothing), so every
//!   run happens on a worker. It invokes round after round of the soak's
//!   workflows (the workload of the [module](super) above), signals them at
//!   their suspend point and cancels them per their fate, exactly as the
//!   single child does, until the parent asks it to stop (the file
//!   [`STOP_FILE`] exists when a round ends); it then writes the number of
//!   rounds it ran to [`ROUNDS_FILE`] and exits 0.
//! - **`N` workers**: engines with the soak's workflow registered, each
//!   with its own worker id, a short lease and a fast poll. A worker runs
//!   until its stdin is closed (then it shuts down, retiring its worker
//!   row, and exits 0) or it is killed.
//! - **The parent** ([`run_shared_parent`]) starts the client and the
//!   workers, `SIGKILL`s a random worker at seeded random moments and
//!   starts a replacement at once, until `kills` kills landed; then creates
//!   [`STOP_FILE`], waits for the client, closes the workers' stdin, waits
//!   for them, and verifies.
//!
//! # Worker ids across restarts
//!
//! A replacement gets a **new** worker id, `w<slot>-g<generation>`: an id
//! names one process's life. The dead worker's instances keep its id as
//! their owner until its lease passes on the database's clock; then any
//! live worker acquires them (epoch bumped), and a write still carrying the
//! old epoch is refused. Reusing the id would renew the dead process's
//! lease with the new process's heartbeat, and its instances would not be
//! taken over by anyone while the new process lives (see the report of
//! `memable-postgres/tests/processes.rs`).
//!
//! # The log
//!
//! Every process appends to the one log (one `write` per line on an
//! `O_APPEND` file, so lines are whole across processes); each process has
//! its own generation number, and the parent writes `spawned <generation>`
//! before it starts one. The checks are those of [`verify`](super::verify):
//! a `run`/`got` line counts against an acknowledged cancel only if its
//! process was spawned after the acknowledgement.
//!
//! # What each failure does
//!
//! A process that exits non-zero (a worker that exits at all before it is
//! told to), a client that does not finish within [`SharedConfig::patience`]
//! after the last kill (an instance stuck), or a worker that does not exit
//! after its stdin closed is an error of the soak, not a report: every
//! process still running is killed first.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use memable_core::{Engine, EngineError, RetryPolicy, StepStore};

use super::SoakConfig;
use super::child::{self, drive_to_completion, input_of, instance_id};
use super::log::EventLog;
use super::verify::{SoakReport, verify_store};

/// The file whose existence asks the client to stop after its round.
pub const STOP_FILE: &str = "stop";
/// The file the client writes the number of rounds it ran to.
pub const ROUNDS_FILE: &str = "rounds";

/// A shared store the soak's processes all open (each its own handle).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use memable_core::{EngineError, StepStore};
/// use memable_testkit::soak::SharedBackend;
///
/// // A real one connects (e.g. `PostgresStore::connect_with(..)`); a
/// // memory store is not shared between processes: a stand-in only.
/// struct Memory;
/// #[async_trait::async_trait]
/// impl SharedBackend for Memory {
///     fn name(&self) -> &'static str { "memory" }
///     async fn open(&self) -> Result<Arc<dyn StepStore>, EngineError> {
///         Ok(Arc::new(memable_core::MemoryStore::new()))
///     }
/// }
/// assert_eq!(Memory.name(), "memory");
/// ```
#[async_trait]
pub trait SharedBackend: Send + Sync + 'static {
    /// The name printed in the report line (`postgres`).
    fn name(&self) -> &'static str;
    /// Opens a new handle of the shared store (creating it if needed).
    async fn open(&self) -> Result<Arc<dyn StepStore>, EngineError>;
}

/// What the multi-process soak runs.
///
/// # Examples
///
/// ```
/// let config = memable_testkit::soak::SharedConfig::default();
/// assert_eq!(config.workers, 3);
/// assert!(config.lease <= std::time::Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedConfig {
    /// Workflows per round, steps, kills, seed and kill moments (drawn
    /// after each kill, so they space the kills).
    pub soak: SoakConfig,
    /// Worker processes running at once.
    pub workers: usize,
    /// Each worker's lease.
    pub lease: Duration,
    /// Each worker's poll interval.
    pub poll: Duration,
    /// How long the client may take to finish after the last kill, and a
    /// worker to exit once told to.
    pub patience: Duration,
}

impl Default for SharedConfig {
    fn default() -> Self {
        Self {
            soak: SoakConfig {
                workflows: 24,
                steps: 8,
                kills: 8,
                seed: 1,
                min_delay_ms: 100,
                max_delay_ms: 600,
            },
            workers: 3,
            lease: Duration::from_secs(1),
            poll: Duration::from_millis(50),
            patience: Duration::from_secs(90),
        }
    }
}

/// The role of a process the parent starts.
///
/// # Examples
///
/// ```
/// use memable_testkit::soak::Role;
/// let role = Role::Worker { id: "w0-g2".to_owned() };
/// assert_ne!(role, Role::Client);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Invokes, signals and cancels; runs nothing.
    Client,
    /// Runs the workflows under worker id `id`.
    Worker {
        /// The worker id (new for every process).
        id: String,
    },
}

/// What a process of the multi-process soak must be started with.
///
/// # Examples
///
/// ```
/// use memable_testkit::soak::{ProcessArgs, Role};
/// let args = ProcessArgs { dir: "/tmp/soak".into(), role: Role::Client, generation: 1 };
/// assert_eq!(args.generation, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessArgs {
    /// The soak directory (log, stop and rounds files).
    pub dir: PathBuf,
    /// Client or worker.
    pub role: Role,
    /// This process's number in the log.
    pub generation: u64,
}

fn engine_builder(config: &SharedConfig, store: Arc<dyn StepStore>, id: &str) -> Engine {
    Engine::builder()
        .store(store)
        .worker_id(id)
        .lease(config.lease)
        .poll_interval(config.poll)
        .default_retry(RetryPolicy::fixed(3, Duration::from_millis(1)))
        .build()
}

/// Runs a worker process: the soak's workflow registered, until stdin is
/// closed (then a clean shutdown).
///
/// # Errors
///
/// When the store cannot be opened or the engine not started.
///
/// # Examples
///
/// ```no_run
/// # async fn f(backend: &dyn memable_testkit::soak::SharedBackend) -> Result<(), memable_core::EngineError> {
/// use memable_testkit::soak::{SharedConfig, run_worker};
/// run_worker(backend, "/tmp/soak".as_ref(), &SharedConfig::default(), "w0-g2", 2).await
/// # }
/// ```
pub async fn run_worker(
    backend: &dyn SharedBackend,
    dir: &Path,
    config: &SharedConfig,
    id: &str,
    generation: u64,
) -> Result<(), EngineError> {
    let store = backend.open().await?;
    let log = Arc::new(EventLog::open(dir, generation)?);
    let engine = engine_builder(config, store, id);
    child::register(&engine, &log, config.soak.steps)?;
    engine.start().await?;
    tracing::info!(worker = id, generation, "soak worker started");
    // Stdin closed (by the parent, or because it died): time to stop.
    let _ = tokio::task::spawn_blocking(|| {
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
    })
    .await;
    engine.shutdown().await;
    Ok(())
}

/// Runs the client process: rounds of workflows, invoked, signalled and
/// cancelled from an engine with no workflow registered, until
/// [`STOP_FILE`] exists at the end of a round.
///
/// # Errors
///
/// When the store fails.
///
/// # Examples
///
/// ```no_run
/// # async fn f(backend: &dyn memable_testkit::soak::SharedBackend) -> Result<(), memable_core::EngineError> {
/// use memable_testkit::soak::{SharedConfig, run_client};
/// run_client(backend, "/tmp/soak".as_ref(), &SharedConfig::default(), 1).await
/// # }
/// ```
pub async fn run_client(
    backend: &dyn SharedBackend,
    dir: &Path,
    config: &SharedConfig,
    generation: u64,
) -> Result<(), EngineError> {
    let store = backend.open().await?;
    let log = EventLog::open(dir, generation)?;
    let engine = engine_builder(config, store, &format!("client-g{generation}"));
    engine.start().await?;
    let mut round = 0u64;
    loop {
        for index in 0..config.soak.workflows {
            drop(
                engine
                    .invoke(child::WORKFLOW)
                    .id(instance_id(round, index))
                    .input(input_of(round, index))
                    .await?,
            );
        }
        drive_to_completion(&engine, &log, round).await?;
        round += 1;
        if dir.join(STOP_FILE).exists() {
            break;
        }
    }
    let io = |e| EngineError::storage("write the rounds file", e);
    let temp = dir.join(format!("{ROUNDS_FILE}.tmp"));
    std::fs::write(&temp, round.to_string()).map_err(io)?;
    std::fs::rename(&temp, dir.join(ROUNDS_FILE)).map_err(io)?;
    engine.shutdown().await;
    Ok(())
}

struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    generation: u64,
}

impl Process {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn soak_error(message: String) -> EngineError {
    EngineError::storage("crash-soak", message)
}

/// Runs the multi-process soak (see the module documentation) and
/// verifies it.
///
/// `spawn` must start a process that calls [`run_client`] or
/// [`run_worker`] per its [`ProcessArgs`] with the same backend and config,
/// with **stdin piped** (closing it tells a worker to stop).
///
/// # Errors
///
/// When a process fails, the client does not finish in time, or the store
/// cannot be read for the verification.
///
/// # Examples
///
/// ```no_run
/// # fn f(backend: &dyn memable_testkit::soak::SharedBackend,
/// #      spawn: &dyn Fn(&memable_testkit::soak::ProcessArgs) -> std::io::Result<std::process::Child>)
/// #      -> Result<(), memable_core::EngineError> {
/// use memable_testkit::soak::{SharedConfig, run_shared_parent};
/// let dir = tempfile::tempdir().unwrap();
/// let report = run_shared_parent(backend, &SharedConfig::default(), dir.path(), spawn)?;
/// assert!(report.passed(), "{report}");
/// # Ok(()) }
/// ```
pub fn run_shared_parent(
    backend: &dyn SharedBackend,
    config: &SharedConfig,
    dir: &Path,
    spawn: &dyn Fn(&ProcessArgs) -> std::io::Result<Child>,
) -> Result<SoakReport, EngineError> {
    let mut rng = fastrand::Rng::with_seed(config.soak.seed);
    let mut generation = 0u64;
    let mut start = |role: Role, generation: u64| -> Result<Process, EngineError> {
        EventLog::open(dir, generation)?.append("spawned", &[])?;
        let mut child = spawn(&ProcessArgs {
            dir: dir.to_path_buf(),
            role,
            generation,
        })
        .map_err(|e| EngineError::storage("spawn soak process", e))?;
        let stdin = child.stdin.take();
        if stdin.is_none() {
            let _ = child.kill();
            return Err(soak_error("spawn must pipe the child's stdin".to_owned()));
        }
        Ok(Process {
            child,
            stdin,
            generation,
        })
    };
    generation += 1;
    let mut client = start(Role::Client, generation)?;
    let mut workers = Vec::new();
    for slot in 0..config.workers.max(1) {
        generation += 1;
        let id = format!("w{slot}-g{generation}");
        match start(Role::Worker { id }, generation) {
            Ok(worker) => workers.push(worker),
            Err(error) => {
                client.kill();
                workers.iter_mut().for_each(Process::kill);
                return Err(error);
            }
        }
    }
    let outcome = drive(
        config,
        dir,
        &mut rng,
        &mut client,
        &mut workers,
        &mut generation,
        &mut start,
    );
    let kills = match outcome {
        Ok(kills) => kills,
        Err(error) => {
            client.kill();
            workers.iter_mut().for_each(Process::kill);
            return Err(error);
        }
    };
    let rounds = std::fs::read_to_string(dir.join(ROUNDS_FILE))
        .map_err(|e| EngineError::storage("read the rounds file", e))?
        .trim()
        .parse::<u64>()
        .map_err(|e| soak_error(format!("bad rounds file: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| EngineError::storage("verify runtime", e))?;
    runtime.block_on(async {
        let store = backend.open().await?;
        verify_store(backend.name(), store, dir, &config.soak, rounds, kills).await
    })
}

/// Kills workers until `kills` landed, lets the client finish, stops the
/// workers. Returns the kills that landed.
fn drive(
    config: &SharedConfig,
    dir: &Path,
    rng: &mut fastrand::Rng,
    client: &mut Process,
    workers: &mut [Process],
    generation: &mut u64,
    start: &mut dyn FnMut(Role, u64) -> Result<Process, EngineError>,
) -> Result<usize, EngineError> {
    let io = |e| EngineError::storage("wait for soak process", e);
    let soak = &config.soak;
    let delay = |rng: &mut fastrand::Rng| {
        Duration::from_millis(rng.u64(soak.min_delay_ms..=soak.max_delay_ms.max(soak.min_delay_ms)))
    };
    let mut kills = 0usize;
    let mut next_kill = Instant::now() + delay(rng);
    let mut deadline = None;
    loop {
        if let Some(status) = client.child.try_wait().map_err(io)? {
            if status.success() && deadline.is_some() {
                break;
            }
            return Err(soak_error(format!(
                "the client (process {}) exited with {status} (see its stderr)",
                client.generation
            )));
        }
        for worker in workers.iter_mut() {
            if let Some(status) = worker.child.try_wait().map_err(io)? {
                return Err(soak_error(format!(
                    "worker process {} exited by itself with {status} (see its stderr)",
                    worker.generation
                )));
            }
        }
        if kills < soak.kills && Instant::now() >= next_kill {
            let slot = rng.usize(..workers.len());
            // `Child::kill` sends SIGKILL on Unix.
            workers[slot].kill();
            kills += 1;
            *generation += 1;
            let id = format!("w{slot}-g{generation}");
            tracing::info!(slot, kills, replacement = %id, "killed a soak worker");
            workers[slot] = start(Role::Worker { id }, *generation)?;
            next_kill = Instant::now() + delay(rng);
        }
        if kills >= soak.kills && deadline.is_none() {
            std::fs::write(dir.join(STOP_FILE), b"")
                .map_err(|e| EngineError::storage("write the stop file", e))?;
            deadline = Some(Instant::now() + config.patience);
        }
        if deadline.is_some_and(|at| Instant::now() > at) {
            return Err(soak_error(format!(
                "the client did not finish within {:?} after the last kill: an instance is stuck",
                config.patience
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for worker in workers.iter_mut() {
        drop(worker.stdin.take());
    }
    let until = Instant::now() + config.patience;
    for worker in workers.iter_mut() {
        loop {
            match worker.child.try_wait().map_err(io)? {
                Some(status) if status.success() => break,
                Some(status) => {
                    return Err(soak_error(format!(
                        "worker process {} failed at shutdown with {status}",
                        worker.generation
                    )));
                }
                None if Instant::now() > until => {
                    return Err(soak_error(format!(
                        "worker process {} did not exit after its stdin closed",
                        worker.generation
                    )));
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    Ok(kills)
}
