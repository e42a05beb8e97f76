//! Writes a small demo store to try the `memable` command on (the session
//! in `docs/cli.md` runs on it): three `order` instances — one waiting for
//! approval, one shipped, one whose `ship` step is dead-lettered.
//!
//! ```text
//! cargo run -p memable-cli --example demo_store -- demo.db     # SQLite
//! cargo run -p memable-cli --example demo_store -- demo.redb   # redb
//! ```

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use memable_core::{Context, Engine, EngineError, RetryPolicy, StepError, StepStore, SuspendPoint};

static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval");

#[tokio::main]
async fn main() -> Result<(), EngineError> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo.db".to_owned());
    let store: Arc<dyn StepStore> = if std::path::Path::new(&path)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("redb"))
    {
        Arc::new(memable_redb::RedbStore::open(&path)?)
    } else {
        Arc::new(memable_sqlite::SqliteStore::open(&path)?)
    };
    let engine = Engine::builder()
        .store(store)
        .default_retry(RetryPolicy::fixed(2, Duration::ZERO))
        .build();
    // The carrier's API is down for order o3.
    let carrier_down = Arc::new(AtomicBool::new(true));
    let down = Arc::clone(&carrier_down);
    engine.register("order", move |ctx: Context| {
        let down = Arc::clone(&down);
        async move {
            let (id, amount): (String, u32) = ctx.input()?;
            let charged: u32 = ctx
                .step("charge")
                .run(move || async move { Ok::<_, StepError>(amount) })
                .await?;
            ctx.set_status(format!("charged {charged}"));
            if !ctx.suspend(&APPROVAL).await? {
                return Ok(format!("refunded {charged}"));
            }
            let label: String = ctx
                .step("ship")
                .run(move || {
                    let down = id == "o3" && down.load(Ordering::SeqCst);
                    async move {
                        if down {
                            Err(StepError::retryable("carrier API: 503"))
                        } else {
                            Ok::<_, StepError>(format!("parcel-{charged}"))
                        }
                    }
                })
                .await?;
            Ok(format!("shipped {label}"))
        }
    })?;
    engine.start().await?;
    for (id, amount) in [("o1", 30u32), ("o2", 45), ("o3", 12)] {
        engine
            .invoke("order")
            .id(id)
            .input((id.to_owned(), amount))
            .await?
            .wait_idle()
            .await?;
    }
    for id in ["o2", "o3"] {
        engine
            .signal("order", id, &APPROVAL, true)
            .await?
            .wait_idle()
            .await?;
    }
    engine.shutdown().await;
    println!("wrote {path}: order/o1 waits for approval, o2 shipped, o3 failed at ship");
    Ok(())
}
