//! Live status: `set_status`, `WorkflowState`, `StatusStream`, metadata and listing.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Gate, counter, engine_on, fresh, get, guarded, tick, until};
use memable_core::{
    Context, Engine, EngineBuilder, EngineError, InstanceFilter, MetadataStatus, StatusKind,
    StatusStream, StepError, SuspendPoint, WorkflowState,
};

static GO: SuspendPoint<u8> = SuspendPoint::new("go");

fn running(status: &str) -> WorkflowState {
    WorkflowState::Running {
        status: Some(status.to_owned()),
    }
}

/// A workflow that sets a status, then waits on `gate` in step "wait".
fn register_gated(engine: &Engine, gate: &Gate, entered: &common::Counter) {
    let (gate, entered) = (gate.clone(), entered.clone());
    engine
        .register("wf", move |ctx: Context| {
            let (gate, entered) = (gate.clone(), entered.clone());
            async move {
                ctx.set_status("loading");
                ctx.step("wait")
                    .run(|| {
                        let (gate, entered) = (gate.clone(), entered.clone());
                        async move {
                            tick(&entered, ()).await?;
                            gate.pass().await;
                            Ok::<_, StepError>(())
                        }
                    })
                    .await?;
                ctx.set_status("done loading");
                Ok(())
            }
        })
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn set_status_is_visible_live_and_kept_at_completion() {
    let (_store, _clock, engine) = fresh();
    let gate = Gate::new();
    let entered = counter();
    register_gated(&engine, &gate, &entered);
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    until("step entered", || get(&entered) == 1).await;
    assert_eq!(run.status(), running("loading"));
    assert_eq!(engine.state("wf", "1").await.unwrap(), running("loading"));
    gate.open(1);
    let done = WorkflowState::Completed {
        status: Some("done loading".into()),
    };
    assert_eq!(guarded(run.wait_idle()).await.unwrap(), done);
    assert_eq!(engine.state("wf", "1").await.unwrap(), done);
    let meta = engine.get_metadata("wf", "1").await.unwrap().unwrap();
    assert_eq!(
        meta.status,
        MetadataStatus::Completed(Some("done loading".into()))
    );
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_sees_each_status_in_order() {
    let (_store, _clock, engine) = fresh();
    let gates: Vec<Gate> = (0..3).map(|_| Gate::new()).collect();
    engine
        .register("wf", {
            let gates = gates.clone();
            move |ctx: Context| {
                let gates = gates.clone();
                async move {
                    for (i, gate) in gates.iter().enumerate() {
                        ctx.set_status(format!("phase {i}"));
                        ctx.step(format!("phase:{i}"))
                            .run(|| {
                                let gate = gate.clone();
                                async move {
                                    gate.pass().await;
                                    Ok::<_, StepError>(())
                                }
                            })
                            .await?;
                    }
                    Ok(())
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let mut states = engine.invoke("wf").id("1").await.unwrap().into_stream();
    let mut seen = Vec::new();
    seen.push(guarded(states.next()).await.unwrap());
    for (i, gate) in gates.iter().enumerate() {
        let want = running(&format!("phase {i}"));
        while seen.last() != Some(&want) {
            seen.push(guarded(states.next()).await.unwrap());
        }
        gate.open(1);
    }
    while let Some(state) = guarded(states.next()).await {
        seen.push(state);
    }
    let statuses: Vec<&str> = seen.iter().filter_map(WorkflowState::status).collect();
    assert_eq!(
        statuses,
        ["phase 0", "phase 1", "phase 2", "phase 2"],
        "{seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&WorkflowState::Completed {
            status: Some("phase 2".into())
        })
    );
}

const STEPS: usize = 50;

/// `set_status` + a step, 50 times, yielding after each status so a
/// subscriber gets a chance to see every published state.
fn register_chatty(engine: &Engine, calls: &common::Counter, with_final: bool) {
    let calls = calls.clone();
    engine
        .register("chatty", move |ctx: Context| {
            let calls = calls.clone();
            async move {
                for i in 0..STEPS {
                    ctx.set_status(format!("step {i}"));
                    tokio::task::yield_now().await;
                    ctx.step(format!("s:{i}")).run(|| tick(&calls, i)).await?;
                    tokio::task::yield_now().await;
                }
                if with_final {
                    ctx.set_status("final");
                    ctx.step("final").run(|| tick(&calls, 0usize)).await?;
                }
                Ok(())
            }
        })
        .unwrap();
}

fn collect(mut states: StatusStream) -> tokio::task::JoinHandle<Vec<WorkflowState>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(state) = states.next().await {
            seen.push(state);
        }
        seen
    })
}

#[tokio::test(start_paused = true)]
async fn replayed_statuses_do_not_flood_subscribers() {
    let (store, clock, engine) = fresh();
    let calls = counter();
    register_chatty(&engine, &calls, false);
    engine.start().await.unwrap();
    let run = engine.invoke("chatty").id("1").await.unwrap();
    let live = guarded(collect(run.into_stream())).await.unwrap();
    // Sanity: the subscriber does see statuses published live.
    assert!(live.len() > STEPS, "{} states seen live", live.len());
    engine.stop();

    // New code adds a final step; the 50 others replay from memo.
    let v2 = engine_on(&store, &clock);
    register_chatty(&v2, &calls, true);
    v2.start().await.unwrap();
    let run = v2.resume("chatty", "1").await.unwrap();
    let replayed = guarded(collect(run.into_stream())).await.unwrap();
    assert!(
        replayed.len() <= 4,
        "replay flooded subscribers: {replayed:?}"
    );
    assert!(
        !replayed.iter().any(|s| s.status() == Some("step 10")),
        "{replayed:?}"
    );
    assert_eq!(
        replayed.last(),
        Some(&WorkflowState::Completed {
            status: Some("final".into())
        })
    );
    assert_eq!(get(&calls), STEPS + 1);
}

#[tokio::test(start_paused = true)]
async fn subscribing_to_a_stale_running_instance_is_an_error() {
    let (store, clock, engine) = fresh();
    let gate = Gate::new();
    let entered = counter();
    register_gated(&engine, &gate, &entered);
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    until("step entered", || get(&entered) == 1).await;
    engine.abort();

    let restarted = EngineBuilder::default()
        .store(store.clone())
        .clock(clock.clone())
        .resume_on_start(false)
        .build();
    register_gated(&restarted, &gate, &entered);
    restarted.start().await.unwrap();
    let err = restarted.subscribe("wf", "1").await.unwrap_err();
    assert!(matches!(err, EngineError::StaleRunning { .. }), "{err:?}");
    assert_eq!(
        restarted.state("wf", "1").await.unwrap(),
        WorkflowState::Running { status: None }
    );
    gate.open(1);
    let run = restarted.resume("wf", "1").await.unwrap();
    assert!(guarded(run.wait_idle()).await.unwrap().is_terminal());
    assert_eq!(get(&entered), 2);
    let mut states = restarted.subscribe("wf", "1").await.unwrap();
    assert!(guarded(states.next()).await.unwrap().is_terminal());
}

#[tokio::test(start_paused = true)]
async fn unknown_instances_are_not_found() {
    let (_store, _clock, engine) = fresh();
    engine.start().await.unwrap();
    assert!(matches!(
        engine.subscribe("wf", "x").await,
        Err(EngineError::InstanceNotFound { .. })
    ));
    assert!(matches!(
        engine.state("wf", "x").await,
        Err(EngineError::InstanceNotFound { .. })
    ));
    assert!(engine.get_metadata("wf", "x").await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn metadata_records_creation_update_and_completion_times() {
    let (_store, clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move { ctx.suspend(&GO).await })
        .unwrap();
    engine.start().await.unwrap();
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    let meta = engine.get_metadata("wf", "1").await.unwrap().unwrap();
    assert_eq!(
        (meta.workflow_name.as_str(), meta.instance_id.as_str()),
        ("wf", "1")
    );
    assert_eq!(meta.created_at_ms, 1_000);
    assert_eq!(meta.completed_at_ms, None);
    clock.advance(Duration::from_secs(4));
    let run = engine.signal("wf", "1", &GO, 3).await.unwrap();
    guarded(run.wait_idle()).await.unwrap();
    let meta = engine.get_metadata("wf", "1").await.unwrap().unwrap();
    assert_eq!(meta.created_at_ms, 1_000);
    assert_eq!(meta.updated_at_ms, 5_000);
    assert_eq!(meta.completed_at_ms, Some(5_000));
    assert_eq!(meta.status, MetadataStatus::Completed(None));
}

#[tokio::test(start_paused = true)]
async fn list_instances_filters_by_workflow_and_status() {
    let (_store, _clock, engine) = fresh();
    engine
        .register(
            "waits",
            |ctx: Context| async move { ctx.suspend(&GO).await },
        )
        .unwrap();
    engine
        .register("ends", |_ctx: Context| async move { Ok(()) })
        .unwrap();
    engine.start().await.unwrap();
    for i in 0..3 {
        guarded(
            engine
                .invoke("waits")
                .id(format!("w{i}"))
                .await
                .unwrap()
                .wait_idle(),
        )
        .await
        .unwrap();
    }
    for i in 0..2 {
        guarded(
            engine
                .invoke("ends")
                .id(format!("e{i}"))
                .await
                .unwrap()
                .wait_idle(),
        )
        .await
        .unwrap();
    }
    let list = |filter: InstanceFilter| {
        let engine = engine.clone();
        async move {
            engine
                .list_instances(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|m| format!("{}/{}", m.workflow_name, m.instance_id))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(InstanceFilter::new()).await.len(), 5);
    assert_eq!(
        list(InstanceFilter::new().workflow("ends")).await,
        ["ends/e0", "ends/e1"]
    );
    assert_eq!(
        list(InstanceFilter::new().status(StatusKind::Suspended)).await,
        ["waits/w0", "waits/w1", "waits/w2"]
    );
    assert!(
        list(
            InstanceFilter::new()
                .workflow("ends")
                .status(StatusKind::Suspended)
        )
        .await
        .is_empty()
    );
    engine.cancel("waits", "w1").await.unwrap();
    assert_eq!(
        list(InstanceFilter::new().status(StatusKind::Cancelled)).await,
        ["waits/w1"]
    );
}

#[tokio::test(start_paused = true)]
async fn list_instances_pages_with_after_and_limit() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |_ctx: Context| async move { Ok(()) })
        .unwrap();
    engine.start().await.unwrap();
    for i in 0..25 {
        guarded(
            engine
                .invoke("wf")
                .id(format!("{i:02}"))
                .await
                .unwrap()
                .wait_idle(),
        )
        .await
        .unwrap();
    }
    let mut filter = InstanceFilter::new().workflow("wf").limit(10);
    let mut pages = Vec::new();
    loop {
        let page = engine.list_instances(&filter).await.unwrap();
        if page.is_empty() {
            break;
        }
        pages.push(page.len());
        filter = filter.after(page.last().unwrap().key().unwrap());
        if pages.len() > 5 {
            break;
        }
    }
    assert_eq!(pages, [10, 10, 5]);
    let after = engine
        .list_instances(
            &InstanceFilter::new()
                .after(common::key("wf", "19"))
                .limit(3),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = after.iter().map(|m| m.instance_id.as_str()).collect();
    assert_eq!(ids, ["20", "21", "22"]);
}

#[tokio::test(start_paused = true)]
async fn a_stream_ends_after_the_terminal_state() {
    let (_store, _clock, engine) = fresh();
    let seen: Arc<Mutex<Vec<WorkflowState>>> = Arc::default();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.set_status("working");
            ctx.step("a")
                .run(|| async { Ok::<_, StepError>(1u8) })
                .await
        })
        .unwrap();
    engine.start().await.unwrap();
    let mut states = engine.invoke("wf").id("1").await.unwrap().into_stream();
    while let Some(state) = guarded(states.next()).await {
        seen.lock().unwrap().push(state);
    }
    assert_eq!(guarded(states.next()).await, None);
    let seen = seen.lock().unwrap();
    assert!(
        seen.first().is_some_and(WorkflowState::is_running),
        "{seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&WorkflowState::Completed {
            status: Some("working".into())
        })
    );
}

