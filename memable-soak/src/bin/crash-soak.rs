//! `crash-soak`: SIGKILL soak of memable on a real store file.
//!
//! ```text
//! cargo run --release -p memable-soak --bin crash-soak -- --backend redb --kills 50
//! ```
//!
//! Prints, last, one line
//! `crash-soak backend=<b> kills=<K> workflows=<W> cancelled=<C> steps=<N> parallel_steps=<P> cancel_violations=<V> lost=<L> reexecuted_after_commit=<R> wrong_output=<O>`
//! and exits non-zero if V, L, R or O is not 0.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;

use memable_core::{EngineError, StepStore};
use memable_testkit::soak::{ChildArgs, SoakBackend, SoakConfig, run_child, run_parent};

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

struct Args {
    backend: Box<dyn SoakBackend>,
    config: SoakConfig,
    dir: Option<PathBuf>,
    child: Option<(u64, u64)>,
}

fn parse() -> Result<Args, String> {
    let mut backend: Option<Box<dyn SoakBackend>> = None;
    let mut config = SoakConfig::default();
    let mut dir = None;
    let mut child_round = None;
    let mut child_generation = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let number = |v: String, name: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        match arg.as_str() {
            "--backend" => {
                backend = Some(match value("--backend")?.as_str() {
                    "redb" => Box::new(Redb),
                    "sqlite" => Box::new(Sqlite),
                    other => return Err(format!("unknown backend {other}; use redb or sqlite")),
                });
            }
            "--kills" => {
                config.kills =
                    usize::try_from(number(value("--kills")?, "--kills")?).unwrap_or(usize::MAX);
            }
            "--workflows" => {
                config.workflows =
                    usize::try_from(number(value("--workflows")?, "--workflows")?).unwrap_or(1);
            }
            "--steps" => {
                config.steps = usize::try_from(number(value("--steps")?, "--steps")?).unwrap_or(1);
            }
            "--seed" => config.seed = number(value("--seed")?, "--seed")?,
            "--min-delay-ms" => {
                config.min_delay_ms = number(value("--min-delay-ms")?, "--min-delay-ms")?;
            }
            "--max-delay-ms" => {
                config.max_delay_ms = number(value("--max-delay-ms")?, "--max-delay-ms")?;
            }
            "--dir" => dir = Some(PathBuf::from(value("--dir")?)),
            "--child-round" => {
                child_round = Some(number(value("--child-round")?, "--child-round")?);
            }
            "--child-generation" => {
                child_generation =
                    Some(number(value("--child-generation")?, "--child-generation")?);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let backend = backend.ok_or("--backend <redb|sqlite> is required")?;
    config.max_delay_ms = config.max_delay_ms.max(config.min_delay_ms);
    Ok(Args {
        backend,
        config,
        dir,
        child: child_round.zip(child_generation),
    })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(error) => {
            eprintln!(
                "crash-soak: {error}\nusage: crash-soak --backend <redb|sqlite> [--kills K] [--workflows W] [--steps S] [--seed N] [--min-delay-ms A] [--max-delay-ms B] [--dir D]"
            );
            return ExitCode::FAILURE;
        }
    };
    match args.child {
        Some((round, generation)) => child_main(&args, round, generation),
        None => parent_main(&args),
    }
}

fn child_main(args: &Args, round: u64, generation: u64) -> ExitCode {
    let Some(dir) = &args.dir else {
        eprintln!("crash-soak child: --dir is required");
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("crash-soak child: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_child(
        args.backend.as_ref(),
        dir,
        &args.config,
        round,
        generation,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crash-soak child {generation}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parent_main(args: &Args) -> ExitCode {
    let temp;
    let dir = if let Some(dir) = &args.dir {
        dir.clone()
    } else {
        temp = match tempfile::tempdir() {
            Ok(temp) => temp,
            Err(error) => {
                eprintln!("crash-soak: {error}");
                return ExitCode::FAILURE;
            }
        };
        temp.path().to_path_buf()
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("crash-soak: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config = args.config;
    let backend_name = args.backend.name();
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
    match run_parent(args.backend.as_ref(), &config, &dir, &spawn) {
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
