//! Child workflows: an order awaits a payment child and, once paid, starts
//! a confirmation email as a detached child (never awaited). A declined
//! card fails the payment child; the order sees it as
//! `EngineError::ChildFailed` and ends with its own error.
//!
//! Each child is an instance of its own, its id derived from the parent's
//! and the step key (`order:<order id>:pay`), so a parent that runs again
//! (a crash, a restart) never starts it twice.
//!
//! Run: `cargo run --example children`

use memable::{Context, Engine, EngineError, StepError, Workflow};
use serde::{Deserialize, Serialize};

/// What the payment child charges.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Payment {
    cents: u64,
    card: String,
}

/// Charges a card: the payment child. A declined card fails it.
static CHARGE: Workflow<Payment, String> = Workflow::new("charge");
/// Sends a confirmation: started detached.
static EMAIL: Workflow<String, String> = Workflow::new("email");
/// An order: pays through a child, then confirms through another.
static ORDER: Workflow<Payment, String> = Workflow::new("order");

/// The card the "bank" declines.
const DECLINED_CARD: &str = "4000-0002";

fn register(engine: &Engine) -> Result<(), EngineError> {
    CHARGE.register(engine, |ctx: Context, payment: Payment| async move {
        let approved = ctx
            .step("authorize")
            .run(|| {
                let card = payment.card.clone();
                async move { Ok::<_, StepError>(card != DECLINED_CARD) }
            })
            .await?;
        if !approved {
            return Err(EngineError::Workflow {
                message: format!("card {} declined", payment.card),
            });
        }
        ctx.step("capture")
            .run(|| async move { Ok::<_, StepError>(format!("captured {} cents", payment.cents)) })
            .await
    })?;
    EMAIL.register(engine, |ctx: Context, to: String| async move {
        ctx.step("send")
            .run(|| {
                let to = to.clone();
                async move { Ok::<_, StepError>(format!("sent a confirmation for {to}")) }
            })
            .await
    })?;
    ORDER.register(engine, |ctx: Context, payment: Payment| async move {
        let order = ctx.instance_id().to_owned();
        // Start the payment and wait for its output (the run parks at
        // `pay` until the child ends, and runs again then).
        let receipt = match ctx.child(&CHARGE, "pay", payment).await {
            Ok(receipt) => receipt,
            Err(EngineError::ChildFailed { child, error, .. }) => {
                // The child's own error, and which instance failed.
                return Err(EngineError::Workflow {
                    message: format!("payment {child} failed: {error}"),
                });
            }
            Err(other) => return Err(other),
        };
        // Fire and forget: the order does not wait for the email, and
        // cancelling the order would leave it running.
        ctx.child(&EMAIL, "confirm", order.clone())
            .detached()
            .await?;
        Ok(format!("order {order} paid: {receipt}"))
    })
}

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let engine = Engine::builder().in_memory().build();
    register(&engine)?;
    engine.start().await?;

    let paid = Payment {
        cents: 4_200,
        card: "4242-4242".into(),
    };
    let output = ORDER
        .invoke(&engine, paid)
        .id("o-1")
        .await?
        .output()
        .await?;
    println!("o-1: {output}");
    for child in engine.children("order", "o-1").await? {
        println!(
            "  child {} under step {:?} (detached: {})",
            child.child, child.step_key, child.detached
        );
    }
    // The detached email is an instance of its own: wait for it by its id.
    let email = EMAIL.instance(&engine, "order:o-1:confirm");
    println!("  email: {}", email.wait_output().await?);

    let declined = Payment {
        cents: 990,
        card: DECLINED_CARD.into(),
    };
    let failed = ORDER
        .invoke(&engine, declined)
        .id("o-2")
        .await?
        .output()
        .await;
    match failed {
        Err(EngineError::WorkflowFailed { error, .. }) => println!("o-2 failed: {error}"),
        other => panic!("o-2 should have failed: {other:?}"),
    }
    // No email was started for the unpaid order.
    let children = engine.children("order", "o-2").await?;
    assert_eq!(children.len(), 1);
    println!(
        "  o-2 has {} child: {} ({:?})",
        children.len(),
        children[0].child,
        children[0].metadata.as_ref().map(|m| &m.status)
    );
    engine.shutdown().await;
    Ok(())
}
