//! A fan-out: a batch resizes twelve images as child workflows, at most
//! three at once (`max_running(3)`), and gathers one result per image in
//! input order. One image is broken: its child fails, and its slot holds
//! `EngineError::ChildFailed` while the others succeed.
//!
//! The children count themselves in and out of their step, so the example
//! prints how many ran at once.
//!
//! Run: `cargo run --example fan_out`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memable::{Context, Engine, EngineError, StepError, Workflow};

/// Resizes one image (its width in pixels) to half its width.
static RESIZE: Workflow<u32, u32> = Workflow::new("resize");
/// Resizes every image of its input, at most three at once.
static BATCH: Workflow<Vec<u32>, String> = Workflow::new("batch");

/// The width that stands for a broken image.
const BROKEN: u32 = 0;

/// How many resize steps are running now, and the most at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    most: AtomicUsize,
}

fn register(engine: &Engine, gauge: &Arc<Gauge>) -> Result<(), EngineError> {
    let gauge = Arc::clone(gauge);
    RESIZE.register(engine, move |ctx: Context, width: u32| {
        let gauge = Arc::clone(&gauge);
        async move {
            if width == BROKEN {
                return Err(EngineError::Workflow {
                    message: "not an image".into(),
                });
            }
            ctx.step("resize")
                .run(|| {
                    let gauge = Arc::clone(&gauge);
                    async move {
                        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
                        gauge.most.fetch_max(now, Ordering::SeqCst);
                        // The work itself.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        gauge.now.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, StepError>(width / 2)
                    }
                })
                .await
        }
    })?;
    BATCH.register(engine, |ctx: Context, widths: Vec<u32>| async move {
        let results = ctx
            .fan_out(&RESIZE, "image", widths.clone())
            .max_running(3)
            .status("resizing")
            .await?;
        let mut report = Vec::new();
        for (width, result) in widths.iter().zip(results) {
            report.push(match result {
                Ok(half) => format!("{width}->{half}"),
                Err(EngineError::ChildFailed { child, error, .. }) => {
                    format!("{width}: {child} failed ({error})")
                }
                Err(other) => return Err(other),
            });
        }
        Ok(report.join(", "))
    })
}

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let engine = Engine::builder().in_memory().build();
    let gauge = Arc::new(Gauge::default());
    register(&engine, &gauge)?;
    engine.start().await?;

    let widths = vec![
        1920, 1280, 800, 640, BROKEN, 1024, 2048, 320, 4096, 96, 1600, 720,
    ];
    let report = BATCH
        .invoke(&engine, widths.clone())
        .id("album")
        .await?
        .output()
        .await?;
    println!("{report}");
    let most = gauge.most.load(Ordering::SeqCst);
    println!("{} children, at most {most} resizing at once", widths.len());
    assert!(most <= 3, "the bound was exceeded");
    // Child `i` has the step key `image.<i>`.
    let fifth = RESIZE.instance(&engine, "batch:album:image.4");
    println!("the fifth child: {}", fifth.state().await?);
    engine.shutdown().await;
    Ok(())
}
