//! Queues: the `enqueue` and `admit` transitions (limits, priorities,
//! partitions, rate windows, dedup ids, workers), instances leaving their
//! queue when they end, and the engine's queues on top of them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use memable_core::StepStoreExt;
use memable_core::{
    AdmitOutcome, Context, Engine, EngineError, EnqueueOutcome, Finish, InstanceFilter,
    InstanceKey, ManualClock, MetadataStatus, Ownership, Queue, QueueLimits, QueueTicket,
    RetryPolicy, StepStore, SuspendPoint, WorkflowMetadata, WorkflowState,
};

use crate::StoreFactory;
use crate::support::{dump, fresh, input, key, ok, output};

fn limits(concurrency: Option<usize>) -> QueueLimits {
    QueueLimits {
        concurrency,
        ..QueueLimits::default()
    }
}

async fn enqueue(
    store: &dyn StepStore,
    key: &InstanceKey,
    ticket: QueueTicket,
    now_ms: u64,
) -> EnqueueOutcome {
    ok(
        store
            .enqueue(
                key.clone(),
                input(key.instance().as_bytes()),
                ticket,
                now_ms,
            )
            .await,
        "enqueue",
    )
}

async fn admit(store: &dyn StepStore, limits: QueueLimits, now_ms: u64) -> AdmitOutcome {
    ok(
        store.admit("jobs", limits, None, None, 100, now_ms).await,
        "admit",
    )
}

/// The instances admitted, by id.
fn ids(outcome: &AdmitOutcome) -> Vec<String> {
    outcome
        .admitted
        .iter()
        .map(|(k, _)| k.instance().to_owned())
        .collect()
}

async fn status_of(store: &dyn StepStore, key: &InstanceKey) -> MetadataStatus {
    ok(store.get_metadata(key).await, "get_metadata")
        .unwrap_or_else(|| panic!("{key} is missing"))
        .status
}

fn queued_in(queue: &str) -> MetadataStatus {
    MetadataStatus::Suspended {
        key: "_queue".into(),
        status: Some(queue.into()),
    }
}

async fn finish(store: &dyn StepStore, key: &InstanceKey, now_ms: u64) {
    let how = Finish::Completed {
        status: None,
        output: output(b"done"),
    };
    ok(
        store.finish_instance(key.clone(), how, now_ms).await,
        "finish_instance",
    );
}

/// An enqueue writes the queued instance, its input and ticket, and the
/// queue's entry, together; nothing else.
pub async fn enqueue_writes_a_queued_instance(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let k = key("send", "1");
    let ticket = QueueTicket::new("jobs").partition("c-7").priority(2);
    assert_eq!(
        enqueue(&*store, &k, ticket.clone(), 5).await,
        EnqueueOutcome::Enqueued
    );
    let got = dump(&*store).await;
    let snap = got.instance(&k).expect("the queued instance");
    assert_eq!(
        snap.metadata,
        WorkflowMetadata {
            status: queued_in("jobs"),
            ..WorkflowMetadata::running(&k, 5)
        }
    );
    assert_eq!(snap.step("_input"), Some(&input(b"1")));
    let stored = snap
        .step("_queue")
        .map(|r| ok(QueueTicket::from_record(r), "QueueTicket::from_record"))
        .expect("the ticket");
    assert_eq!(
        stored,
        QueueTicket {
            pending_key: stored.pending_key.clone(),
            ..ticket
        }
    );
    assert!(stored.pending_key.is_some(), "the ticket names no entry");
    let queue = got
        .instance(&key("_queue", "jobs"))
        .expect("the queue's instance");
    assert!(
        queue
            .step(stored.pending_key.as_deref().unwrap_or_default())
            .is_some(),
        "the queue has no pending entry for the ticket"
    );
    assert_eq!(got.instances.len(), 2, "{:?}", got.instances);
    assert!(got.timers.is_empty());
}

