//! Bad runtime input is a clear error, never a panic.

mod common;

use std::time::Duration;

use common::{counter, fresh, get, guarded, tick};
use memable_core::{
    Context, EngineError, InvalidKeyReason, MAX_KEY_LEN, SuspendPoint, WorkflowState,
};

static P: SuspendPoint<u8> = SuspendPoint::new("p");
static BAD: SuspendPoint<u8> = SuspendPoint::new("_output");

fn long() -> String {
    "k".repeat(MAX_KEY_LEN + 1)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Checks `err` is the key error expected for `bad` with `label`.
fn assert_key_error(err: &EngineError, bad: &str, label: &str) {
    let ok = match err {
        EngineError::InvalidKey {
            label: l,
            value,
            reason,
        } => {
            *l == label
                && value == bad
                && match reason {
                    InvalidKeyReason::ContainsSlash => bad.contains('/'),
                    InvalidKeyReason::Empty => bad.is_empty(),
                    InvalidKeyReason::Reserved => bad.starts_with('_'),
                    InvalidKeyReason::TooLong { len, max } => {
                        *len == bad.len() && *max == MAX_KEY_LEN
                    }
                    _ => false,
                }
        }
        _ => false,
    };
    assert!(
        ok,
        "wrong error for {label} {:?}: {err:?}",
        &bad[..bad.len().min(20)]
    );
}

fn bad_user_keys() -> Vec<String> {
    vec!["a/b".into(), String::new(), "_input".into(), long()]
}

#[tokio::test(start_paused = true)]
async fn bad_workflow_names_are_refused_at_registration_and_invocation() {
    let (_store, _clock, engine) = fresh();
    engine.start().await.unwrap();
    for bad in bad_user_keys() {
        let err = engine
            .register(&bad, |_ctx: Context| async { Ok(()) })
            .unwrap_err();
        assert_key_error(&err, &bad, "workflow_name");
        let err = engine.invoke(&bad).await.unwrap_err();
        assert_key_error(&err, &bad, "workflow_name");
    }
}

#[tokio::test(start_paused = true)]
async fn unknown_workflows_are_not_found() {
    let (_store, _clock, engine) = fresh();
    engine.start().await.unwrap();
    for err in [
        engine.invoke("ghost").await.unwrap_err(),
        engine.resume("ghost", "1").await.unwrap_err(),
        engine.signal("ghost", "1", &P, 1).await.unwrap_err(),
    ] {
        assert!(
            matches!(&err, EngineError::WorkflowNotFound(name) if name == "ghost"),
            "{err:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn unknown_instances_are_not_found() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |_ctx: Context| async { Ok(()) })
        .unwrap();
    engine.start().await.unwrap();
    for err in [
        engine.resume("wf", "nope").await.unwrap_err(),
        engine.signal("wf", "nope", &P, 1).await.unwrap_err(),
        engine.cancel("wf", "nope").await.unwrap_err(),
    ] {
        assert!(
            matches!(err, EngineError::InstanceNotFound { .. }),
            "{err:?}"
        );
    }
    assert!(!engine.delete("wf", "nope").await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn bad_instance_ids_are_refused_everywhere() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |_ctx: Context| async { Ok(()) })
        .unwrap();
    engine.start().await.unwrap();
    for bad in ["a/b".to_string(), String::new(), long()] {
        let err = engine.invoke("wf").id(bad.clone()).await.unwrap_err();
        assert_key_error(&err, &bad, "instance_id");
        assert_key_error(
            &engine.resume("wf", &bad).await.unwrap_err(),
            &bad,
            "instance_id",
        );
        assert_key_error(
            &engine.signal("wf", &bad, &P, 1).await.unwrap_err(),
            &bad,
            "instance_id",
        );
        assert_key_error(
            &engine.cancel("wf", &bad).await.unwrap_err(),
            &bad,
            "instance_id",
        );
        assert_key_error(
            &engine.delete("wf", &bad).await.unwrap_err(),
            &bad,
            "instance_id",
        );
        assert_key_error(
            &engine.get_metadata("wf", &bad).await.unwrap_err(),
            &bad,
            "instance_id",
        );
        assert!(engine.state("wf", &bad).await.is_err());
        assert!(engine.subscribe("wf", &bad).await.is_err());
    }
    assert!(
        engine
            .list_instances(&memable_core::InstanceFilter::new())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_of_exactly_the_maximum_length_is_fine() {
    let (_store, _clock, engine) = fresh();
    let max = "m".repeat(MAX_KEY_LEN);
    engine
        .register(&max, |ctx: Context| async move {
            let key = "s".repeat(MAX_KEY_LEN);
            ctx.step(key)
                .run(|| async { Ok::<_, memable_core::StepError>(1u8) })
                .await
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke(&max).id(max.clone()).await.unwrap();
    assert_eq!(guarded(run.wait_output::<u8>()).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn bad_step_and_timer_keys_fail_the_step_without_running_it() {
    let (_store, _clock, engine) = fresh();
    let calls = counter();
    engine
        .register("wf", {
            let calls = calls.clone();
            move |ctx: Context| {
                let calls = calls.clone();
                async move {
                    let mut errors = Vec::new();
                    for bad in bad_user_keys() {
                        let step = ctx.step(bad.clone()).run(|| tick(&calls, 1u8)).await;
                        errors.push((bad.clone(), step.unwrap_err().to_string()));
                        let timer = ctx.timer(bad.clone(), Duration::from_secs(1)).await;
                        errors.push((bad, timer.unwrap_err().to_string()));
                    }
                    Ok(errors)
                }
            }
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    let errors = guarded(run.wait_output::<Vec<(String, String)>>())
        .await
        .unwrap();
    assert_eq!(errors.len(), 8);
    for (bad, message) in &errors {
        assert!(message.contains("step_key"), "{bad:?}: {message}");
        let reason = if bad.contains('/') {
            "must not contain '/'"
        } else if bad.is_empty() {
            "must not be empty"
        } else if bad.starts_with('_') {
            "reserved"
        } else {
            "exceeds the limit"
        };
        assert!(message.contains(reason), "{message}");
    }
    assert_eq!(get(&calls), 0);
}

#[tokio::test(start_paused = true)]
async fn bad_signal_points_are_refused() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |_ctx: Context| async { Ok(()) })
        .unwrap();
    engine.start().await.unwrap();
    guarded(engine.invoke("wf").id("1").await.unwrap().wait_idle())
        .await
        .unwrap();
    for bad in bad_user_keys() {
        let point: SuspendPoint<u8> = SuspendPoint::new(leak(bad.clone()));
        let err = engine.signal("wf", "1", &point, 1).await.unwrap_err();
        assert_key_error(&err, &bad, "step_key");
    }
}

#[tokio::test(start_paused = true)]
async fn a_bad_suspend_point_in_a_workflow_fails_it_cleanly() {
    let (_store, _clock, engine) = fresh();
    engine
        .register("wf", |ctx: Context| async move { ctx.suspend(&BAD).await })
        .unwrap();
    engine.start().await.unwrap();
    let run = engine.invoke("wf").id("1").await.unwrap();
    match guarded(run.wait_idle()).await.unwrap() {
        WorkflowState::Failed { error } => assert!(error.contains("reserved"), "{error}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    // The engine's own _output record was not clobbered by a suspension.
    assert!(engine.output::<u8>("wf", "1").await.is_err());
}
