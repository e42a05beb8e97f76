//! Child workflows: the `start_child` transition, a child's end completing
//! its parent's point in the same transaction (finish and cancel), the
//! cancel cascade, and the engine's `ctx.child` / `ctx.fan_out` on top of
//! them. Store cases check the outcome and the whole store afterwards.

use std::sync::Arc;
use std::time::Duration;

use memable_core::StepStoreExt;
use memable_core::{
    CancelOutcome, ChildLink, ChildStartOutcome, Context, Engine, EngineError, Finish,
    FinishOutcome, InstanceFilter, InstanceKey, ManualClock, MetadataStatus, ParentLink,
    ParkOutcome, RetryPolicy, SignalOutcome, StatusKind, StepError, StepKind, StepRecord,
    StepStore, SuspendPoint, WaitOutcome, Workflow, WorkflowMetadata, WorkflowState,
};

use crate::StoreFactory;
use crate::support::{Dump, done, dump, fresh, input, key, ok, output, payload, start, timer};

/// The parent's point for an awaited child of output type tag `u32`.
fn point() -> StepRecord {
    StepRecord::suspended(StepKind::Child, "u32", Some("waiting for pay".into()), None)
}

/// [`point`] as the store writes it at a start at `now_ms`: waiting since.
fn point_since(now_ms: u64) -> StepRecord {
    point().with_times(Some(now_ms), None)
}

fn child_of(parent: &InstanceKey, step: &str) -> InstanceKey {
    key(
        "pay",
        &ok(
            memable_core::child_instance_id(parent, step),
            "child_instance_id",
        ),
    )
}

async fn start_child(
    store: &dyn StepStore,
    parent: &InstanceKey,
    step: &str,
    point: Option<StepRecord>,
    now_ms: u64,
) -> ChildStartOutcome {
    ok(
        store
            .start_child(
                parent.clone(),
                step.to_owned(),
                child_of(parent, step),
                input(b"child input"),
                point,
                now_ms,
            )
            .await,
        "start_child",
    )
}

async fn finish(store: &dyn StepStore, key: &InstanceKey, how: Finish, now_ms: u64) {
    assert_eq!(
        ok(
            store.finish_instance(key.clone(), how, now_ms).await,
            "finish_instance"
        ),
        FinishOutcome::Finished,
        "finish {key}"
    );
}

/// Parks `key` at `points` (each already written).
async fn park_at(store: &dyn StepStore, key: &InstanceKey, points: &[&str], now_ms: u64) {
    let waiting = points.iter().map(|p| (*p).to_owned()).collect();
    assert_eq!(
        ok(
            store.park(key.clone(), waiting, None, now_ms).await,
            "park_instance"
        ),
        ParkOutcome::Parked
    );
}

fn set_step(dump: &mut Dump, key: &InstanceKey, step: &str, record: StepRecord) {
    let snap = dump
        .instances
        .iter_mut()
        .find(|s| s.metadata.key().is_ok_and(|k| &k == key))
        .unwrap_or_else(|| panic!("{key} is not in the dump"));
    snap.steps.retain(|(k, _)| k != step);
    snap.steps.push((step.to_owned(), record));
    snap.steps.sort_by(|a, b| a.0.cmp(&b.0));
}

fn set_meta(dump: &mut Dump, key: &InstanceKey, meta: WorkflowMetadata) {
    let snap = dump
        .instances
        .iter_mut()
        .find(|s| s.metadata.key().is_ok_and(|k| &k == key))
        .unwrap_or_else(|| panic!("{key} is not in the dump"));
    snap.metadata = meta;
}

fn meta_of(dump: &Dump, key: &InstanceKey) -> WorkflowMetadata {
    dump.instance(key)
        .unwrap_or_else(|| panic!("{key} is not in the dump"))
        .metadata
        .clone()
}

