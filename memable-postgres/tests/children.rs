//! Child workflows across worker processes on one PostgreSQL database: a
//! fan-out's bound (`max_running`) holds across workers, its outputs come
//! in input order, its children run on more than one worker; and when the
//! worker process that ran the parent is killed (`SIGKILL`) while the
//! parent waits for the children it runs, another worker completes the
//! family within the lease plus slack, every child completing once.
//!
//! The worker processes are this test binary again, running the ignored
//! test [`child_worker_process`] with its settings in the environment; each
//! test has a database of its own on the shared test server. A worker
//! registers `batch` (fans `item` out over its input, at most
//! [`MAX_RUNNING`] at once, and returns the outputs) and `item` (one step,
//! `work`, that holds for a while and returns its input × 10). The step's
//! closure records `start` and `end` in the table `child_events` (with the
//! child's id and the worker's), and prints `marker entered <child id>` when
//! it starts; a worker prints `marker ready` once its engine started and
//! runs until its stdin closes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memable_core::{
    Context, Engine, EngineError, InstanceFilter, InstanceKey, MetadataStatus, StepError, Workflow,
    child_instance_id,
};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_testkit::postgres::TestServer;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

mod common;

use common::WorkerProcess;

const PATIENCE: Duration = Duration::from_secs(60);
const LEASE: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(50);
/// Runs at once of each worker: small, so no one worker can take every
/// child the parent starts.
const CAPACITY: usize = 2;
/// The fan-out's bound.
const MAX_RUNNING: usize = 4;

const ENV_URL: &str = "MEMABLE_CHILDREN_URL";
const ENV_WORKER: &str = "MEMABLE_CHILDREN_WORKER";
/// How long step `work` holds in the worker, in ms; `forever` for never.
const ENV_HOLD: &str = "MEMABLE_CHILDREN_HOLD";
/// The worker's capacity.
const ENV_CAPACITY: &str = "MEMABLE_CHILDREN_CAPACITY";

static ITEM: Workflow<u32, u32> = Workflow::new("item");
static BATCH: Workflow<Vec<u32>, Vec<u32>> = Workflow::new("batch");

/// A fresh database for one test, with the `child_events` table.
async fn database() -> String {
    let url = TestServer::shared().database();
    let pool = events_pool(&url).await;
    sqlx::raw_sql(
        "CREATE TABLE child_events (
             seq BIGSERIAL PRIMARY KEY,
             child TEXT NOT NULL,
             worker TEXT NOT NULL,
             event TEXT NOT NULL
         )",
    )
    .execute(&pool)
    .await
    .expect("create child_events");
    pool.close().await;
    url
}

async fn events_pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .expect("connect for child_events")
}

async fn record(pool: &PgPool, child: &str, worker: &str, event: &str) {
    sqlx::query("INSERT INTO child_events (child, worker, event) VALUES ($1, $2, $3)")
        .bind(child)
        .bind(worker)
        .bind(event)
        .execute(pool)
        .await
        .expect("record a child event");
}

/// One row of `child_events`.
#[derive(Debug)]
struct Event {
    child: String,
    worker: String,
    /// `start` or `end`.
    what: String,
}

/// Every event, in the order they were recorded.
async fn events(url: &str) -> Vec<Event> {
    let pool = events_pool(url).await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT child, worker, event FROM child_events ORDER BY seq")
            .fetch_all(&pool)
            .await
            .expect("read child_events");
    pool.close().await;
    rows.into_iter()
        .map(|(child, worker, event)| Event {
            child,
            worker,
            what: event,
        })
        .collect()
}

async fn store(url: &str) -> PostgresStore {
    PostgresStore::connect_with(PostgresOptions::new(url).pool_size(2))
        .await
        .expect("connect to PostgreSQL")
}

