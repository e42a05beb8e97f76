//! `forget_steps`, `fork_instance` and `resume_instance` (the operator's
//! repairs): what each removes, copies or resets, together; what each
//! refuses without writing; and, on an engine, that a forgotten step (or
//! one a fork left out, or a resumed dead letter) runs again while the
//! others replay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use memable_core::{
    Context, Engine, EngineError, Finish, ForgetOutcome, ForkOutcome, InvalidKeyReason,
    ManualClock, MetadataStatus, ParkOutcome, ReviveOutcome, SignalOutcome, StatusKind, StepError,
    StepKind, StepRecord, StepState, StepStoreExt, WaitOutcome, child_link_key,
};

use crate::StoreFactory;
use crate::support::{done, dump, entry, fresh, input, key, ok, payload, start, timer, waiting};

/// An instance parked at a timer `nap` (deadline 900) and a signal point
/// `ask`, with completed steps `a` and `b`.
async fn parked(store: &dyn memable_core::StepStore, k: &memable_core::InstanceKey) {
    start(store, k, 1).await;
    for step in ["a", "b"] {
        ok(
            store
                .commit_step(k.clone(), step.into(), done(step.as_bytes()))
                .await,
            "commit",
        );
    }
    for (point, record) in [("nap", timer(900)), ("ask", waiting())] {
        let waited = ok(
            store
                .wait_at(k.clone(), point.into(), record, Vec::new(), 2)
                .await,
            "wait_at",
        );
        assert_eq!(waited, WaitOutcome::Waiting);
    }
    let parked = ok(
        store
            .park(k.clone(), vec!["nap".into(), "ask".into()], None, 3)
            .await,
        "park",
    );
    assert_eq!(parked, ParkOutcome::Parked);
}

/// Forget removes exactly the named records that exist (answered once
/// each, in the order given) and the timer rows of suspended ones,
/// together; the status, the other records and other instances are
/// unchanged.
pub async fn forget_removes_named_records_and_their_timers(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("wf", "1");
    let other = key("wf", "2");
    parked(&*store, &k).await;
    parked(&*store, &other).await;
    let before = dump(&*store).await;

    let outcome = ok(
        store
            .forget_steps(
                k.clone(),
                vec!["nap".into(), "a".into(), "absent".into(), "a".into()],
                50,
            )
            .await,
        "forget_steps",
    );
    assert_eq!(
        outcome,
        ForgetOutcome::Forgotten(vec!["nap".into(), "a".into()])
    );
    let after = dump(&*store).await;
    let snap = after.instance(&k).expect("the instance is kept");
    assert_eq!(
        snap.metadata,
        before.instance(&k).expect("was there").metadata,
        "forget changed the instance's metadata"
    );
    let keys: Vec<&str> = snap.steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(keys, ["_input", "ask", "b"]);
    assert_eq!(
        after.timers,
        vec![entry(900, &other, "nap")],
        "the forgotten timer's row must go, the other instance's stay"
    );
    assert_eq!(after.instance(&other), before.instance(&other));
}

/// Forget refuses, writing nothing: a `Running` instance, a missing one,
/// and an engine key (`_input`, `_owner`, `_child:x`, …) even on an
/// instance it could otherwise change.
pub async fn forget_refusals_write_nothing(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let running = key("wf", "running");
    let suspended = key("wf", "suspended");
    start(&*store, &running, 1).await;
    ok(
        store
            .commit_step(running.clone(), "a".into(), done(b"a"))
            .await,
        "commit",
    );
    parked(&*store, &suspended).await;
    let before = dump(&*store).await;

    let outcome = ok(
        store
            .forget_steps(running.clone(), vec!["a".into()], 9)
            .await,
        "forget",
    );
    assert_eq!(outcome, ForgetOutcome::Running);
    let outcome = ok(
        store
            .forget_steps(key("wf", "missing"), vec!["a".into()], 9)
            .await,
        "forget",
    );
    assert_eq!(outcome, ForgetOutcome::InstanceMissing);
    for reserved in [
        "_input", "_owner", "_output", "_parent", "_queue", "_child:x",
    ] {
        let outcome = ok(
            store
                .forget_steps(suspended.clone(), vec!["a".into(), reserved.into()], 9)
                .await,
            "forget",
        );
        assert_eq!(outcome, ForgetOutcome::Reserved(reserved.into()));
    }
    // A queue's reserved instance is the engine's too.
    let queue = key(memable_core::QUEUE_WORKFLOW, "jobs");
    let outcome = ok(
        store.forget_steps(queue.clone(), vec!["a".into()], 9).await,
        "forget",
    );
    assert_eq!(
        outcome,
        ForgetOutcome::Reserved(memable_core::QUEUE_WORKFLOW.into())
    );
    let copy = key(memable_core::QUEUE_WORKFLOW, "copy");
    let outcome = ok(
        store.fork_instance(queue, copy, Vec::new(), 9).await,
        "fork",
    );
    assert_eq!(
        outcome,
        ForkOutcome::Reserved(memable_core::QUEUE_WORKFLOW.into())
    );
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused forget wrote something"
    );
}

