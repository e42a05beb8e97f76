//! Smaller promises of issue 12 that depend on the store: an idempotent
//! start with another input, one engine per store handle, the state of a
//! crashed instance of an unregistered workflow. Every test runs on every
//! backend (see `support`).

mod support;

use memable::{Context, Engine, EngineError, MetadataStatus, StepError};

use support::backend_tests;

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idempotent_start_with_another_input_is_an_input_conflict(backend) {
        let engine = Engine::builder().store(backend.store()).build();
        engine
            .register("charge", |ctx: Context| async move { ctx.input::<u32>() })
            .unwrap();
        engine.start().await.unwrap();
        let first = engine.invoke("charge").id("order-1").input(10u32).await.unwrap();
        assert!(first.is_new());
        assert_eq!(first.wait_output::<u32>().await.unwrap(), 10);

        // The same input: the existing instance, as before.
        let again = engine.invoke("charge").id("order-1").input(10u32).await.unwrap();
        assert!(!again.is_new());
        assert_eq!(again.wait_output::<u32>().await.unwrap(), 10);

        // Another value, or the same bytes under another type: refused.
        let other_value = engine.invoke("charge").id("order-1").input(20u32).await;
        assert!(
            matches!(other_value, Err(EngineError::InputConflict { ref key }) if key.instance() == "order-1"),
            "{backend}: {other_value:?}"
        );
        let other_type = engine.invoke("charge").id("order-1").input(10u64).await;
        assert!(
            matches!(other_type, Err(EngineError::InputConflict { .. })),
            "{backend}: {other_type:?}"
        );
        let no_input = engine.invoke("charge").id("order-1").await;
        assert!(
            matches!(no_input, Err(EngineError::InputConflict { .. })),
            "{backend}: {no_input:?}"
        );
        // The stored instance is untouched.
        assert_eq!(engine.output::<u32>("charge", "order-1").await.unwrap(), 10);
        engine.shutdown().await;
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crashed_instance_of_an_unregistered_workflow_is_not_reported_running(backend) {
        let engine = Engine::builder().store(backend.store()).build();
        engine
            .register("job", |ctx: Context| async move {
                ctx.step("hang")
                    .run(std::future::pending::<Result<(), StepError>>)
                    .await
            })
            .unwrap();
        engine.start().await.unwrap();
        engine.invoke("job").id("x").await.unwrap();
        engine.abort(); // a crash: the instance stays Running in the store
        engine.wait_all().await;
        drop(engine);

        // A new engine without the workflow: no run of it can be in progress.
        let engine = Engine::builder().store(backend.store()).build();
        engine.start().await.unwrap();
        let state = engine.state("job", "x").await;
        assert!(
            matches!(state, Err(EngineError::StaleRunning { ref key }) if key.instance() == "x"),
            "{backend}: {state:?}"
        );
        // The store still says Running: nothing was rewritten.
        let meta = engine.get_metadata("job", "x").await.unwrap().unwrap();
        assert_eq!(meta.status, MetadataStatus::Running, "{backend}");
        engine.shutdown().await;
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_handle_serves_one_engine_at_a_time(backend) {
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let build = || {
            let engine = Engine::builder().store(backend.store()).build();
            let runs = runs.clone();
            engine
                .register("count", move |ctx: Context| {
                    let runs = runs.clone();
                    async move {
                        ctx.step("once")
                            .run(|| async {
                                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                Ok::<_, StepError>(())
                            })
                            .await
                    }
                })
                .unwrap();
            engine
        };
        let first = build();
        first.start().await.unwrap();
        let second = build();
        let err = second.start().await.unwrap_err();
        assert!(matches!(err, EngineError::StoreInUse { .. }), "{err:?}");
        // Refused to start, it accepts no work either.
        assert!(matches!(
            second.invoke("count").id("c").await,
            Err(EngineError::NotStarted)
        ));
        first
            .invoke("count")
            .id("c")
            .await
            .unwrap()
            .wait_output::<()>()
            .await
            .unwrap();
        first.shutdown().await;
        drop(first);
        // Free again once the first is shut down.
        second.start().await.unwrap();
        second
            .invoke("count")
            .id("d")
            .await
            .unwrap()
            .wait_output::<()>()
            .await
            .unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