#[test]
fn workflow_state_helpers() {
    let suspended = WorkflowState::Suspended {
        key: "k".into(),
        status: Some("s".into()),
    };
    assert!(!suspended.is_terminal() && !suspended.is_running());
    assert_eq!(suspended.status(), Some("s"));
    assert_eq!(suspended.to_string(), "suspended at 'k'");
    assert!(WorkflowState::Cancelled.is_terminal());
    assert!(WorkflowState::Failed { error: "e".into() }.is_terminal());
    assert!(running("x").is_running());
    assert_eq!(
        WorkflowState::from(&MetadataStatus::Completed(Some("ok".into()))),
        WorkflowState::Completed {
            status: Some("ok".into())
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_fresh_run_publishes_its_status_before_its_first_step() {
    let (_store, _clock, engine) = fresh();
    let gate = Gate::new();
    engine
        .register("wf", {
            let gate = gate.clone();
            move |ctx: Context| {
                let gate = gate.clone();
                async move {
                    ctx.set_status("preparing");
                    // Not a step: the run has reached no step yet.
                    gate.pass().await;
                    ctx.step("work")
                        .run(|| async { Ok::<_, StepError>(()) })
                        .await
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    common::state_until(&engine, "wf", "1", |s| *s == running("preparing")).await;
    assert_eq!(run.status(), running("preparing"));
    gate.open(1);
    let state = guarded(run.wait()).await.unwrap();
    assert_eq!(
        state,
        WorkflowState::Completed {
            status: Some("preparing".into())
        }
    );
}
