//! Queues across workers on one PostgreSQL database: three worker
//! processes admit from one queue, and its limits hold across all of them.
//!
//! - A concurrency limit of 3: the step of every job logs its start and
//!   end (database time) into a table; intervals never overlap more than
//!   3 deep, the test process's samples of the instances holding a slot
//!   never exceed 3, and more than one worker ran jobs.
//! - A rate limit of 4 per 1.5 s: no 5 job starts fall within 1.5 s minus
//!   the slack between an admission and its step starting.
//! - A dedup id: 32 invocations at once from three engines (three
//!   connections, three writers) admit exactly one.
//!
//! The worker processes are this test binary again, running the ignored
//! test [`queue_worker_process`] with its settings in the environment; a
//! worker prints `ready` once its engine started and runs until its stdin
//! closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use memable_core::{
    Context, Engine, EngineError, InstanceFilter, MetadataStatus, Queue, StatusKind, StepError,
    StepStore,
};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_testkit::postgres::TestServer;
use sqlx::PgPool;

mod common;

use common::WorkerProcess;

const PATIENCE: Duration = Duration::from_secs(60);
const ENV_URL: &str = "MEMABLE_QUEUE_URL";
const ENV_SCHEMA: &str = "MEMABLE_QUEUE_SCHEMA";
const ENV_WORKER: &str = "MEMABLE_QUEUE_WORKER";
const LIMIT: usize = 3;
const RATE: (u32, Duration) = (4, Duration::from_millis(1_500));
/// How late a job's step may start after its admission and still count
/// as inside the admission's window.
const START_SLACK: Duration = Duration::from_millis(400);

fn database() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| TestServer::shared().database())
}

fn schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "queues_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn store(url: &str, schema: &str) -> Arc<dyn StepStore> {
    Arc::new(
        PostgresStore::connect_with(PostgresOptions::new(url).schema(schema).pool_size(2))
            .await
            .expect("connect to PostgreSQL"),
    )
}

/// The queues every engine of these tests declares alike.
fn engine(store: Arc<dyn StepStore>, id: &str) -> Engine {
    Engine::builder()
        .store(store)
        .worker_id(id)
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(50))
        .capacity(16)
        .queue(Queue::new("jobs").concurrency(LIMIT).default_for("job"))
        .queue(
            Queue::new("rated")
                .rate(RATE.0, RATE.1)
                .default_for("rated"),
        )
        .queue(Queue::new("once"))
        .build()
}

fn log_table(schema: &str) -> String {
    format!("\"{schema}_log\"")
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    common::within(what, PATIENCE, future).await
}

/// Registers `job` and `rated`: one step that logs its start, holds
/// `hold`, and logs its end.
fn register_jobs(engine: &Engine, me: &str, log: &PgPool, table: &str) {
    for (workflow, hold) in [
        ("job", Duration::from_millis(60)),
        ("rated", Duration::ZERO),
    ] {
        let (me, log, table) = (me.to_owned(), log.clone(), table.to_owned());
        engine
            .register(workflow, move |ctx: Context| {
                let (me, log, table) = (me.clone(), log.clone(), table.clone());
                async move {
                    let id = ctx.instance_id().to_owned();
                    ctx.step("work")
                        .run(|| {
                            let (me, log, table, id) =
                                (me.clone(), log.clone(), table.clone(), id.clone());
                            async move {
                            let insert = format!(
                                "INSERT INTO {table} (workflow, instance, worker, event, at) VALUES ($1, $2, $3, $4, clock_timestamp())"
                            );
                            for (event, pause) in [("start", hold), ("end", Duration::ZERO)] {
                                sqlx::query(&insert)
                                    .bind(workflow)
                                    .bind(&id)
                                    .bind(&me)
                                    .bind(event)
                                    .execute(&log)
                                    .await
                                    .map_err(StepError::retryable)?;
                                tokio::time::sleep(pause).await;
                            }
                            Ok::<_, StepError>(me)
                            }
                        })
                        .await
                }
            })
            .expect("register");
    }
}

/// The worker process the other tests start (see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the other tests of this file, started by them"]
async fn queue_worker_process() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (url, schema, me) = (var(ENV_URL), var(ENV_SCHEMA), var(ENV_WORKER));
    let log = PgPool::connect(&url).await.expect("connect the log pool");
    let engine = engine(store(&url, &schema).await, &me);
    register_jobs(&engine, &me, &log, &log_table(&schema));
    engine.start().await.expect("start the worker");
    println!("ready");
    let _ = tokio::task::spawn_blocking(|| {
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
    })
    .await;
    engine.shutdown().await;
}

/// Starts worker `worker` on `schema` and waits until it is ready.
async fn start_worker(schema: &str, worker: &str) -> WorkerProcess {
    let mut process = WorkerProcess::spawn(
        "queue_worker_process",
        &[
            (ENV_URL, database().to_owned()),
            (ENV_SCHEMA, schema.to_owned()),
            (ENV_WORKER, worker.to_owned()),
        ],
    );
    process
        .expect_line("a worker's start", PATIENCE, |line| line == "ready")
        .await;
    process
}

