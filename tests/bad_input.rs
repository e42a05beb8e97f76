//! The bad-input matrix: every public entry point × bad input, and the exact
//! typed error each gets. Nothing panics and nothing is written.
//!
//! Backend file errors (garbage files, the other backend's format) are in
//! `file_errors.rs`. Every engine test runs on every backend (see
//! `support`).

mod support;

use std::time::Duration;

use memable::{
    Context, Engine, EngineError, InvalidKeyReason, MAX_KEY_LEN, StepError, SuspendPoint,
};

use support::{Backend, backend_tests};

/// The variant name of an error, for the table.
fn variant(error: &EngineError) -> &'static str {
    match error {
        // One variant, told apart by its reason (the names are the table's).
        EngineError::InvalidKey {
            reason: InvalidKeyReason::ContainsSlash,
            ..
        } => "InvalidKey",
        EngineError::InvalidKey {
            reason: InvalidKeyReason::Empty,
            ..
        } => "EmptyKey",
        EngineError::InvalidKey {
            reason: InvalidKeyReason::Reserved,
            ..
        } => "ReservedKey",
        EngineError::InvalidKey {
            reason: InvalidKeyReason::TooLong { .. },
            ..
        } => "KeyTooLong",
        EngineError::WorkflowNotFound(_) => "WorkflowNotFound",
        EngineError::InstanceNotFound { .. } => "InstanceNotFound",
        EngineError::TypeMismatch { .. } => "TypeMismatch",
        EngineError::SignalRejected { .. } => "SignalRejected",
        EngineError::SignalSuperseded { .. } => "SignalSuperseded",
        EngineError::NotStarted => "NotStarted",
        EngineError::Stopped => "Stopped",
        EngineError::Cancelled { .. } => "Cancelled",
        EngineError::InvalidState { .. } => "InvalidState",
        EngineError::WorkflowFailed { .. } => "WorkflowFailed",
        EngineError::Suspended { .. } => "Suspended",
        EngineError::SuspendedStepConflict { .. } => "SuspendedStepConflict",
        EngineError::KeyReused { .. } => "KeyReused",
        other => panic!("unexpected error in the matrix: {other:?}"),
    }
}

static APPROVAL: SuspendPoint<u32> = SuspendPoint::new("approval");

fn long_key() -> String {
    "k".repeat(64 * 1024)
}

/// Keys that every key-taking entry point must refuse, with the variant.
fn bad_keys() -> Vec<(String, &'static str)> {
    vec![
        ("a/b".to_owned(), "InvalidKey"),
        (String::new(), "EmptyKey"),
        (long_key(), "KeyTooLong"),
    ]
}

/// `probe` runs one context operation on a key given as input and returns
/// the variant name of the error it got. The engine runs on `backend`.
async fn engine(backend: &Backend) -> Engine {
    let engine = Engine::builder().store(backend.store()).build();
    engine
        .register("probe", |ctx: Context| async move {
            let (op, key): (String, String) = ctx.input()?;
            let result = match op.as_str() {
                "step" => ctx.step(key).run(|| async { Ok::<_, StepError>(()) }).await,
                "timer" => ctx.timer(key, Duration::from_secs(1)).await,
                "suspend" => {
                    let point: &'static SuspendPoint<u32> =
                        Box::leak(Box::new(SuspendPoint::new(Box::leak(key.into_boxed_str()))));
                    ctx.suspend(point).await.map(|_| ())
                }
                other => panic!("unknown op {other}"),
            };
            Ok(result.map_or_else(|e| variant(&e).to_owned(), |()| "Ok".to_owned()))
        })
        .unwrap();
    engine
        .register("approve", |ctx: Context| async move {
            ctx.suspend(&APPROVAL).await
        })
        .unwrap();
    engine
        .register("plain", |ctx: Context| async move {
            ctx.step("approval")
                .run(|| async { Ok::<_, StepError>(1u32) })
                .await
        })
        .unwrap();
    engine.start().await.unwrap();
    engine
}

