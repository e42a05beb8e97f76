//! The PostgreSQL-only figures: the raw commit floor of `seq_per_commit`,
//! and `takeover_ms`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memable_core::{Context, Engine, EngineError, StepError};
use sqlx::{Connection, PgConnection};

use crate::Sizes;
use crate::backend::{Backend, postgres_url};
use crate::figures::{io, per_second, print_figure};

type Result<T> = std::result::Result<T, EngineError>;

fn sql(op: &'static str) -> impl Fn(sqlx::Error) -> EngineError {
    move |e| EngineError::storage(op, e)
}

/// The floor of `seq_per_commit`: `count` transactions of one 8-byte row
/// each (`BEGIN; INSERT …; COMMIT`, three round trips and one WAL flush) on
/// one connection to the same server, in commits per second.
pub async fn commit_loop(count: usize) -> Result<f64> {
    let mut conn = PgConnection::connect(postgres_url())
        .await
        .map_err(sql("connect"))?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS public.memable_bench_floor (i BIGINT NOT NULL);
         TRUNCATE public.memable_bench_floor",
    )
    .execute(&mut conn)
    .await
    .map_err(sql("create the floor table"))?;
    let started = Instant::now();
    for i in 0..count {
        let mut tx = conn.begin().await.map_err(sql("begin"))?;
        sqlx::query("INSERT INTO public.memable_bench_floor (i) VALUES ($1)")
            .bind(i64::try_from(i).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(sql("insert"))?;
        tx.commit().await.map_err(sql("commit"))?;
    }
    let rate = per_second(count, started.elapsed());
    let _ = conn.close().await;
    Ok(rate)
}

/// Instances the doomed worker holds when it dies.
const HELD: usize = 100;

/// The lease of both workers.
const LEASE: Duration = Duration::from_secs(2);

/// Registers `hold` on `engine`: a first step, then a step that `blocks`
/// (the doomed worker: it never returns) or returns (the heir); `reached`
/// counts the second step's starts.
fn register_hold(engine: &Engine, reached: &Arc<AtomicUsize>, blocks: bool) -> Result<()> {
    let reached = Arc::clone(reached);
    engine.register("hold", move |ctx: Context| {
        let reached = Arc::clone(&reached);
        async move {
            ctx.step("first")
                .run(|| async { Ok::<_, StepError>(1_u8) })
                .await?;
            ctx.step("second")
                .run(move || {
                    reached.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if blocks {
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, StepError>(2_u8)
                    }
                })
                .await
        }
    })
}

/// `takeover_ms`: a worker holds [`HELD`] running instances (each inside a
/// step) and dies (`Engine::abort`: its runs and heartbeats stop at once,
/// as in a `SIGKILL`); another worker on the same schema, already running,
/// takes them over. The figure is the time from the death until all of
/// them run on the heir; the target is the lease plus one poll interval.
pub async fn takeover(backend: Backend, _sizes: Sizes) -> Result<()> {
    let dir = tempfile::tempdir().map_err(io("tempdir"))?;
    let worker = |name: &str, store| {
        Engine::builder()
            .store(store)
            .worker_id(name)
            .lease(LEASE)
            .build()
    };
    let doomed = worker("doomed", backend.open_postgres(dir.path()).await?);
    let doomed_reached = Arc::new(AtomicUsize::new(0));
    register_hold(&doomed, &doomed_reached, true)?;
    doomed.start().await?;
    for i in 0..HELD {
        drop(doomed.invoke("hold").id(format!("h{i}")).await?);
    }
    while doomed_reached.load(Ordering::SeqCst) < HELD {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let heir = worker("heir", backend.open_postgres(dir.path()).await?);
    let heir_reached = Arc::new(AtomicUsize::new(0));
    register_hold(&heir, &heir_reached, false)?;
    heir.start().await?;
    let died = Instant::now();
    doomed.abort();
    while heir_reached.load(Ordering::SeqCst) < HELD {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = died.elapsed();
    heir.shutdown().await;
    print_figure("takeover_ms", backend, took.as_secs_f64() * 1e3, "ms");
    print_figure(
        "takeover_lease_ms",
        backend,
        LEASE.as_secs_f64() * 1e3,
        "ms",
    );
    Ok(())
}
