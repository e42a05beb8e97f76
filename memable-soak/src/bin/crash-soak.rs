//! `crash-soak`: SIGKILL soak of memable on a real store.
//!
//! ```text
//! cargo run --release -p memable-soak --bin crash-soak -- --backend redb --kills 50
//! cargo run --release -p memable-soak --bin crash-soak -- --backend postgres --workers 3 --kills 200 --workflows 40
//! ```
//!
//! With `redb` or `sqlite` one child process runs the workflows on a store
//! file and is killed and restarted. With `postgres` a client process and
//! `--workers` worker processes share one database (`--url`, or, without
//! it, a fresh database on a server started for the run with `fsync` off —
//! `--fsync` turns it on; the kills hit workers, not the server), and
//! random workers are killed and replaced (see
//! `memable_testkit::soak::run_shared_parent`).
//!
//! Prints, last, one line
//! `crash-soak backend=<b> kills=<K> workflows=<W> cancelled=<C> steps=<N> parallel_steps=<P> cancel_violations=<V> lost=<L> reexecuted_after_commit=<R> wrong_output=<O>`
//! and exits non-zero if V, L, R or O is not 0.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use memable_core::{EngineError, StepStore};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_testkit::postgres::{ServerOptions, TestServer};
use memable_testkit::soak::{
    ChildArgs, ProcessArgs, Role, SharedBackend, SharedConfig, SoakBackend, SoakConfig, run_child,
    run_client, run_parent, run_shared_parent, run_worker,
};

struct Redb;
impl SoakBackend for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }
    fn open(&self, path: &Path) -> Result<Arc<dyn StepStore>, EngineError> {
        Ok(Arc::new(memable_redb::RedbStore::open(path)?))
    }
}

struct Sqlite;
impl SoakBackend for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn open(&self, path: &Path) -> Result<Arc<dyn StepStore>, EngineError> {
        Ok(Arc::new(memable_sqlite::SqliteStore::open(path)?))
    }
}

struct Postgres {
    url: String,
    schema: String,
}

#[async_trait::async_trait]
impl SharedBackend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    async fn open(&self) -> Result<Arc<dyn StepStore>, EngineError> {
        let options = PostgresOptions::new(&self.url)
            .schema(&self.schema)
            .pool_size(4);
        Ok(Arc::new(PostgresStore::connect_with(options).await?))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BackendName {
    Redb,
    Sqlite,
    Postgres,
}

#[derive(Default)]
struct Args {
    backend: Option<BackendName>,
    kills: Option<usize>,
    workflows: Option<usize>,
    steps: Option<usize>,
    seed: Option<u64>,
    min_delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
    dir: Option<PathBuf>,
    child_round: Option<u64>,
    generation: Option<u64>,
    url: Option<String>,
    schema: Option<String>,
    fsync: bool,
    workers: Option<usize>,
    lease_ms: Option<u64>,
    poll_ms: Option<u64>,
    role: Option<String>,
    worker_id: Option<String>,
}

impl Args {
    fn soak_config(&self, defaults: SoakConfig) -> SoakConfig {
        let mut config = SoakConfig {
            workflows: self.workflows.unwrap_or(defaults.workflows),
            steps: self.steps.unwrap_or(defaults.steps),
            kills: self.kills.unwrap_or(defaults.kills),
            seed: self.seed.unwrap_or(defaults.seed),
            min_delay_ms: self.min_delay_ms.unwrap_or(defaults.min_delay_ms),
            max_delay_ms: self.max_delay_ms.unwrap_or(defaults.max_delay_ms),
        };
        config.max_delay_ms = config.max_delay_ms.max(config.min_delay_ms);
        config
    }

