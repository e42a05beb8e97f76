//! `check` before a deploy, from the operator's side: instances are stored
//! by one version of a workflow, then an engine with the changed code (on
//! the same store, never started) checks them. Every test also asserts
//! that the store holds exactly what it held before the check and that no
//! step closure of the new code ran.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memable::store::InstanceSnapshot;
use memable::{
    CheckKind, CheckStop, Context, Engine, EngineError, InstanceCheck, InstanceFilter, MemoryStore,
    StatusKind, StepError, StepStore, SuspendPoint, Workflow,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use support::backend_tests;

static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval");

/// Counts the step closures of the new code that ran (there must be none).
#[derive(Clone, Default)]
struct Runs(Arc<AtomicUsize>);

impl Runs {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A step whose closure returns `value` and counts its runs.
async fn step<T>(ctx: &Context, key: &str, value: T, runs: &Runs) -> Result<T, EngineError>
where
    T: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    ctx.step(key)
        .run(|| {
            runs.0.fetch_add(1, Ordering::SeqCst);
            let value = value.clone();
            async move { Ok::<_, StepError>(value) }
        })
        .await
}

/// Everything the store holds: every instance with all its records, and
/// the timers.
async fn dump(
    store: &Arc<dyn StepStore>,
) -> (Vec<InstanceSnapshot>, Vec<memable::store::TimerEntry>) {
    let mut all = Vec::new();
    for meta in store.list_instances(&InstanceFilter::new()).await.unwrap() {
        let key = meta.key().unwrap();
        all.push(store.load_instance(&key).await.unwrap().unwrap());
    }
    let timers = store.due_timers(u64::MAX, usize::MAX).await.unwrap();
    (all, timers)
}

/// Runs instances `ids` of `name` with the old code `old` until each is
/// idle (suspended or finished), then shuts that engine down.
async fn store_with<F, Fut, O>(store: &Arc<dyn StepStore>, name: &str, ids: &[&str], old: F)
where
    F: Fn(Context) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<O, EngineError>> + Send + 'static,
    O: Serialize + Send + 'static,
{
    let engine = Engine::builder().store(Arc::clone(store)).build();
    engine.register(name, old).unwrap();
    engine.start().await.unwrap();
    for id in ids {
        engine
            .invoke(name)
            .id(*id)
            .input(7u32)
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
    }
    engine.shutdown().await;
}

/// Checks `(name, id)` with an engine holding the new code, asserting the
/// store is unchanged and no closure ran.
async fn check_with(
    store: &Arc<dyn StepStore>,
    new: &Engine,
    runs: &Runs,
    name: &str,
    id: &str,
) -> InstanceCheck {
    let before = dump(store).await;
    let report = new.check_instance(name, id).await.unwrap();
    assert_eq!(dump(store).await, before, "the check changed the store");
    assert_eq!(runs.count(), 0, "a step closure ran during the check");
    report
}

fn new_work(key: &str, kind: CheckKind) -> CheckStop {
    CheckStop::NewWork {
        key: key.into(),
        kind,
        attempts: 0,
        signal_buffered: false,
    }
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_added_step_is_the_first_new_key(backend) {
        let store = backend.store();
        store_with(&store, "order", &["o1"], |ctx: Context| async move {
            ctx.step("reserve").run(|| async { Ok::<_, StepError>(10u32) }).await?;
            ctx.suspend(&APPROVAL).await
        })
        .await;
        let runs = Runs::default();
        let new = Engine::builder().store(Arc::clone(&store)).build();
        let r = runs.clone();
        new.register("order", move |ctx: Context| {
            let runs = r.clone();
            async move {
                step(&ctx, "reserve", 10u32, &runs).await?;
                step(&ctx, "fraud-check", (), &runs).await?;
                ctx.suspend(&APPROVAL).await
            }
        })
        .unwrap();
        let report = check_with(&store, &new, &runs, "order", "o1").await;
        assert_eq!(report.workflow, "order", "{backend}");
        assert_eq!(report.instance_id, "o1", "{backend}");
        assert_eq!(report.status, StatusKind::Suspended, "{backend}");
        assert_eq!(report.suspended_at.as_deref(), Some("approval"), "{backend}");
        assert_eq!(report.reached, strings(&["reserve"]), "{backend}");
        assert_eq!(report.stop, new_work("fraud-check", CheckKind::Step), "{backend}");
        // The point it waits at is not reached before the new step.
        assert_eq!(report.orphaned, strings(&["approval"]), "{backend}");
        assert!(report.mismatches.is_empty(), "{backend}");
        // The checking engine took no slot: it can start on the store.
        new.start().await.unwrap();
        new.shutdown().await;
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removed_step_is_orphaned_and_the_point_still_waits(backend) {
        let store = backend.store();
        store_with(&store, "order", &["o1"], |ctx: Context| async move {
            ctx.step("reserve").run(|| async { Ok::<_, StepError>(10u32) }).await?;
            ctx.step("notify").run(|| async { Ok::<_, StepError>(()) }).await?;
            ctx.suspend(&APPROVAL).await
        })
        .await;
        let runs = Runs::default();
        let new = Engine::builder().store(Arc::clone(&store)).build();
        let r = runs.clone();
        new.register("order", move |ctx: Context| {
            let runs = r.clone();
            async move {
                step(&ctx, "reserve", 10u32, &runs).await?;
                ctx.suspend(&APPROVAL).await
            }
        })
        .unwrap();
        let report = check_with(&store, &new, &runs, "order", "o1").await;
        assert_eq!(report.reached, strings(&["reserve", "approval"]), "{backend}");
        assert_eq!(
            report.stop,
            CheckStop::Waiting { key: "approval".into(), kind: CheckKind::Suspend },
            "{backend}"
        );
        assert_eq!(report.orphaned, strings(&["notify"]), "{backend}");
        assert!(!report.is_clean(), "{backend}");
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_changed_value_type_is_a_mismatch(backend) {
        let store = backend.store();
        store_with(&store, "count", &["c1"], |ctx: Context| async move {
            let n = ctx.step("n").run(|| async { Ok::<_, StepError>(5u32) }).await?;
            ctx.step("after").run(|| async { Ok::<_, StepError>(()) }).await?;
            Ok(n)
        })
        .await;
        let runs = Runs::default();
        let new = Engine::builder().store(Arc::clone(&store)).build();
        let r = runs.clone();
        new.register("count", move |ctx: Context| {
            let runs = r.clone();
            async move {
                let n = step(&ctx, "n", String::from("five"), &runs).await?;
                step(&ctx, "after", (), &runs).await?;
                Ok(n)
            }
        })
        .unwrap();
        let report = check_with(&store, &new, &runs, "count", "c1").await;
        assert_eq!(report.status, StatusKind::Completed, "{backend}");
        assert_eq!(report.stop, CheckStop::TypeMismatch { key: "n".into() }, "{backend}");
        assert_eq!(report.mismatches.len(), 1, "{backend}");
        assert_eq!(report.mismatches[0].key, "n", "{backend}");
        assert_eq!(report.mismatches[0].stored, "u32", "{backend}");
        assert_eq!(report.mismatches[0].expected, "String", "{backend}");
        assert_eq!(report.reached, strings(&["n"]), "{backend}");
        assert_eq!(report.orphaned, strings(&["after"]), "{backend}");
    }
}

#[derive(Serialize, Deserialize, Clone)]
struct Order {
    id: u32,
}

mod v2 {
    #[derive(serde::Serialize, serde::Deserialize, Clone)]
    pub struct Order {
        pub id: String,
    }
}

#[tokio::test]
async fn a_field_whose_type_changed_is_a_mismatch_under_the_same_tag() {
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    store_with(&store, "o", &["1"], |ctx: Context| async move {
        ctx.step("order")
            .run(|| async { Ok::<_, StepError>(Order { id: 3 }) })
            .await?;
        Ok(())
    })
    .await;
    let runs = Runs::default();
    let new = Engine::builder().store(Arc::clone(&store)).build();
    let r = runs.clone();
    new.register("o", move |ctx: Context| {
        let runs = r.clone();
        async move {
            step(&ctx, "order", v2::Order { id: "3".into() }, &runs).await?;
            Ok(())
        }
    })
    .unwrap();
    let report = check_with(&store, &new, &runs, "o", "1").await;
    assert_eq!(
        report.stop,
        CheckStop::TypeMismatch {
            key: "order".into()
        }
    );
    // The type moved to another module: the tag is the same, the value is not.
    assert_eq!(report.mismatches[0].stored, "Order");
    assert_eq!(report.mismatches[0].expected, "Order");
    assert!(!report.mismatches[0].error.is_empty());
}

#[tokio::test]
async fn a_renamed_key_is_new_work_and_the_old_one_orphaned() {
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    store_with(&store, "fetch", &["f1", "f2"], |ctx: Context| async move {
        ctx.step("fetch:v1")
            .run(|| async { Ok::<_, StepError>(1u8) })
            .await?;
        ctx.suspend(&APPROVAL).await
    })
    .await;
    let runs = Runs::default();
    let new = Engine::builder().store(Arc::clone(&store)).build();
    let r = runs.clone();
    new.register("fetch", move |ctx: Context| {
        let runs = r.clone();
        async move {
            step(&ctx, "fetch:v2", 1u8, &runs).await?;
            ctx.suspend(&APPROVAL).await
        }
    })
    .unwrap();
    let before = dump(&store).await;
    let reports = new
        .check_workflow("fetch", &InstanceFilter::new())
        .await
        .unwrap();
    assert_eq!(dump(&store).await, before);
    assert_eq!(runs.count(), 0);
    assert_eq!(reports.len(), 2);
    for (report, id) in reports.iter().zip(["f1", "f2"]) {
        assert_eq!(report.instance_id, id);
        assert!(report.reached.is_empty());
        assert_eq!(report.stop, new_work("fetch:v2", CheckKind::Step));
        assert_eq!(report.orphaned, strings(&["approval", "fetch:v1"]));
    }
}

#[tokio::test]
async fn reordered_steps_are_all_reached_and_the_output_is_unchanged() {
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    store_with(&store, "abc", &["x"], |ctx: Context| async move {
        let a = ctx
            .step("a")
            .run(|| async { Ok::<_, StepError>(1u32) })
            .await?;
        let b = ctx
            .step("b")
            .run(|| async { Ok::<_, StepError>(2u32) })
            .await?;
        let c = ctx
            .step("c")
            .run(|| async { Ok::<_, StepError>(3u32) })
            .await?;
        Ok(a + b + c)
    })
    .await;
    let runs = Runs::default();
    let new = Engine::builder().store(Arc::clone(&store)).build();
    let r = runs.clone();
    new.register("abc", move |ctx: Context| {
        let runs = r.clone();
        async move {
            let c = step(&ctx, "c", 0u32, &runs).await?;
            let a = step(&ctx, "a", 0u32, &runs).await?;
            let b = step(&ctx, "b", 0u32, &runs).await?;
            Ok(a + b + c)
        }
    })
    .unwrap();
    let report = check_with(&store, &new, &runs, "abc", "x").await;
    assert_eq!(report.reached, strings(&["c", "a", "b"]));
    assert_eq!(
        report.stop,
        CheckStop::Completed {
            output_unchanged: Some(true)
        }
    );
    assert!(report.orphaned.is_empty());
    assert!(report.is_clean());

    // Code whose output changed says so.
    let changed = Engine::builder().store(Arc::clone(&store)).build();
    changed
        .register("abc", |ctx: Context| async move {
            let a: u32 = ctx
                .step("a")
                .run(|| async { Ok::<_, StepError>(0) })
                .await?;
            let b: u32 = ctx
                .step("b")
                .run(|| async { Ok::<_, StepError>(0) })
                .await?;
            let c: u32 = ctx
                .step("c")
                .run(|| async { Ok::<_, StepError>(0) })
                .await?;
            Ok(a * b * c + 1)
        })
        .unwrap();
    let report = changed.check_instance("abc", "x").await.unwrap();
    assert_eq!(
        report.stop,
        CheckStop::Completed {
            output_unchanged: Some(false)
        }
    );
}

static CHARGE: Workflow<u32, String> = Workflow::new("charge");
static PAY: SuspendPoint<String> = SuspendPoint::new("card");

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn child_points_wait_and_a_new_child_is_new_work(backend) {
        let store = backend.store();
        {
            let engine = Engine::builder().store(Arc::clone(&store)).build();
            CHARGE
                .register(&engine, |ctx: Context, _cents: u32| async move { ctx.suspend(&PAY).await })
                .unwrap();
            engine
                .register("shop", |ctx: Context| async move {
                    ctx.step("cart").run(|| async { Ok::<_, StepError>(3u32) }).await?;
                    ctx.child(&CHARGE, "pay", 250).await
                })
                .unwrap();
            engine.start().await.unwrap();
            engine.invoke("shop").id("s1").await.unwrap().wait_idle().await.unwrap();
            engine.wait_all().await;
            engine.shutdown().await;
        }
        let runs = Runs::default();
        let new = Engine::builder().store(Arc::clone(&store)).build();
        CHARGE
            .register(&new, |ctx: Context, _cents: u32| async move { ctx.suspend(&PAY).await })
            .unwrap();
        let r = runs.clone();
        new.register("shop", move |ctx: Context| {
            let runs = r.clone();
            async move {
                step(&ctx, "cart", 3u32, &runs).await?;
                ctx.child(&CHARGE, "pay", 250).await
            }
        })
        .unwrap();
        // The parent waits for its child: unchanged by the deploy.
        let report = check_with(&store, &new, &runs, "shop", "s1").await;
        assert_eq!(report.reached, strings(&["cart", "pay"]), "{backend}");
        assert_eq!(
            report.stop,
            CheckStop::Waiting { key: "pay".into(), kind: CheckKind::Child },
            "{backend}"
        );
        assert!(report.is_clean(), "{backend}: {report:?}");
        // The child waits at its own point.
        let child = check_with(&store, &new, &runs, "charge", "shop:s1:pay").await;
        assert_eq!(
            child.stop,
            CheckStop::Waiting { key: "card".into(), kind: CheckKind::Suspend },
            "{backend}"
        );

        // Code that starts another child first: that start is new work,
        // and no child is started by the check.
        let newer = Engine::builder().store(Arc::clone(&store)).build();
        CHARGE
            .register(&newer, |ctx: Context, _cents: u32| async move { ctx.suspend(&PAY).await })
            .unwrap();
        newer
            .register("shop", |ctx: Context| async move {
                ctx.step("cart").run(|| async { Ok::<_, StepError>(3u32) }).await?;
                let tip = ctx.child(&CHARGE, "tip", 50).start().await?;
                let paid = ctx.child(&CHARGE, "pay", 250).await?;
                Ok(format!("{paid} {}", tip.await?))
            })
            .unwrap();
        let report = check_with(&store, &newer, &runs, "shop", "s1").await;
        assert_eq!(report.stop, new_work("tip", CheckKind::Child), "{backend}");
        assert_eq!(report.orphaned, strings(&["pay"]), "{backend}");
        assert!(newer.get_metadata("charge", "shop:s1:tip").await.unwrap().is_none(), "{backend}");
    }
}

static RESIZE: Workflow<u32, u32> = Workflow::new("resize");

#[tokio::test]
async fn a_fan_out_waits_for_its_children_and_a_longer_one_starts_more() {
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    let gate: &'static SuspendPoint<u32> = &PX;
    {
        let engine = Engine::builder().store(Arc::clone(&store)).build();
        RESIZE
            .register(&engine, move |ctx: Context, _px: u32| async move {
                ctx.suspend(gate).await
            })
            .unwrap();
        engine
            .register("album", |ctx: Context| async move {
                let sizes = ctx.fan_out(&RESIZE, "resize", vec![1, 2]).await?;
                sizes.into_iter().collect::<Result<Vec<u32>, _>>()
            })
            .unwrap();
        engine.start().await.unwrap();
        engine
            .invoke("album")
            .id("a")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        engine.wait_all().await;
        // The first child ends; the second still runs.
        engine
            .signal("resize", "album:a:resize.0", &PX, 10)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        engine.wait_all().await;
        engine.shutdown().await;
    }
    let new = Engine::builder().store(Arc::clone(&store)).build();
    new.register("album", |ctx: Context| async move {
        let sizes = ctx.fan_out(&RESIZE, "resize", vec![1, 2]).await?;
        sizes.into_iter().collect::<Result<Vec<u32>, _>>()
    })
    .unwrap();
    let before = dump(&store).await;
    let report = new.check_instance("album", "a").await.unwrap();
    assert_eq!(report.reached, strings(&["resize.0", "resize.1"]));
    assert_eq!(
        report.stop,
        CheckStop::Waiting {
            key: "resize.1".into(),
            kind: CheckKind::Child
        }
    );
    let longer = Engine::builder().store(Arc::clone(&store)).build();
    longer
        .register("album", |ctx: Context| async move {
            let sizes = ctx.fan_out(&RESIZE, "resize", vec![1, 2, 3]).await?;
            sizes.into_iter().collect::<Result<Vec<u32>, _>>()
        })
        .unwrap();
    let report = longer.check_instance("album", "a").await.unwrap();
    assert_eq!(report.stop, new_work("resize.2", CheckKind::Child));
    assert_eq!(dump(&store).await, before);
}

static PX: SuspendPoint<u32> = SuspendPoint::new("px");

#[tokio::test]
async fn timers_first_of_groups_and_buffered_signals() {
    static YES: SuspendPoint<()> = SuspendPoint::new("yes");
    static NO: SuspendPoint<()> = SuspendPoint::new("no");
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    let clock = memable::ManualClock::new(0);
    {
        let engine = Engine::builder()
            .store(Arc::clone(&store))
            .clock(clock.clone())
            .build();
        engine
            .register("t", |ctx: Context| async move {
                ctx.timer("cool-off", Duration::from_secs(3600)).await?;
                ctx.first_of("decision").or(&YES).or(&NO).await?;
                ctx.suspend(&APPROVAL).await
            })
            .unwrap();
        engine.start().await.unwrap();
        engine
            .invoke("t")
            .id("1")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        engine.shutdown().await;
    }
    let new = Engine::builder().store(Arc::clone(&store)).build();
    new.register("t", |ctx: Context| async move {
        ctx.timer("cool-off", Duration::from_secs(3600)).await?;
        ctx.first_of("decision").or(&YES).or(&NO).await?;
        ctx.suspend(&APPROVAL).await
    })
    .unwrap();
    let report = new.check_instance("t", "1").await.unwrap();
    assert_eq!(
        report.stop,
        CheckStop::Waiting {
            key: "cool-off".into(),
            kind: CheckKind::Timer
        }
    );
    assert_eq!(report.reached, strings(&["cool-off"]));

    // The timer fires and a signal decides the group (old engine); the
    // instance then waits at the approval point.
    {
        let engine = Engine::builder()
            .store(Arc::clone(&store))
            .clock(clock.clone())
            .build();
        engine
            .register("t", |ctx: Context| async move {
                ctx.timer("cool-off", Duration::from_secs(3600)).await?;
                ctx.first_of("decision").or(&YES).or(&NO).await?;
                ctx.suspend(&APPROVAL).await
            })
            .unwrap();
        engine.start().await.unwrap();
        let mut states = engine.subscribe("t", "1").await.unwrap();
        clock.advance(Duration::from_secs(3600));
        while let Some(state) = states.next().await {
            if matches!(&state, memable::WorkflowState::Suspended { key, .. } if key == "decision")
            {
                break;
            }
        }
        drop(states);
        engine
            .signal("t", "1", &NO, ())
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        engine.shutdown().await;
    }
    let before = dump(&store).await;
    // The group's points are reached with it; the decided group is
    // memoised like a step.
    let other = Engine::builder().store(Arc::clone(&store)).build();
    other
        .register("t", |ctx: Context| async move {
            ctx.timer("cool-off", Duration::from_secs(3600)).await?;
            let first = ctx.first_of("decision").or(&YES).or(&NO).await?;
            assert!(first.point().is_some());
            ctx.suspend(&APPROVAL).await
        })
        .unwrap();
    let report = other.check_instance("t", "1").await.unwrap();
    assert_eq!(
        report.reached,
        strings(&["cool-off", "decision", "yes", "no", "approval"])
    );
    assert_eq!(
        report.stop,
        CheckStop::Waiting {
            key: "approval".into(),
            kind: CheckKind::Suspend
        }
    );
    assert!(report.orphaned.is_empty(), "{report:?}");
    assert_eq!(dump(&store).await, before);
}

#[tokio::test]
async fn a_buffered_signal_is_reported_at_a_new_point() {
    static EARLY: SuspendPoint<u8> = SuspendPoint::new("early");
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    {
        let engine = Engine::builder().store(Arc::clone(&store)).build();
        engine
            .register(
                "b",
                |ctx: Context| async move { ctx.suspend(&APPROVAL).await },
            )
            .unwrap();
        engine.start().await.unwrap();
        engine
            .invoke("b")
            .id("1")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        // A signal to a point the old code has not reached: buffered.
        engine.signal("b", "1", &EARLY, 1).await.unwrap();
        engine.shutdown().await;
    }
    let new = Engine::builder().store(Arc::clone(&store)).build();
    new.register("b", |ctx: Context| async move {
        let n = ctx.suspend(&EARLY).await?;
        Ok(n > 0 && ctx.suspend(&APPROVAL).await?)
    })
    .unwrap();
    let report = new.check_instance("b", "1").await.unwrap();
    assert_eq!(
        report.stop,
        CheckStop::NewWork {
            key: "early".into(),
            kind: CheckKind::Suspend,
            attempts: 0,
            signal_buffered: true
        }
    );
}

#[tokio::test]
async fn a_changed_signal_type_at_the_point_it_waits_is_a_mismatch() {
    static APPROVAL_V2: SuspendPoint<String> = SuspendPoint::new("approval");
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    store_with(&store, "s", &["1"], |ctx: Context| async move {
        ctx.suspend(&APPROVAL).await
    })
    .await;
    let new = Engine::builder().store(Arc::clone(&store)).build();
    new.register("s", |ctx: Context| async move {
        ctx.suspend(&APPROVAL_V2).await
    })
    .unwrap();
    let report = new.check_instance("s", "1").await.unwrap();
    assert_eq!(
        report.stop,
        CheckStop::TypeMismatch {
            key: "approval".into()
        }
    );
    assert_eq!(
        (
            report.mismatches[0].stored.as_str(),
            report.mismatches[0].expected.as_str()
        ),
        ("bool", "String")
    );
}

#[tokio::test]
async fn a_step_with_failed_attempts_is_new_work_with_its_attempts() {
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    {
        // The old engine is dropped in the backoff of the third attempt.
        let clock = memable::ManualClock::new(0);
        let engine = Engine::builder()
            .store(Arc::clone(&store))
            .clock(clock.clone())
            .build();
        engine
            .register("flaky", |ctx: Context| async move {
                ctx.step("call")
                    .retry(memable::RetryPolicy::fixed(5, Duration::from_secs(60)))
                    .run(|| async { Err::<(), _>(StepError::retryable("503")) })
                    .await
            })
            .unwrap();
        engine.start().await.unwrap();
        engine.invoke("flaky").id("1").await.unwrap();
        for attempts in 1..=2u32 {
            loop {
                let record = store
                    .get_step(&memable::InstanceKey::new("flaky", "1").unwrap(), "call")
                    .await
                    .unwrap();
                if record.is_some_and(|r| r.attempts == attempts) {
                    break;
                }
                tokio::task::yield_now().await;
            }
            if attempts < 2 {
                clock.advance(Duration::from_secs(60));
            }
        }
        engine.stop();
    }
    let new = Engine::builder().store(Arc::clone(&store)).build();
    new.register("flaky", |ctx: Context| async move {
        ctx.step("call")
            .run(|| async { Ok::<_, StepError>(()) })
            .await
    })
    .unwrap();
    let report = new.check_instance("flaky", "1").await.unwrap();
    assert_eq!(report.status, StatusKind::Running);
    assert_eq!(report.reached, strings(&["call"]));
    assert_eq!(
        report.stop,
        CheckStop::NewWork {
            key: "call".into(),
            kind: CheckKind::Step,
            attempts: 2,
            signal_buffered: false
        }
    );
}

#[tokio::test]
async fn input_that_no_longer_decodes_unregistered_panicking_and_hanging_code() {
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    store_with(&store, "w", &["1"], |ctx: Context| async move {
        ctx.suspend(&APPROVAL).await
    })
    .await;
    let new = Engine::builder().store(Arc::clone(&store)).build();
    let before = dump(&store).await;

    // Not registered on the checking engine.
    let report = new.check_instance("w", "1").await.unwrap();
    assert_eq!(report.stop, CheckStop::NotRegistered);
    assert_eq!(report.orphaned, strings(&["approval"]));

    // The input was a u32; the code reads a String.
    new.register("w", |ctx: Context| async move {
        let _who: String = ctx.input()?;
        ctx.suspend(&APPROVAL).await
    })
    .unwrap();
    let report = new.check_instance("w", "1").await.unwrap();
    match &report.stop {
        CheckStop::InputMismatch {
            stored, expected, ..
        } => {
            assert_eq!((stored.as_str(), expected.as_str()), ("u32", "String"));
        }
        other => panic!("not an input mismatch: {other:?}"),
    }
    assert_eq!(report.mismatches[0].key, "_input");

    // A panic in the code is reported, not propagated.
    new.register("w", |ctx: Context| async move {
        let n: u32 = ctx.input()?;
        assert!(n != 7, "the new code is broken");
        Ok(())
    })
    .unwrap();
    let report = new.check_instance("w", "1").await.unwrap();
    assert_eq!(
        report.stop,
        CheckStop::Panicked {
            message: "the new code is broken".into()
        }
    );

    // Code that awaits something that is no step is bounded.
    new.register("w", |_ctx: Context| async move {
        std::future::pending::<()>().await;
        Ok(())
    })
    .unwrap();
    let report = new
        .check_instance_within("w", "1", Duration::from_millis(30))
        .await
        .unwrap();
    assert_eq!(report.stop, CheckStop::TimedOut { after_ms: 30 });

    // The code's own error, with everything memoised.
    new.register_with_error("w", |_ctx: Context| async move { Err::<(), _>("refused") })
        .unwrap();
    let report = new.check_instance("w", "1").await.unwrap();
    assert_eq!(
        report.stop,
        CheckStop::Failed {
            error: "refused".into()
        }
    );

    assert_eq!(dump(&store).await, before);
    let missing = new.check_instance("w", "nope").await.unwrap_err();
    assert!(
        matches!(missing, EngineError::InstanceNotFound { .. }),
        "{missing:?}"
    );
    let bad = new.check_instance("w", "").await.unwrap_err();
    assert!(matches!(bad, EngineError::InvalidKey { .. }), "{bad:?}");
}

#[tokio::test]
async fn check_active_skips_finished_instances_and_check_workflow_filters() {
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    {
        let engine = Engine::builder().store(Arc::clone(&store)).build();
        engine
            .register(
                "w",
                |ctx: Context| async move { ctx.suspend(&APPROVAL).await },
            )
            .unwrap();
        engine
            .register("other", |_ctx: Context| async move { Ok(()) })
            .unwrap();
        engine.start().await.unwrap();
        for id in ["a", "b", "c"] {
            engine
                .invoke("w")
                .id(id)
                .await
                .unwrap()
                .wait_idle()
                .await
                .unwrap();
        }
        engine
            .invoke("other")
            .id("a")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        engine
            .signal("w", "b", &APPROVAL, true)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        engine.shutdown().await;
    }
    let new = Engine::builder().store(Arc::clone(&store)).build();
    new.register(
        "w",
        |ctx: Context| async move { ctx.suspend(&APPROVAL).await },
    )
    .unwrap();
    let active = new.check_active("w").await.unwrap();
    let ids: Vec<&str> = active.iter().map(|c| c.instance_id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    let all = new
        .check_workflow("w", &InstanceFilter::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let completed = new
        .check_workflow("w", &InstanceFilter::new().status(StatusKind::Completed))
        .await
        .unwrap();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].instance_id, "b");
    assert_eq!(
        completed[0].stop,
        CheckStop::Completed {
            output_unchanged: Some(true)
        }
    );
    let limited = new
        .check_workflow("w", &InstanceFilter::new().limit(1))
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
}

#[tokio::test]
async fn a_check_beside_a_running_engine_writes_nothing_and_takes_no_slot() {
    let store: Arc<dyn StepStore> = Arc::new(MemoryStore::new());
    let live = Engine::builder().store(Arc::clone(&store)).build();
    live.register("w", |ctx: Context| async move {
        ctx.step("one")
            .run(|| async { Ok::<_, StepError>(1u8) })
            .await?;
        ctx.suspend(&APPROVAL).await
    })
    .unwrap();
    live.start().await.unwrap();
    live.invoke("w")
        .id("1")
        .await
        .unwrap()
        .wait_idle()
        .await
        .unwrap();

    let checker = Engine::builder().store(Arc::clone(&store)).build();
    checker
        .register("w", |ctx: Context| async move {
            ctx.step("one")
                .run(|| async { Ok::<_, StepError>(1u8) })
                .await?;
            ctx.step("two")
                .run(|| async { Ok::<_, StepError>(2u8) })
                .await?;
            ctx.suspend(&APPROVAL).await
        })
        .unwrap();
    let report = checker.check_instance("w", "1").await.unwrap();
    assert_eq!(report.stop, new_work("two", CheckKind::Step));
    // The running engine still owns its store and goes on.
    let run = live.signal("w", "1", &APPROVAL, true).await.unwrap();
    assert!(run.wait_output::<bool>().await.unwrap());
    assert!(matches!(
        checker.start().await,
        Err(EngineError::StoreInUse { .. })
    ));
    live.shutdown().await;
}