/// Forgetting an awaited child's point removes the parent's link to it
/// too (the rerun starts or adopts the child again); the child instance
/// is kept.
pub async fn forget_child_point_removes_its_link(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let parent = key("parent", "1");
    let child = key("kid", "1");
    start(&*store, &parent, 1).await;
    let point = StepRecord::suspended(StepKind::Child, "u32", None, None);
    ok(
        store
            .start_child(
                parent.clone(),
                "kid".into(),
                child.clone(),
                input(b"k"),
                Some(point),
                2,
            )
            .await,
        "start_child",
    );
    let parked = ok(
        store
            .park(parent.clone(), vec!["kid".into()], None, 3)
            .await,
        "park",
    );
    assert_eq!(parked, ParkOutcome::Parked);

    let outcome = ok(
        store
            .forget_steps(parent.clone(), vec!["kid".into()], 4)
            .await,
        "forget",
    );
    assert_eq!(outcome, ForgetOutcome::Forgotten(vec!["kid".into()]));
    let snap = ok(store.load_instance(&parent).await, "load").expect("the parent is kept");
    assert!(snap.step("kid").is_none());
    assert!(
        snap.step(&child_link_key("kid")).is_none(),
        "the child link must go with its point"
    );
    assert!(
        ok(store.get_metadata(&child).await, "get_metadata").is_some(),
        "the child instance must be kept"
    );
}

