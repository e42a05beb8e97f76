//! What deleting one instance of a family does, on every backend (see
//! `support`): deleting is per instance and never deletes another, but an
//! instance still waiting is cancelled first. So a deleted waiting parent
//! cancels the child it awaited (as a cancel would), a deleted ended parent
//! leaves its children, and a new parent under the same id adopts a
//! leftover child only with the same input; a deleted waiting child is
//! cancelled first, so the parent that awaits it gets `ChildCancelled`
//! instead of waiting forever.

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
    async fn deleting_a_waiting_parent_cancels_the_child_it_awaits(backend) {
        let engine = family(&backend, "p").await;
        assert!(engine.delete("parent", "p").await.unwrap());
        let parent = engine.get_metadata("parent", "p").await.unwrap();
        assert!(parent.is_none(), "{backend}: {parent:?}");
        // Nobody awaits the child any more: it is cancelled, not deleted.
        let child = engine.get_metadata("kid", "parent:p:k").await.unwrap();
        assert_eq!(
            child.map(|m| m.status),
            Some(MetadataStatus::Cancelled),
            "{backend}"
        );
        // Its link still names the parent.
        assert_eq!(
            engine.parent("kid", "parent:p:k").await.unwrap(),
            Some(ParentLink {
                parent: InstanceKey::new("parent", "p").unwrap(),
                step_key: "k".into(),
                detached: false,
            }),
            "{backend}"
        );
        engine.shutdown().await;
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_an_ended_parent_leaves_its_children(backend) {
        let engine = family(&backend, "p").await;
        KID.instance(&engine, "parent:p:k").signal(&GO, 5).await.unwrap();
        assert_eq!(PARENT.instance(&engine, "p").wait_output().await.unwrap(), 6, "{backend}");
        engine.wait_all().await;
        assert!(engine.delete("parent", "p").await.unwrap());
        assert_eq!(KID.instance(&engine, "parent:p:k").output().await.unwrap(), 6, "{backend}");
        engine.shutdown().await;
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_child_is_cancelled_first_and_its_parent_learns_it(backend) {
        let engine = family(&backend, "p").await;
        assert!(engine.delete("kid", "parent:p:k").await.unwrap());
        let child = engine.get_metadata("kid", "parent:p:k").await.unwrap();
        assert!(child.is_none(), "{backend}: {child:?}");
        let listed = engine.children("parent", "p").await.unwrap();
        assert_eq!(listed.len(), 1, "{backend}");
        assert!(listed[0].metadata.is_none(), "{backend}: {listed:?}");
        // The parent is not left waiting for an instance that is gone: its
        // `ctx.child` returned `ChildCancelled`, which it propagated.
        let output = PARENT.instance(&engine, "p").wait_output().await;
        assert!(
            matches!(&output, Err(EngineError::WorkflowFailed { error, .. }) if error.contains("cancelled")),
            "{backend}: {output:?}"
        );
        let meta = engine.get_metadata("parent", "p").await.unwrap().unwrap();
        assert!(matches!(meta.status, MetadataStatus::Failed(_)), "{backend}: {meta:?}");
        engine.shutdown().await;
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reused_parent_id_with_another_input_never_adopts_the_old_child(backend) {
        let engine = family(&backend, "p").await;
        // The family ends, then the parent is deleted (retention).
        let old = KID.instance(&engine, "parent:p:k");
        old.signal(&GO, 5).await.unwrap();
        assert_eq!(PARENT.instance(&engine, "p").wait_output().await.unwrap(), 6, "{backend}");
        engine.wait_all().await;
        assert!(engine.delete("parent", "p").await.unwrap());
        // A new parent under the same id, with another input: its child's
        // derived id is taken by an instance of another input, which it
        // must not adopt (its output would be the old input's).
        let again = PARENT.invoke(&engine, 99).id("p").await.unwrap();
        let output = again.output().await;
        assert!(
            matches!(&output, Err(EngineError::WorkflowFailed { error, .. }) if error.contains("another input")),
            "{backend}: {output:?}"
        );
        assert_eq!(old.output().await.unwrap(), 6, "{backend}: the old child changed");
        // The same input adopts it: its end is the parent's value at once.
        engine.wait_all().await;
        assert!(engine.delete("parent", "p").await.unwrap());
        let same = PARENT.invoke(&engine, 1).id("p").await.unwrap();
        assert_eq!(same.output().await.unwrap(), 6, "{backend}");
        engine.shutdown().await;
    }
}