fn with_status(meta: WorkflowMetadata, status: MetadataStatus, now_ms: u64) -> WorkflowMetadata {
    let completed_at_ms = status.is_terminal().then_some(now_ms);
    WorkflowMetadata {
        status,
        updated_at_ms: now_ms,
        completed_at_ms,
        ..meta
    }
}

/// The child's output record (type tag `u32`).
fn child_output() -> StepRecord {
    StepRecord::completed(StepKind::Engine, "u32", b"7".to_vec(), None)
}

/// The start writes the parent's link and point and the child with its
/// input and parent link, together.
pub async fn start_child_writes_link_point_and_child(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let parent = key("order", "1");
    start(&*store, &parent, 1).await;
    let before = dump(&*store).await;
    assert_eq!(
        start_child(&*store, &parent, "pay", Some(point()), 5).await,
        ChildStartOutcome::Started
    );
    let child = child_of(&parent, "pay");
    assert_eq!(child.instance(), "order:1:pay");
    let got = dump(&*store).await;
    let mut expected = before;
    set_step(
        &mut expected,
        &parent,
        "_child:pay",
        ChildLink {
            child: child.clone(),
            detached: false,
        }
        .to_record(),
    );
    set_step(&mut expected, &parent, "pay", point_since(5));
    let child_snap = got
        .instance(&child)
        .unwrap_or_else(|| panic!("the child {child} was not created"));
    assert_eq!(child_snap.metadata, WorkflowMetadata::running(&child, 5));
    assert_eq!(
        child_snap.steps,
        vec![
            ("_input".to_owned(), input(b"child input")),
            (
                "_parent".to_owned(),
                ParentLink {
                    parent: parent.clone(),
                    step_key: "pay".into(),
                    detached: false,
                }
                .to_record()
            ),
        ]
    );
    expected.instances.push(child_snap.clone());
    expected.instances.sort_by(|a, b| {
        (&a.metadata.workflow_name, &a.metadata.instance_id)
            .cmp(&(&b.metadata.workflow_name, &b.metadata.instance_id))
    });
    assert_eq!(got, expected, "the start of a child");
}

/// A second start of the same child (a replay, another worker) writes
/// nothing and answers the point as it is.
pub async fn start_child_twice_writes_nothing(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let parent = key("order", "1");
    start(&*store, &parent, 1).await;
    start_child(&*store, &parent, "pay", Some(point()), 5).await;
    let before = dump(&*store).await;
    assert_eq!(
        start_child(&*store, &parent, "pay", Some(point()), 9).await,
        ChildStartOutcome::Exists {
            point: Some(point_since(5))
        }
    );
    assert_eq!(
        start_child(&*store, &parent, "pay", None, 9).await,
        ChildStartOutcome::Exists {
            point: Some(point_since(5))
        }
    );
    assert_eq!(dump(&*store).await, before, "a repeated start wrote");
}

/// A parent that is missing or ended, or a key that holds a step, is
/// refused without writing.
pub async fn start_child_refusals_write_nothing(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let missing = key("order", "gone");
    assert_eq!(
        start_child(&*store, &missing, "pay", Some(point()), 5).await,
        ChildStartOutcome::NotActive(None)
    );
    let ended = key("order", "ended");
    start(&*store, &ended, 1).await;
    finish(&*store, &ended, Finish::Failed("boom".into()), 2).await;
    let used = key("order", "used");
    start(&*store, &used, 1).await;
    ok(
        store
            .commit_step(used.clone(), "pay".into(), done(b"paid by a step"))
            .await,
        "commit_step",
    );
    let before = dump(&*store).await;
    assert_eq!(
        start_child(&*store, &ended, "pay", Some(point()), 5).await,
        ChildStartOutcome::NotActive(Some(MetadataStatus::Failed("boom".into())))
    );
    assert_eq!(
        start_child(&*store, &used, "pay", Some(point()), 5).await,
        ChildStartOutcome::KeyInUse(StepKind::Step)
    );
    assert_eq!(dump(&*store).await, before, "a refused start wrote");
}