/// A fork is a new `Running` instance (created now) holding the source's
/// records except the ones left out and the bookkeeping (`_output`,
/// `_parent`, child links, awaited children); suspended timers are copied
/// with their timer rows, buffered signals with them. The source is
/// unchanged.
#[allow(clippy::too_many_lines)] // one scenario, three forks
pub async fn fork_copies_records_except_bookkeeping(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    // A completed source with an output.
    let ended = key("wf", "ended");
    start(&*store, &ended, 1).await;
    for step in ["a", "b"] {
        ok(
            store
                .commit_step(ended.clone(), step.into(), done(step.as_bytes()))
                .await,
            "commit",
        );
    }
    let fin = memable_core::Finish::Completed {
        status: Some("done".into()),
        output: crate::support::output(b"out"),
    };
    ok(store.finish_instance(ended.clone(), fin, 5).await, "finish");
    // A suspended source: a timer, an awaited child, a buffered signal.
    let waiting_parent = key("wf", "parent");
    let child = key("wf", "parent-kid");
    start(&*store, &waiting_parent, 1).await;
    ok(
        store
            .wait_at(
                waiting_parent.clone(),
                "nap".into(),
                timer(900),
                Vec::new(),
                2,
            )
            .await,
        "wait_at",
    );
    let point = StepRecord::suspended(StepKind::Child, "u32", None, None);
    ok(
        store
            .start_child(
                waiting_parent.clone(),
                "kid".into(),
                child.clone(),
                input(b"k"),
                Some(point),
                2,
            )
            .await,
        "start_child",
    );
    let signal = ok(
        store
            .deliver_signal(waiting_parent.clone(), "later".into(), payload(b"s"), 2)
            .await,
        "deliver_signal",
    );
    assert_eq!(signal, SignalOutcome::Buffered);
    ok(
        store
            .park(
                waiting_parent.clone(),
                vec!["nap".into(), "kid".into()],
                None,
                3,
            )
            .await,
        "park",
    );
    let before = dump(&*store).await;

    // The ended one, without `b`.
    let fork = key("wf", "ended-fork");
    let outcome = ok(
        store
            .fork_instance(ended.clone(), fork.clone(), vec!["b".into()], 70)
            .await,
        "fork",
    );
    assert_eq!(outcome, ForkOutcome::Forked(vec!["a".into()]));
    let snap = ok(store.load_instance(&fork).await, "load").expect("the fork exists");
    assert_eq!(snap.metadata.status, MetadataStatus::Running);
    assert_eq!(
        (
            snap.metadata.created_at_ms,
            snap.metadata.updated_at_ms,
            snap.metadata.completed_at_ms
        ),
        (70, 70, None)
    );
    let keys: Vec<&str> = snap.steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(keys, ["_input", "a"]);
    let source = before.instance(&ended).expect("source");
    assert_eq!(snap.step("_input"), source.step("_input"));
    assert_eq!(snap.step("a"), source.step("a"));

    // The suspended one: its timer (re-keyed) and buffered signal come
    // along, its awaited child does not.
    let fork = key("wf", "parent-fork");
    let outcome = ok(
        store
            .fork_instance(waiting_parent.clone(), fork.clone(), Vec::new(), 71)
            .await,
        "fork",
    );
    assert_eq!(outcome, ForkOutcome::Forked(vec!["nap".into()]));
    let snap = ok(store.load_instance(&fork).await, "load").expect("the fork exists");
    let keys: Vec<&str> = snap.steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(keys, ["_input", "_signal:later", "nap"]);
    let timers = ok(store.due_timers(u64::MAX, usize::MAX).await, "due_timers");
    assert!(
        timers.contains(&entry(900, &fork, "nap"))
            && timers.contains(&entry(900, &waiting_parent, "nap")),
        "the fork's timer row is missing or the source's went: {timers:?}"
    );

    // The child: a fork is no one's child.
    let fork = key("wf", "kid-fork");
    ok(
        store
            .fork_instance(child.clone(), fork.clone(), Vec::new(), 72)
            .await,
        "fork",
    );
    let snap = ok(store.load_instance(&fork).await, "load").expect("the fork exists");
    let keys: Vec<&str> = snap.steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(keys, ["_input"]);

    let after = dump(&*store).await;
    for source in [&ended, &waiting_parent, &child] {
        assert_eq!(
            after.instance(source),
            before.instance(source),
            "fork changed its source {source}"
        );
    }
}

/// Fork refuses, writing nothing: a missing source, a taken target id,
/// another workflow, an engine key in `without`.
pub async fn fork_refusals_write_nothing(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let a = key("wf", "a");
    let b = key("wf", "b");
    start(&*store, &a, 1).await;
    start(&*store, &b, 1).await;
    let before = dump(&*store).await;

    let outcome = ok(
        store
            .fork_instance(key("wf", "missing"), key("wf", "new"), Vec::new(), 9)
            .await,
        "fork",
    );
    assert_eq!(outcome, ForkOutcome::SourceMissing);
    let outcome = ok(
        store
            .fork_instance(a.clone(), b.clone(), Vec::new(), 9)
            .await,
        "fork",
    );
    assert!(
        matches!(&outcome, ForkOutcome::TargetExists(meta) if meta.instance_id == "b"),
        "{outcome:?}"
    );
    let outcome = ok(
        store
            .fork_instance(a.clone(), key("other", "new"), Vec::new(), 9)
            .await,
        "fork",
    );
    assert_eq!(outcome, ForkOutcome::OtherWorkflow);
    let outcome = ok(
        store
            .fork_instance(a.clone(), key("wf", "new"), vec!["_input".into()], 9)
            .await,
        "fork",
    );
    assert_eq!(outcome, ForkOutcome::Reserved("_input".into()));
    assert_eq!(
        dump(&*store).await,
        before,
        "a refused fork wrote something"
    );
}

