//! Workers in real processes on one PostgreSQL database: a worker paused
//! (`SIGSTOP`) inside a step past its lease must not land any write once it
//! goes on (`SIGCONT`) after another worker took its instance over; a
//! killed (`SIGKILL`) worker's running instances are completed by another
//! worker within its lease plus a poll (plus slack); a worker restarted
//! under the same id picks up what its previous process left.
//!
//! The worker processes are this test binary again, running the ignored
//! test [`child_worker_process`] with its settings in the environment. A
//! child prints `ready` once its engine started, `entered <instance>` when
//! a run enters step `a`, and `refused <instance> <op>` for every write the
//! store refused as stale (a fenced write whose epoch is no longer the
//! instance's); it runs until its stdin closes.
//!
//! The workflow `relay` commits `first`, then `a` (which holds for a while
//! in the process under test), then a step whose key names the worker,
//! `by-<worker>`; its output is `<first>+<a>+<by-…>`, each the id of the
//! worker whose closure produced it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use memable_core::{
    Context, Engine, EngineError, EngineSlot, InstanceFilter, InstanceKey, InstanceSnapshot,
    MetadataStatus, StepError, StepRecord, StepStore, TimerEntry, Workers, WorkflowMetadata,
    WriteOp, WriteOutcome, decode_record,
};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_testkit::postgres::TestServer;

mod common;

use common::WorkerProcess;

const PATIENCE: Duration = Duration::from_secs(30);
const LEASE: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(50);

const ENV_URL: &str = "MEMABLE_PROC_URL";
const ENV_SCHEMA: &str = "MEMABLE_PROC_SCHEMA";
const ENV_WORKER: &str = "MEMABLE_PROC_WORKER";
/// How long step `a` holds in the child, in ms; `forever` for never.
const ENV_HOLD: &str = "MEMABLE_PROC_HOLD";

fn database() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| TestServer::shared().database())
}

fn schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("processes_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn handle(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::connect_with(PostgresOptions::new(url).schema(schema).pool_size(2))
        .await
        .expect("connect to PostgreSQL")
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    common::within(what, PATIENCE, future).await
}

/// How long step `a` holds.
#[derive(Clone, Copy)]
enum Hold {
    For(Duration),
    Forever,
}

/// Registers `relay` as worker `me` runs it; `first_runs` counts the runs
/// of step `first`'s closure.
fn register_relay(engine: &Engine, me: &str, hold: Hold, first_runs: &Arc<AtomicUsize>) {
    let me: Arc<str> = Arc::from(me);
    let first_runs = Arc::clone(first_runs);
    engine
        .register("relay", move |ctx: Context| {
            let (me, first_runs) = (Arc::clone(&me), Arc::clone(&first_runs));
            async move {
                let id = ctx.instance_id().to_owned();
                let first: String = ctx
                    .step("first")
                    .run(|| {
                        first_runs.fetch_add(1, Ordering::SeqCst);
                        let me = me.to_string();
                        async move { Ok::<_, StepError>(me) }
                    })
                    .await?;
                let a: String = ctx
                    .step("a")
                    .run(|| {
                        println!("entered {id}");
                        let me = me.to_string();
                        async move {
                            match hold {
                                Hold::For(pause) => tokio::time::sleep(pause).await,
                                Hold::Forever => std::future::pending().await,
                            }
                            Ok::<_, StepError>(me)
                        }
                    })
                    .await?;
                let by: String = ctx
                    .step(format!("by-{me}"))
                    .run(|| {
                        let me = me.to_string();
                        async move { Ok::<_, StepError>(me) }
                    })
                    .await?;
                Ok(format!("{first}+{a}+{by}"))
            }
        })
        .expect("register relay");
}

fn worker_engine(store: Arc<dyn StepStore>, id: &str, capacity: usize) -> Engine {
    Engine::builder()
        .store(store)
        .worker_id(id)
        .lease(LEASE)
        .poll_interval(POLL)
        .capacity(capacity)
        .build()
}

/// The store of a child: prints every write refused as stale.
struct Reporting {
    inner: Arc<dyn StepStore>,
}