/// The child's finish completes the parked parent's point with its output
/// (or its error) and sets the parent running, in the same transaction.
pub async fn child_finish_completes_the_parents_point(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for (id, how) in [
        (
            "ok",
            Finish::Completed {
                status: None,
                output: child_output(),
            },
        ),
        ("failed", Finish::Failed("card declined".into())),
    ] {
        let parent = key("order", id);
        start(&*store, &parent, 1).await;
        start_child(&*store, &parent, "pay", Some(point()), 2).await;
        park_at(&*store, &parent, &["pay"], 3).await;
        let child = child_of(&parent, "pay");
        let before = dump(&*store).await;
        let failed = matches!(how, Finish::Failed(_));
        finish(&*store, &child, how.clone(), 9).await;
        let mut expected = before.clone();
        let child_status = match &how {
            Finish::Completed { output, .. } => {
                set_step(&mut expected, &child, "_output", output.clone());
                MetadataStatus::Completed(None)
            }
            Finish::Failed(message) => MetadataStatus::Failed(message.clone()),
        };
        set_meta(
            &mut expected,
            &child,
            with_status(meta_of(&before, &child), child_status, 9),
        );
        let completed = if failed {
            StepRecord {
                error: Some("card declined".into()),
                ..StepRecord::completed(StepKind::Child, "u32", b"failed".to_vec(), point().status)
            }
        } else {
            StepRecord {
                kind: StepKind::Child,
                status: point().status,
                ..child_output()
            }
        };
        // Waiting since the start, completed by the child's end.
        set_step(
            &mut expected,
            &parent,
            "pay",
            completed.with_times(Some(2), Some(9)),
        );
        set_meta(
            &mut expected,
            &parent,
            with_status(meta_of(&before, &parent), MetadataStatus::Running, 9),
        );
        assert_eq!(dump(&*store).await, expected, "the end of child {id}");
    }
}

/// A child whose parent has ended, or that was started detached, ends
/// without touching the parent.
pub async fn child_end_leaves_ended_or_detaching_parent_alone(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let ended = key("order", "ended");
    start(&*store, &ended, 1).await;
    start_child(&*store, &ended, "pay", Some(point()), 2).await;
    finish(
        &*store,
        &ended,
        Finish::Completed {
            status: None,
            output: output(b"done without waiting"),
        },
        3,
    )
    .await;
    let detaching = key("order", "detaching");
    start(&*store, &detaching, 1).await;
    start_child(&*store, &detaching, "pay", None, 2).await;
    let before = dump(&*store).await;
    for parent in [&ended, &detaching] {
        let child = child_of(parent, "pay");
        finish(
            &*store,
            &child,
            Finish::Completed {
                status: None,
                output: child_output(),
            },
            9,
        )
        .await;
        let got = dump(&*store).await;
        assert_eq!(
            got.instance(parent),
            before.instance(parent),
            "the end of a child changed {parent}"
        );
    }
}

/// Cancelling a parent cancels the children it awaits and theirs (their
/// timers gone) in one transaction; a detached child goes on.
pub async fn cancel_cascades_to_awaited_children(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let root = key("order", "1");
    start(&*store, &root, 1).await;
    start_child(&*store, &root, "pay", Some(point()), 2).await;
    start_child(&*store, &root, "mail", None, 2).await;
    let child = child_of(&root, "pay");
    start_child(&*store, &child, "fraud", Some(point()), 3).await;
    let grandchild = child_of(&child, "fraud");
    let nap = timer(500);
    assert_eq!(
        ok(
            store
                .wait_at(grandchild.clone(), "nap".into(), nap.clone(), vec![], 4)
                .await,
            "wait_at"
        ),
        WaitOutcome::Waiting
    );
    park_at(&*store, &grandchild, &["nap"], 4).await;
    park_at(&*store, &child, &["fraud"], 4).await;
    park_at(&*store, &root, &["pay"], 4).await;
    let before = dump(&*store).await;
    assert_eq!(
        ok(store.cancel_instance(root.clone(), 9).await, "cancel"),
        CancelOutcome::Cancelled
    );
    let mut expected = before.clone();
    for cancelled in [&root, &child, &grandchild] {
        set_meta(
            &mut expected,
            cancelled,
            with_status(meta_of(&before, cancelled), MetadataStatus::Cancelled, 9),
        );
    }
    expected.timers.clear();
    expected.next_deadline = None;
    assert_eq!(dump(&*store).await, expected, "the cascade of a cancel");
    let detached = child_of(&root, "mail");
    assert_eq!(
        meta_of(&dump(&*store).await, &detached).status,
        MetadataStatus::Running,
        "a detached child was cancelled with its parent"
    );
}

