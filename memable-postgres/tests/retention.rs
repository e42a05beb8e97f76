//! Retention with two engines (workers) on one PostgreSQL database, both
//! applying the same policy: every old ended instance the policy matches
//! is deleted exactly once between them (the deletes they race on count
//! for one engine only), no sweep fails, each sweep stays within its
//! batch, and what the policy does not match stays.
//!
//! Both engines share one `ManualClock`, which times the sweeps and the
//! instances' end times; the workers' leases run on real time and the
//! database's clock as always.

mod common;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use memable_core::{
    Context, Engine, InstanceFilter, ManualClock, RetentionPolicy, RetentionRule, StatusKind,
    SuspendPoint, TerminalStatus,
};
use memable_postgres::{PostgresOptions, PostgresStore};
use memable_testkit::postgres::TestServer;

use common::within;

const PATIENCE: Duration = Duration::from_secs(30);
const MINUTE: Duration = Duration::from_secs(60);
const BATCH: usize = 50;

static GO: SuspendPoint<u32> = SuspendPoint::new("go");

fn database() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| TestServer::shared().database())
}

fn schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("retention_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A worker on its own handle of `schema`: `done` (completes), `fails`,
/// `waits` (for `go`); retention of ended `done` and `fails` after a minute
/// (`keep` is never matched).
async fn worker(schema: &str, name: &str, clock: &ManualClock) -> Engine {
    let store =
        PostgresStore::connect_with(PostgresOptions::new(database()).schema(schema).pool_size(4))
            .await
            .expect("connect");
    let policy = RetentionPolicy::new()
        .rule(
            RetentionRule::new(MINUTE)
                .workflow("done")
                .statuses([TerminalStatus::Completed]),
        )
        .rule(RetentionRule::new(MINUTE).workflow("fails"))
        .rule(RetentionRule::new(MINUTE).workflow("waits"))
        .batch_size(BATCH)
        .interval(MINUTE)
        .backlog_pause(Duration::from_secs(1));
    let engine = Engine::builder()
        .store(store)
        .clock(clock.clone())
        .worker_id(name)
        .poll_interval(Duration::from_millis(50))
        .retention(policy)
        .build();
    engine
        .register("done", |_ctx: Context| async { Ok(1u32) })
        .unwrap();
    engine
        .register("keep", |_ctx: Context| async { Ok(2u32) })
        .unwrap();
    engine
        .register_with_error("fails", |_ctx: Context| async {
            Err::<u32, _>("boom".to_string())
        })
        .unwrap();
    engine
        .register(
            "waits",
            |ctx: Context| async move { ctx.suspend(&GO).await },
        )
        .unwrap();
    engine
}

async fn count(engine: &Engine, workflow: &str) -> usize {
    engine
        .list_instances(&InstanceFilter::new().workflow(workflow))
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_apply_one_policy_and_delete_each_instance_once() {
    let schema = schema();
    let clock = ManualClock::new(1_000_000);
    let a = worker(&schema, "a", &clock).await;
    let b = worker(&schema, "b", &clock).await;
    let (mut stats_a, mut stats_b) = (a.retention_stats(), b.retention_stats());
    a.start().await.unwrap();
    b.start().await.unwrap();
    within("the first sweeps", PATIENCE, async {
        stats_a.wait_for(|s| s.sweeps >= 1).await.unwrap();
        stats_b.wait_for(|s| s.sweeps >= 1).await.unwrap();
    })
    .await;

    // 150 completed and 20 failed instances to delete; 10 completed `keep`
    // and 10 suspended `waits` to leave.
    let mut runs = Vec::new();
    for (workflow, n) in [("done", 150), ("fails", 20), ("keep", 10), ("waits", 10)] {
        for i in 0..n {
            let engine = if i % 2 == 0 { &a } else { &b };
            runs.push(engine.invoke(workflow).id(format!("{i:03}")).await.unwrap());
        }
    }
    within("every run to end or park", PATIENCE, async {
        for run in &runs {
            run.wait_idle().await.unwrap();
        }
    })
    .await;
    // No run winding down (a sweep would leave its instance to the next).
    a.wait_all().await;
    b.wait_all().await;
    assert_eq!(count(&a, "waits").await, 10);
    let waiting = a
        .list_instances(&InstanceFilter::new().status(StatusKind::Suspended))
        .await
        .unwrap();
    assert_eq!(waiting.len(), 10);

    // Each advance of a minute makes each engine sweep once.
    let mut sweeps = 1;
    for _ in 0..10 {
        clock.advance(MINUTE);
        sweeps += 1;
        let (sa, sb) = within("a sweep of each engine", PATIENCE, async {
            let sa = *stats_a.wait_for(|s| s.sweeps >= sweeps).await.unwrap();
            let sb = *stats_b.wait_for(|s| s.sweeps >= sweeps).await.unwrap();
            (sa, sb)
        })
        .await;
        assert!(sa.last_deleted <= BATCH && sb.last_deleted <= BATCH);
        assert_eq!((sa.failed_sweeps, sb.failed_sweeps), (0, 0));
        if count(&a, "done").await + count(&a, "fails").await == 0 {
            break;
        }
    }
    let (sa, sb) = (*stats_a.borrow(), *stats_b.borrow());
    assert_eq!(count(&a, "done").await, 0);
    assert_eq!(count(&a, "fails").await, 0);
    assert_eq!(
        sa.deleted + sb.deleted,
        170,
        "each instance counted once: {sa:?} {sb:?}"
    );
    assert_eq!(count(&b, "keep").await, 10);
    assert_eq!(count(&b, "waits").await, 10);
    assert_eq!((sa.failed_sweeps, sb.failed_sweeps), (0, 0));

    // A waiting instance that ends is deleted a minute later like the rest.
    let woken = b.signal("waits", "000", &GO, 1).await.unwrap();
    within("the signalled instance to end", PATIENCE, woken.wait_idle())
        .await
        .unwrap();
    a.wait_all().await;
    b.wait_all().await;
    clock.advance(2 * MINUTE);
    sweeps += 1;
    within("a sweep of each engine", PATIENCE, async {
        stats_a.wait_for(|s| s.sweeps >= sweeps).await.unwrap();
        stats_b.wait_for(|s| s.sweeps >= sweeps).await.unwrap();
    })
    .await;
    assert_eq!(count(&a, "waits").await, 9);
    let (sa, sb) = (*stats_a.borrow(), *stats_b.borrow());
    assert_eq!(sa.deleted + sb.deleted, 171);
    a.shutdown().await;
    b.shutdown().await;
}
