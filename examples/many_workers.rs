//! Two worker processes and a client on one PostgreSQL database.
//!
//! The client (this process) registers no workflow: it only invokes,
//! signals and waits. Two worker processes run the `order` workflow. Half
//! way, worker `w1` is killed with SIGKILL while it charges its orders:
//! `w2` takes them over once `w1`'s lease runs out. A step `w1` committed
//! (`reserve`) is not run again; the charge it had not committed is.
//!
//! Run: `cargo run --example many_workers --features postgres`
//! (with `DATABASE_URL=postgres://…` to use your server; without it, a
//! throwaway local server is started for the demo — Debian's `postgresql`
//! package, installed if missing).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use memable::postgres::{PostgresOptions, PostgresStore};
use memable::{Context, Engine, EngineError, StepError, SuspendPoint, WorkflowState};

static SHIPPED: SuspendPoint<String> = SuspendPoint::new("shipped");

/// A worker's lease: how long the others wait before taking over its work.
const LEASE: Duration = Duration::from_secs(2);

async fn store(url: &str) -> Result<PostgresStore, EngineError> {
    PostgresStore::connect_with(PostgresOptions::new(url).schema("many_workers_demo")).await
}

/// A worker process: runs `order` until its stdin closes (or it is killed).
async fn worker(url: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::builder()
        .store(store(url).await?)
        .worker_id(name)
        .lease(LEASE)
        .poll_interval(Duration::from_millis(200))
        .build();
    let me = name.to_owned();
    engine.register("order", move |ctx: Context| {
        let me = me.clone();
        async move {
            let item: String = ctx.input()?;
            let who = me.clone();
            let reserved_by = ctx
                .step("reserve")
                .run(move || {
                    let who = who.clone();
                    async move { Ok::<_, StepError>(who) }
                })
                .await?;
            let who = me.clone();
            let charged_by = ctx
                .step("charge")
                .run(move || {
                    let who = who.clone();
                    // A slow payment provider: long enough to die in.
                    async move {
                        tokio::time::sleep(Duration::from_millis(800)).await;
                        Ok::<_, StepError>(who)
                    }
                })
                .await?;
            let tracking = ctx
                .suspend(&SHIPPED)
                .status("waiting for the courier")
                .await?;
            Ok(format!(
                "{item}: reserved by {reserved_by}, charged by {charged_by}, shipped ({tracking})"
            ))
        }
    })?;
    engine.start().await?;
    eprintln!("worker {name}: started");
    // The parent closes our stdin to stop us cleanly.
    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await??;
    engine.shutdown().await;
    Ok(())
}

fn spawn_worker(url: &str, name: &str) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["worker", url, name])
        .stdin(Stdio::piped())
        .spawn()
}

/// The client: invokes, signals, waits; kills `w1` half way.
async fn client(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut w1 = spawn_worker(url, "w1")?;
    let mut w2 = spawn_worker(url, "w2")?;
    let engine = Engine::builder()
        .store(store(url).await?)
        .worker_id("client")
        .poll_interval(Duration::from_millis(100))
        .build();
    engine.start().await?;

    println!("client: 6 orders; each is signalled once it waits");
    ship(&engine, 0..6).await?;

    println!("client: 6 more orders; w1 is killed (SIGKILL) while it charges its share");
    for i in 6..12 {
        engine
            .invoke("order")
            .id(format!("o{i}"))
            .input(format!("book {i}"))
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    w1.kill()?;
    w1.wait()?;
    println!("client: w1 is dead; its orders go on on w2 after w1's lease ({LEASE:?})");
    ship(&engine, 6..12).await?;

    engine.shutdown().await;
    drop(w2.stdin.take()); // w2 shuts down cleanly
    w2.wait()?;
    println!("client: done");
    Ok(())
}

/// Invokes the orders not invoked yet, signals each once it waits, prints
/// each output.
async fn ship(engine: &Engine, orders: std::ops::Range<u32>) -> Result<(), EngineError> {
    for i in orders.clone() {
        // Already invoked ones are followed, not started again.
        engine
            .invoke("order")
            .id(format!("o{i}"))
            .input(format!("book {i}"))
            .await?;
    }
    for i in orders {
        let id = format!("o{i}");
        wait_suspended(engine, &id).await?;
        let run = engine
            .signal("order", &id, &SHIPPED, format!("T{i}"))
            .await?;
        println!("  {}", run.wait_output::<String>().await?);
    }
    Ok(())
}

async fn wait_suspended(engine: &Engine, id: &str) -> Result<(), EngineError> {
    loop {
        if matches!(
            engine.state("order", id).await?,
            WorkflowState::Suspended { .. }
        ) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, url, name] = args.as_slice()
        && role == "worker"
    {
        return worker(url, name).await;
    }
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => memable_testkit::postgres::TestServer::shared().database(),
    };
    client(&url).await
}