#[async_trait]
impl StepStore for Reporting {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        let what = match &op {
            WriteOp::Fenced { op, .. } => op.name(),
            other => other.name(),
        };
        let instance = op.key().to_string();
        let outcome = self.inner.write(op).await?;
        if matches!(outcome, WriteOutcome::Stale(_)) {
            println!("refused {instance} {what}");
        }
        Ok(outcome)
    }

    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        self.inner.load_instance(key).await
    }

    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.inner.get_step(key, step_key).await
    }

    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.inner.get_metadata(key).await
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        self.inner.list_instances(filter).await
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        self.inner.due_timers(now_ms, limit).await
    }

    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        self.inner.next_timer_deadline().await
    }

    fn engine_slot(&self) -> &EngineSlot {
        self.inner.engine_slot()
    }

    fn workers(&self) -> Option<&dyn Workers> {
        self.inner.workers()
    }
}

/// The worker process the other tests start (see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the other tests of this file, started by them"]
async fn child_worker_process() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (url, schema, me) = (var(ENV_URL), var(ENV_SCHEMA), var(ENV_WORKER));
    let hold = match var(ENV_HOLD).as_str() {
        "forever" => Hold::Forever,
        ms => Hold::For(Duration::from_millis(ms.parse().expect("hold ms"))),
    };
    let store = Arc::new(Reporting {
        inner: Arc::new(handle(&url, &schema).await),
    });
    let engine = worker_engine(store, &me, 64);
    register_relay(&engine, &me, hold, &Arc::default());
    engine.start().await.expect("start the worker");
    println!("ready");
    let _ = tokio::task::spawn_blocking(|| {
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
    })
    .await;
    engine.shutdown().await;
}

/// Starts worker `worker` on `schema`, step `a` holding `hold` (ms, or
/// `forever`).
fn spawn_worker(schema: &str, worker: &str, hold: &str) -> WorkerProcess {
    WorkerProcess::spawn(
        "child_worker_process",
        &[
            (ENV_URL, database().to_owned()),
            (ENV_SCHEMA, schema.to_owned()),
            (ENV_WORKER, worker.to_owned()),
            (ENV_HOLD, hold.to_owned()),
        ],
    )
}

/// An engine of this process that registers nothing: invokes and reads.
async fn client(schema: &str) -> Engine {
    let engine = worker_engine(Arc::new(handle(database(), schema).await), "client", 1);
    engine.start().await.expect("start the client");
    engine
}

