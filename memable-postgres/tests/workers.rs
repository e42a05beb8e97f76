//! Many engines on one PostgreSQL database, in one process: each engine is
//! a worker with its own store handle (its own pool and writer), as it
//! would be in its own process. What must hold: work invoked anywhere runs
//! on a worker that has the workflow, exactly once; signals, cancels and
//! waits work from any engine; a worker's capacity holds; timers fire once;
//! a dead worker's instances are taken over within its lease.
//!
//! The crash and pause cases with real processes (SIGKILL, SIGSTOP) are in
//! `tests/processes.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use memable_core::{
    Context, Engine, InstanceFilter, MetadataStatus, StatusKind, StepError, StepStore,
    SuspendPoint, Workers, WorkflowState,
};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_testkit::postgres::TestServer;

/// Generous bound on any wait here: a failure shows as a timeout, not a hang.
const PATIENCE: Duration = Duration::from_secs(20);

fn database() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| TestServer::shared().database())
}

/// A fresh schema: the shared store of one test.
fn schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("workers_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn handle(schema: &str) -> PostgresStore {
    PostgresStore::connect_with(PostgresOptions::new(database()).schema(schema).pool_size(2))
        .await
        .expect("connect")
}

/// An engine on its own handle of `schema`, polling fast, with a short lease.
async fn worker(schema: &str, name: &str, lease: Duration) -> Engine {
    Engine::builder()
        .store(handle(schema).await)
        .worker_id(name)
        .lease(lease)
        .poll_interval(Duration::from_millis(50))
        .build()
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"))
}