/// Three workers ready on a fresh schema, the log table made, and a client
/// engine of this process (it registers nothing, so it admits nothing).
async fn setup() -> (String, PgPool, Vec<WorkerProcess>, Engine) {
    let schema = schema();
    let log = PgPool::connect(database()).await.expect("connect");
    sqlx::query(&format!(
        "CREATE TABLE {} (workflow TEXT, instance TEXT, worker TEXT, event TEXT, at TIMESTAMPTZ)",
        log_table(&schema)
    ))
    .execute(&log)
    .await
    .expect("create the log table");
    // The client creates the schema before the workers start.
    let client = engine(store(database(), &schema).await, "client");
    client.start().await.expect("start the client");
    let mut workers = Vec::new();
    for i in 0..3 {
        workers.push(start_worker(&schema, &format!("w{i}")).await);
    }
    (schema, log, workers, client)
}

/// Waits until every instance of `workflow` completed, sampling meanwhile
/// how many hold a slot (started and not ended); returns the largest sample.
async fn complete_sampling(client: &Engine, workflow: &str, count: usize) -> usize {
    let mut most = 0;
    within(&format!("every {workflow} completing"), async {
        loop {
            let listed = client
                .list_instances(&InstanceFilter::new().workflow(workflow))
                .await
                .expect("list");
            let holding = listed
                .iter()
                .filter(|m| {
                    matches!(m.status, MetadataStatus::Running)
                        || matches!(&m.status, MetadataStatus::Suspended { key, .. } if key != "_queue")
                })
                .count();
            most = most.max(holding);
            let done = listed
                .iter()
                .filter(|m| m.status.kind() == StatusKind::Completed)
                .count();
            if done == count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    most
}

/// `(instance, worker, start, end)` of every logged run of `workflow`, by start.
async fn runs(log: &PgPool, schema: &str, workflow: &str) -> Vec<(String, String, f64, f64)> {
    let rows: Vec<(String, String, f64, f64)> = sqlx::query_as(&format!(
        "SELECT s.instance, s.worker, extract(epoch FROM s.at)::float8, extract(epoch FROM e.at)::float8 \
         FROM {t} s JOIN {t} e ON e.instance = s.instance AND e.workflow = s.workflow AND e.event = 'end' \
         WHERE s.event = 'start' AND s.workflow = $1 ORDER BY s.at",
        t = log_table(schema)
    ))
    .bind(workflow)
    .fetch_all(log)
    .await
    .expect("read the log");
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_holds_across_three_worker_processes() {
    const JOBS: usize = 30;
    let (schema, log, workers, client) = setup().await;
    for i in 0..JOBS {
        client
            .invoke("job")
            .id(format!("{i:02}"))
            .await
            .expect("invoke");
    }
    let sampled = complete_sampling(&client, "job", JOBS).await;
    assert!(sampled <= LIMIT, "{sampled} instances held a slot at once");
    let runs = runs(&log, &schema, "job").await;
    assert_eq!(runs.len(), JOBS, "every job's step ran once");
    let mut deepest = 0;
    for (_, _, start, _) in &runs {
        let overlapping = runs
            .iter()
            .filter(|(_, _, s, e)| s <= start && start < e)
            .count();
        deepest = deepest.max(overlapping);
    }
    assert!(deepest <= LIMIT, "{deepest} steps ran at once");
    assert_eq!(
        deepest, LIMIT,
        "the limit was never reached: the test shows nothing"
    );
    let workers_used: std::collections::BTreeSet<_> =
        runs.iter().map(|(_, w, _, _)| w.clone()).collect();
    assert!(
        workers_used.len() >= 2,
        "one worker ran every job: {workers_used:?}"
    );
    client.shutdown().await;
    for worker in workers {
        worker.finish();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_over_its_window_across_workers() {
    const JOBS: usize = 10;
    let (schema, log, workers, client) = setup().await;
    let started = Instant::now();
    for i in 0..JOBS {
        client
            .invoke("rated")
            .id(format!("{i:02}"))
            .await
            .expect("invoke");
    }
    complete_sampling(&client, "rated", JOBS).await;
    let runs = runs(&log, &schema, "rated").await;
    assert_eq!(runs.len(), JOBS);
    let n = RATE.0 as usize;
    let window = RATE.1.saturating_sub(START_SLACK).as_secs_f64();
    for pair in runs.windows(n + 1) {
        let span = pair[n].2 - pair[0].2;
        assert!(
            span >= window,
            "{} starts within {span:.3} s (limit {n} per {:?})",
            n + 1,
            RATE.1
        );
    }
    // 10 at 4 per window: the last ones wait two windows.
    assert!(
        started.elapsed() >= RATE.1 * 2,
        "the rate limit held nothing back"
    );
    client.shutdown().await;
    for worker in workers {
        worker.finish();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedup_id_admits_one_of_32_concurrent_invocations_from_three_engines() {
    let schema = schema();
    let mut engines = Vec::new();
    for i in 0..3 {
        let engine = engine(store(database(), &schema).await, &format!("e{i}"));
        engine.start().await.expect("start");
        engines.push(engine);
    }
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let engine = engines[i % 3].clone();
            tokio::spawn(async move {
                engine
                    .invoke("sync")
                    .id(format!("{i}"))
                    .queue("once")
                    .dedup_id("account-9")
                    .await
                    .map(|invocation| invocation.instance_id().to_owned())
            })
        })
        .collect();
    let (mut won, mut refused) = (Vec::new(), 0);
    for task in tasks {
        match task.await.expect("an invocation panicked") {
            Ok(id) => won.push(id),
            Err(EngineError::Duplicate { .. }) => refused += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!(refused, 31);
    for engine in engines {
        engine.shutdown().await;
    }
}
