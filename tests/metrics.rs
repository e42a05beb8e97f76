//! The metrics of feature `metrics` (docs/observability.md, "Metrics"),
//! read through `metrics-util`'s debugging recorder: runs started and
//! finished by outcome, step attempts by outcome with their latency,
//! steps committed, retries, dead letters, timers fired, a queue's depth
//! and admissions, group-commit batch sizes of a redb file store, and
//! retention's deletions — each checked against what the workflows did.
//!
//! The recorder is global to this test binary; its snapshots drain what
//! they read, so every test merges them into one shared tally
//! ([`collect`]) and reads only its own workflows' labels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use memable::{
    AutoAdvanceClock, Context, Engine, EngineError, ManualClock, Queue, RetentionPolicy,
    RetentionRule, RetryPolicy, StepError, SuspendPoint,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::sync::{Notify, Semaphore};

/// What one metric (name and labels) has recorded since the binary began.
#[derive(Clone, Debug, Default)]
struct Tally {
    counter: u64,
    /// Every gauge value a snapshot saw, in order.
    gauges: Vec<f64>,
    samples: Vec<f64>,
}

type Labels = Vec<(String, String)>;

fn snapshotter() -> &'static Snapshotter {
    static SNAP: OnceLock<Snapshotter> = OnceLock::new();
    SNAP.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this binary");
        snapshotter
    })
}

fn tallies() -> &'static Mutex<HashMap<(String, Labels), Tally>> {
    static TALLY: OnceLock<Mutex<HashMap<(String, Labels), Tally>>> = OnceLock::new();
    TALLY.get_or_init(Mutex::default)
}

/// Merges a fresh snapshot into the shared tally.
fn collect() {
    let snapshot = snapshotter().snapshot().into_vec();
    let mut tallies = tallies().lock().unwrap();
    for (key, _, _, value) in snapshot {
        let key = key.key();
        let mut labels: Labels = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let tally = tallies.entry((key.name().to_owned(), labels)).or_default();
        match value {
            DebugValue::Counter(n) => tally.counter += n,
            DebugValue::Gauge(v) => tally.gauges.push(v.into_inner()),
            DebugValue::Histogram(values) => {
                tally
                    .samples
                    .extend(values.into_iter().map(ordered_float_value));
            }
        }
    }
}

fn ordered_float_value(v: impl Into<f64>) -> f64 {
    v.into()
}

/// The tally of `name` with exactly `labels`, after collecting.
fn tally(name: &str, labels: &[(&str, &str)]) -> Tally {
    collect();
    let mut labels: Labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    tallies()
        .lock()
        .unwrap()
        .get(&(name.to_owned(), labels))
        .cloned()
        .unwrap_or_default()
}

fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    tally(name, labels).counter
}

fn samples(name: &str, labels: &[(&str, &str)]) -> usize {
    tally(name, labels).samples.len()
}

static GO: SuspendPoint<u32> = SuspendPoint::new("go");