/// An existing id, or a dedup id an active instance holds, is refused
/// without writing; once the holder ends, the dedup id is free again.
pub async fn enqueue_refusals_write_nothing_and_dedup_frees_at_the_end(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let first = key("sync", "1");
    let ticket = QueueTicket::new("jobs").dedup("account-9");
    enqueue(&*store, &first, ticket.clone(), 1).await;
    let before = dump(&*store).await;
    assert!(matches!(
        enqueue(&*store, &first, QueueTicket::new("jobs"), 2).await,
        EnqueueOutcome::Exists(_)
    ));
    assert_eq!(
        enqueue(&*store, &key("sync", "2"), ticket.clone(), 2).await,
        EnqueueOutcome::Duplicate(first.clone())
    );
    assert_eq!(dump(&*store).await, before, "a refused enqueue wrote");
    // Admitted, the holder still holds it; ended, it does not.
    assert_eq!(ids(&admit(&*store, limits(None), 3).await), vec!["1"]);
    assert_eq!(
        enqueue(&*store, &key("sync", "2"), ticket.clone(), 4).await,
        EnqueueOutcome::Duplicate(first.clone())
    );
    finish(&*store, &first, 5).await;
    assert_eq!(
        enqueue(&*store, &key("sync", "2"), ticket, 6).await,
        EnqueueOutcome::Enqueued
    );
}

/// Admission takes the highest priority first, first come first within
/// one, never more than the concurrency limit; an end frees its slot.
pub async fn admit_follows_priority_and_the_limit(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for (id, priority) in [("a", 0), ("b", 5), ("c", 0), ("d", 9), ("e", 5)] {
        enqueue(
            &*store,
            &key("job", id),
            QueueTicket::new("jobs").priority(priority),
            1,
        )
        .await;
    }
    let two = limits(Some(2));
    let first = admit(&*store, two, 2).await;
    assert_eq!(ids(&first), vec!["d", "b"]);
    assert_eq!(first.pending, 3);
    assert_eq!(
        status_of(&*store, &key("job", "d")).await,
        MetadataStatus::Running
    );
    assert_eq!(
        status_of(&*store, &key("job", "e")).await,
        queued_in("jobs")
    );
    let full = admit(&*store, two, 3).await;
    assert!(
        full.admitted.is_empty(),
        "admitted past the limit: {full:?}"
    );
    finish(&*store, &key("job", "d"), 4).await;
    assert_eq!(ids(&admit(&*store, two, 5).await), vec!["e"]);
    finish(&*store, &key("job", "b"), 6).await;
    finish(&*store, &key("job", "e"), 6).await;
    assert_eq!(ids(&admit(&*store, two, 7).await), vec!["a", "c"]);
}

/// At most the per-partition limit of one partition holds a slot; the
/// others of that partition wait while other partitions go ahead.
pub async fn admit_holds_a_partition_to_its_limit(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for (id, partition) in [("a1", "A"), ("a2", "A"), ("b1", "B"), ("a3", "A")] {
        enqueue(
            &*store,
            &key("job", id),
            QueueTicket::new("jobs").partition(partition),
            1,
        )
        .await;
    }
    let one_each = QueueLimits {
        concurrency: Some(10),
        per_partition: Some(1),
        rate: None,
    };
    assert_eq!(ids(&admit(&*store, one_each, 2).await), vec!["a1", "b1"]);
    assert!(admit(&*store, one_each, 3).await.admitted.is_empty());
    ok(
        store.cancel_instance(key("job", "a1"), 4).await,
        "cancel_instance",
    );
    assert_eq!(ids(&admit(&*store, one_each, 5).await), vec!["a2"]);
}

/// A rate limit of n per period admits n in any window and says when the
/// window opens again.
pub async fn admit_keeps_the_rate_window(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for i in 0..5 {
        enqueue(
            &*store,
            &key("job", &format!("{i}")),
            QueueTicket::new("jobs"),
            1,
        )
        .await;
    }
    let rate = QueueLimits {
        concurrency: None,
        per_partition: None,
        rate: Some((2, 1_000)),
    };
    let first = admit(&*store, rate, 100).await;
    assert_eq!(ids(&first), vec!["0", "1"]);
    assert_eq!(first.retry_at_ms, Some(1_100));
    let early = admit(&*store, rate, 1_099).await;
    assert!(early.admitted.is_empty(), "{early:?}");
    assert_eq!(early.retry_at_ms, Some(1_100));
    assert_eq!(ids(&admit(&*store, rate, 1_100).await), vec!["2", "3"]);
    assert_eq!(ids(&admit(&*store, rate, 2_100).await), vec!["4"]);
}

