//! What deleting one instance of a family does, on every backend (see
//! `support`): deleting is per instance and never cascades. A deleted
//! parent's child goes on and ends on its own; a deleted child leaves the
//! parent that awaits it waiting (a resume parks it again, nothing starts
//! the child again) until the parent is cancelled.

mod support;

use memable::{
    Context, Engine, EngineError, InstanceKey, MetadataStatus, ParentLink, SuspendPoint, Workflow,
    WorkflowState,
};

use support::backend_tests;

static GO: SuspendPoint<u32> = SuspendPoint::new("go");
/// Waits for `go`, then returns its input plus the signal.
static KID: Workflow<u32, u32> = Workflow::new("kid");
/// Awaits a `kid` under the step key `k`.
static PARENT: Workflow<u32, u32> = Workflow::new("parent");

/// An engine on the backend's store with `kid` and `parent`, started, and
/// `parent/<id>` invoked and parked at `k` with its child waiting at `go`.
async fn family(backend: &support::Backend, id: &str) -> Engine {
    let engine = Engine::builder().store(backend.store()).build();
    KID.register(&engine, |ctx: Context, n: u32| async move {
        Ok(n + ctx.suspend(&GO).await?)
    })
    .unwrap();
    PARENT
        .register(&engine, |ctx: Context, n: u32| async move {
            ctx.child(&KID, "k", n).await
        })
        .unwrap();
    engine.start().await.unwrap();
    let run = PARENT.invoke(&engine, 1).id(id).await.unwrap();
    assert!(matches!(
        run.wait_idle().await.unwrap(),
        WorkflowState::Suspended { ref key, .. } if key == "k"
    ));
    engine.wait_all().await;
    engine
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_parents_child_goes_on_and_ends_on_its_own(backend) {
        let engine = family(&backend, "p").await;
        assert!(engine.delete("parent", "p").await.unwrap());
        let child = KID.instance(&engine, "parent:p:k");
        assert!(
            matches!(child.state().await.unwrap(), WorkflowState::Suspended { .. }),
            "{backend}: the child was deleted or cancelled with its parent"
        );
        // Its link still names the parent; its end touches nothing.
        assert_eq!(
            engine.parent("kid", "parent:p:k").await.unwrap(),
            Some(ParentLink {
                parent: InstanceKey::new("parent", "p").unwrap(),
                step_key: "k".into(),
                detached: false,
            }),
            "{backend}"
        );
        child.signal(&GO, 5).await.unwrap();
        assert_eq!(child.wait_output().await.unwrap(), 6, "{backend}");
        let parent = engine.get_metadata("parent", "p").await.unwrap();
        assert!(parent.is_none(), "{backend}: {parent:?}");
        engine.shutdown().await;
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_child_leaves_its_parent_waiting_until_cancelled(backend) {
        let engine = family(&backend, "p").await;
        assert!(engine.delete("kid", "parent:p:k").await.unwrap());
        let listed = engine.children("parent", "p").await.unwrap();
        assert_eq!(listed.len(), 1, "{backend}");
        assert!(listed[0].metadata.is_none(), "{backend}: {listed:?}");
        // A resume replays the start from the parent's own records: the
        // child is not started again, and the parent parks at `k` again.
        let resumed = engine.resume("parent", "p").await.unwrap();
        let state = resumed.wait_idle().await.unwrap();
        assert!(
            matches!(state, WorkflowState::Suspended { ref key, .. } if key == "k"),
            "{backend}: {state:?}"
        );
        engine.wait_all().await;
        let child = engine.get_metadata("kid", "parent:p:k").await.unwrap();
        assert!(child.is_none(), "{backend}: started again: {child:?}");
        // Cancelling is the way out.
        engine.cancel("parent", "p").await.unwrap();
        let meta = engine.get_metadata("parent", "p").await.unwrap().unwrap();
        assert_eq!(meta.status, MetadataStatus::Cancelled, "{backend}");
        let output = PARENT.instance(&engine, "p").wait_output().await;
        assert!(
            matches!(output, Err(EngineError::Cancelled { .. })),
            "{backend}: {output:?}"
        );
        engine.shutdown().await;
    }
}
