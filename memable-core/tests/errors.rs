//! Each error a user can meet, from the user's side: the variant, the
//! instance it names (an `InstanceKey`), and its typed details.

mod common;

use std::time::Duration;

use common::{fresh, guarded, key};
use memable_core::{
    Context, EngineError, InstanceKey, InvalidKeyReason, MAX_KEY_LEN, StatusKind, StepError,
    WorkflowState, validate_key,
};

#[tokio::test(start_paused = true)]
async fn invalid_keys_carry_label_value_and_reason() {
    let (_store, _clock, engine) = fresh();
    engine.start().await.unwrap();
    let long = "k".repeat(MAX_KEY_LEN + 1);
    let cases = [
        ("a/b", InvalidKeyReason::ContainsSlash),
        ("", InvalidKeyReason::Empty),
        ("_mine", InvalidKeyReason::Reserved),
        (
            long.as_str(),
            InvalidKeyReason::TooLong {
                len: MAX_KEY_LEN + 1,
                max: MAX_KEY_LEN,
            },
        ),
    ];
    for (bad, expected) in cases {
        let err = engine
            .register(bad, |_ctx: Context| async { Ok(()) })
            .unwrap_err();
        match err {
            EngineError::InvalidKey {
                label,
                value,
                reason,
            } => {
                assert_eq!(label, "workflow_name");
                assert_eq!(value, bad);
                assert_eq!(reason, expected);
            }
            other => panic!("{bad:?}: expected InvalidKey, got {other:?}"),
        }
    }
    // Instance ids: `_` is allowed (only user keys reserve it), `/` is not.
    assert!(validate_key("instance_id", "_x").is_ok());
    assert!(matches!(
        InstanceKey::new("wf", "a/b"),
        Err(EngineError::InvalidKey {
            label: "instance_id",
            reason: InvalidKeyReason::ContainsSlash,
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn unknown_instances_are_instance_not_found_with_their_key() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |_ctx: Context| async { Ok(()) })
        .unwrap();
    engine.start().await.unwrap();
    let missing = key("wf", "404");
    let errors = [
        engine.output::<()>("wf", "404").await.unwrap_err(),
        engine.resume("wf", "404").await.unwrap_err(),
        engine.cancel("wf", "404").await.unwrap_err(),
        engine.state("wf", "404").await.unwrap_err(),
        engine.subscribe("wf", "404").await.unwrap_err(),
    ];
    for err in errors {
        assert!(
            matches!(&err, EngineError::InstanceNotFound { key } if *key == missing),
            "{err:?}"
        );
        assert_eq!(err.instance(), Some(&missing));
    }
}

#[tokio::test(start_paused = true)]
async fn failures_cancellations_and_wrong_states_name_the_instance() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("fail", |ctx: Context| async move {
            ctx.step("no")
                .run(|| async { Err::<u8, _>(StepError::permanent("declined")) })
                .await
        })
        .unwrap();
    engine
        .register("nap", |ctx: Context| async move {
            ctx.timer("nap", Duration::from_secs(3600)).await
        })
        .unwrap();
    engine
        .register("done", |_ctx: Context| async { Ok(1u8) })
        .unwrap();
    engine.start().await.unwrap();

    let run = engine.invoke("fail").id("1").await.unwrap();
    let err = guarded(run.wait_output::<u8>()).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::WorkflowFailed { key: k, error } if *k == key("fail", "1") && error.contains("declined")),
        "{err:?}"
    );
    let stored = engine.output::<u8>("fail", "1").await.unwrap_err();
    assert!(
        matches!(&stored, EngineError::WorkflowFailed { key: k, .. } if *k == key("fail", "1")),
        "{stored:?}"
    );

    guarded(engine.invoke("nap").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    let err = engine.output::<()>("nap", "1").await.unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidState { operation: "read the output of", key: k, state: StatusKind::Suspended } if *k == key("nap", "1")),
        "{err:?}"
    );
    engine.cancel("nap", "1").await.unwrap();
    for err in [
        engine.output::<()>("nap", "1").await.unwrap_err(),
        engine.resume("nap", "1").await.unwrap_err(),
    ] {
        assert!(
            matches!(&err, EngineError::Cancelled { key: k } if *k == key("nap", "1")),
            "{err:?}"
        );
    }

    guarded(engine.invoke("done").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    let err = engine.cancel("done", "1").await.unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidState { operation: "cancel", key: k, state: StatusKind::Completed } if *k == key("done", "1")),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_workflow_panic_is_workflow_panicked_for_its_waiters() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("boom", |ctx: Context| async move {
            let explode: bool = ctx.input()?;
            assert!(!explode, "kaboom");
            Ok(5u8)
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("boom").id("1").input(true).await.unwrap();
    let err = guarded(run.wait_output::<u8>()).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::WorkflowPanicked { key: k, message } if *k == key("boom", "1") && message == "kaboom"),
        "{err:?}"
    );
    // The store records a failure with the panic's message; the stream
    // ends with it.
    let stored = engine.output::<u8>("boom", "1").await.unwrap_err();
    assert!(
        matches!(&stored, EngineError::WorkflowFailed { error, .. } if error.contains("kaboom")),
        "{stored:?}"
    );
    let mut states = engine.subscribe("boom", "1").await.unwrap();
    assert!(matches!(
        guarded(states.next()).await,
        Some(WorkflowState::Failed { .. })
    ));
    // The same workflow without the panic completes.
    let again = engine.invoke("boom").id("2").input(false).await.unwrap();
    assert_eq!(guarded(again.wait_output::<u8>()).await.unwrap(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_crash_left_running_instance_is_stale_running() {
    let (store, clock, engine) = fresh();
    let gate = common::Gate::new();
    let entered = common::counter();
    let (waiting, seen) = (gate.clone(), entered.clone());
    engine
        .register("wf", move |ctx: Context| {
            let (gate, seen) = (waiting.clone(), seen.clone());
            async move {
                ctx.step("wait")
                    .run(|| async {
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        gate.pass().await;
                        Ok::<_, StepError>(())
                    })
                    .await
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    engine.invoke("wf").id("1").await.unwrap();
    common::until("step entered", || common::get(&entered) == 1).await;
    engine.abort();
    let restarted = memable_core::Engine::builder()
        .store(store)
        .clock(clock)
        .resume_on_start(false)
        .build();
    restarted.start().await.unwrap();
    let err = restarted.subscribe("wf", "1").await.unwrap_err();
    assert!(
        matches!(&err, EngineError::StaleRunning { key: k } if *k == key("wf", "1")),
        "{err:?}"
    );
    assert_eq!(err.instance(), Some(&key("wf", "1")));
    gate.open(1);
}

#[derive(Debug)]
struct OutOfStock(u32);

impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "item {} is out of stock", self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_workflow_may_fail_with_its_own_error_type() {
    let (_store, _clock, engine) = common::fresh();
    engine
        .register_with_error("order", |ctx: Context| async move {
            let item: u32 = ctx.input().map_err(|_| OutOfStock(0))?;
            if item == 7 {
                return Err(OutOfStock(item));
            }
            Ok(item)
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("order").id("a").input(7u32).await.unwrap();
    match common::guarded(run.wait_output::<u32>()).await {
        Err(EngineError::WorkflowFailed { error, .. }) => {
            assert_eq!(error, OutOfStock(7).to_string());
        }
        other => panic!("expected WorkflowFailed, got {other:?}"),
    }
    let run = engine.invoke("order").id("b").input(3u32).await.unwrap();
    assert_eq!(common::guarded(run.wait_output::<u32>()).await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_workflow_may_fail_with_a_boxed_error() {
    let (_store, _clock, engine) = common::fresh();
    engine
        .register_with_error("parse", |ctx: Context| async move {
            let text: String = ctx.input()?;
            let n: u32 = text.parse()?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(n)
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("parse").input("x".to_string()).await.unwrap();
    let expected = "x".parse::<u32>().unwrap_err().to_string();
    match common::guarded(run.wait_output::<u32>()).await {
        Err(EngineError::WorkflowFailed { error, .. }) => assert_eq!(error, expected),
        other => panic!("expected WorkflowFailed, got {other:?}"),
    }
}

static CONFIRM: memable_core::SuspendPoint<u8> = memable_core::SuspendPoint::new("confirm");

#[tokio::test(start_paused = true)]
async fn an_engine_error_through_register_with_error_still_suspends() {
    let (_store, _clock, engine) = common::fresh();
    engine
        .register_with_error("ask", |ctx: Context| async move {
            let v: u8 = ctx.suspend(&CONFIRM).await?;
            Ok::<_, EngineError>(v)
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("ask").id("1").await.unwrap();
    let state = common::guarded(run.wait_idle()).await.unwrap();
    assert!(
        matches!(state, WorkflowState::Suspended { .. }),
        "{state:?}"
    );
    let run = engine.signal("ask", "1", &CONFIRM, 4).await.unwrap();
    assert_eq!(common::guarded(run.wait_output::<u8>()).await.unwrap(), 4);
}

#[tokio::test(start_paused = true)]
async fn question_mark_on_any_error_in_a_step_closure_is_a_retryable_failure() {
    let (_store, _clock, engine) = common::fresh();
    let calls = common::counter();
    engine
        .register("wf", {
            let calls = calls.clone();
            move |ctx: Context| {
                let calls = calls.clone();
                async move {
                    let parsed = ctx
                        .step("parse")
                        .retry(memable_core::RetryPolicy::fixed(
                            3,
                            std::time::Duration::ZERO,
                        ))
                        .run(|| {
                            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            async { Ok::<u32, StepError>("not a number".parse::<u32>()?) }
                        })
                        .await;
                    let io = ctx
                        .step("read")
                        .retry(memable_core::RetryPolicy::fixed(
                            2,
                            std::time::Duration::ZERO,
                        ))
                        .run(|| {
                            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            async {
                                Err(std::io::Error::other("disk unplugged"))?;
                                Ok::<u32, StepError>(0)
                            }
                        })
                        .await;
                    Ok(matches!(
                        parsed,
                        Err(EngineError::RetriesExhausted { attempts: 3, .. })
                    ) && matches!(io, Err(EngineError::RetriesExhausted { attempts: 2, .. })))
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    assert!(common::guarded(run.wait_output::<bool>()).await.unwrap());
    assert_eq!(common::get(&calls), 5, "the failures were not retried");
}