/// A worker's admission acquires what it admits; workflows it does not
/// run are left pending.
pub async fn admit_by_a_worker_acquires_its_workflows_only(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    enqueue(&*store, &key("mine", "1"), QueueTicket::new("jobs"), 1).await;
    enqueue(&*store, &key("theirs", "1"), QueueTicket::new("jobs"), 1).await;
    let outcome = ok(
        store
            .admit(
                "jobs",
                limits(None),
                Some(vec!["mine".into()]),
                Some("w1".into()),
                10,
                2,
            )
            .await,
        "admit",
    );
    assert_eq!(outcome.admitted, vec![(key("mine", "1"), Some(1))]);
    assert_eq!(outcome.pending, 1);
    let snap =
        ok(store.load_instance(&key("mine", "1")).await, "load").expect("the admitted instance");
    let owner = snap
        .step("_owner")
        .map(|r| ok(Ownership::from_record(r), "Ownership::from_record"));
    // A store that keeps ownership in columns does not show `_owner`; a
    // fenced write under the epoch must land either way.
    if let Some(owner) = owner {
        assert_eq!(owner.worker.as_deref(), Some("w1"));
    }
    let fenced = memable_core::WriteOp::Fenced {
        epoch: 1,
        op: Box::new(memable_core::WriteOp::Commit {
            key: key("mine", "1"),
            step_key: "s".into(),
            record: crate::support::done(b"x"),
        }),
    };
    assert!(matches!(
        ok(store.write(fenced).await, "fenced commit"),
        memable_core::WriteOutcome::Commit(memable_core::CommitOutcome::Committed)
    ));
    assert_eq!(
        status_of(&*store, &key("theirs", "1")).await,
        queued_in("jobs")
    );
}

/// Cancel and delete take an instance out of its queue whether it waits or
/// holds a slot; revive leaves a waiting one queued, and an ended one runs
/// outside the limit without freeing another's slot.
pub async fn ends_leave_the_queue_and_revive_runs_outside(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for id in ["a", "b", "c"] {
        enqueue(&*store, &key("job", id), QueueTicket::new("jobs"), 1).await;
    }
    let one = limits(Some(1));
    assert_eq!(ids(&admit(&*store, one, 2).await), vec!["a"]);
    // A waiting one revived stays queued.
    ok(store.revive_instance(key("job", "b"), 3).await, "revive");
    assert_eq!(
        status_of(&*store, &key("job", "b")).await,
        queued_in("jobs")
    );
    // A cancelled waiting one is never admitted.
    ok(store.cancel_instance(key("job", "b"), 4).await, "cancel");
    // The holder deleted frees its slot.
    assert!(ok(store.delete_instance(key("job", "a")).await, "delete"));
    assert_eq!(ids(&admit(&*store, one, 5).await), vec!["c"]);
    finish(&*store, &key("job", "c"), 6).await;
    // Revived after its end, it runs outside the queue's limit: its slot
    // was freed at its end, and its second end frees nothing of another's.
    enqueue(&*store, &key("job", "d"), QueueTicket::new("jobs"), 7).await;
    enqueue(&*store, &key("job", "e"), QueueTicket::new("jobs"), 7).await;
    ok(store.revive_instance(key("job", "c"), 8).await, "revive");
    assert_eq!(
        status_of(&*store, &key("job", "c")).await,
        MetadataStatus::Running
    );
    assert_eq!(ids(&admit(&*store, one, 9).await), vec!["d"]);
    finish(&*store, &key("job", "c"), 10).await;
    assert!(
        admit(&*store, one, 11).await.admitted.is_empty(),
        "c's end freed d's slot"
    );
    finish(&*store, &key("job", "d"), 12).await;
    assert_eq!(ids(&admit(&*store, one, 13).await), vec!["e"]);
}

/// Sixteen admissions at once with a limit of 4 over 32 pending admit
/// exactly 4, each once.
pub async fn concurrent_admissions_never_exceed_the_limit(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    for i in 0..32 {
        enqueue(
            &*store,
            &key("job", &format!("{i:02}")),
            QueueTicket::new("jobs"),
            1,
        )
        .await;
    }
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(
                async move { store.admit("jobs", limits(Some(4)), None, None, 3, 2).await },
            )
        })
        .collect();
    let mut admitted = Vec::new();
    for task in tasks {
        let outcome = ok(task.await.expect("an admission panicked"), "admit");
        admitted.extend(ids(&outcome));
    }
    let unique: BTreeSet<_> = admitted.iter().cloned().collect();
    assert_eq!(admitted.len(), 4, "admitted {admitted:?}");
    assert_eq!(unique.len(), 4, "admitted twice: {admitted:?}");
    let running = ok(
        store
            .list_instances(&InstanceFilter::new().workflow("job"))
            .await,
        "list",
    )
    .into_iter()
    .filter(|m| m.status == MetadataStatus::Running)
    .count();
    assert_eq!(running, 4);
}

