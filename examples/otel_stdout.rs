//! The engine's tracing spans exported through OpenTelemetry: a
//! `tracing-opentelemetry` layer turns every `memable.run` and
//! `memable.step` span (and the events in them) into OpenTelemetry spans,
//! here printed by the stdout exporter. Swap the exporter for an OTLP one
//! and the same spans reach a collector; memable needs nothing else.
//!
//! ```sh
//! cargo run --example otel_stdout
//! ```
//!
//! What it prints: the caller's `checkout` span, under it the workflow's
//! first run (`memable.run`, reason `start`, outcome `suspended`) with its
//! step attempts (`memable.step`: attempt 1 of `charge` failed with a retry
//! event, attempt 2 committed), then the `approve` span with the signal
//! event and the second run (reason `signal`, outcome `completed`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memable::{Context, Engine, EngineError, RetryPolicy, StepError, SuspendPoint};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

static SHIPPED: SuspendPoint<String> = SuspendPoint::new("shipped");

async fn order(ctx: Context, calls: Arc<AtomicU32>) -> Result<String, EngineError> {
    let total: u32 = ctx
        .step("price")
        .run(|| async { Ok::<_, StepError>(42) })
        .await?;
    ctx.step("charge")
        .retry(RetryPolicy::fixed(3, Duration::from_millis(5)))
        .run(|| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if call == 0 {
                    Err(StepError::retryable("the card service is busy"))
                } else {
                    Ok(())
                }
            }
        })
        .await?;
    let tracking = ctx.suspend(&SHIPPED).await?;
    Ok(format!("charged {total}, shipped as {tracking}"))
}

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    // A tracer provider that prints each span when it ends.
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let tracer = provider.tracer("memable-example");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::set_global_default(subscriber).expect("no other subscriber is set");

    let engine = Engine::builder().in_memory().build();
    let calls = Arc::new(AtomicU32::new(0));
    engine.register("order", move |ctx: Context| order(ctx, Arc::clone(&calls)))?;
    engine.start().await?;

    // The caller's span: the run started here is its child.
    async {
        let run = engine.invoke("order").id("o-1").await?;
        run.wait_idle().await?;
        Ok::<_, EngineError>(())
    }
    .instrument(tracing::info_span!("checkout", order = "o-1"))
    .await?;

    let output = async {
        let run = engine
            .signal("order", "o-1", &SHIPPED, "PARCEL-7".to_string())
            .await?;
        run.wait_output::<String>().await
    }
    .instrument(tracing::info_span!("approve", order = "o-1"))
    .await?;
    engine.shutdown().await;

    // Flush what is left and stop the exporter.
    provider.shutdown().expect("the tracer provider shuts down");
    println!("output: {output}");
    Ok(())
}