async fn until_status(engine: &Engine, workflow: &str, id: &str, kind: StatusKind) {
    within(&format!("{workflow}/{id} reaching {kind:?}"), async {
        loop {
            if let Some(meta) = engine
                .get_metadata(workflow, id)
                .await
                .expect("get_metadata")
                && meta.status.kind() == kind
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn register_double(engine: &Engine) {
    engine
        .register("double", |ctx: Context| async move {
            let n: u64 = ctx.input()?;
            ctx.step("x2")
                .run(|| async move { Ok::<_, StepError>(n * 2) })
                .await
        })
        .expect("register");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_invoked_by_a_client_without_the_workflow_runs_on_a_worker() {
    let schema = schema();
    let worker = worker(&schema, "w1", Duration::from_secs(5)).await;
    register_double(&worker);
    worker.start().await.unwrap();
    let client = worker_engine_without_workflows(&schema).await;
    let run = client.invoke("double").id("a").input(21_u64).await.unwrap();
    let output: u64 = within("the output", run.wait_output()).await.unwrap();
    assert_eq!(output, 42);
    assert!(matches!(
        client.state("double", "a").await.unwrap(),
        WorkflowState::Completed { .. }
    ));
    client.shutdown().await;
    worker.shutdown().await;
}

async fn worker_engine_without_workflows(schema: &str) -> Engine {
    let client = worker(schema, "client", Duration::from_secs(5)).await;
    client.start().await.unwrap();
    client
}

static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_from_the_client_wakes_the_instance_on_a_worker() {
    let schema = schema();
    let worker = worker(&schema, "w1", Duration::from_secs(5)).await;
    worker
        .register("review", |ctx: Context| async move {
            let approved = ctx.suspend(&APPROVAL).await?;
            ctx.step("record")
                .run(move || async move { Ok::<_, StepError>(approved) })
                .await
        })
        .unwrap();
    worker.start().await.unwrap();
    let client = worker_engine_without_workflows(&schema).await;
    client.invoke("review").id("r").await.unwrap();
    until_status(&client, "review", "r", StatusKind::Suspended).await;
    let run = client.signal("review", "r", &APPROVAL, true).await.unwrap();
    assert!(
        within("the output", run.wait_output::<bool>())
            .await
            .unwrap()
    );
    client.shutdown().await;
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_the_client_stops_the_run_on_the_worker() {
    let schema = schema();
    let worker = worker(&schema, "w1", Duration::from_secs(5)).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (s, r) = (Arc::clone(&started), Arc::clone(&release));
    worker
        .register("slow", move |ctx: Context| {
            let (started, release) = (Arc::clone(&s), Arc::clone(&r));
            async move {
                ctx.step("first")
                    .run(|| async { Ok::<_, StepError>(1_u8) })
                    .await?;
                ctx.step("slow")
                    .run(move || {
                        started.notify_one();
                        let release = Arc::clone(&release);
                        async move {
                            release.notified().await;
                            Ok::<_, StepError>(2_u8)
                        }
                    })
                    .await
            }
        })
        .unwrap();
    worker.start().await.unwrap();
    let client = worker_engine_without_workflows(&schema).await;
    let run = client.invoke("slow").id("c").await.unwrap();
    within("the slow step starting", started.notified()).await;
    client.cancel("slow", "c").await.unwrap();
    assert_eq!(
        within("the cancel", run.wait()).await.unwrap(),
        WorkflowState::Cancelled
    );
    release.notify_one();
    // The worker's step returns after the cancel: its result must not land.
    within("the worker's run ending", worker.wait_all()).await;
    let store = handle(&schema).await;
    let key = memable_core::InstanceKey::new("slow", "c").unwrap();
    assert!(store.get_step(&key, "first").await.unwrap().is_some());
    assert!(
        store.get_step(&key, "slow").await.unwrap().is_none(),
        "a step committed into a cancelled instance"
    );
    assert_eq!(
        store.get_metadata(&key).await.unwrap().unwrap().status,
        MetadataStatus::Cancelled
    );
    client.shutdown().await;
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_capacity_bounds_its_runs() {
    let schema = schema();
    let worker = Engine::builder()
        .store(handle(&schema).await)
        .worker_id("w1")
        .capacity(2)
        .poll_interval(Duration::from_millis(50))
        .build();
    let current = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (c, m) = (Arc::clone(&current), Arc::clone(&most));
    worker
        .register("hold", move |ctx: Context| {
            let (current, most) = (Arc::clone(&c), Arc::clone(&m));
            async move {
                ctx.step("hold")
                    .run(move || {
                        let current = Arc::clone(&current);
                        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        async move {
                            // Long enough for the worker to try to start more.
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            current.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, StepError>(())
                        }
                    })
                    .await
            }
        })
        .unwrap();
    worker.start().await.unwrap();
    let client = worker_engine_without_workflows(&schema).await;
    let mut runs = Vec::new();
    for i in 0..8 {
        runs.push(client.invoke("hold").id(format!("h{i}")).await.unwrap());
    }
    for run in runs {
        within("a run", run.wait()).await.unwrap();
    }
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "{} runs at once with capacity 2",
        most.load(Ordering::SeqCst)
    );
    assert!(most.load(Ordering::SeqCst) >= 1);
    client.shutdown().await;
    worker.shutdown().await;
}

/// Step closure runs per `(instance, step)`, across every engine of a test.
type Runs = Arc<Mutex<HashMap<(String, String), u32>>>;

fn count(runs: &Runs, instance: &str, step: &str) {
    *runs
        .lock()
        .unwrap()
        .entry((instance.to_owned(), step.to_owned()))
        .or_default() += 1;
}

fn register_counted(engine: &Engine, runs: &Runs) {
    let runs = Arc::clone(runs);
    engine
        .register("counted", move |ctx: Context| {
            let runs = Arc::clone(&runs);
            async move {
                let id = ctx.instance_id().to_owned();
                let mut total = 0_u64;
                for step in ["a", "b", "c"] {
                    let (runs, id) = (Arc::clone(&runs), id.clone());
                    let part: u64 = ctx
                        .step(step)
                        .run(move || {
                            count(&runs, &id, step);
                            async { Ok::<_, StepError>(1_u64) }
                        })
                        .await?;
                    total += part;
                }
                Ok(total)
            }
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_spreads_over_three_workers_and_every_step_runs_once() {
    let schema = schema();
    let runs: Runs = Arc::default();
    let mut workers = Vec::new();
    for name in ["w1", "w2", "w3"] {
        let engine = worker(&schema, name, Duration::from_secs(5)).await;
        register_counted(&engine, &runs);
        engine.start().await.unwrap();
        workers.push(engine);
    }
    let client = worker_engine_without_workflows(&schema).await;
    let mut handles = Vec::new();
    for i in 0..60 {
        handles.push(client.invoke("counted").id(format!("i{i}")).await.unwrap());
    }
    for run in handles {
        assert_eq!(
            within("an output", run.wait_output::<u64>()).await.unwrap(),
            3
        );
    }
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 180, "every step of every instance ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "steps run more than once without a crash: {twice:?}"
    );
    client.shutdown().await;
    for engine in workers {
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_timer_fires_once_across_workers() {
    let schema = schema();
    let after = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for name in ["w1", "w2", "w3"] {
        let engine = worker(&schema, name, Duration::from_secs(5)).await;
        let after = Arc::clone(&after);
        engine
            .register("nap", move |ctx: Context| {
                let after = Arc::clone(&after);
                async move {
                    ctx.timer("nap", Duration::from_millis(100)).await?;
                    ctx.step("after")
                        .run(move || {
                            after.fetch_add(1, Ordering::SeqCst);
                            async { Ok::<_, StepError>(()) }
                        })
                        .await
                }
            })
            .unwrap();
        engine.start().await.unwrap();
        workers.push(engine);
    }
    let client = worker_engine_without_workflows(&schema).await;
    let mut handles = Vec::new();
    for i in 0..12 {
        handles.push(client.invoke("nap").id(format!("n{i}")).await.unwrap());
    }
    for run in handles {
        assert!(matches!(
            within("a run", run.wait()).await.unwrap(),
            WorkflowState::Completed { .. }
        ));
    }
    assert_eq!(
        after.load(Ordering::SeqCst),
        12,
        "a timer fired twice, or a run after it ran twice"
    );
    client.shutdown().await;
    for engine in workers {
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_instance_is_taken_over_within_its_lease() {
    let schema = schema();
    let lease = Duration::from_millis(800);
    let doomed = worker(&schema, "doomed", lease).await;
    doomed
        .register("relay", |ctx: Context| async move {
            let first: String = ctx
                .step("first")
                .run(|| async { Ok::<_, StepError>("doomed".to_owned()) })
                .await?;
            // The doomed worker never gets past here.
            ctx.step("second")
                .run(std::future::pending::<Result<String, StepError>>)
                .await?;
            Ok(first)
        })
        .unwrap();
    doomed.start().await.unwrap();
    let run = doomed.invoke("relay").id("x").await.unwrap();
    let store = handle(&schema).await;
    let key = memable_core::InstanceKey::new("relay", "x").unwrap();
    within("the first step", async {
        while store.get_step(&key, "first").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    drop(run);
    let heir = worker(&schema, "heir", lease).await;
    let second_ran = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&second_ran);
    heir.register("relay", move |ctx: Context| {
        let s = Arc::clone(&s);
        async move {
            let first: String = ctx
                .step("first")
                .run(|| async { Ok::<_, StepError>("heir".to_owned()) })
                .await?;
            let second: String = ctx
                .step("second")
                .run(move || {
                    s.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, StepError>("heir".to_owned()) }
                })
                .await?;
            Ok(format!("{first}+{second}"))
        }
    })
    .unwrap();
    heir.start().await.unwrap();
    // A crash: the doomed worker's runs and heartbeats stop.
    let died = Instant::now();
    doomed.abort();
    let output: String = within("the take-over", async {
        loop {
            if let Ok(output) = heir.output::<String>("relay", "x").await {
                return output;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let took = died.elapsed();
    assert_eq!(
        output, "doomed+heir",
        "the first step's committed result must be kept"
    );
    assert_eq!(second_ran.load(Ordering::SeqCst), 1);
    assert!(
        took <= lease + Duration::from_secs(2),
        "take-over took {took:?} with a lease of {lease:?}"
    );
    heir.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_under_the_same_id_takes_back_its_instances() {
    let schema = schema();
    // A long lease: the restart must not wait for it.
    let lease = Duration::from_secs(30);
    let before = worker(&schema, "w1", lease).await;
    let reached = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&reached);
    before
        .register("relay", move |ctx: Context| {
            let r = Arc::clone(&r);
            async move {
                ctx.step("first")
                    .run(move || {
                        r.fetch_add(1, Ordering::SeqCst);
                        std::future::pending::<Result<u8, StepError>>()
                    })
                    .await
            }
        })
        .unwrap();
    before.start().await.unwrap();
    drop(before.invoke("relay").id("x").await.unwrap());
    within("the first run", async {
        while reached.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    before.abort();
    let after = worker(&schema, "w1", lease).await;
    after
        .register("relay", |ctx: Context| async move {
            ctx.step("first")
                .run(|| async { Ok::<_, StepError>(7_u8) })
                .await
        })
        .unwrap();
    after.start().await.unwrap();
    let output: u8 = within("the restarted worker's run", async {
        loop {
            if let Ok(output) = after.output::<u8>("relay", "x").await {
                return output;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(output, 7);
    after.shutdown().await;
}

/// A store with a read pool of one connection still serves reads once a
/// worker listens for work, and closing it returns: the listener holds a
/// connection of its own, not one of the pool's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_one_serves_reads_while_listening_and_closes() {
    let store = PostgresStore::connect_with(
        PostgresOptions::new(database())
            .schema(schema())
            .pool_size(1),
    )
    .await
    .expect("connect");
    let workers: &dyn Workers = store.workers().expect("a shared store");
    workers.wait_for_work(Duration::from_millis(10)).await;
    let listed = within(
        "a read on a pool of one while listening",
        store.list_instances(&InstanceFilter::default()),
    )
    .await
    .expect("list");
    assert!(listed.is_empty());
    within("closing the store", store.close()).await;
    assert!(store.pool().is_closed());
}
