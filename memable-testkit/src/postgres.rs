//! A real PostgreSQL server for tests (feature `postgres`).
//!
//! # Lifecycle
//!
//! [`TestServer::shared`] starts one server per test process on first use
//! and hands out the same one afterwards:
//!
//! 1. If `MEMABLE_TEST_PG_URL` is set, that server is used as it is (a CI
//!    script may start one); nothing is started or stopped.
//! 2. Otherwise Debian's binaries are looked up in
//!    `/usr/lib/postgresql/<version>/bin` (highest version first); when there
//!    are none and we are root, `apt-get install -y postgresql` installs them.
//! 3. `initdb` (`-A trust`, `--no-sync`) runs into a fresh temp dir owned by
//!    the `postgres` system user (created with `useradd` if missing), as that
//!    user through `runuser`; the server listens on 127.0.0.1 on a free port,
//!    its unix socket inside the temp dir.
//! 4. Startup is polled with a bounded TCP connect loop; a server that does
//!    not come up is a panic naming its log file.
//! 5. Rust never runs a static's destructor, so a watchdog (`sh -c` loop)
//!    waits for the test process to exit and then stops the server
//!    (`pg_ctl stop -m immediate`) and deletes the dir.
//!
//! Any failure to start is a panic with the reason: a test that needs
//! PostgreSQL fails, it never passes without one.
//!
//! # Examples
//!
//! ```no_run
//! let server = memable_testkit::postgres::TestServer::shared();
//! let url = server.database();
//! assert!(url.starts_with("postgres://"));
//! ```

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How the shared server is started.
///
/// # Examples
///
/// ```
/// let options = memable_testkit::postgres::ServerOptions { fsync: true };
/// assert!(options.fsync);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ServerOptions {
    /// Whether the server syncs its WAL (`fsync`, `synchronous_commit`).
    /// Tests may turn it off; benchmarks keep it on.
    pub fsync: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { fsync: true }
    }
}

/// A running PostgreSQL server (see the module documentation).
///
/// # Examples
///
/// ```no_run
/// let server = memable_testkit::postgres::TestServer::shared();
/// println!("{}", server.url("postgres"));
/// ```
#[derive(Debug)]
pub struct TestServer {
    host: String,
    port: u16,
    user: String,
    /// The server's data dir and log (`None`: an external server).
    dir: Option<PathBuf>,
    bin: Option<PathBuf>,
    counter: AtomicU64,
}

static SHARED: OnceLock<TestServer> = OnceLock::new();