async fn output_of(engine: &Engine, id: &str) -> String {
    within(&format!("the output of relay/{id}"), async {
        loop {
            if let Ok(output) = engine.output::<String>("relay", id).await {
                return output;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

fn step_value(snapshot: &InstanceSnapshot, key: &str) -> Option<String> {
    snapshot
        .step(key)
        .map(|record| decode_record::<String>(key, record).expect("a String step value"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_past_its_lease_lands_none_of_its_writes() {
    let schema = schema();
    let mut zombie = spawn_worker(&schema, "zombie", "400");
    zombie
        .expect_line("the zombie starting", PATIENCE, |l| l == "ready")
        .await;
    let client = client(&schema).await;
    drop(client.invoke("relay").id("z").await.unwrap());
    zombie
        .expect_line("the zombie entering step a", PATIENCE, |l| l == "entered z")
        .await;
    // Paused inside step `a`, with `first` committed under its epoch.
    zombie.signal("-STOP");
    let stopped = Instant::now();

    let heir = worker_engine(Arc::new(handle(database(), &schema).await), "heir", 8);
    let heir_first_runs = Arc::new(AtomicUsize::new(0));
    register_relay(&heir, "heir", Hold::For(Duration::ZERO), &heir_first_runs);
    heir.start().await.unwrap();
    assert_eq!(output_of(&heir, "z").await, "zombie+heir+heir");
    // The zombie's last heartbeat (every third of the lease) came at most
    // a third of the lease before the stop.
    assert!(
        stopped.elapsed() >= LEASE * 2 / 3,
        "the heir took the instance over while the zombie was alive ({:?} after the stop)",
        stopped.elapsed()
    );

    // The zombie goes on: its `a` returns at once (its pause is over) and
    // its commit must be refused.
    zombie.signal("-CONT");
    let refused = zombie
        .expect_line("the zombie's write being refused", PATIENCE, |l| {
            l.starts_with("refused ")
        })
        .await;
    assert_eq!(refused, "refused relay/z commit_step", "{refused}");
    zombie.finish();
    heir.shutdown().await;

    // The zombie is gone: what is stored now is final.
    let store = handle(database(), &schema).await;
    let key = InstanceKey::new("relay", "z").unwrap();
    let snapshot = store.load_instance(&key).await.unwrap().expect("instance");
    assert_eq!(step_value(&snapshot, "first").as_deref(), Some("zombie"));
    assert_eq!(step_value(&snapshot, "a").as_deref(), Some("heir"));
    assert_eq!(step_value(&snapshot, "by-heir").as_deref(), Some("heir"));
    assert!(
        snapshot.step("by-zombie").is_none(),
        "the zombie committed a step after losing the instance"
    );
    assert!(matches!(
        store.get_metadata(&key).await.unwrap().unwrap().status,
        MetadataStatus::Completed(_)
    ));
    assert_eq!(
        client.output::<String>("relay", "z").await.unwrap(),
        "zombie+heir+heir"
    );
    assert_eq!(heir_first_runs.load(Ordering::SeqCst), 0);
    client.shutdown().await;
}

/// Starts a worker process `name` holding `n` instances inside step `a`
/// (held forever), invoked by `client`; returns it once all are entered.
async fn worker_holding(schema: &str, name: &str, client: &Engine, n: usize) -> WorkerProcess {
    let mut worker = spawn_worker(schema, name, "forever");
    worker
        .expect_line("the worker starting", PATIENCE, |l| l == "ready")
        .await;
    for i in 0..n {
        drop(client.invoke("relay").id(format!("k{i}")).await.unwrap());
    }
    for _ in 0..n {
        worker
            .expect_line("the worker entering step a", PATIENCE, |l| {
                l.starts_with("entered k")
            })
            .await;
    }
    worker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_running_instances_complete_elsewhere_within_its_lease() {
    const N: usize = 20;
    let schema = schema();
    let client = client(&schema).await;
    let mut victim = worker_holding(&schema, "victim", &client, N).await;
    let heir = worker_engine(Arc::new(handle(database(), &schema).await), "heir", 64);
    let heir_first_runs = Arc::new(AtomicUsize::new(0));
    register_relay(&heir, "heir", Hold::For(Duration::ZERO), &heir_first_runs);
    heir.start().await.unwrap();

    // SIGKILL, then the clock starts once the process is gone.
    victim.kill();
    let killed = Instant::now();
    for i in 0..N {
        assert_eq!(
            output_of(&heir, &format!("k{i}")).await,
            "victim+heir+heir",
            "k{i}: the victim's committed `first` must be kept"
        );
    }
    let took = killed.elapsed();
    // A correctness bound, not a benchmark: lease + poll + slack.
    let bound = LEASE + POLL + Duration::from_secs(2);
    assert!(
        took <= bound,
        "{N} instances took {took:?} to complete elsewhere (bound {bound:?})"
    );
    assert_eq!(
        heir_first_runs.load(Ordering::SeqCst),
        0,
        "a committed step ran again"
    );
    heir.shutdown().await;
    client.shutdown().await;
}

/// Fails today (reported to the lead): the restarted process's heartbeat
/// renews the lease of the id the dead process's instances are owned by,
/// and `acquire_runnable` skips instances whose owner is a live worker —
/// itself included — so nobody takes them while the new process lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_under_the_same_id_completes_what_its_last_process_left() {
    const N: usize = 3;
    let schema = schema();
    let client = client(&schema).await;
    let mut first = worker_holding(&schema, "same", &client, N).await;
    first.kill();
    drop(first);
    let mut again = spawn_worker(&schema, "same", "0");
    again
        .expect_line("the restart starting", PATIENCE, |l| l == "ready")
        .await;
    for i in 0..N {
        assert_eq!(output_of(&client, &format!("k{i}")).await, "same+same+same");
    }
    again.finish();
    client.shutdown().await;
}