fn worker_engine(store: PostgresStore, id: &str, capacity: usize) -> Engine {
    Engine::builder()
        .store(store)
        .worker_id(id)
        .lease(LEASE)
        .poll_interval(POLL)
        .capacity(capacity)
        .build()
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    common::within(what, PATIENCE, future).await
}

/// How long step `work` holds.
#[derive(Clone, Copy)]
enum Hold {
    For(Duration),
    Forever,
}

/// Registers `item` and `batch` as worker `me` runs them.
fn register(engine: &Engine, me: &str, hold: Hold, pool: PgPool) -> Result<(), EngineError> {
    let me: Arc<str> = Arc::from(me);
    ITEM.register(engine, move |ctx: Context, n: u32| {
        let (me, pool) = (Arc::clone(&me), pool.clone());
        async move {
            let child = ctx.instance_id().to_owned();
            ctx.step("work")
                .run(|| {
                    let (me, pool, child) = (Arc::clone(&me), pool.clone(), child.clone());
                    async move {
                        record(&pool, &child, &me, "start").await;
                        println!("marker entered {child}");
                        match hold {
                            Hold::For(pause) => tokio::time::sleep(pause).await,
                            Hold::Forever => std::future::pending().await,
                        }
                        record(&pool, &child, &me, "end").await;
                        Ok::<_, StepError>(n * 10)
                    }
                })
                .await
        }
    })?;
    BATCH.register(engine, |ctx: Context, inputs: Vec<u32>| async move {
        let outputs = ctx
            .fan_out(&ITEM, "item", inputs)
            .max_running(MAX_RUNNING)
            .await?;
        outputs.into_iter().collect()
    })
}

/// The worker process the other tests start (see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the other tests of this file, started by them"]
async fn child_worker_process() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (url, me) = (var(ENV_URL), var(ENV_WORKER));
    let hold = match var(ENV_HOLD).as_str() {
        "forever" => Hold::Forever,
        ms => Hold::For(Duration::from_millis(ms.parse().expect("hold ms"))),
    };
    let capacity = var(ENV_CAPACITY).parse().expect("capacity");
    let engine = worker_engine(store(&url).await, &me, capacity);
    register(&engine, &me, hold, events_pool(&url).await).expect("register");
    engine.start().await.expect("start the worker");
    println!("marker ready");
    let _ = tokio::task::spawn_blocking(|| {
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
    })
    .await;
    engine.shutdown().await;
}

/// A worker process and the markers it prints (`marker <name>` lines).
struct Worker {
    process: WorkerProcess,
    seen: HashSet<String>,
}

impl Worker {
    /// Starts worker `name` and waits until it is ready.
    async fn start(url: &str, name: &str, hold: &str, capacity: usize) -> Self {
        let process = WorkerProcess::spawn(
            "child_worker_process",
            &[
                (ENV_URL, url.to_owned()),
                (ENV_WORKER, name.to_owned()),
                (ENV_HOLD, hold.to_owned()),
                (ENV_CAPACITY, capacity.to_string()),
            ],
        );
        let mut worker = Self {
            process,
            seen: HashSet::new(),
        };
        worker.expect(&format!("{name} starting"), "ready").await;
        worker
    }

    /// Waits until the process has printed the marker `marker` (markers
    /// come in any order); panics if the process ends first.
    async fn expect(&mut self, what: &str, marker: &str) {
        let (lines, seen) = (&mut self.process.lines, &mut self.seen);
        within(what, async {
            while !seen.contains(marker) {
                match lines.recv().await {
                    // The test harness may print on the same line before it.
                    Some(line) => {
                        if let Some((_, found)) = line.split_once("marker ") {
                            seen.insert(found.to_owned());
                        }
                    }
                    None => panic!("the worker process ended before {what}"),
                }
            }
        })
        .await;
    }

    /// Closes stdin and waits for a clean exit.
    fn finish(self) {
        self.process.finish();
    }
}

/// An engine of this process that registers nothing: invokes and reads.
async fn client(url: &str) -> Engine {
    let engine = worker_engine(store(url).await, "client", 1);
    engine.start().await.expect("start the client");
    engine
}

