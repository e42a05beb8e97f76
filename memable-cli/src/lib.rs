//! The `memable` operator command, as a library an application builds its
//! own command from.
//!
//! The stock binary `memable` (this crate's `src/main.rs`) is
//! [`App::new`]`("memable").main()`: every command works on any redb,
//! SQLite or PostgreSQL store, except `check`, which runs the current code
//! of a workflow and so needs the application's workflows. An application
//! builds its own operator command with the same commands plus `check`:
//!
//! ```no_run
//! // src/bin/ops.rs of an application
//! use memable_core::{Context, Engine, StepError};
//!
//! fn register(engine: &Engine) -> Result<(), memable_core::EngineError> {
//!     engine.register("order", |ctx: Context| async move {
//!         ctx.step("charge").run(|| async { Ok::<_, StepError>(42u32) }).await
//!     })
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     memable_cli::App::new("ops").workflows(register).main()
//! }
//! ```
//!
//! # Commands
//!
//! `list`, `show`, `steps`, `signal`, `cancel`, `resume`, `delete`,
//! `forget`, `fork`, `backup`, `check`; `memable --help` and
//! `memable <command> --help` describe each. Global options: `--store
//! <path-or-url>` (or `MEMABLE_STORE`), `--backend redb|sqlite|postgres`
//! (detected otherwise, see [`Backend::detect`]), `--json`.
//!
//! # Output
//!
//! Human tables on stdout by default. With `--json`, every command prints
//! exactly one JSON document on stdout (documented per command in
//! `docs/cli.md`; fields are only ever added), and an error prints
//! `{"error": {"kind": …, "code": …, "message": …}}` on stderr.
//!
//! # Exit codes
//!
//! See [`exit`]: 0 success, 1 failure, 2 usage, 3 not found, 4 refused,
//! 5 store held by a running application, 6 `check` found problems.
//!
//! # A store held by a running application
//!
//! See the [`store`] module's protocol: reads of a held SQLite file work
//! (read-only, beside the application); writes, and anything on a held
//! redb file, are refused with exit code 5 and a message saying what to
//! do.

#![forbid(unsafe_code)]

mod check;
mod commands;
mod error;
mod output;
pub mod store;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use memable_core::{Engine, EngineError};

pub use error::CliError;
pub use store::{Access, Backend};

/// The exit codes, one per kind of outcome.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_cli::exit::HELD, 5);
/// ```
pub mod exit {
    /// The command did what it says.
    pub const SUCCESS: u8 = 0;
    /// The store or the machine failed (I/O, corruption, a lost
    /// connection).
    pub const FAILURE: u8 = 1;
    /// Bad arguments: unknown command or option, invalid key or JSON, an
    /// undetectable store, `check` without the application's workflows.
    pub const USAGE: u8 = 2;
    /// No such store file or instance.
    pub const NOT_FOUND: u8 = 3;
    /// The store refused the change: the instance is in a state that does
    /// not allow it, the new id is taken, the signal is not accepted.
    pub const REFUSED: u8 = 4;
    /// An embedded store is held by a running application and the command
    /// cannot run beside it (a write; any command on redb).
    pub const HELD: u8 = 5;
    /// `check` found instances the current code would not continue
    /// cleanly (orphaned keys, type mismatches).
    pub const CHECK_PROBLEMS: u8 = 6;
}

