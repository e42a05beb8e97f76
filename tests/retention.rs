//! Retention on every backend (see `support`): a started engine with a
//! `RetentionPolicy` deletes, in the background on its clock, exactly the
//! ended instances that a rule matches by workflow, terminal status and
//! age — never a running or suspended one — in batches of at most the
//! batch size, one batch per sweep; `list_instances` filters by age; an
//! ended child can go while its parent keeps the child's output, and an
//! ended parent can go while its detached child runs on; the sweeps stop
//! with the engine.
//!
//! Time is a `ManualClock`: a sweep happens when the test moves the clock
//! past the next sweep's time, and the test waits for it on
//! `Engine::retention_stats` — no sleeps.

mod support;

use std::time::Duration;

use memable::{
    Context, Engine, EngineError, InstanceFilter, ManualClock, RetentionPolicy, RetentionRule,
    RetentionStats, StatusKind, SuspendPoint, TerminalStatus, Workflow,
};
use tokio::sync::watch;

use support::backend_tests;

const MINUTE: Duration = Duration::from_secs(60);
const T0: u64 = 1_000_000;

static GO: SuspendPoint<u32> = SuspendPoint::new("go");

/// What a test instance does, by its input.
const COMPLETE: u32 = 0;
const FAIL: u32 = 1;
const WAIT: u32 = 2;

/// `etl` and `report`: complete, fail, or wait for `go` then complete.
fn engine(backend: &support::Backend, clock: &ManualClock, policy: RetentionPolicy) -> Engine {
    let engine = Engine::builder()
        .store(backend.store())
        .clock(clock.clone())
        .retention(policy)
        .build();
    for name in ["etl", "report"] {
        engine
            .register_with_error(name, |ctx: Context| async move {
                let mode: u32 = ctx.input().map_err(|e| e.to_string())?;
                match mode {
                    FAIL => Err("boom".to_string()),
                    WAIT => ctx.suspend(&GO).await.map_err(|e| e.to_string()),
                    _ => Ok(mode),
                }
            })
            .unwrap();
    }
    engine
}

/// Invokes `workflow/id` with `mode` and waits until it ended or parked
/// and its run is over (a sweep leaves an instance whose run is still in
/// progress, also one winding down after its end, for the next sweep).
async fn run(engine: &Engine, workflow: &str, id: &str, mode: u32) {
    engine
        .invoke(workflow)
        .id(id)
        .input(mode)
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();
    engine.wait_all().await;
}

/// Moves the clock by `by` and waits for the sweep it triggers (the
/// `sweeps`-th); its stats.
async fn sweep_after(
    clock: &ManualClock,
    stats: &mut watch::Receiver<RetentionStats>,
    by: Duration,
    sweeps: u64,
) -> RetentionStats {
    clock.advance(by);
    *stats.wait_for(|s| s.sweeps >= sweeps).await.unwrap()
}

/// The `(workflow, instance)` of every instance, in listing order.
async fn keys(engine: &Engine) -> Vec<(String, String)> {
    engine
        .list_instances(&InstanceFilter::new())
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.workflow_name, m.instance_id))
        .collect()
}

fn k(workflow: &str, instance: &str) -> (String, String) {
    (workflow.to_owned(), instance.to_owned())
}