/// Thirty-two enqueues at once with one dedup id: exactly one wins.
pub async fn concurrent_dedup_has_one_winner(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .enqueue(
                        key("sync", &format!("{i}")),
                        input(b"i"),
                        QueueTicket::new("jobs").dedup("account-9"),
                        1,
                    )
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match ok(task.await.expect("an enqueue panicked"), "enqueue") {
            EnqueueOutcome::Enqueued => winners += 1,
            EnqueueOutcome::Duplicate(_) => {}
            EnqueueOutcome::Exists(meta) => panic!("a fresh id exists: {meta:?}"),
        }
    }
    assert_eq!(winners, 1);
    let queued = ok(
        store
            .list_instances(&InstanceFilter::new().workflow("sync"))
            .await,
        "list",
    );
    assert_eq!(queued.len(), 1, "{queued:?}");
}

// ---------------------------------------------------------------------------
// The engine's queues on this store.

static GO: SuspendPoint<u32> = SuspendPoint::new("go");

fn engine_with(store: Arc<dyn StepStore>, clock: &ManualClock, queue: Queue) -> Engine {
    Engine::builder()
        .store(store)
        .clock(clock.clone())
        .default_retry(RetryPolicy::fixed(1, Duration::ZERO))
        .queue(queue)
        .build()
}

/// `wait`: suspends for `go`, returns it.
fn register_wait(engine: &Engine) {
    ok(
        engine.register("wait", |ctx: Context| async move { ctx.suspend(&GO).await }),
        "register",
    );
}

async fn states(engine: &Engine) -> Vec<(String, WorkflowState)> {
    let mut out = Vec::new();
    for meta in ok(
        engine
            .list_instances(&InstanceFilter::new().workflow("wait"))
            .await,
        "list",
    ) {
        out.push((meta.instance_id.clone(), WorkflowState::from(&meta.status)));
    }
    out
}

/// A queue of concurrency 3 with 12 invocations: never more than 3 started
/// and not ended, exactly 3 while enough wait, all 12 complete.
pub async fn engine_queue_limit_holds(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_with(
        store,
        &clock,
        Queue::new("jobs").concurrency(3).default_for("wait"),
    );
    register_wait(&engine);
    ok(engine.start().await, "start");
    for i in 0..12 {
        ok(
            engine.invoke("wait").id(format!("{i:02}")).input(()).await,
            "invoke",
        );
    }
    engine.wait_all().await;
    for ended in 0..12 {
        let now = states(&engine).await;
        let holding: Vec<_> = now
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    WorkflowState::Running { .. } | WorkflowState::Suspended { .. }
                )
            })
            .collect();
        assert_eq!(
            holding.len(),
            3.min(12 - ended),
            "holding a slot: {holding:?}"
        );
        let (id, _) = holding[holding.len() - 1];
        ok(engine.signal("wait", id, &GO, 1).await, "signal");
        engine.wait_all().await;
    }
    let done = states(&engine).await;
    assert!(
        done.iter()
            .all(|(_, s)| matches!(s, WorkflowState::Completed { .. })),
        "{done:?}"
    );
    engine.shutdown().await;
}

/// One run per partition key at a time; other keys go ahead.
pub async fn engine_partition_runs_one_per_key(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_with(
        store,
        &clock,
        Queue::new("jobs").per_partition(1).default_for("wait"),
    );
    register_wait(&engine);
    ok(engine.start().await, "start");
    for (id, customer) in [
        ("a1", "A"),
        ("a2", "A"),
        ("b1", "B"),
        ("a3", "A"),
        ("b2", "B"),
    ] {
        ok(
            engine.invoke("wait").id(id).partition(customer).await,
            "invoke",
        );
    }
    engine.wait_all().await;
    for expected in [["a1", "b1"], ["a2", "b2"]] {
        let holding: Vec<String> = states(&engine)
            .await
            .into_iter()
            .filter(|(_, s)| matches!(s, WorkflowState::Suspended { .. }))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(holding, expected);
        for id in expected {
            ok(engine.signal("wait", id, &GO, 1).await, "signal");
        }
        engine.wait_all().await;
    }
    let last = states(&engine).await;
    assert!(
        matches!(
            last.iter().find(|(id, _)| id == "a3"),
            Some((_, WorkflowState::Suspended { .. }))
        ),
        "{last:?}"
    );
    engine.shutdown().await;
}