/// The command line: global options and one command.
///
/// # Examples
///
/// ```
/// use clap::Parser;
/// let cli = memable_cli::Cli::try_parse_from(["memable", "--store", "app.db", "--json", "list"]).unwrap();
/// assert!(cli.json);
/// ```
#[derive(Debug, Parser)]
#[command(
    version,
    long_about = None,
    about = "Inspect and operate memable workflow instances in a redb, SQLite or PostgreSQL store",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage, 3 not found, 4 refused, 5 store held by a running application, 6 check found problems."
)]
pub struct Cli {
    /// The store: a redb or SQLite file, or a postgres:// URL.
    #[arg(long, global = true, env = "MEMABLE_STORE")]
    pub store: Option<String>,
    /// The store's backend (detected from --store otherwise).
    #[arg(long, global = true, value_enum)]
    pub backend: Option<Backend>,
    /// The PostgreSQL schema the store lives in.
    #[arg(long, global = true, default_value = "memable")]
    pub pg_schema: String,
    /// Print one JSON document on stdout (errors as JSON on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// One command.
///
/// # Examples
///
/// ```
/// use clap::Parser;
/// let cli = memable_cli::Cli::try_parse_from(["memable", "fork", "order", "o1", "o1-b", "--without", "ship"]).unwrap();
/// assert!(matches!(cli.command, memable_cli::Command::Fork { .. }));
/// ```
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List instances, filtered by workflow, status and age.
    List {
        /// Only instances of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only instances in this status (running, suspended, completed,
        /// failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only instances created longer ago than this (e.g. 90s, 15m, 2h, 7d).
        #[arg(long, value_parser = parse_age)]
        older_than: Option<u64>,
        /// Only instances created more recently than this.
        #[arg(long, value_parser = parse_age)]
        newer_than: Option<u64>,
        /// Only instances that ended (completed, failed or were cancelled)
        /// longer ago than this.
        #[arg(long, value_parser = parse_age)]
        ended_older_than: Option<u64>,
        /// At most this many instances.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show one instance: status, input, output, links, buffered signals.
    Show {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
    },
    /// List an instance's step records (engine records with --all).
    Steps {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
        /// Include the engine's records (`_input`, `_output`, …).
        #[arg(long)]
        all: bool,
    },
    /// Deliver a JSON value to a suspend point (buffered if not reached).
    Signal {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
        /// The suspend point's key.
        point: String,
        /// The value, as JSON (`true`, `42`, `'{"ok":1}'`).
        payload: String,
        /// The point's value type tag (as `memable_core::type_tag` writes
        /// it, e.g. `bool`), needed only when the instance has not reached
        /// the point yet.
        #[arg(long = "type")]
        type_tag: Option<String>,
    },
    /// Cancel an instance (and the children it awaits).
    Cancel {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
    },
    /// Mark an instance to run again; the application's engine runs it.
    Resume {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
    },
    /// Delete an instance and all its records (a waiting one is cancelled
    /// first).
    Delete {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
    },
    /// Drop chosen step results so they run again on the next run.
    Forget {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
        /// The step keys to forget.
        #[arg(required = true)]
        steps: Vec<String>,
        /// Also mark the instance to run again (as `resume`).
        #[arg(long)]
        resume: bool,
    },
    /// Copy an instance to a new id without chosen steps.
    Fork {
        /// The workflow's name.
        workflow: String,
        /// The instance to copy.
        id: String,
        /// The new instance's id.
        new_id: String,
        /// Step keys not copied (they run again in the fork).
        #[arg(long, num_args = 1..)]
        without: Vec<String>,
    },
    /// Write a consistent copy of a redb or SQLite store to a new file.
    Backup {
        /// The copy's path (must not exist).
        dest: String,
    },
    /// Run the current code of a workflow over stored instances without
    /// executing any step, and report where each would go (needs the
    /// application's workflows: see `memable_cli::App`).
    Check {
        /// The workflow's name.
        workflow: String,
        /// One instance (by default every instance not finished: those a
        /// deploy affects).
        id: Option<String>,
        /// Every instance, finished ones too (checked as a resume would
        /// run them).
        #[arg(long, conflicts_with = "status")]
        all: bool,
        /// Only instances in this status.
        #[arg(long)]
        status: Option<String>,
    },
}

fn parse_age(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{text}' has no unit: write e.g. 90s, 15m, 2h or 7d"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' does not start with a number"))?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        other => return Err(format!("unknown unit '{other}': use ms, s, m, h, d or w")),
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// Registers an application's workflows on an engine.
type Register = dyn Fn(&Engine) -> Result<(), EngineError> + Send + Sync;

/// An operator command: the stock `memable` one, or an application's own
/// with its workflows registered (for `check`).
///
/// # Examples
///
/// ```
/// let code = memable_cli::App::new("memable").run_from(["memable", "--help"]);
/// assert_eq!(code, memable_cli::exit::SUCCESS);
/// ```
pub struct App {
    name: String,
    register: Vec<Arc<Register>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("registrations", &self.register.len())
            .finish()
    }
}

impl App {
    /// A command named `name` (shown in its help), with no workflows.
    ///
    /// # Examples
    ///
    /// See [`App`].
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            register: Vec::new(),
        }
    }

    /// Adds a function that registers workflows on an engine, the same
    /// one the application calls on its own engine: `check` runs that
    /// code over stored instances (without executing any step).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    /// let app = memable_cli::App::new("ops").workflows(|engine: &Engine| {
    ///     engine.register("noop", |_ctx: Context| async { Ok(()) })
    /// });
    /// # drop(app);
    /// ```
    #[must_use]
    pub fn workflows(
        mut self,
        register: impl Fn(&Engine) -> Result<(), EngineError> + Send + Sync + 'static,
    ) -> Self {
        self.register.push(Arc::new(register));
        self
    }

    /// Runs the command on this process's arguments and returns its exit
    /// code (for `fn main() -> ExitCode`).
    ///
    /// # Examples
    ///
    /// See the crate docs.
    #[must_use]
    pub fn main(self) -> ExitCode {
        ExitCode::from(self.run_from(std::env::args_os()))
    }

    /// Runs the command on `args` (the first is the program's name),
    /// printing to stdout and stderr; returns the exit code (see [`exit`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let code = memable_cli::App::new("memable").run_from(["memable", "list"]);
    /// assert_eq!(code, memable_cli::exit::USAGE); // no --store
    /// ```
    pub fn run_from<I, T>(&self, args: I) -> u8
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let command = <Cli as clap::CommandFactory>::command().name(self.name.clone());
        let cli = match command
            .try_get_matches_from(args)
            .and_then(|matches| <Cli as clap::FromArgMatches>::from_arg_matches(&matches))
        {
            Ok(cli) => cli,
            Err(error) => {
                let _ = error.print();
                return if error.use_stderr() {
                    exit::USAGE
                } else {
                    exit::SUCCESS
                };
            }
        };
        let json = cli.json;
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => return report_error(json, &CliError::failure(format!("tokio: {e}"))),
        };
        match runtime.block_on(commands::run(self, cli)) {
            Ok((printed, code)) => {
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{printed}");
                code
            }
            Err(error) => report_error(json, &error),
        }
    }

    pub(crate) fn engine_on(
        &self,
        store: Arc<dyn memable_core::StepStore>,
    ) -> Result<Engine, CliError> {
        let engine = Engine::builder()
            .store(store)
            .resume_on_start(false)
            .build();
        for register in &self.register {
            register(&engine)?;
        }
        Ok(engine)
    }

    pub(crate) fn has_workflows(&self) -> bool {
        !self.register.is_empty()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

fn report_error(json: bool, error: &CliError) -> u8 {
    let mut stderr = std::io::stderr().lock();
    if json {
        let doc = serde_json::json!({
            "error": { "kind": error.kind(), "code": error.code(), "message": error.message() }
        });
        let _ = writeln!(stderr, "{doc}");
    } else {
        let _ = writeln!(stderr, "error: {error}");
    }
    error.code()
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(parse_age("90s"), Ok(90_000));
        assert_eq!(parse_age("2h"), Ok(7_200_000));
        assert_eq!(parse_age("1w"), Ok(604_800_000));
        assert!(parse_age("2").is_err());
        assert!(parse_age("h").is_err());
        assert!(parse_age("3y").is_err());
        assert!(parse_age("99999999999999999999d").is_err());
    }
}
