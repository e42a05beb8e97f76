//! Typed workflows: declared once with input and output types, reached
//! through the same instances as the string-keyed API.

mod common;

use common::fresh;
use memable_core::{Context, EngineError, SuspendPoint, Workflow, WorkflowState};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    amount: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Receipt {
    order: u64,
    charged: u32,
}

static CHARGE: Workflow<Order, Receipt> = Workflow::new("charge");
static APPROVED: SuspendPoint<bool> = SuspendPoint::new("approved");

fn register_charge(engine: &memable_core::Engine) {
    CHARGE
        .register(engine, |ctx: Context, order: Order| async move {
            if !ctx.suspend(&APPROVED).await? {
                return Ok(Receipt {
                    order: order.id,
                    charged: 0,
                });
            }
            let charged = ctx
                .step("charge")
                .run(move || async move { Ok::<_, memable_core::StepError>(order.amount) })
                .await?;
            Ok(Receipt {
                order: order.id,
                charged,
            })
        })
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_typed_instance_is_signalled_and_read_through_its_handle() {
    let (_store, _clock, engine) = fresh();
    register_charge(&engine);
    engine.start().await.unwrap();
    let order = Order { id: 7, amount: 120 };
    let run = CHARGE
        .invoke(&engine, order.clone())
        .id("o-7")
        .await
        .unwrap();
    assert!(run.is_new());
    assert!(matches!(
        run.wait_idle().await.unwrap(),
        WorkflowState::Suspended { .. }
    ));
    let handle = CHARGE.instance(&engine, "o-7");
    assert!(matches!(
        handle.output().await,
        Err(EngineError::InvalidState { .. })
    ));
    handle.signal(&APPROVED, true).await.unwrap();
    let expected = Receipt {
        order: 7,
        charged: 120,
    };
    assert_eq!(handle.wait_output().await.unwrap(), expected);
    // The same instance, by name, through the string-keyed API.
    assert_eq!(
        engine.output::<Receipt>("charge", "o-7").await.unwrap(),
        expected
    );
    // Idempotent ids hold: the same input finds it, another is a conflict.
    let again = CHARGE.invoke(&engine, order).id("o-7").await.unwrap();
    assert!(!again.is_new());
    assert_eq!(again.output().await.unwrap(), expected);
    assert!(matches!(
        CHARGE
            .invoke(&engine, Order { id: 7, amount: 1 })
            .id("o-7")
            .await,
        Err(EngineError::InputConflict { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn an_instance_started_with_another_input_type_fails_typed() {
    let (_store, _clock, engine) = fresh();
    register_charge(&engine);
    engine.start().await.unwrap();
    let run = engine
        .invoke("charge")
        .id("bad")
        .input("not an order".to_string())
        .await
        .unwrap();
    let failed = CHARGE.instance(&engine, "bad");
    run.wait().await.unwrap();
    assert!(matches!(
        failed.state().await.unwrap(),
        WorkflowState::Failed { .. }
    ));
    assert!(matches!(
        failed.wait_output().await,
        Err(EngineError::WorkflowFailed { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn cancel_and_missing_instances_are_typed_errors() {
    let (_store, _clock, engine) = fresh();
    register_charge(&engine);
    engine.start().await.unwrap();
    let run = CHARGE
        .invoke(&engine, Order { id: 1, amount: 5 })
        .id("c")
        .await
        .unwrap();
    run.wait_idle().await.unwrap();
    let handle = run.handle();
    handle.cancel().await.unwrap();
    assert_eq!(handle.state().await.unwrap(), WorkflowState::Cancelled);
    assert!(matches!(
        handle.signal(&APPROVED, true).await,
        Err(EngineError::SignalRejected { .. })
    ));
    assert!(matches!(
        CHARGE.instance(&engine, "nobody").state().await,
        Err(EngineError::InstanceNotFound { .. })
    ));
}