fn engine_with_workflows(clock: &AutoAdvanceClock) -> Engine {
    snapshotter();
    let engine = Engine::builder().in_memory().clock(clock.clone()).build();
    engine
        .register("m_ok", |ctx: Context| async move {
            let a = ctx
                .step("a")
                .run(|| async { Ok::<_, StepError>(1u32) })
                .await?;
            let b = ctx
                .step("b")
                .run(|| async { Ok::<_, StepError>(2u32) })
                .await?;
            Ok(a + b)
        })
        .unwrap();
    let tries = Arc::new(Mutex::new(0u32));
    engine
        .register("m_flaky", move |ctx: Context| {
            let tries = Arc::clone(&tries);
            async move {
                ctx.step("call")
                    .retry(RetryPolicy::fixed(5, Duration::from_secs(1)))
                    .run(|| {
                        let tries = Arc::clone(&tries);
                        async move {
                            let mut n = tries.lock().unwrap();
                            *n += 1;
                            if *n <= 2 {
                                Err(StepError::retryable("503"))
                            } else {
                                Ok(*n)
                            }
                        }
                    })
                    .await
            }
        })
        .unwrap();
    engine
        .register("m_dead", |ctx: Context| async move {
            ctx.step("call")
                .retry(RetryPolicy::fixed(2, Duration::from_secs(1)))
                .run(|| async { Err::<u32, _>(StepError::retryable("503")) })
                .await
        })
        .unwrap();
    engine
        .register("m_perm", |ctx: Context| async move {
            ctx.step("call")
                .run(|| async { Err::<u32, _>(StepError::permanent("400")) })
                .await
        })
        .unwrap();
    engine
        .register(
            "m_wait",
            |ctx: Context| async move { ctx.suspend(&GO).await },
        )
        .unwrap();
    engine
        .register("m_timer", |ctx: Context| async move {
            ctx.timer("nap", Duration::from_secs(3600)).await?;
            Ok(1u32)
        })
        .unwrap();
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one scenario, checked metric by metric
async fn runs_steps_retries_dead_letters_and_timers_are_counted() {
    let clock = AutoAdvanceClock::new(1_000_000);
    let engine = engine_with_workflows(&clock);
    engine.start().await.unwrap();
    assert_eq!(
        engine
            .invoke("m_ok")
            .await
            .unwrap()
            .wait_output::<u32>()
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        engine
            .invoke("m_flaky")
            .await
            .unwrap()
            .wait_output::<u32>()
            .await
            .unwrap(),
        3
    );
    let dead = engine
        .invoke("m_dead")
        .await
        .unwrap()
        .wait_output::<u32>()
        .await;
    assert!(
        matches!(dead, Err(EngineError::WorkflowFailed { .. })),
        "{dead:?}"
    );
    let perm = engine
        .invoke("m_perm")
        .await
        .unwrap()
        .wait_output::<u32>()
        .await;
    assert!(
        matches!(perm, Err(EngineError::WorkflowFailed { .. })),
        "{perm:?}"
    );
    let waiting = engine.invoke("m_wait").id("w").await.unwrap();
    waiting.wait_idle().await.unwrap();
    let woken = engine.signal("m_wait", "w", &GO, 9).await.unwrap();
    assert_eq!(woken.wait_output::<u32>().await.unwrap(), 9);
    assert_eq!(
        engine
            .invoke("m_timer")
            .await
            .unwrap()
            .wait_output::<u32>()
            .await
            .unwrap(),
        1
    );
    engine.shutdown().await;

    let finished = |w: &str, outcome: &str| {
        counter(
            "memable_runs_finished_total",
            &[("workflow", w), ("outcome", outcome)],
        )
    };
    let started = |w: &str| counter("memable_runs_started_total", &[("workflow", w)]);
    for w in ["m_ok", "m_flaky", "m_dead", "m_perm"] {
        assert_eq!(started(w), 1, "{w}");
    }
    assert_eq!(finished("m_ok", "completed"), 1);
    assert_eq!(finished("m_flaky", "completed"), 1);
    assert_eq!(finished("m_dead", "failed"), 1);
    assert_eq!(finished("m_perm", "failed"), 1);
    // Parked once, then run again by the signal to its end.
    assert_eq!(started("m_wait"), 2);
    assert_eq!(finished("m_wait", "suspended"), 1);
    assert_eq!(finished("m_wait", "completed"), 1);
    // Parked at the timer, run again when it fired.
    assert_eq!(started("m_timer"), 2);
    assert_eq!(
        counter("memable_timers_fired_total", &[("workflow", "m_timer")]),
        1
    );
    assert_eq!(
        samples(
            "memable_run_duration_seconds",
            &[("workflow", "m_wait"), ("outcome", "suspended")]
        ),
        1
    );

    let attempts = |w: &str, outcome: &str| {
        samples(
            "memable_step_attempt_duration_seconds",
            &[("workflow", w), ("outcome", outcome)],
        )
    };
    let committed = |w: &str| counter("memable_steps_committed_total", &[("workflow", w)]);
    let retries = |w: &str| counter("memable_step_retries_total", &[("workflow", w)]);
    let dead_letters = |w: &str| counter("memable_step_dead_letters_total", &[("workflow", w)]);
    assert_eq!((attempts("m_ok", "ok"), committed("m_ok")), (2, 2));
    assert_eq!(attempts("m_flaky", "retryable"), 2);
    assert_eq!(attempts("m_flaky", "ok"), 1);
    assert_eq!((committed("m_flaky"), retries("m_flaky")), (1, 2));
    assert_eq!(dead_letters("m_flaky"), 0);
    assert_eq!(attempts("m_dead", "retryable"), 2);
    assert_eq!((retries("m_dead"), dead_letters("m_dead")), (1, 1));
    assert_eq!(committed("m_dead"), 0);
    assert_eq!(attempts("m_perm", "permanent"), 1);
    assert_eq!((retries("m_perm"), dead_letters("m_perm")), (0, 0));
    let latencies = tally(
        "memable_step_attempt_duration_seconds",
        &[("workflow", "m_ok"), ("outcome", "ok")],
    );
    assert!(latencies.samples.iter().all(|s| *s >= 0.0 && *s < 60.0));
}

/// A timed-out attempt is its own outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_attempt_is_labelled_timeout() {
    snapshotter();
    let engine = Engine::builder().in_memory().build();
    engine
        .register("m_slow", |ctx: Context| async move {
            ctx.step("slow")
                .timeout(Duration::from_millis(5))
                .no_retry()
                .run(std::future::pending::<Result<u32, StepError>>)
                .await
        })
        .unwrap();
    engine.start().await.unwrap();
    let out = engine
        .invoke("m_slow")
        .await
        .unwrap()
        .wait_output::<u32>()
        .await;
    assert!(matches!(out, Err(EngineError::WorkflowFailed { .. })));
    engine.shutdown().await;
    let labels = [("workflow", "m_slow"), ("outcome", "timeout")];
    assert_eq!(samples("memable_step_attempt_duration_seconds", &labels), 1);
    assert_eq!(
        counter("memable_step_dead_letters_total", &[("workflow", "m_slow")]),
        1
    );
}