/// A child cancelled on its own completes its active parent's point
/// (`cancelled`) and wakes it; a signal cannot reach a child's point.
pub async fn cancelled_child_completes_the_parents_point(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let parent = key("order", "1");
    start(&*store, &parent, 1).await;
    start_child(&*store, &parent, "pay", Some(point()), 2).await;
    park_at(&*store, &parent, &["pay"], 3).await;
    assert_eq!(
        ok(
            store
                .deliver_signal(parent.clone(), "pay".into(), payload(b"7"), 4)
                .await,
            "deliver_signal"
        ),
        SignalOutcome::NotAPoint(StepKind::Child)
    );
    let child = child_of(&parent, "pay");
    let before = dump(&*store).await;
    assert_eq!(
        ok(store.cancel_instance(child.clone(), 9).await, "cancel"),
        CancelOutcome::Cancelled
    );
    let mut expected = before.clone();
    set_meta(
        &mut expected,
        &child,
        with_status(meta_of(&before, &child), MetadataStatus::Cancelled, 9),
    );
    set_step(
        &mut expected,
        &parent,
        "pay",
        StepRecord {
            error: Some("the child workflow was cancelled".into()),
            ..StepRecord::completed(
                StepKind::Child,
                "u32",
                b"cancelled".to_vec(),
                point().status,
            )
        }
        .with_times(Some(2), Some(9)),
    );
    set_meta(
        &mut expected,
        &parent,
        with_status(meta_of(&before, &parent), MetadataStatus::Running, 9),
    );
    assert_eq!(dump(&*store).await, expected, "the cancel of a child");
}

/// An instance already under the child's id with the same input is
/// adopted; if it has ended, the start completes the point from its end at
/// once. With another input it is refused, nothing written.
pub async fn start_child_adopts_an_ended_instance(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let parent = key("order", "1");
    start(&*store, &parent, 1).await;
    let child = child_of(&parent, "pay");
    // Started before with the same input the start passes.
    ok(
        store
            .start_instance(child.clone(), input(b"child input"), 1)
            .await,
        "start_instance",
    );
    finish(
        &*store,
        &child,
        Finish::Completed {
            status: None,
            output: child_output(),
        },
        2,
    )
    .await;
    // Waiting and completed at the start itself.
    let expected_point = StepRecord {
        kind: StepKind::Child,
        status: point().status,
        ..child_output()
    }
    .with_times(Some(5), Some(5));
    assert_eq!(
        start_child(&*store, &parent, "pay", Some(point()), 5).await,
        ChildStartOutcome::Exists {
            point: Some(expected_point.clone())
        }
    );
    let got = dump(&*store).await;
    assert_eq!(
        got.instance(&parent).and_then(|s| s.step("pay")),
        Some(&expected_point)
    );
    let link = got
        .instance(&child)
        .and_then(|s| s.step("_parent"))
        .map(|r| ok(ParentLink::from_record(r), "ParentLink::from_record"));
    assert_eq!(link.map(|l| l.parent), Some(parent));

    let other = key("order", "2");
    start(&*store, &other, 1).await;
    let taken = child_of(&other, "pay");
    ok(
        store
            .start_instance(taken.clone(), input(b"another input"), 1)
            .await,
        "start_instance",
    );
    let before = dump(&*store).await;
    assert_eq!(
        start_child(&*store, &other, "pay", Some(point()), 5).await,
        ChildStartOutcome::InputConflict
    );
    assert_eq!(dump(&*store).await, before, "a refused adoption wrote");
}