backend_tests! {
    /// Rule 1: `etl`, completed or failed, 1 h; rule 2: every workflow,
    /// cancelled, 2 h. Each instance goes exactly when a rule matches it
    /// and it is old enough; the suspended one and `report`'s completed one
    /// never go, until the suspended one ends and ages.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_matching_workflow_status_and_age_are_deleted(backend) {
        let clock = ManualClock::new(T0);
        let policy = RetentionPolicy::new()
            .rule(
                RetentionRule::new(60 * MINUTE)
                    .workflow("etl")
                    .statuses([TerminalStatus::Completed, TerminalStatus::Failed]),
            )
            .rule(RetentionRule::new(120 * MINUTE).statuses([TerminalStatus::Cancelled]))
            .interval(MINUTE);
        let engine = engine(&backend, &clock, policy);
        let mut stats = engine.retention_stats();
        engine.start().await.unwrap();
        stats.wait_for(|s| s.sweeps >= 1).await.unwrap();

        run(&engine, "etl", "done", COMPLETE).await;
        run(&engine, "etl", "failed", FAIL).await;
        run(&engine, "etl", "cancelled", WAIT).await;
        engine.cancel("etl", "cancelled").await.unwrap();
        run(&engine, "etl", "waiting", WAIT).await;
        run(&engine, "report", "done", COMPLETE).await;
        run(&engine, "report", "cancelled", WAIT).await;
        engine.cancel("report", "cancelled").await.unwrap();
        let all = keys(&engine).await;
        assert_eq!(all.len(), 6, "{backend}");

        // 30 min: nothing is old enough.
        let s = sweep_after(&clock, &mut stats, 30 * MINUTE, 2).await;
        assert_eq!(s.deleted, 0, "{backend}");
        run(&engine, "etl", "late", COMPLETE).await; // ends at T0 + 30 min
        assert_eq!(keys(&engine).await.len(), 7, "{backend}");

        // 61 min: etl's completed and failed instances from T0.
        let s = sweep_after(&clock, &mut stats, 31 * MINUTE, 3).await;
        assert_eq!((s.last_deleted, s.deleted), (2, 2), "{backend}");
        let left = keys(&engine).await;
        assert!(!left.contains(&k("etl", "done")) && !left.contains(&k("etl", "failed")));
        assert_eq!(left.len(), 5, "{backend}: {left:?}");

        // 91 min: `late` is 61 min old.
        let s = sweep_after(&clock, &mut stats, 30 * MINUTE, 4).await;
        assert_eq!(s.last_deleted, 1, "{backend}");
        assert!(!keys(&engine).await.contains(&k("etl", "late")));

        // 121 min: the cancelled ones of both workflows.
        let s = sweep_after(&clock, &mut stats, 30 * MINUTE, 5).await;
        assert_eq!((s.last_deleted, s.deleted), (2, 5), "{backend}");
        assert_eq!(
            keys(&engine).await,
            vec![k("etl", "waiting"), k("report", "done")],
            "{backend}"
        );

        // Much later: the suspended instance and report's completed one stay.
        let s = sweep_after(&clock, &mut stats, 1_000 * 60 * MINUTE, 6).await;
        assert_eq!(s.deleted, 5, "{backend}");
        assert_eq!(keys(&engine).await.len(), 2, "{backend}");
        let waiting = engine.get_metadata("etl", "waiting").await.unwrap().unwrap();
        assert_eq!(waiting.status.kind(), StatusKind::Suspended);

        // Once it ends, it goes an hour later like any completed etl.
        let woken = engine.signal("etl", "waiting", &GO, 7).await.unwrap();
        woken.wait_idle().await.unwrap();
        engine.wait_all().await;
        let s = sweep_after(&clock, &mut stats, 30 * MINUTE, 7).await;
        assert_eq!(s.deleted, 5, "{backend}");
        let s = sweep_after(&clock, &mut stats, 31 * MINUTE, 8).await;
        assert_eq!(s.deleted, 6, "{backend}");
        assert_eq!(keys(&engine).await, vec![k("report", "done")], "{backend}");
        assert_eq!(s.failed_sweeps, 0);
        engine.shutdown().await;
    }

    /// 250 old instances with a batch of 100: one sweep deletes 100, the
    /// next follows after the backlog pause (not the interval), and the
    /// counts in between are 150, 50, 0.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn old_instances_go_in_bounded_batches(backend) {
        let clock = ManualClock::new(T0);
        let policy = RetentionPolicy::new()
            .rule(RetentionRule::new(10 * MINUTE))
            .batch_size(100)
            .interval(60 * MINUTE)
            .backlog_pause(Duration::from_secs(1));
        let engine = engine(&backend, &clock, policy);
        let mut stats = engine.retention_stats();
        engine.start().await.unwrap();
        stats.wait_for(|s| s.sweeps >= 1).await.unwrap();
        let runs = futures_util::future::join_all((0..250).map(|i| {
            let engine = engine.clone();
            async move { run(&engine, "etl", &format!("{i:03}"), COMPLETE).await }
        }));
        runs.await;
        let count = || async { keys(&engine).await.len() };
        assert_eq!(count().await, 250, "{backend}");

        let s = sweep_after(&clock, &mut stats, 60 * MINUTE, 2).await;
        assert_eq!(s.last_deleted, 100, "{backend}");
        assert_eq!(count().await, 150, "{backend}");
        // The batch was full: the next sweep is one second later.
        let s = sweep_after(&clock, &mut stats, Duration::from_secs(1), 3).await;
        assert_eq!(s.last_deleted, 100, "{backend}");
        assert_eq!(count().await, 50, "{backend}");
        let s = sweep_after(&clock, &mut stats, Duration::from_secs(1), 4).await;
        assert_eq!((s.last_deleted, s.deleted), (50, 250), "{backend}");
        assert_eq!(count().await, 0, "{backend}");
        engine.shutdown().await;
    }

    /// `list_instances` by creation time (half-open) and end time, through
    /// the engine.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn list_instances_filters_by_age(backend) {
        let clock = ManualClock::new(T0);
        let engine = engine(&backend, &clock, RetentionPolicy::new());
        engine.start().await.unwrap();
        run(&engine, "etl", "a", COMPLETE).await; // created and ended at T0
        clock.set(T0 + 1_000);
        run(&engine, "etl", "b", WAIT).await; // created T0 + 1 s, not ended
        clock.set(T0 + 2_000);
        run(&engine, "etl", "c", FAIL).await; // created and ended T0 + 2 s
        clock.set(T0 + 3_000);
        let woken = engine.signal("etl", "b", &GO, 1).await.unwrap(); // b ends at T0 + 3 s
        woken.wait_idle().await.unwrap();
        engine.wait_all().await;
        run(&engine, "etl", "d", WAIT).await; // created T0 + 3 s, waiting

        let ids = |filter: InstanceFilter| {
            let engine = engine.clone();
            async move {
                engine
                    .list_instances(&filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|m| m.instance_id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(ids(InstanceFilter::new().created_before(T0 + 2_000)).await, ["a", "b"]);
        assert_eq!(ids(InstanceFilter::new().created_since(T0 + 2_000)).await, ["c", "d"]);
        assert_eq!(
            ids(InstanceFilter::new().created_since(T0 + 1_000).created_before(T0 + 3_000)).await,
            ["b", "c"]
        );
        assert_eq!(ids(InstanceFilter::new().ended_before(T0 + 2_001)).await, ["a", "c"]);
        assert_eq!(ids(InstanceFilter::new().ended_before(T0 + 3_001)).await, ["a", "b", "c"]);
        assert_eq!(
            ids(InstanceFilter::new().ended_before(u64::MAX).status(StatusKind::Failed)).await,
            ["c"]
        );
        assert_eq!(ids(InstanceFilter::new().ended_before(u64::MAX).limit(2)).await, ["a", "b"]);
        engine.shutdown().await;
    }

    /// An ended child may go while its parent still runs: the parent's
    /// point holds the child's output, so the parent's next run replays it
    /// without the child. An ended parent may go while its detached child
    /// still waits: the child runs on to its end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn family_members_go_without_breaking_the_others(backend) {
        static KID: Workflow<u32, u32> = Workflow::new("kid");
        static PARENT: Workflow<u32, u32> = Workflow::new("parent");
        static SPAWNER: Workflow<u32, u32> = Workflow::new("spawner");
        let clock = ManualClock::new(T0);
        let policy = RetentionPolicy::new()
            .rule(RetentionRule::new(MINUTE).workflow("kid"))
            .rule(RetentionRule::new(MINUTE).workflow("spawner"))
            .interval(MINUTE);
        let engine = Engine::builder()
            .store(backend.store())
            .clock(clock.clone())
            .retention(policy)
            .build();
        KID.register(&engine, |ctx: Context, n: u32| async move {
            if n == 0 {
                Ok(ctx.suspend(&GO).await?) // detached: waits
            } else {
                Ok(n * 10)
            }
        })
        .unwrap();
        PARENT
            .register(&engine, |ctx: Context, n: u32| async move {
                let from_child = ctx.child(&KID, "k", n).await?;
                let more = ctx.suspend(&GO).await?;
                Ok(from_child + more)
            })
            .unwrap();
        SPAWNER
            .register(&engine, |ctx: Context, _n: u32| async move {
                ctx.child(&KID, "bg", 0).detached().await?;
                Ok(1)
            })
            .unwrap();
        let mut stats = engine.retention_stats();
        engine.start().await.unwrap();
        stats.wait_for(|s| s.sweeps >= 1).await.unwrap();

        let parent = PARENT.invoke(&engine, 4).id("p").await.unwrap();
        parent.wait_idle().await.unwrap(); // the child ended; parent waits at `go`
        let spawner = SPAWNER.invoke(&engine, 0).id("s").await.unwrap();
        spawner.wait_idle().await.unwrap(); // ended; its detached child waits
        engine.wait_all().await;
        let kids = engine
            .list_instances(&InstanceFilter::new().workflow("kid"))
            .await
            .unwrap();
        assert_eq!(kids.len(), 2, "{backend}");

        let s = sweep_after(&clock, &mut stats, 2 * MINUTE, 2).await;
        // The awaited child (ended) and the spawner (ended) went; the
        // waiting detached child and the waiting parent stayed.
        assert_eq!(s.deleted, 2, "{backend}");
        let left = keys(&engine).await;
        assert_eq!(left.len(), 2, "{backend}: {left:?}");
        assert!(left.contains(&k("parent", "p")), "{backend}: {left:?}");
        assert!(engine.get_metadata("spawner", "s").await.unwrap().is_none());

        // The parent runs again from the top and replays the child's output.
        let woken = engine.signal("parent", "p", &GO, 2).await.unwrap();
        assert_eq!(woken.wait_output::<u32>().await.unwrap(), 42, "{backend}");
        // The detached child of the deleted spawner ends normally.
        let orphan = &left.iter().find(|(w, _)| w == "kid").unwrap().1;
        let woken = engine.signal("kid", orphan, &GO, 5).await.unwrap();
        assert_eq!(woken.wait_output::<u32>().await.unwrap(), 5, "{backend}");
        engine.shutdown().await;
    }

    /// Shutdown ends the sweeps: a manual sweep is refused, and the store
    /// (a file store: its lock) is free to open again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweeps_stop_with_the_engine(backend) {
        let clock = ManualClock::new(T0);
        let policy = RetentionPolicy::new().rule(RetentionRule::new(MINUTE));
        let engine = engine(&backend, &clock, policy);
        let mut stats = engine.retention_stats();
        engine.start().await.unwrap();
        stats.wait_for(|s| s.sweeps >= 1).await.unwrap();
        run(&engine, "etl", "x", COMPLETE).await;
        assert_eq!(engine.sweep_retention().await.unwrap(), 0, "too young");
        engine.shutdown().await;
        assert!(matches!(engine.sweep_retention().await, Err(EngineError::Stopped)));
        drop(engine);
        backend.reopen().unwrap();
        let clock = ManualClock::new(T0 + 2 * 60_000);
        let engine = self::engine(&backend, &clock, RetentionPolicy::new().rule(RetentionRule::new(MINUTE)));
        // Before start: a manual sweep on the reopened store works.
        assert_eq!(engine.sweep_retention().await.unwrap(), 1, "{backend}");
        assert!(engine.get_metadata("etl", "x").await.unwrap().is_none());
    }
}