/// Counts each step's closure runs.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<String, usize>>>);

impl Runs {
    fn count(&self, step: &str) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(step.to_owned())
            .or_default() += 1;
    }

    fn get(&self, step: &str) -> usize {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(step)
            .copied()
            .unwrap_or(0)
    }
}

/// An engine with workflow `three`: steps `a`, `b`, `c` (counted) output
/// their sum (1 + 10 + 100).
fn engine_with_three(factory_store: Arc<dyn memable_core::StepStore>, runs: &Runs) -> Engine {
    let engine = Engine::builder()
        .store(factory_store)
        .clock(ManualClock::new(1_000))
        .build();
    let runs = runs.clone();
    engine
        .register("three", move |ctx: Context| {
            let runs = runs.clone();
            async move {
                let mut sum = 0u32;
                for (step, value) in [("a", 1u32), ("b", 10), ("c", 100)] {
                    let runs = runs.clone();
                    sum += ctx
                        .step(step)
                        .run(move || {
                            runs.count(step);
                            async move { Ok::<_, StepError>(value) }
                        })
                        .await?;
                }
                Ok(sum)
            }
        })
        .expect("register");
    engine
}

/// On an engine: forgetting a completed step of an ended instance and
/// resuming it runs that step's closure again and no other; a fork without
/// a step runs that step only, and the original is untouched.
pub async fn engine_forget_and_fork_rerun_only_those_steps(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let runs = Runs::default();
    let engine = engine_with_three(Arc::clone(&store), &runs);
    engine.start().await.expect("start");
    let out: u32 = engine
        .invoke("three")
        .id("t1")
        .await
        .expect("invoke")
        .wait_output()
        .await
        .expect("output");
    assert_eq!(out, 111);
    let forgotten = engine.forget("three", "t1", &["b"]).await.expect("forget");
    assert_eq!(forgotten, ["b"]);
    let out: u32 = engine
        .resume("three", "t1")
        .await
        .expect("resume")
        .wait_output()
        .await
        .expect("output");
    assert_eq!(out, 111);
    assert_eq!((runs.get("a"), runs.get("b"), runs.get("c")), (1, 2, 1));

    engine
        .fork("three", "t1", "t1-fork", &["c"])
        .await
        .expect("fork");
    let mut states = engine
        .subscribe("three", "t1-fork")
        .await
        .expect("subscribe");
    while states.next().await.is_some() {}
    assert_eq!(
        engine
            .output::<u32>("three", "t1-fork")
            .await
            .expect("fork output"),
        111
    );
    assert_eq!((runs.get("a"), runs.get("b"), runs.get("c")), (1, 2, 2));
    assert!(
        engine
            .get_metadata("three", "t1")
            .await
            .expect("metadata")
            .is_some_and(|m| matches!(m.status, MetadataStatus::Completed(_))),
        "the original must stay completed"
    );

    // Refusals are typed.
    assert!(matches!(
        engine.forget("three", "t1", &["_input"]).await,
        Err(EngineError::InvalidKey {
            reason: InvalidKeyReason::Reserved,
            ..
        })
    ));
    assert!(matches!(
        engine.forget("three", "nope", &["a"]).await,
        Err(EngineError::InstanceNotFound { .. })
    ));
    assert!(matches!(
        engine.fork("three", "t1", "t1-fork", &[]).await,
        Err(EngineError::InstanceExists { .. })
    ));
    assert!(matches!(
        engine.fork("three", "nope", "x", &[]).await,
        Err(EngineError::InstanceNotFound { .. })
    ));
    engine.shutdown().await;
}