/// A child's finish racing its parent's cancel: whichever lands first, the
/// store is consistent — never a completed child with its active parent's
/// point still waiting, never a cancelled parent woken.
pub async fn child_finish_races_parent_cancel(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let parent = key("order", &format!("{i}"));
        start(&*store, &parent, 1).await;
        start_child(&*store, &parent, "pay", Some(point()), 2).await;
        park_at(&*store, &parent, &["pay"], 3).await;
        let child = child_of(&parent, "pay");
        let (a, b) = (Arc::clone(&store), Arc::clone(&store));
        let p = parent.clone();
        tasks.push(tokio::spawn(async move {
            a.finish_instance(
                child,
                Finish::Completed {
                    status: None,
                    output: child_output(),
                },
                9,
            )
            .await
        }));
        tasks.push(tokio::spawn(async move {
            b.cancel_instance(p, 9)
                .await
                .map(|_| FinishOutcome::Finished)
        }));
    }
    for task in tasks {
        ok(task.await.expect("a racing task panicked"), "racing write");
    }
    let got = dump(&*store).await;
    for i in 0..16 {
        let parent = key("order", &format!("{i}"));
        let child = child_of(&parent, "pay");
        let parent_snap = got.instance(&parent).expect("the parent");
        let child_status = meta_of(&got, &child).status;
        assert_eq!(parent_snap.metadata.status, MetadataStatus::Cancelled);
        match child_status {
            // The finish came first: it completed the point, then the
            // cancel found the child ended.
            MetadataStatus::Completed(_) => assert_eq!(
                parent_snap.step("pay").map(|r| r.state),
                Some(memable_core::StepState::Completed),
                "child {i} completed but its point still waits"
            ),
            // The cancel came first and cascaded: the finish was refused.
            MetadataStatus::Cancelled => assert_eq!(
                parent_snap.step("pay"),
                Some(&point_since(2)),
                "child {i} was cancelled by the cascade, yet its point moved"
            ),
            other => panic!("child {i} ended up {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// The engine's children on this store.

static CHARGE: Workflow<u32, u32> = Workflow::new("charge");
static ORDER: Workflow<u32, u32> = Workflow::new("order");
static GO: SuspendPoint<u32> = SuspendPoint::new("go");

fn engine_on(store: Arc<dyn StepStore>, clock: &ManualClock) -> Engine {
    Engine::builder()
        .store(store)
        .clock(clock.clone())
        .default_retry(RetryPolicy::fixed(1, Duration::ZERO))
        .build()
}

/// `charge` waits for `go` (the amount to add), fails on 0.
fn register_charge(engine: &Engine) {
    ok(
        CHARGE.register(engine, |ctx: Context, cents: u32| async move {
            let extra = ctx.suspend(&GO).await?;
            if extra == 0 {
                return Err(EngineError::Workflow {
                    message: "declined".into(),
                });
            }
            ctx.step("charge")
                .run(|| async move { Ok::<_, StepError>(cents + extra) })
                .await
        }),
        "register charge",
    );
}

/// A parent awaits its child's output; a failed child is the parent's
/// typed error; both are listed as parent and child.
pub async fn engine_child_output_and_failure_reach_the_parent(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_on(store, &clock);
    register_charge(&engine);
    ok(
        ORDER.register(&engine, |ctx: Context, cents: u32| async move {
            match ctx.child(&CHARGE, "pay", cents).await {
                Err(EngineError::ChildFailed { error, child, .. }) => {
                    assert_eq!(child.instance(), format!("order:{}:pay", ctx.instance_id()));
                    Err(EngineError::Workflow {
                        message: format!("payment failed: {error}"),
                    })
                }
                other => other,
            }
        }),
        "register order",
    );
    ok(engine.start().await, "start");
    for (id, extra) in [("good", 5u32), ("bad", 0)] {
        let order = ok(ORDER.invoke(&engine, 100).id(id).await, "invoke");
        assert!(matches!(
            ok(order.wait_idle().await, "wait_idle"),
            WorkflowState::Suspended { ref key, .. } if key == "pay"
        ));
        engine.wait_all().await;
        let child_id = format!("order:{id}:pay");
        ok(
            CHARGE.instance(&engine, &child_id).signal(&GO, extra).await,
            "signal the child",
        );
        engine.wait_all().await;
        let output = ORDER.instance(&engine, id).output().await;
        if extra == 0 {
            assert!(
                matches!(&output, Err(EngineError::WorkflowFailed { error, .. }) if error == "payment failed: declined"),
                "{output:?}"
            );
        } else {
            assert_eq!(ok(output, "output"), 105);
        }
        let children = ok(engine.children("order", id).await, "children");
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].child.instance(), child_id);
        assert!(!children[0].detached);
        let parent = ok(engine.parent("charge", &child_id).await, "parent");
        assert_eq!(parent.map(|p| p.parent), Some(key("order", id)));
    }
    engine.shutdown().await;
}

/// Cancelling a parent cancels its child and grandchild (their runs stop,
/// their signals are refused) and leaves a detached child running.
pub async fn engine_cancel_cascades_to_children(factory: &dyn StoreFactory) {
    static MIDDLE: Workflow<u32, u32> = Workflow::new("middle");
    static ROOT: Workflow<u32, u32> = Workflow::new("root");
    let (_fx, store) = fresh(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_on(store, &clock);
    register_charge(&engine);
    ok(
        MIDDLE.register(&engine, |ctx: Context, n: u32| async move {
            ctx.child(&CHARGE, "leaf", n).await
        }),
        "register middle",
    );
    ok(
        ROOT.register(&engine, |ctx: Context, n: u32| async move {
            ctx.child(&CHARGE, "aside", n).detached().await?;
            ctx.child(&MIDDLE, "mid", n).await
        }),
        "register root",
    );
    ok(engine.start().await, "start");
    ok(ROOT.invoke(&engine, 1).id("r").await, "invoke");
    engine.wait_all().await;
    let leaf = "middle:root%3Ar%3Amid:leaf";
    assert!(matches!(
        ok(CHARGE.instance(&engine, leaf).state().await, "leaf state"),
        WorkflowState::Suspended { .. }
    ));
    ok(ROOT.instance(&engine, "r").cancel().await, "cancel");
    engine.wait_all().await;
    for (workflow, id) in [("root", "r"), ("middle", "root:r:mid"), ("charge", leaf)] {
        let meta = ok(engine.get_metadata(workflow, id).await, "metadata")
            .unwrap_or_else(|| panic!("{workflow}/{id} is gone"));
        assert_eq!(meta.status, MetadataStatus::Cancelled, "{workflow}/{id}");
    }
    let refused = CHARGE.instance(&engine, leaf).signal(&GO, 1).await;
    assert!(
        matches!(refused, Err(EngineError::SignalRejected { .. })),
        "{refused:?}"
    );
    let aside = ok(
        engine.get_metadata("charge", "root:r:aside").await,
        "metadata",
    );
    assert!(
        matches!(
            aside.map(|m| m.status),
            Some(MetadataStatus::Suspended { .. })
        ),
        "the detached child was cancelled"
    );
    engine.shutdown().await;
}

/// A fan-out of 8 children with at most 3 running: never more than 3 are
/// active whatever order they end in, and the outputs come in input order.
pub async fn engine_fan_out_is_bounded_and_ordered(factory: &dyn StoreFactory) {
    static BATCH: Workflow<Vec<u32>, Vec<u32>> = Workflow::new("batch");
    let (_fx, store) = fresh(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_on(store, &clock);
    register_charge(&engine);
    ok(
        BATCH.register(&engine, |ctx: Context, amounts: Vec<u32>| async move {
            let results = ctx.fan_out(&CHARGE, "item", amounts).max_running(3).await?;
            results.into_iter().collect()
        }),
        "register batch",
    );
    ok(engine.start().await, "start");
    let inputs: Vec<u32> = (1..=8).map(|n| n * 10).collect();
    ok(
        BATCH.invoke(&engine, inputs.clone()).id("b").await,
        "invoke",
    );
    engine.wait_all().await;
    let mut ended = 0;
    // End them out of order: the newest active one first.
    loop {
        let active = ok(
            engine
                .list_instances(&InstanceFilter::new().workflow("charge"))
                .await,
            "list",
        )
        .into_iter()
        .filter(|m| !m.status.is_terminal())
        .collect::<Vec<_>>();
        assert!(
            active.len() <= 3,
            "{} children active at once",
            active.len()
        );
        assert_eq!(
            active.len(),
            3.min(8 - ended),
            "fewer children run than the limit allows"
        );
        let Some(last) = active.iter().max_by_key(|m| m.instance_id.clone()) else {
            break;
        };
        ok(
            CHARGE
                .instance(&engine, &last.instance_id)
                .signal(&GO, 1)
                .await,
            "signal",
        );
        engine.wait_all().await;
        ended += 1;
    }
    assert_eq!(ended, 8);
    let expected: Vec<u32> = inputs.iter().map(|n| n + 1).collect();
    assert_eq!(
        ok(BATCH.instance(&engine, "b").output().await, "output"),
        expected
    );
    engine.shutdown().await;
}

/// A parent suspended on a child, and the child suspended on a signal,
/// survive closing and reopening the store: after the reopen, the signal
/// reaches the child and its output the parent, each step running once.
pub async fn engine_children_recover_after_reopen(factory: &dyn StoreFactory) {
    if !factory.capabilities().reopen {
        crate::support::skip(
            "engine_children_recover_after_reopen",
            factory,
            "it cannot reopen",
        );
        return;
    }
    let mut fx = ok(factory.create().await, "create");
    let clock = ManualClock::new(0);
    {
        let engine = engine_on(fx.store(), &clock);
        register_charge(&engine);
        ok(
            ORDER.register(&engine, |ctx: Context, cents: u32| async move {
                ctx.child(&CHARGE, "pay", cents).await
            }),
            "register order",
        );
        ok(engine.start().await, "start");
        ok(ORDER.invoke(&engine, 40).id("o").await, "invoke");
        engine.wait_all().await;
        engine.shutdown().await;
    }
    ok(fx.reopen().await, "reopen");
    let engine = engine_on(fx.store(), &clock);
    register_charge(&engine);
    ok(
        ORDER.register(&engine, |ctx: Context, cents: u32| async move {
            ctx.child(&CHARGE, "pay", cents).await
        }),
        "register order",
    );
    ok(engine.start().await, "start again");
    assert!(matches!(
        ok(engine.state("order", "o").await, "state"),
        WorkflowState::Suspended { ref key, .. } if key == "pay"
    ));
    ok(
        CHARGE.instance(&engine, "order:o:pay").signal(&GO, 2).await,
        "signal",
    );
    engine.wait_all().await;
    assert_eq!(
        ok(ORDER.instance(&engine, "o").output().await, "output"),
        42
    );
    let listed = ok(
        engine
            .list_instances(&InstanceFilter::new().status(StatusKind::Completed))
            .await,
        "list",
    );
    assert_eq!(listed.len(), 2, "parent and child completed: {listed:?}");
    engine.shutdown().await;
}