/// The ids of the children of `batch/<id>` for `n` inputs, in input order.
fn child_ids(id: &str, n: usize) -> Vec<String> {
    let parent = InstanceKey::new("batch", id).unwrap();
    (0..n)
        .map(|i| child_instance_id(&parent, &format!("item.{i}")).unwrap())
        .collect()
}

/// The most closures of `work` running at once, from their `start` and
/// `end` events (a closure's run lies inside its child's life, so this is
/// at most the most children active at once).
fn most_at_once(events: &[Event]) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for event in events {
        match event.what.as_str() {
            "start" => now += 1,
            "end" => now -= 1,
            other => panic!("unknown event {other}"),
        }
        most = most.max(now);
    }
    most
}

/// Checks that `item` has exactly the children of `batch/<id>` (ids
/// derived, in input order), each completed with its output.
async fn check_children(client: &Engine, id: &str, inputs: &[u32]) {
    let expected = child_ids(id, inputs.len());
    let items = client
        .list_instances(&InstanceFilter::new().workflow("item"))
        .await
        .unwrap();
    let found: BTreeSet<&str> = items.iter().map(|m| m.instance_id.as_str()).collect();
    assert_eq!(
        found,
        expected.iter().map(String::as_str).collect(),
        "one child per input, under its derived id"
    );
    for meta in &items {
        assert!(
            matches!(meta.status, MetadataStatus::Completed(_)),
            "{meta:?}"
        );
    }
    for (child, n) in expected.iter().zip(inputs) {
        assert_eq!(ITEM.instance(client, child).output().await.unwrap(), n * 10);
    }
    let listed = client.children("batch", id).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|c| c.child.instance())
            .collect::<Vec<_>>(),
        {
            let mut sorted: Vec<&str> = expected.iter().map(String::as_str).collect();
            // `children` lists in step-key order: item.0, item.1, item.10, …
            sorted.sort_by_key(|id| id.rsplit_once(':').map(|(_, key)| key.to_owned()));
            sorted
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_over_three_workers_keeps_its_bound_and_its_order() {
    const N: u32 = 30;
    let url = database().await;
    let mut workers = Vec::new();
    for name in ["w0", "w1", "w2"] {
        workers.push(Worker::start(&url, name, "50", CAPACITY).await);
    }
    let client = client(&url).await;
    let inputs: Vec<u32> = (0..N).collect();

    // Sample the active children from this process while the batch runs.
    let done = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (client, done) = (client.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let (mut most, mut samples) = (0, 0);
            while done.load(Ordering::SeqCst) == 0 {
                let active = client
                    .list_instances(&InstanceFilter::new().workflow("item"))
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|m| !m.status.is_terminal())
                    .count();
                most = usize::max(most, active);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (most, samples)
        })
    };
    let batch = BATCH.invoke(&client, inputs.clone()).id("b").await.unwrap();
    let output = within("the batch's output", batch.output()).await.unwrap();
    done.store(1, Ordering::SeqCst);
    let (sampled_most, sample_count) = sampler.await.unwrap();

    let expected: Vec<u32> = inputs.iter().map(|n| n * 10).collect();
    assert_eq!(output, expected, "all outputs, in input order");
    assert!(
        sampled_most <= MAX_RUNNING,
        "{sampled_most} children active at once in {sample_count} samples"
    );
    let events = events(&url).await;
    let most = most_at_once(&events);
    assert!(
        most <= MAX_RUNNING,
        "{most} children ran at once: {events:?}"
    );
    assert!(
        most >= 2,
        "the children never ran side by side ({most} at most): the bound was not exercised"
    );
    // Every child's step ran once, to its end.
    let mut per_child: HashMap<&str, Vec<&str>> = HashMap::new();
    for event in &events {
        per_child
            .entry(event.child.as_str())
            .or_default()
            .push(event.what.as_str());
    }
    assert_eq!(per_child.len(), N as usize);
    assert!(
        per_child.values().all(|e| *e == ["start", "end"]),
        "{per_child:?}"
    );
    let ran_children: BTreeSet<&str> = events.iter().map(|e| e.worker.as_str()).collect();
    assert!(
        ran_children.len() >= 2,
        "only {ran_children:?} ran children"
    );
    check_children(&client, "b", &inputs).await;
    println!(
        "children ran on {ran_children:?}; at most {most} at once ({sampled_most} sampled in {sample_count})"
    );
    client.shutdown().await;
    for worker in workers {
        worker.finish();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_parents_worker_is_taken_over_and_every_child_completes_once() {
    const N: usize = 8;
    let url = database().await;
    let client = client(&url).await;
    // The victim runs the parent and the children it starts, holding each
    // inside its step: the parent waits, parked, for four children the
    // victim owns.
    let mut victim = Worker::start(&url, "victim", "forever", 8).await;
    let inputs: Vec<u32> = (1..=8).collect();
    let batch = BATCH.invoke(&client, inputs.clone()).id("k").await.unwrap();
    let ids = child_ids("k", N);
    for id in &ids[..MAX_RUNNING] {
        victim
            .expect(
                &format!("the victim running {id}"),
                &format!("entered {id}"),
            )
            .await;
    }
    // The parent's run parks once it started the four (they may enter
    // their step first).
    within("the parent parking", async {
        loop {
            let parent = client.get_metadata("batch", "k").await.unwrap().unwrap();
            match parent.status {
                MetadataStatus::Suspended { .. } => break,
                MetadataStatus::Running => tokio::time::sleep(Duration::from_millis(10)).await,
                other => panic!("the parent is {other:?}"),
            }
        }
    })
    .await;
    // Started only now, so the victim got every child it started.
    let heirs = [
        Worker::start(&url, "heir1", "0", CAPACITY).await,
        Worker::start(&url, "heir2", "0", CAPACITY).await,
    ];

    // SIGKILL, then the clock starts once the process is gone.
    victim.process.kill();
    let killed = Instant::now();
    let output = within("the batch's output", batch.output()).await.unwrap();
    let took = killed.elapsed();
    assert_eq!(output, inputs.iter().map(|n| n * 10).collect::<Vec<_>>());
    // A correctness bound, not a benchmark: the lease, a poll, and slack
    // for eight children and nine parent runs on a loaded machine.
    let bound = LEASE + POLL + Duration::from_secs(4);
    assert!(
        took <= bound,
        "the family took {took:?} to complete after the kill (bound {bound:?})"
    );

    let events = events(&url).await;
    let mut per_child: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for event in &events {
        per_child
            .entry(event.child.as_str())
            .or_default()
            .push((event.worker.as_str(), event.what.as_str()));
    }
    for (i, id) in ids.iter().enumerate() {
        let got = per_child.get(id.as_str()).cloned().unwrap_or_default();
        let ends: Vec<&str> = got
            .iter()
            .filter(|(_, e)| *e == "end")
            .map(|(w, _)| *w)
            .collect();
        assert_eq!(ends.len(), 1, "{id} ran to its end {got:?}");
        assert_ne!(ends[0], "victim", "{id}");
        if i < MAX_RUNNING {
            // Cut inside its step by the kill (never committed): run once
            // more by an heir, never a third time.
            assert_eq!(got.len(), 3, "{id}: {got:?}");
            assert_eq!(got[0], ("victim", "start"), "{id}: {got:?}");
        } else {
            assert_eq!(got.len(), 2, "{id}: {got:?}");
        }
    }
    assert_eq!(per_child.len(), N, "{per_child:?}");
    check_children(&client, "k", &inputs).await;
    println!("the family completed {took:?} after the kill");
    client.shutdown().await;
    for heir in heirs {
        heir.finish();
    }
}