/// A queue of concurrency 1 with one instance running and two waiting
/// shows a depth of 2; all three are admitted in the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_and_admissions() {
    snapshotter();
    let engine = Engine::builder()
        .in_memory()
        .queue(Queue::new("m_queue").concurrency(1).default_for("m_q"))
        .build();
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Notify::new());
    let (g, e) = (Arc::clone(&gate), Arc::clone(&entered));
    engine
        .register("m_q", move |ctx: Context| {
            let (gate, entered) = (Arc::clone(&g), Arc::clone(&e));
            async move {
                ctx.step("work")
                    .run(|| {
                        let (gate, entered) = (Arc::clone(&gate), Arc::clone(&entered));
                        async move {
                            entered.notify_one();
                            let _permit = gate.acquire().await.map_err(StepError::permanent)?;
                            Ok::<_, StepError>(1u32)
                        }
                    })
                    .await
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let first = engine.invoke("m_q").id("0").await.unwrap();
    entered.notified().await;
    let rest = [
        engine.invoke("m_q").id("1").await.unwrap(),
        engine.invoke("m_q").id("2").await.unwrap(),
    ];
    // The admission after the second enqueue sees both waiting.
    tokio::time::timeout(Duration::from_secs(20), async {
        while !tally("memable_queue_depth", &[("queue", "m_queue")])
            .gauges
            .contains(&2.0)
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a depth of 2 is recorded");
    gate.add_permits(3);
    first.wait_output::<u32>().await.unwrap();
    for run in rest {
        run.wait_output::<u32>().await.unwrap();
    }
    engine.shutdown().await;
    assert_eq!(
        counter("memable_queue_admitted_total", &[("queue", "m_queue")]),
        3
    );
}

/// A redb file store records each group commit's size; together the
/// batches hold every write the runs made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_batches_of_a_file_store() {
    snapshotter();
    let dir = tempfile::tempdir().unwrap();
    let store = memable::redb::RedbStore::open(dir.path().join("m.redb")).unwrap();
    let engine = Engine::builder().store(store).build();
    engine
        .register("m_batch", |ctx: Context| async move {
            ctx.step("s")
                .run(|| async { Ok::<_, StepError>(1u32) })
                .await
        })
        .unwrap();
    engine.start().await.unwrap();
    let runs = futures_util::future::join_all((0..20).map(|i| {
        let engine = engine.clone();
        async move {
            engine
                .invoke("m_batch")
                .id(i.to_string())
                .await
                .unwrap()
                .wait_output::<u32>()
                .await
                .unwrap()
        }
    }));
    assert_eq!(runs.await.iter().sum::<u32>(), 20);
    engine.shutdown().await;
    let batches = tally("memable_commit_batch_ops", &[("store", "redb")]).samples;
    assert!(!batches.is_empty());
    assert!(
        batches.iter().all(|n| *n >= 1.0 && n.fract() == 0.0),
        "{batches:?}"
    );
    // Each run wrote at least its start, its step and its end.
    let writes: f64 = batches.iter().sum();
    assert!(writes >= 60.0, "{writes} writes in {batches:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletions_are_counted() {
    snapshotter();
    let clock = ManualClock::new(0);
    // The background sweeps are an hour apart: this test sweeps by hand.
    let policy = RetentionPolicy::new()
        .rule(RetentionRule::new(Duration::from_secs(60)))
        .interval(Duration::from_secs(3600));
    let engine = Engine::builder()
        .in_memory()
        .clock(clock.clone())
        .retention(policy)
        .build();
    engine
        .register("m_old", |_ctx: Context| async { Ok(()) })
        .unwrap();
    let mut stats = engine.retention_stats();
    engine.start().await.unwrap();
    // The sweep at start is over before the clock moves.
    stats.wait_for(|s| s.sweeps >= 1).await.unwrap();
    for i in 0..4 {
        engine
            .invoke("m_old")
            .id(i.to_string())
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
    }
    // A run that published its end may still be winding down, and a sweep
    // leaves an instance with a run in progress for the next one.
    engine.wait_all().await;
    clock.advance(Duration::from_secs(61));
    assert_eq!(engine.sweep_retention().await.unwrap(), 4);
    assert_eq!(counter("memable_retention_deleted_total", &[]), 4);
    engine.shutdown().await;
}