/// A rate of 2 per minute by the engine's clock: two run at once, the
/// next two when the clock reaches the minute, never by sleeping.
pub async fn engine_rate_limit_follows_the_clock(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_with(
        store,
        &clock,
        Queue::new("jobs")
            .rate(2, Duration::from_secs(60))
            .default_for("quick"),
    );
    ok(
        engine.register("quick", |_ctx: Context| async { Ok(7u32) }),
        "register",
    );
    ok(engine.start().await, "start");
    let ids: Vec<String> = (0..5).map(|i| format!("{i}")).collect();
    for id in &ids {
        ok(engine.invoke("quick").id(id).await, "invoke");
    }
    for expect in [2, 4, 5] {
        // The runs admitted in this window end; the rest stay queued.
        for id in ids.iter().take(expect) {
            let mut states = ok(engine.subscribe("quick", id).await, "subscribe");
            while states.next().await.is_some() {}
            assert_eq!(ok(engine.output::<u32>("quick", id).await, "output"), 7);
        }
        engine.wait_all().await;
        for id in ids.iter().skip(expect) {
            let state = ok(engine.state("quick", id).await, "state");
            assert_eq!(
                state,
                WorkflowState::Queued {
                    queue: "jobs".into()
                }
            );
        }
        clock.advance(Duration::from_secs(60));
    }
    engine.shutdown().await;
}

/// A dedup id held by a queued or running instance refuses another
/// invocation with it; after the holder ends it is free.
pub async fn engine_dedup_refuses_while_active(factory: &dyn StoreFactory) {
    let (_fx, store) = fresh(factory).await;
    let clock = ManualClock::new(0);
    let engine = engine_with(store, &clock, Queue::new("jobs").default_for("wait"));
    register_wait(&engine);
    ok(engine.start().await, "start");
    ok(
        engine.invoke("wait").id("1").dedup_id("acct").await,
        "invoke",
    );
    engine.wait_all().await;
    let again = engine.invoke("wait").id("2").dedup_id("acct").await;
    assert!(
        matches!(&again, Err(EngineError::Duplicate { holder, .. }) if holder.instance() == "1"),
        "{:?}",
        again.map(|i| i.instance_id().to_owned())
    );
    let run = ok(engine.signal("wait", "1", &GO, 3).await, "signal");
    assert_eq!(ok(run.wait_output::<u32>().await, "output"), 3);
    ok(
        engine.invoke("wait").id("2").dedup_id("acct").await,
        "invoke again",
    );
    engine.shutdown().await;
}

/// An engine that listens to queue `a` only leaves `b`'s invocations
/// queued; an engine that listens to `b` admits them.
pub async fn engine_listens_to_its_queues_only(factory: &dyn StoreFactory) {
    if !factory.capabilities().reopen {
        crate::support::skip(
            "engine_listens_to_its_queues_only",
            factory,
            "it cannot reopen",
        );
        return;
    }
    let mut fx = ok(factory.create().await, "create");
    let clock = ManualClock::new(0);
    let build = |store, listen: &[&str]| {
        Engine::builder()
            .store(store)
            .clock(clock.clone())
            .queue(Queue::new("a"))
            .queue(Queue::new("b"))
            .listen_queues(listen.iter().copied())
            .build()
    };
    {
        let engine = build(fx.store(), &["a"]);
        register_wait(&engine);
        ok(engine.start().await, "start");
        ok(
            engine.invoke("wait").id("via-a").queue("a").await,
            "invoke a",
        );
        ok(
            engine.invoke("wait").id("via-b").queue("b").await,
            "invoke b",
        );
        engine.wait_all().await;
        assert!(matches!(
            ok(engine.state("wait", "via-a").await, "state"),
            WorkflowState::Suspended { .. }
        ));
        assert_eq!(
            ok(engine.state("wait", "via-b").await, "state"),
            WorkflowState::Queued { queue: "b".into() }
        );
        engine.shutdown().await;
    }
    ok(fx.reopen().await, "reopen");
    let engine = build(fx.store(), &["b"]);
    register_wait(&engine);
    ok(engine.start().await, "start again");
    // The start owes each queue a first admission; `wait_all` waits for it.
    engine.wait_all().await;
    let state = ok(engine.state("wait", "via-b").await, "state");
    assert!(
        matches!(state, WorkflowState::Suspended { .. }),
        "{state:?}"
    );
    engine.shutdown().await;
}