/// A fork written while no engine runs is run by the next engine that
/// starts with its workflow (like an instance a crash left `Running`);
/// forgetting a step of a running instance is refused.
pub async fn engine_fork_runs_on_the_next_start(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let runs = Runs::default();
    let engine = engine_with_three(Arc::clone(&store), &runs);
    engine.start().await.expect("start");
    engine
        .invoke("three")
        .id("t1")
        .await
        .expect("invoke")
        .wait_idle()
        .await
        .expect("idle");
    engine.shutdown().await;
    drop(engine);

    // No workflow registered: the fork is written, not run.
    let offline = Engine::builder().store(Arc::clone(&store)).build();
    offline
        .fork("three", "t1", "t1-fork", &["a"])
        .await
        .expect("fork");
    let meta = offline
        .get_metadata("three", "t1-fork")
        .await
        .expect("metadata")
        .expect("the fork exists");
    assert_eq!(meta.status.kind(), StatusKind::Running);
    assert!(matches!(
        offline.forget("three", "t1-fork", &["b"]).await,
        Err(EngineError::InvalidState {
            state: StatusKind::Running,
            ..
        })
    ));
    drop(offline);

    let engine = engine_with_three(Arc::clone(&store), &runs);
    engine.start().await.expect("start");
    let mut states = engine
        .subscribe("three", "t1-fork")
        .await
        .expect("subscribe");
    while states.next().await.is_some() {}
    engine.wait_all().await;
    assert_eq!(
        engine
            .output::<u32>("three", "t1-fork")
            .await
            .expect("output"),
        111
    );
    assert_eq!((runs.get("a"), runs.get("b"), runs.get("c")), (2, 1, 1));
    engine.shutdown().await;
}

/// Resume (an operator's) revives an ended instance and, together, turns
/// each dead letter into a retry with no attempts counted (its first start
/// and last error kept) and an at-most-once attempt of unknown outcome
/// into a known retry (that attempt counted); every other record is
/// unchanged. A running
/// instance (a run may be in flight) and a queued one are left as they
/// are; a cancelled or missing one is refused; none of these writes.
pub async fn resume_gives_dead_letters_a_fresh_budget(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let s = &*store;
    let failed = key("wf", "failed");
    start(s, &failed, 1).await;
    let dead = StepRecord::failure(StepState::Failed, 3, "503").with_times(Some(5), None);
    // An at-most-once attempt that began and recorded no outcome.
    let mut in_flight = StepRecord::failure(StepState::Retrying, 1, "").with_times(Some(6), None);
    in_flight.error = None;
    for (step, record) in [
        ("a", done(b"a")),
        ("call", dead.clone()),
        ("charge", in_flight),
    ] {
        ok(
            s.commit_step(failed.clone(), step.into(), record).await,
            "commit",
        );
    }
    let fin = Finish::Failed("call: retries exhausted".into());
    ok(s.finish_instance(failed.clone(), fin, 9).await, "finish");
    let before = dump(s).await;

    let outcome = ok(s.resume_instance(failed.clone(), 20).await, "resume");
    assert!(
        matches!(outcome, ReviveOutcome::Revived(MetadataStatus::Failed(_))),
        "resume answered {outcome:?}"
    );
    let after = dump(s).await;
    let snap = after.instance(&failed).expect("the instance is kept");
    assert_eq!(snap.metadata.status, MetadataStatus::Running);
    assert_eq!(snap.metadata.updated_at_ms, 20);
    assert_eq!(snap.metadata.completed_at_ms, None);
    let call = snap.step("call").expect("the dead letter's record is kept");
    assert_eq!(call.state, StepState::Retrying, "{call:?}");
    assert_eq!(call.attempts, 0, "a fresh budget counts no attempt");
    assert_eq!(call.error.as_deref(), Some("503"), "the last error is kept");
    assert_eq!(call.started_at_ms, Some(5), "the first start is kept");
    let charge = snap.step("charge").expect("the in-flight record is kept");
    assert_eq!(charge.state, StepState::Retrying, "{charge:?}");
    assert_eq!(charge.attempts, 2, "the interrupted attempt counts");
    assert!(charge.error.is_some(), "now a known retry: {charge:?}");
    assert_eq!(charge.started_at_ms, Some(6));
    let before_snap = before.instance(&failed).expect("before");
    for (step, record) in &snap.steps {
        if step != "call" && step != "charge" {
            assert_eq!(
                before_snap.step(step),
                Some(record),
                "resume changed record {step}"
            );
        }
    }
    assert_eq!(snap.steps.len(), before_snap.steps.len());

    // Running (a dead letter a run may be handling), cancelled, missing:
    // nothing written.
    let running = key("wf", "running");
    start(s, &running, 1).await;
    ok(
        s.commit_step(running.clone(), "call".into(), dead.clone())
            .await,
        "commit",
    );
    let cancelled = key("wf", "cancelled");
    start(s, &cancelled, 1).await;
    ok(
        s.commit_step(cancelled.clone(), "call".into(), dead).await,
        "commit",
    );
    ok(s.cancel_instance(cancelled.clone(), 2).await, "cancel");
    let before = dump(s).await;
    assert_eq!(
        ok(s.resume_instance(running, 30).await, "resume"),
        ReviveOutcome::Revived(MetadataStatus::Running)
    );
    assert_eq!(
        ok(s.resume_instance(cancelled, 30).await, "resume"),
        ReviveOutcome::Cancelled
    );
    assert_eq!(
        ok(s.resume_instance(key("wf", "missing"), 30).await, "resume"),
        ReviveOutcome::InstanceMissing
    );
    assert_eq!(dump(s).await, before, "a refused or idle resume wrote");
}