backend_tests! {
    #[tokio::test]
    async fn context_operations_refuse_bad_step_keys(backend) {
        let engine = engine(&backend).await;
        let mut cases = bad_keys();
        cases.push(("_input".to_owned(), "ReservedKey"));
        cases.push(("_mine".to_owned(), "ReservedKey"));
        for op in ["step", "timer", "suspend"] {
            for (key, expected) in &cases {
                let got: String = engine
                    .invoke("probe")
                    .input((op.to_owned(), key.clone()))
                    .await
                    .unwrap()
                    .wait_output()
                    .await
                    .unwrap();
                assert_eq!(got, *expected, "ctx.{op}({:?})", &key[..key.len().min(16)]);
            }
        }
    }
}

backend_tests! {
    #[tokio::test]
    async fn engine_entry_points_refuse_bad_names_and_ids(backend) {
        let engine = engine(&backend).await;
        for (bad, expected) in bad_keys() {
            let got = [
                (
                    "register",
                    engine
                        .register(&bad, |_c: Context| async { Ok(()) })
                        .unwrap_err(),
                ),
                ("invoke name", engine.invoke(&bad).await.unwrap_err()),
                (
                    "invoke id",
                    engine.invoke("probe").id(bad.clone()).await.unwrap_err(),
                ),
                ("resume id", engine.resume("probe", &bad).await.unwrap_err()),
                (
                    "signal id",
                    engine
                        .signal("approve", &bad, &APPROVAL, 1)
                        .await
                        .unwrap_err(),
                ),
                ("cancel id", engine.cancel("probe", &bad).await.unwrap_err()),
                ("delete id", engine.delete("probe", &bad).await.unwrap_err()),
                (
                    "get_metadata id",
                    engine.get_metadata("probe", &bad).await.unwrap_err(),
                ),
                (
                    "output id",
                    engine.output::<u32>("probe", &bad).await.unwrap_err(),
                ),
                ("state id", engine.state("probe", &bad).await.unwrap_err()),
                (
                    "subscribe id",
                    engine.subscribe("probe", &bad).await.unwrap_err(),
                ),
            ];
            for (entry, error) in got {
                assert_eq!(
                    variant(&error),
                    expected,
                    "{entry} with {:?}",
                    &bad[..bad.len().min(16)]
                );
            }
        }
        // Reserved names are refused where user code chooses them.
        assert_eq!(
            variant(
                &engine
                    .register("_x", |_c: Context| async { Ok(()) })
                    .unwrap_err()
            ),
            "ReservedKey"
        );
        let reserved_point: SuspendPoint<u32> = SuspendPoint::new("_input");
        assert_eq!(
            variant(
                &engine
                    .signal("approve", "x", &reserved_point, 1)
                    .await
                    .unwrap_err()
            ),
            "ReservedKey"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn unknown_workflows_and_instances(backend) {
        let engine = engine(&backend).await;
        assert_eq!(
            variant(&engine.invoke("nope").await.unwrap_err()),
            "WorkflowNotFound"
        );
        assert_eq!(
            variant(&engine.resume("nope", "1").await.unwrap_err()),
            "WorkflowNotFound"
        );
        assert_eq!(
            variant(&engine.signal("nope", "1", &APPROVAL, 1).await.unwrap_err()),
            "WorkflowNotFound"
        );
        assert_eq!(
            variant(&engine.resume("probe", "404").await.unwrap_err()),
            "InstanceNotFound"
        );
        assert_eq!(
            variant(
                &engine
                    .signal("approve", "404", &APPROVAL, 1)
                    .await
                    .unwrap_err()
            ),
            "InstanceNotFound"
        );
        assert_eq!(
            variant(&engine.cancel("probe", "404").await.unwrap_err()),
            "InstanceNotFound"
        );
        assert_eq!(
            variant(&engine.output::<u32>("probe", "404").await.unwrap_err()),
            "InstanceNotFound"
        );
        assert_eq!(
            variant(&engine.state("probe", "404").await.unwrap_err()),
            "InstanceNotFound"
        );
        assert_eq!(
            variant(&engine.subscribe("probe", "404").await.unwrap_err()),
            "InstanceNotFound"
        );
        assert!(!engine.delete("probe", "404").await.unwrap());
        assert!(engine.get_metadata("probe", "404").await.unwrap().is_none());
    }
}

backend_tests! {
    #[tokio::test]
    async fn signals_at_the_wrong_time_or_of_the_wrong_type(backend) {
        let engine = engine(&backend).await;
        engine
            .invoke("approve")
            .id("s")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        let wrong_type: SuspendPoint<String> = SuspendPoint::new("approval");
        assert_eq!(
            variant(
                &engine
                    .signal("approve", "s", &wrong_type, "yes".into())
                    .await
                    .unwrap_err()
            ),
            "TypeMismatch"
        );
        // A point the workflow has not reached: buffered, not lost.
        let other_point: SuspendPoint<u32> = SuspendPoint::new("elsewhere");
        engine
            .signal("approve", "s", &other_point, 1)
            .await
            .unwrap();
        let buffered = engine.buffered_signals("approve", "s").await.unwrap();
        assert_eq!(buffered.len(), 1);
        assert_eq!(buffered[0].0, "elsewhere");
        // The wrong signals lost nothing: the right one still completes it.
        let out: u32 = engine
            .signal("approve", "s", &APPROVAL, 5)
            .await
            .unwrap()
            .wait_output()
            .await
            .unwrap();
        assert_eq!(out, 5);
        // Completed: a second signal was superseded by the first.
        assert_eq!(
            variant(
                &engine
                    .signal("approve", "s", &APPROVAL, 6)
                    .await
                    .unwrap_err()
            ),
            "SignalSuperseded"
        );
        // A regular step under the same key never suspended.
        engine
            .invoke("plain")
            .id("p")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        assert_eq!(
            variant(&engine.signal("plain", "p", &APPROVAL, 1).await.unwrap_err()),
            "SignalRejected"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn cancelled_and_unfinished_instances_refuse_signals_resume_and_output(backend) {
        let engine = engine(&backend).await;
        engine
            .invoke("approve")
            .id("s")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        engine
            .signal("approve", "s", &APPROVAL, 5)
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        // Cancelled.
        engine
            .invoke("approve")
            .id("c")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        engine.cancel("approve", "c").await.unwrap();
        assert_eq!(
            variant(
                &engine
                    .signal("approve", "c", &APPROVAL, 1)
                    .await
                    .unwrap_err()
            ),
            "SignalRejected"
        );
        assert_eq!(
            variant(&engine.resume("approve", "c").await.unwrap_err()),
            "Cancelled"
        );
        assert_eq!(
            variant(&engine.output::<u32>("approve", "c").await.unwrap_err()),
            "Cancelled"
        );
        // Cancel of a completed instance, output of a suspended one.
        assert_eq!(
            variant(&engine.cancel("approve", "s").await.unwrap_err()),
            "InvalidState"
        );
        engine
            .invoke("approve")
            .id("w")
            .await
            .unwrap()
            .wait_idle()
            .await
            .unwrap();
        assert_eq!(
            variant(&engine.output::<u32>("approve", "w").await.unwrap_err()),
            "InvalidState"
        );
        assert_eq!(
            variant(&engine.output::<String>("approve", "s").await.unwrap_err()),
            "TypeMismatch"
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn lifecycle_misuse(backend) {
        let engine = Engine::builder().store(backend.store()).build();
        engine
            .register("noop", |_c: Context| async { Ok(()) })
            .unwrap();
        assert_eq!(
            variant(&engine.invoke("noop").await.unwrap_err()),
            "NotStarted"
        );
        assert_eq!(
            variant(&engine.resume("noop", "1").await.unwrap_err()),
            "NotStarted"
        );
        assert_eq!(
            variant(&engine.signal("noop", "1", &APPROVAL, 1).await.unwrap_err()),
            "NotStarted"
        );
        engine.start().await.unwrap();
        engine.stop();
        assert_eq!(
            variant(&engine.invoke("noop").await.unwrap_err()),
            "Stopped"
        );
        assert_eq!(
            variant(&engine.resume("noop", "1").await.unwrap_err()),
            "Stopped"
        );
        assert_eq!(
            variant(&engine.signal("noop", "1", &APPROVAL, 1).await.unwrap_err()),
            "Stopped"
        );
        assert_eq!(variant(&engine.start().await.unwrap_err()), "Stopped");
    }
}

#[test]
fn max_key_len_is_enforced_exactly() {
    assert!(memable::validate_key("step_key", &"k".repeat(MAX_KEY_LEN)).is_ok());
    assert!(matches!(
        memable::validate_key("step_key", &"k".repeat(MAX_KEY_LEN + 1)),
        Err(EngineError::InvalidKey {
            reason: InvalidKeyReason::TooLong { .. },
            ..
        })
    ));
}