    fn shared_config(&self) -> SharedConfig {
        let defaults = SharedConfig::default();
        SharedConfig {
            soak: self.soak_config(defaults.soak),
            workers: self.workers.unwrap_or(defaults.workers).max(1),
            lease: self.lease_ms.map_or(defaults.lease, Duration::from_millis),
            poll: self.poll_ms.map_or(defaults.poll, Duration::from_millis),
            ..defaults
        }
    }
}

fn parse() -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let number = |v: String, name: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        let count = |v: String, name: &str| {
            number(v, name).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        match arg.as_str() {
            "--backend" => {
                parsed.backend = Some(match value("--backend")?.as_str() {
                    "redb" => BackendName::Redb,
                    "sqlite" => BackendName::Sqlite,
                    "postgres" => BackendName::Postgres,
                    other => {
                        return Err(format!(
                            "unknown backend {other}; use redb, sqlite or postgres"
                        ));
                    }
                });
            }
            "--kills" => parsed.kills = Some(count(value("--kills")?, "--kills")?),
            "--workflows" => {
                parsed.workflows = Some(count(value("--workflows")?, "--workflows")?.max(1));
            }
            "--steps" => parsed.steps = Some(count(value("--steps")?, "--steps")?.max(1)),
            "--seed" => parsed.seed = Some(number(value("--seed")?, "--seed")?),
            "--min-delay-ms" => {
                parsed.min_delay_ms = Some(number(value("--min-delay-ms")?, "--min-delay-ms")?);
            }
            "--max-delay-ms" => {
                parsed.max_delay_ms = Some(number(value("--max-delay-ms")?, "--max-delay-ms")?);
            }
            "--dir" => parsed.dir = Some(PathBuf::from(value("--dir")?)),
            "--child-round" => {
                parsed.child_round = Some(number(value("--child-round")?, "--child-round")?);
            }
            "--child-generation" => {
                parsed.generation =
                    Some(number(value("--child-generation")?, "--child-generation")?);
            }
            "--url" => parsed.url = Some(value("--url")?),
            "--schema" => parsed.schema = Some(value("--schema")?),
            "--fsync" => parsed.fsync = true,
            "--workers" => parsed.workers = Some(count(value("--workers")?, "--workers")?),
            "--lease-ms" => parsed.lease_ms = Some(number(value("--lease-ms")?, "--lease-ms")?),
            "--poll-ms" => parsed.poll_ms = Some(number(value("--poll-ms")?, "--poll-ms")?),
            "--role" => parsed.role = Some(value("--role")?),
            "--worker-id" => parsed.worker_id = Some(value("--worker-id")?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if parsed.backend.is_none() {
        return Err("--backend <redb|sqlite|postgres> is required".to_owned());
    }
    Ok(parsed)
}

const USAGE: &str = "usage: crash-soak --backend <redb|sqlite|postgres> [--kills K] [--workflows W] [--steps S] [--seed N] [--min-delay-ms A] [--max-delay-ms B] [--dir D]\n\
                     postgres only: [--url URL] [--fsync] [--workers N] [--lease-ms L] [--poll-ms P]";

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("crash-soak: {error}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let file_backend: Box<dyn SoakBackend> = match args.backend {
        Some(BackendName::Redb) => Box::new(Redb),
        Some(BackendName::Sqlite) => Box::new(Sqlite),
        Some(BackendName::Postgres) | None => return postgres_main(&args),
    };
    let config = args.soak_config(SoakConfig::default());
    match args.child_round.zip(args.generation) {
        Some((round, generation)) => {
            let Some(dir) = &args.dir else {
                eprintln!("crash-soak child: --dir is required");
                return ExitCode::FAILURE;
            };
            in_runtime(&format!("child {generation}"), async {
                run_child(file_backend.as_ref(), dir, &config, round, generation).await
            })
        }
        None => with_dir(&args, |dir| {
            file_parent(file_backend.as_ref(), &config, dir)
        }),
    }
}

/// Runs `future` on a fresh runtime; an error is printed as `crash-soak <what>: …`.
fn in_runtime(
    what: &str,
    future: impl std::future::Future<Output = Result<(), EngineError>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("crash-soak {what}: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(future) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crash-soak {what}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `parent` in `--dir`, or in a temp dir deleted afterwards.
fn with_dir(args: &Args, parent: impl FnOnce(&Path) -> ExitCode) -> ExitCode {
    if let Some(dir) = &args.dir {
        return parent(dir);
    }
    match tempfile::tempdir() {
        Ok(temp) => parent(temp.path()),
        Err(error) => {
            eprintln!("crash-soak: {error}");
            ExitCode::FAILURE
        }
    }
}

fn current_exe() -> Result<PathBuf, ExitCode> {
    std::env::current_exe().map_err(|error| {
        eprintln!("crash-soak: {error}");
        ExitCode::FAILURE
    })
}

fn file_parent(backend: &dyn SoakBackend, config: &SoakConfig, dir: &Path) -> ExitCode {
    let exe = match current_exe() {
        Ok(exe) => exe,
        Err(code) => return code,
    };
    let backend_name = backend.name();
    let spawn = |child: &ChildArgs| {
        Command::new(&exe)
            .args(["--backend", backend_name])
            .args(["--workflows", &config.workflows.to_string()])
            .args(["--steps", &config.steps.to_string()])
            .arg("--dir")
            .arg(&child.dir)
            .args(["--child-round", &child.round.to_string()])
            .args(["--child-generation", &child.generation.to_string()])
            .stdout(Stdio::null())
            .spawn()
    };
    report(run_parent(backend, config, dir, &spawn))
}

fn report(result: Result<memable_testkit::soak::SoakReport, EngineError>) -> ExitCode {
    match result {
        Ok(report) => {
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("crash-soak: {error}");
            ExitCode::FAILURE
        }
    }
}

fn postgres_main(args: &Args) -> ExitCode {
    let config = args.shared_config();
    let schema = args.schema.clone().unwrap_or_else(|| "soak".to_owned());
    if let Some(role) = &args.role {
        let (Some(dir), Some(url), Some(generation)) = (&args.dir, &args.url, args.generation)
        else {
            eprintln!("crash-soak {role}: --dir, --url and --child-generation are required");
            return ExitCode::FAILURE;
        };
        let backend = Postgres {
            url: url.clone(),
            schema,
        };
        return match (role.as_str(), &args.worker_id) {
            ("client", _) => in_runtime("client", async {
                run_client(&backend, dir, &config, generation).await
            }),
            ("worker", Some(id)) => in_runtime(&format!("worker {id}"), async {
                run_worker(&backend, dir, &config, id, generation).await
            }),
            _ => {
                eprintln!("crash-soak: --role must be client, or worker with --worker-id");
                ExitCode::FAILURE
            }
        };
    }
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| TestServer::shared_with(ServerOptions { fsync: args.fsync }).database());
    let backend = Postgres {
        url: url.clone(),
        schema: schema.clone(),
    };
    let exe = match current_exe() {
        Ok(exe) => exe,
        Err(code) => return code,
    };
    let spawn = |process: &ProcessArgs| {
        let mut command = Command::new(&exe);
        command
            .args(["--backend", "postgres", "--url", &url, "--schema", &schema])
            .args(["--workflows", &config.soak.workflows.to_string()])
            .args(["--steps", &config.soak.steps.to_string()])
            .args(["--lease-ms", &config.lease.as_millis().to_string()])
            .args(["--poll-ms", &config.poll.as_millis().to_string()])
            .arg("--dir")
            .arg(&process.dir)
            .args(["--child-generation", &process.generation.to_string()]);
        match &process.role {
            Role::Client => command.args(["--role", "client"]),
            Role::Worker { id } => command.args(["--role", "worker", "--worker-id", id]),
        };
        command.stdin(Stdio::piped()).stdout(Stdio::null()).spawn()
    };
    with_dir(args, |dir| {
        report(run_shared_parent(&backend, &config, dir, &spawn))
    })
}