/// On an engine: an instance that failed on a dead letter, resumed
/// through the store while no engine runs (as the `memable resume`
/// command does), is run by the next engine that starts: the dead-lettered
/// step gets a fresh budget and runs again, the steps before it replay,
/// and the instance completes.
pub async fn engine_runs_a_resumed_dead_letter_on_the_next_start(factory: &dyn StoreFactory) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (_fx, store) = fresh(factory).await;
    let down = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let firsts = Arc::new(AtomicUsize::new(0));
    let build = || {
        let engine = Engine::builder().store(Arc::clone(&store)).build();
        let (down, calls, firsts) = (Arc::clone(&down), Arc::clone(&calls), Arc::clone(&firsts));
        engine
            .register("flaky", move |ctx: Context| {
                let (down, calls, firsts) =
                    (Arc::clone(&down), Arc::clone(&calls), Arc::clone(&firsts));
                async move {
                    let first: u32 = ctx
                        .step("first")
                        .run(move || {
                            firsts.fetch_add(1, Ordering::SeqCst);
                            async { Ok::<_, StepError>(1) }
                        })
                        .await?;
                    let call: u32 = ctx
                        .step("call")
                        .retry(memable_core::RetryPolicy::fixed(
                            2,
                            std::time::Duration::ZERO,
                        ))
                        .run(move || {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let down = down.load(Ordering::SeqCst);
                            async move {
                                if down {
                                    Err(StepError::retryable("service down"))
                                } else {
                                    Ok(41)
                                }
                            }
                        })
                        .await?;
                    Ok(first + call)
                }
            })
            .expect("register");
        engine
    };
    let engine = build();
    engine.start().await.expect("start");
    let ended = engine
        .invoke("flaky")
        .id("f1")
        .await
        .expect("invoke")
        .wait_idle()
        .await
        .expect("idle");
    assert!(
        matches!(ended, memable_core::WorkflowState::Failed { .. }),
        "{ended:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    engine.shutdown().await;
    drop(engine);

    let k = key("flaky", "f1");
    let outcome = ok(store.resume_instance(k, 100).await, "resume");
    assert!(matches!(
        outcome,
        ReviveOutcome::Revived(MetadataStatus::Failed(_))
    ));
    down.store(false, Ordering::SeqCst);

    let engine = build();
    engine.start().await.expect("start");
    let mut states = engine.subscribe("flaky", "f1").await.expect("subscribe");
    while states.next().await.is_some() {}
    engine.wait_all().await;
    assert_eq!(
        engine.output::<u32>("flaky", "f1").await.expect("output"),
        42
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the dead letter ran once more"
    );
    assert_eq!(firsts.load(Ordering::SeqCst), 1, "the step before replayed");
    let history = engine.step_history("flaky", "f1").await.expect("history");
    let call = history
        .steps
        .iter()
        .find(|s| s.key == "call")
        .expect("call");
    assert_eq!(call.state, StepState::Completed);
    assert_eq!(call.attempts, 1, "attempts count from the fresh budget");
    engine.shutdown().await;
}
