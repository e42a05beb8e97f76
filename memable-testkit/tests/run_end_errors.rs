//! A run whose end cannot be recorded (the store fails `finish_instance`)
//! is reported to its waiters as that storage error — the outcome is
//! unknown — never as a workflow failure; the instance stays `Running` and
//! a resume finishes it.

use std::time::Duration;

use memable_core::{
    Context, Engine, EngineError, Invocation, MemoryStore, MetadataStatus, StepError,
    StorageErrorKind, WorkflowState,
};
use memable_testkit::{FaultyStore, StoreOp};

const GUARD: Duration = Duration::from_secs(20);

fn engine_failing_finish() -> (Engine, std::sync::Arc<FaultyStore<MemoryStore>>) {
    let store = std::sync::Arc::new(
        FaultyStore::builder(MemoryStore::new())
            .fail_from(StoreOp::FinishInstance, 1)
            .build(),
    );
    let engine = Engine::builder().store(store.clone()).build();
    engine
        .register("wf", |ctx: Context| async move {
            ctx.step("seven")
                .run(|| async { Ok::<_, StepError>(7u8) })
                .await
        })
        .unwrap();
    (engine, store)
}

async fn guarded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .expect("the test waited too long")
}

async fn invoke(engine: &Engine, id: &str) -> Invocation {
    engine.invoke("wf").id(id).await.unwrap()
}

#[test]
fn wait_output_reports_the_storage_error_of_a_failed_finish() {
    memable_testkit::__private::block_on(async {
        let (engine, store) = engine_failing_finish();
        engine.start().await.unwrap();
        let err = guarded(invoke(&engine, "1").await.wait_output::<u8>())
            .await
            .unwrap_err();
        let EngineError::Storage(storage) = &err else {
            panic!("expected the storage error, got {err:?}");
        };
        assert_eq!(storage.kind(), StorageErrorKind::Io);
        assert_eq!(storage.operation(), "finish_instance");
        assert_eq!(store.injected(StoreOp::FinishInstance), 1);
        // Nothing was recorded: the store still says Running, with no run.
        let meta = engine.get_metadata("wf", "1").await.unwrap().unwrap();
        assert_eq!(meta.status, MetadataStatus::Running);
        let stale = engine.subscribe("wf", "1").await.unwrap_err();
        assert!(
            matches!(stale, EngineError::StaleRunning { ref key } if key.instance() == "1"),
            "{stale:?}"
        );
        // Once the store works again, a resume finishes it from the memo.
        store.set_enabled(false);
        let again = engine.resume("wf", "1").await.unwrap();
        assert_eq!(guarded(again.wait_output::<u8>()).await.unwrap(), 7);
        assert_eq!(engine.output::<u8>("wf", "1").await.unwrap(), 7);
    });
}

#[test]
fn streams_end_with_outcome_unknown_when_the_finish_fails() {
    memable_testkit::__private::block_on(async {
        let (engine, _store) = engine_failing_finish();
        engine.start().await.unwrap();
        let mut states = invoke(&engine, "2").await.into_stream();
        let mut last = None;
        while let Some(state) = guarded(states.next()).await {
            last = Some(state);
        }
        match last {
            Some(WorkflowState::OutcomeUnknown { kind, .. }) => {
                assert_eq!(kind, StorageErrorKind::Io);
            }
            other => panic!("expected OutcomeUnknown, got {other:?}"),
        }
        // `wait` settles on the same state.
        let run = invoke(&engine, "3").await;
        assert!(matches!(
            guarded(run.wait_idle()).await.unwrap(),
            WorkflowState::OutcomeUnknown { .. }
        ));
    });
}

#[test]
fn a_failed_finish_of_a_failing_workflow_is_not_workflow_failed() {
    memable_testkit::__private::block_on(async {
        let store = FaultyStore::builder(MemoryStore::new())
            .fail_nth(StoreOp::FinishInstance, 1)
            .build();
        let engine = Engine::builder().store(store).build();
        engine
            .register("bad", |ctx: Context| async move {
                ctx.step("no")
                    .run(|| async { Err::<u8, _>(StepError::permanent("declined")) })
                    .await
            })
            .unwrap();
        engine.start().await.unwrap();
        let run = engine.invoke("bad").id("1").await.unwrap();
        let err = guarded(run.wait_output::<u8>()).await.unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::Io), "{err:?}");
        // The second finish passes: the failure is recorded as the workflow's.
        let run = engine.invoke("bad").id("1").await.unwrap();
        let err = guarded(run.wait_output::<u8>()).await.unwrap_err();
        assert!(
            matches!(err, EngineError::WorkflowFailed { ref key, .. } if key.instance() == "1"),
            "{err:?}"
        );
    });
}