impl TestServer {
    /// The process-wide server for tests, with `fsync` off; started on first
    /// use.
    ///
    /// # Panics
    ///
    /// When no server can be had.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a = memable_testkit::postgres::TestServer::shared();
    /// let b = memable_testkit::postgres::TestServer::shared();
    /// assert!(std::ptr::eq(a, b));
    /// ```
    #[must_use]
    pub fn shared() -> &'static Self {
        Self::shared_with(ServerOptions { fsync: false })
    }

    /// The process-wide server, started with `options` if this is the first
    /// use (later calls get the running server whatever they pass).
    ///
    /// # Panics
    ///
    /// When no server can be started, or `MEMABLE_TEST_PG_URL` is malformed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use memable_testkit::postgres::{ServerOptions, TestServer};
    /// let server = TestServer::shared_with(ServerOptions { fsync: true });
    /// assert!(server.port() > 0);
    /// ```
    #[must_use]
    pub fn shared_with(options: ServerOptions) -> &'static Self {
        SHARED.get_or_init(|| match std::env::var("MEMABLE_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => Self::external(&url),
            _ => Self::start(options).unwrap_or_else(|reason| {
                panic!("could not start a PostgreSQL server for the tests: {reason}")
            }),
        })
    }

    /// The port the server listens on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// assert!(memable_testkit::postgres::TestServer::shared().port() > 0);
    /// ```
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this server.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let url = memable_testkit::postgres::TestServer::shared().url("postgres");
    /// assert!(url.ends_with("/postgres"));
    /// ```
    #[must_use]
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{}@{}:{}/{name}",
            self.user, self.host, self.port
        )
    }

    /// Creates a fresh database with a unique name and returns its URL.
    ///
    /// # Panics
    ///
    /// When the server refuses.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = memable_testkit::postgres::TestServer::shared();
    /// assert_ne!(server.database(), server.database());
    /// ```
    #[must_use]
    pub fn database(&self) -> String {
        let name = format!(
            "memable_test_{}_{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|reason| panic!("could not create database {name}: {reason}"));
        self.url(&name)
    }

    /// Runs one SQL command on database `db` with `psql`; returns its
    /// output (unaligned, tuples only).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = memable_testkit::postgres::TestServer::shared();
    /// assert_eq!(server.psql("postgres", "SELECT 1").unwrap().trim(), "1");
    /// ```
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let psql = self
            .bin
            .as_ref()
            .map_or_else(|| PathBuf::from("psql"), |bin| bin.join("psql"));
        let output = Command::new(&psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(db))
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", psql.display()))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    fn external(url: &str) -> Self {
        // postgres://user@host:port/db — only what `url` rebuilds.
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .unwrap_or_else(|| panic!("MEMABLE_TEST_PG_URL is not a postgres:// URL: {url}"));
        let authority = rest.split('/').next().unwrap_or_default();
        let (user, hostport) = authority.split_once('@').unwrap_or(("postgres", authority));
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        Self {
            host: host.to_owned(),
            port: port
                .parse()
                .unwrap_or_else(|_| panic!("bad port in MEMABLE_TEST_PG_URL: {url}")),
            user: user.to_owned(),
            dir: None,
            bin: None,
            counter: AtomicU64::new(0),
        }
    }

    fn start(options: ServerOptions) -> Result<Self, String> {
        let bin = if let Some(bin) = find_binaries() {
            bin
        } else {
            install_postgresql()?;
            find_binaries().ok_or("no /usr/lib/postgresql/*/bin after installing")?
        };
        ensure_user()?;
        let dir = std::env::temp_dir().join(format!(
            "memable-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        let data = dir.join("data");
        let log = dir.join("server.log");
        run(as_postgres(&bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data))?;
        let port = free_port()?;
        let fsync = if options.fsync { "on" } else { "off" };
        let settings = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
             -c fsync={fsync} -c synchronous_commit={fsync} -c full_page_writes={fsync} \
             -c max_connections=300 -c shared_buffers=64MB",
            dir.display()
        );
        run(as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &settings, "start"]))?;
        spawn_watchdog(&bin, &dir, &data);
        wait_until_up(port, &log)?;
        tracing::info!(port, dir = %dir.display(), "started PostgreSQL for the tests");
        Ok(Self {
            host: "127.0.0.1".to_owned(),
            port,
            user: "postgres".to_owned(),
            dir: Some(dir),
            bin: Some(bin),
            counter: AtomicU64::new(0),
        })
    }

    /// The server's temp dir (data and `server.log`); `None` for an
    /// external server.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let server = memable_testkit::postgres::TestServer::shared();
    /// if let Some(dir) = server.dir() { assert!(dir.join("server.log").exists()); }
    /// ```
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

fn find_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| bin.join(b).exists())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn install_postgresql() -> Result<(), String> {
    if !is_root() {
        return Err(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin) and this process is \
             not root, so it cannot apt-get install it: install the `postgresql` package or \
             set MEMABLE_TEST_PG_URL"
                .to_owned(),
        );
    }
    eprintln!("memable-testkit: installing PostgreSQL (apt-get install -y postgresql)");
    let apt = |args: &[&str]| {
        run(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    if apt(&["install", "-y", "-q", "postgresql"]).is_err() {
        apt(&["update", "-q"])?;
        apt(&["install", "-y", "-q", "postgresql"])?;
    }
    Ok(())
}

fn ensure_user() -> Result<(), String> {
    if Command::new("id")
        .arg("postgres")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Ok(());
    }
    run(Command::new("useradd").args(["--system", "--no-create-home", "postgres"]))
}

/// A command that runs `program` as the `postgres` user (directly when
/// this process is not root: then it must own the dir itself).
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Stops the server and removes its dir once this process is gone.
fn spawn_watchdog(bin: &Path, dir: &Path, data: &Path) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; \
         {runuser}'{pg_ctl}' -D '{data}' stop -m immediate >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        runuser = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    if let Err(e) = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        tracing::warn!(error = %e, "no watchdog: the test server outlives this process");
    }
}

fn wait_until_up(port: u16, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the server did not accept connections on 127.0.0.1:{port} within 30 s; see {}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
