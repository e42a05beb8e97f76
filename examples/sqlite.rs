//! A workflow on a SQLite file, then its instances listed with plain SQL.
//!
//! Run: `cargo run --example sqlite --features sqlite`

use memable::sqlite::SqliteStore;
use memable::{Context, Engine, StepError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("memable.db");
    {
        let engine = Engine::builder().store(SqliteStore::open(&path)?).build();
        engine.register("invoice", |ctx: Context| async move {
            let cents: u64 = ctx.input()?;
            let tax = ctx
                .step("tax")
                .run(|| async move { Ok::<_, StepError>(cents / 5) })
                .await?;
            Ok(cents + tax)
        })?;
        engine.start().await?;
        for (id, cents) in [("inv-1", 1_000u64), ("inv-2", 2_500), ("inv-3", 400)] {
            let total: u64 = engine
                .invoke("invoice")
                .id(id)
                .input(cents)
                .await?
                .wait_output()
                .await?;
            println!("{id}: total {total}");
        }
        engine.stop();
        engine.wait_all().await;
    }

    // Any SQLite client can read the file; this is the query from the
    // memable-sqlite docs.
    let conn = rusqlite::Connection::open(&path)?;
    let mut query = conn
        .prepare("SELECT workflow, instance, status FROM instances ORDER BY workflow, instance")?;
    println!("select workflow, instance, status from instances:");
    let rows = query.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (workflow, instance, status) = row?;
        println!("  {workflow} | {instance} | {status}");
    }
    Ok(())
}
