//! A queue with limits: emails go through the queue `emails`, at most 2
//! sent at once, one at a time per customer, at most 4 started in any
//! 300 ms, urgent ones first; a dedup id refuses a second "welcome" email
//! to a customer while the first is queued or sending.
//!
//! Run: `cargo run --example queue`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memable::{Context, Engine, EngineError, Queue, StepError};

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let engine = Engine::builder()
        .in_memory()
        .queue(
            Queue::new("emails")
                .concurrency(2)
                .per_partition(1)
                .rate(4, Duration::from_millis(300))
                .default_for("send_email"),
        )
        .build();
    let sending = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (sending, most, order) = (sending.clone(), most.clone(), order.clone());
        engine.register("send_email", move |ctx: Context| {
            let (sending, most, order) = (sending.clone(), most.clone(), order.clone());
            async move {
                let to: String = ctx.input()?;
                let id = ctx.instance_id().to_owned();
                ctx.step("send")
                    .run(|| {
                        let (sending, most, order) = (sending.clone(), most.clone(), order.clone());
                        let (id, to) = (id.clone(), to.clone());
                        async move {
                            let now = sending.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            order.lock().expect("order").push(id);
                            tokio::time::sleep(Duration::from_millis(40)).await;
                            sending.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, StepError>(format!("sent to {to}"))
                        }
                    })
                    .await
            }
        })?;
    }
    engine.start().await?;

    let started = Instant::now();
    let mut runs = Vec::new();
    for (id, customer) in [
        ("ann-1", "ann"),
        ("ann-2", "ann"),
        ("bob-1", "bob"),
        ("cyd-1", "cyd"),
        ("bob-2", "bob"),
        ("cyd-2", "cyd"),
    ] {
        let run = engine
            .invoke("send_email")
            .id(id)
            .input(format!("{customer}@example.com"))
            .partition(customer)
            .await?;
        runs.push(run);
    }
    // Urgent: admitted before the others still waiting.
    let urgent = engine
        .invoke("send_email")
        .id("dan-reset")
        .input("dan@example.com".to_string())
        .partition("dan")
        .priority(9)
        .await?;
    runs.push(urgent);
    // One welcome email per customer at a time.
    let welcome = engine
        .invoke("send_email")
        .id("eve-welcome")
        .input("eve@example.com".to_string())
        .dedup_id("welcome:eve")
        .await?;
    match engine
        .invoke("send_email")
        .id("eve-welcome-again")
        .input("eve@example.com".to_string())
        .dedup_id("welcome:eve")
        .await
    {
        Err(EngineError::Duplicate { holder, .. }) => {
            println!("second welcome refused: {holder} holds it");
        }
        other => panic!("the dedup id did not hold: {:?}", other.map(|_| ())),
    }
    runs.push(welcome);

    for run in runs {
        let id = run.instance_id().to_owned();
        println!("{id}: {}", run.wait_output::<String>().await?);
    }
    let most = most.load(Ordering::SeqCst);
    println!("admission order: {:?}", order.lock().expect("order"));
    println!(
        "at most {most} sending at once; 8 emails in {:?}",
        started.elapsed()
    );
    assert!(most <= 2, "the concurrency limit did not hold");
    // 8 starts at 4 per 300 ms need at least one more window.
    assert!(started.elapsed() >= Duration::from_millis(300));
    engine.shutdown().await;
    Ok(())
}
