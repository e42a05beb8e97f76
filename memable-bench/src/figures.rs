//! Every figure, each measured on a fresh store in its own temp dir.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use memable_core::{
    Clock, Engine, EngineError, Finish, InstanceKey, Invocation, MemoryStore, StepKind, StepRecord,
    StepStore, StepStoreExt, SystemClock, encode_value, type_tag,
};

use crate::Sizes;
use crate::backend::Backend;
use crate::memory::resident_bytes;
use crate::workloads::{self, Observations};

type Result<T> = std::result::Result<T, EngineError>;

pub(crate) fn print_figure(name: &str, backend: Backend, value: f64, unit: &str) {
    let digits = if value.abs() < 10.0 { 3 } else { 1 };
    println!(
        "figure={name} backend={} value={value:.digits$} unit={unit}",
        backend.name()
    );
}

pub(crate) fn io(op: &'static str) -> impl Fn(std::io::Error) -> EngineError {
    move |e| EngineError::storage(op, e)
}

/// A fresh temp dir, store and started engine with the bench workflows.
struct Bench {
    dir: tempfile::TempDir,
    shared: MemoryStore,
    engine: Engine,
    obs: Arc<Observations>,
}

impl Bench {
    async fn new(backend: Backend) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(io("tempdir"))?;
        let shared = MemoryStore::new();
        let store = backend.open(dir.path(), &shared).await?;
        let obs = Arc::new(Observations::default());
        let engine = engine_on(store, &obs).await?;
        Ok(Self {
            dir,
            shared,
            engine,
            obs,
        })
    }
}

async fn engine_on(store: Arc<dyn StepStore>, obs: &Arc<Observations>) -> Result<Engine> {
    let engine = Engine::builder().store(store).build();
    workloads::register(&engine, obs)?;
    engine.start().await?;
    Ok(engine)
}

pub(crate) fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The workloads, in the order a full run measures them; `--only` picks one.
pub const WORKLOADS: [&str; 11] = [
    "seq",
    "conc",
    "replay",
    "recovery",
    "timers",
    "suspended",
    "disk",
    "disk_1k",
    "takeover",
    "children",
    "queue",
];

/// Whether `workload` means something on `backend`: the disk figures
/// measure store files (PostgreSQL keeps its own), the take-over needs
/// many workers (PostgreSQL only).
fn applies(workload: &str, backend: Backend) -> bool {
    match workload {
        "disk" | "disk_1k" => backend != Backend::Postgres,
        "takeover" => backend == Backend::Postgres,
        _ => true,
    }
}

/// Runs every workload, or only those named in `only` (comma-separated),
/// with a pause between
/// two workloads so the disk's write-back of the previous one (temp dirs
/// being removed, 100,000 instances of the recovery store) does not land in
/// the next one's figures.
pub async fn run_all(backend: Backend, sizes: Sizes, only: Option<&str>) -> Result<()> {
    for (index, name) in WORKLOADS
        .iter()
        .filter(|name| only.is_none_or(|only| only.split(',').any(|o| o == **name)))
        .filter(|name| applies(name, backend))
        .enumerate()
    {
        if index > 0 {
            tokio::time::sleep(Duration::from_millis(sizes.settle_ms)).await;
        }
        match *name {
            "seq" => fsync_and_seq(backend, sizes).await?,
            "conc" => conc_and_replay_many(backend, sizes).await?,
            "replay" => replay_steps(backend, sizes).await?,
            "recovery" => recovery(backend, sizes).await?,
            "timers" => timer_lateness(backend, sizes).await?,
            "suspended" => suspended_bytes(backend, sizes).await?,
            "disk" => disk_bytes_per_step(backend, sizes, DiskValues::Small).await?,
            "disk_1k" => disk_bytes_per_step(backend, sizes, DiskValues::Kib).await?,
            "takeover" => crate::postgres::takeover(backend, sizes).await?,
            "children" => child_overhead(backend, sizes).await?,
            "queue" => queue_dispatch(backend, sizes).await?,
            other => {
                return Err(EngineError::storage(
                    "benchmark",
                    format!("no workload named {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// The floor and the sequential workflow, measured in alternating rounds so
/// both sample the same (shared, noisy) disk: each round runs the floor —
/// a raw 8-byte write + `fdatasync` loop, or on PostgreSQL a raw one-row
/// `INSERT` + `COMMIT` loop on one connection to the same server — then one
/// workflow of `seq_steps` durable steps on a fresh store. Prints the median
/// rate of each, and the median of the per-round ratios (`seq_per_fsync`,
/// `seq_per_commit`), the steadiest of the three.
async fn fsync_and_seq(backend: Backend, sizes: Sizes) -> Result<()> {
    let mut floor = Vec::with_capacity(sizes.seq_rounds);
    let mut seq = Vec::with_capacity(sizes.seq_rounds);
    let mut ratios = Vec::with_capacity(sizes.seq_rounds);
    for _ in 0..sizes.seq_rounds {
        let floor_rate = if backend == Backend::Postgres {
            crate::postgres::commit_loop(sizes.fsyncs).await?
        } else {
            fsync_loop(sizes.fsyncs)?
        };
        let steps = seq_workflow(backend, sizes.seq_steps).await?;
        floor.push(floor_rate);
        seq.push(steps);
        ratios.push(steps / floor_rate);
    }
    let (floor_name, ratio_name) = if backend == Backend::Postgres {
        ("commit_per_s", "seq_per_commit")
    } else {
        ("fsync_per_s", "seq_per_fsync")
    };
    print_figure(floor_name, backend, median(&mut floor), "ops/s");
    print_figure("seq_steps_per_s", backend, median(&mut seq), "steps/s");
    print_figure(ratio_name, backend, median(&mut ratios), "ratio");
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The floor: `count` raw 8-byte appends, each followed by `fdatasync`, on
/// the same disk as the stores; in operations per second.
fn fsync_loop(count: usize) -> Result<f64> {
    let dir = tempfile::tempdir().map_err(io("tempdir"))?;
    let mut file = std::fs::File::create(dir.path().join("fsync.bin")).map_err(io("create"))?;
    let started = Instant::now();
    for i in 0..count {
        file.write_all(&(i as u64).to_le_bytes())
            .map_err(io("write"))?;
        file.sync_data().map_err(io("fsync"))?;
    }
    Ok(per_second(count, started.elapsed()))
}

/// One workflow of `steps` durable steps on a fresh store, in steps per
/// second.
async fn seq_workflow(backend: Backend, steps: usize) -> Result<f64> {
    let bench = Bench::new(backend).await?;
    let started = Instant::now();
    bench
        .engine
        .invoke("steps")
        .input(steps as u64)
        .await?
        .wait_output::<u64>()
        .await?;
    Ok(per_second(steps, started.elapsed()))
}

/// What child workflows cost against steps: in each round, on a fresh store
/// each, one workflow of `children` sequential steps (`steps`), one of
/// `children` steps run all at once (`steps_parallel`), and a parent
/// awaiting a fan-out of `children` one-step children, no bound (so they
/// run at once too), each timed from invoke to output. Prints the medians
/// of the per-round ratios — children / parallel steps (`child_overhead`:
/// the same work at the same concurrency) and children / sequential steps
/// (`child_overhead_vs_seq`) — and of the children's rate.
async fn child_overhead(backend: Backend, sizes: Sizes) -> Result<()> {
    let n = sizes.children as u64;
    let mut same = Vec::with_capacity(sizes.child_rounds);
    let mut vs_seq = Vec::with_capacity(sizes.child_rounds);
    let mut rate = Vec::with_capacity(sizes.child_rounds);
    for _ in 0..sizes.child_rounds {
        let seq = timed_steps(backend, "steps", n).await?;
        let parallel = timed_steps(backend, "steps_parallel", n).await?;
        let bench = Bench::new(backend).await?;
        let started = Instant::now();
        let sum = workloads::CHILDREN
            .invoke(&bench.engine, n)
            .await?
            .output()
            .await?;
        let children = started.elapsed();
        check_sum(sum, n)?;
        bench.engine.shutdown().await;
        same.push(children.as_secs_f64() / parallel.as_secs_f64().max(1e-9));
        vs_seq.push(children.as_secs_f64() / seq.as_secs_f64().max(1e-9));
        rate.push(per_second(sizes.children, children));
    }
    print_figure("child_overhead", backend, median(&mut same), "ratio");
    print_figure(
        "child_overhead_vs_seq",
        backend,
        median(&mut vs_seq),
        "ratio",
    );
    print_figure("children_per_s", backend, median(&mut rate), "children/s");
    Ok(())
}

/// The limit of the queue that `queue_dispatch` goes through.
pub(crate) const QUEUE_LIMIT: usize = 64;

/// Instances dispatched through a queue: in each round, on a fresh store
/// each, `queue_instances` one-step instances invoked directly, then the
/// same through a queue of concurrency [`QUEUE_LIMIT`], each timed from the
/// first invoke to the last output. Prints the median rate through the
/// queue (`queue_dispatch_per_s`: instances admitted, acquired and run per
/// second) and the median of the per-round ratios queue / direct
/// (`queue_dispatch_vs_direct`, the cost of the admission).
async fn queue_dispatch(backend: Backend, sizes: Sizes) -> Result<()> {
    let mut through = Vec::with_capacity(sizes.queue_rounds);
    let mut ratios = Vec::with_capacity(sizes.queue_rounds);
    for _ in 0..sizes.queue_rounds {
        let direct = dispatch_round(backend, sizes.queue_instances, false).await?;
        let queued = dispatch_round(backend, sizes.queue_instances, true).await?;
        through.push(per_second(sizes.queue_instances, queued));
        ratios.push(
            per_second(sizes.queue_instances, queued) / per_second(sizes.queue_instances, direct),
        );
    }
    print_figure(
        "queue_dispatch_per_s",
        backend,
        median(&mut through),
        "instances/s",
    );
    print_figure(
        "queue_dispatch_vs_direct",
        backend,
        median(&mut ratios),
        "ratio",
    );
    Ok(())
}

/// `n` instances of `one_step` on a fresh store, through the queue or not,
/// from the first invoke to the last output.
async fn dispatch_round(backend: Backend, n: usize, queued: bool) -> Result<Duration> {
    let dir = tempfile::tempdir().map_err(io("tempdir"))?;
    let shared = MemoryStore::new();
    let store = backend.open(dir.path(), &shared).await?;
    let mut builder = Engine::builder().store(store);
    if queued {
        builder = builder.queue(
            memable_core::Queue::new("bench")
                .concurrency(QUEUE_LIMIT)
                .default_for("one_step"),
        );
    }
    let engine = builder.build();
    workloads::register(&engine, &Arc::new(Observations::default()))?;
    engine.start().await?;
    let started = Instant::now();
    let mut runs = Vec::with_capacity(n);
    for i in 0..n {
        runs.push(engine.invoke("one_step").id(format!("{i}")).await?);
    }
    for run in runs {
        run.wait_output::<u64>().await?;
    }
    let elapsed = started.elapsed();
    engine.shutdown().await;
    drop(dir);
    Ok(elapsed)
}

/// One instance of `workflow` (`steps` or `steps_parallel`) with `n`
/// steps on a fresh store, from invoke to output.
async fn timed_steps(backend: Backend, workflow: &'static str, n: u64) -> Result<Duration> {
    let bench = Bench::new(backend).await?;
    let started = Instant::now();
    let sum = bench
        .engine
        .invoke(workflow)
        .input(n)
        .await?
        .wait_output::<u64>()
        .await?;
    let elapsed = started.elapsed();
    check_sum(sum, n)?;
    bench.engine.shutdown().await;
    Ok(elapsed)
}

/// A figure from a wrong result is no figure: `sum` must be `0 + … + n-1`.
fn check_sum(sum: u64, n: u64) -> Result<()> {
    if sum == n * n.saturating_sub(1) / 2 {
        Ok(())
    } else {
        Err(EngineError::storage(
            "child_overhead",
            format!("the sum of 0..{n} came out as {sum}"),
        ))
    }
}

/// Invokes `workflow` once per `(id, input)`, every invocation from its own
/// task (as concurrent requests would), so their starts share commits.
async fn invoke_all(
    engine: &Engine,
    workflow: &'static str,
    runs: Vec<(String, u64)>,
) -> Result<Vec<Invocation>> {
    let mut starts = tokio::task::JoinSet::new();
    for (index, (id, input)) in runs.into_iter().enumerate() {
        let engine = engine.clone();
        starts.spawn(async move {
            let run = engine.invoke(workflow).id(id).input(input).await?;
            Ok::<_, EngineError>((index, run))
        });
    }
    collect_in_order(starts).await
}

/// Invokes `steps` with input `steps` once per id.
async fn invoke_steps(engine: &Engine, ids: Vec<String>, steps: u64) -> Result<Vec<Invocation>> {
    invoke_all(
        engine,
        "steps",
        ids.into_iter().map(|id| (id, steps)).collect(),
    )
    .await
}

/// Resumes every id, each from its own task.
async fn resume_all(engine: &Engine, ids: Vec<String>) -> Result<Vec<Invocation>> {
    let mut resumes = tokio::task::JoinSet::new();
    for (index, id) in ids.into_iter().enumerate() {
        let engine = engine.clone();
        resumes.spawn(
            async move { Ok::<_, EngineError>((index, engine.resume("steps", &id).await?)) },
        );
    }
    collect_in_order(resumes).await
}

async fn collect_in_order(
    mut tasks: tokio::task::JoinSet<Result<(usize, Invocation)>>,
) -> Result<Vec<Invocation>> {
    let mut runs = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        runs.push(joined.map_err(|e| EngineError::storage("bench task", e))??);
    }
    runs.sort_by_key(|(index, _)| *index);
    Ok(runs.into_iter().map(|(_, run)| run).collect())
}

/// Many concurrent workflows of a few steps; then resuming them all
/// (every step memoised).
async fn conc_and_replay_many(backend: Backend, sizes: Sizes) -> Result<()> {
    let bench = Bench::new(backend).await?;
    let steps = sizes.conc_steps as u64;
    let ids: Vec<String> = (0..sizes.conc_workflows).map(|i| format!("c{i}")).collect();
    let started = Instant::now();
    for run in invoke_steps(&bench.engine, ids.clone(), steps).await? {
        run.wait_output::<u64>().await?;
    }
    let total = sizes.conc_workflows * sizes.conc_steps;
    print_figure(
        "conc_steps_per_s",
        backend,
        per_second(total, started.elapsed()),
        "steps/s",
    );

    let replayed: Vec<String> = ids.into_iter().take(sizes.replay_many).collect();
    let replay_total = replayed.len() * sizes.conc_steps;
    let started = Instant::now();
    for run in resume_all(&bench.engine, replayed).await? {
        run.wait_output::<u64>().await?;
    }
    print_figure(
        "replay_many_steps_per_s",
        backend,
        per_second(replay_total, started.elapsed()),
        "steps/s",
    );
    Ok(())
}

/// Resuming one completed instance of `replay_steps` steps.
async fn replay_steps(backend: Backend, sizes: Sizes) -> Result<()> {
    let bench = Bench::new(backend).await?;
    let n = sizes.replay_steps as u64;
    bench
        .engine
        .invoke("steps")
        .id("long")
        .input(n)
        .await?
        .wait_output::<u64>()
        .await?;
    // Best of a few runs: the figure is the replay's own cost.
    let mut best = Duration::MAX;
    for _ in 0..sizes.replay_rounds {
        let started = Instant::now();
        bench
            .engine
            .resume("steps", "long")
            .await?
            .wait_output::<u64>()
            .await?;
        best = best.min(started.elapsed());
    }
    print_figure(
        "replay_steps_per_s",
        backend,
        per_second(sizes.replay_steps, best),
        "steps/s",
    );
    Ok(())
}

/// `start()` on a store with many completed and some running instances,
/// until every running one runs again.
async fn recovery(backend: Backend, sizes: Sizes) -> Result<()> {
    let dir = tempfile::tempdir().map_err(io("tempdir"))?;
    let shared = MemoryStore::new();
    {
        let store = backend.open(dir.path(), &shared).await?;
        populate(&store, sizes).await?;
    }
    let store = backend.open(dir.path(), &shared).await?;
    let obs = Arc::new(Observations::default());
    let engine = Engine::builder().store(store).build();
    workloads::register(&engine, &obs)?;
    let started = Instant::now();
    engine.start().await?;
    while obs.started.load(Ordering::SeqCst) < sizes.recovery_running {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let elapsed = started.elapsed();
    engine.wait_all().await;
    print_figure("recovery_ms", backend, elapsed.as_secs_f64() * 1e3, "ms");
    Ok(())
}

/// Writes completed instances and `Running` ones (as a crash leaves them)
/// straight through the store, many at once so writes share commits.
async fn populate(store: &Arc<dyn StepStore>, sizes: Sizes) -> Result<()> {
    let now = SystemClock.now_ms();
    let input = StepRecord::completed(
        StepKind::Engine,
        type_tag::<()>(),
        encode_value("_input", &())?,
        None,
    );
    let output = input.clone();
    let mut tasks = tokio::task::JoinSet::new();
    let chunk = 2_000;
    for start in (0..sizes.recovery_completed).step_by(chunk) {
        let store = Arc::clone(store);
        let (input, output) = (input.clone(), output.clone());
        let end = (start + chunk).min(sizes.recovery_completed);
        tasks.spawn(async move {
            let mut pending = tokio::task::JoinSet::new();
            for i in start..end {
                let store = Arc::clone(&store);
                let (input, output) = (input.clone(), output.clone());
                pending.spawn(async move {
                    let key = InstanceKey::new("first-step", &format!("done-{i:06}"))?;
                    store.start_instance(key.clone(), input, now).await?;
                    store
                        .finish_instance(
                            key,
                            Finish::Completed {
                                status: None,
                                output,
                            },
                            now,
                        )
                        .await?;
                    Ok::<_, EngineError>(())
                });
            }
            while let Some(joined) = pending.join_next().await {
                joined.map_err(|e| EngineError::storage("populate", e))??;
            }
            Ok::<_, EngineError>(())
        });
        while tasks.len() >= 2 {
            if let Some(joined) = tasks.join_next().await {
                joined.map_err(|e| EngineError::storage("populate", e))??;
            }
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| EngineError::storage("populate", e))??;
    }
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..sizes.recovery_running {
        let store = Arc::clone(store);
        let input = input.clone();
        pending.spawn(async move {
            let key = InstanceKey::new("first-step", &format!("crashed-{i:06}"))?;
            store.start_instance(key, input, now).await.map(|_| ())
        });
    }
    while let Some(joined) = pending.join_next().await {
        joined.map_err(|e| EngineError::storage("populate", e))??;
    }
    Ok(())
}

/// Timers due all at once plus timers spread over a window: how late they
/// wake (p50 and p99, ms).
async fn timer_lateness(backend: Backend, sizes: Sizes) -> Result<()> {
    let bench = Bench::new(backend).await?;
    // Every timer must be set before the first is due: setting them takes
    // longer over a network.
    let headroom = if backend == Backend::Postgres {
        5_000
    } else {
        500
    };
    let base = SystemClock.now_ms() + headroom;
    let mut deadlines: Vec<u64> = vec![base; sizes.timers_at_once];
    let spread = sizes.timers_spread.max(1) as u64;
    deadlines.extend((0..spread).map(|i| base + i * sizes.spread_ms / spread));
    let expected = deadlines.len();
    let runs = deadlines
        .into_iter()
        .enumerate()
        .map(|(i, deadline)| (format!("t{i}"), deadline))
        .collect();
    for run in invoke_all(&bench.engine, "timer", runs).await? {
        run.wait_idle().await?;
    }
    // Every timer must be set before the first is due, or the figure would
    // measure the set-up instead of the scheduler.
    let ready = SystemClock.now_ms();
    if ready >= base {
        return Err(EngineError::storage(
            "timer benchmark",
            format!(
                "setting {expected} timers took until {}ms past the first deadline",
                ready - base
            ),
        ));
    }
    loop {
        if bench.obs.lateness_ms.lock().await.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lateness = bench.obs.lateness_ms.lock().await.clone();
    lateness.sort_unstable();
    let pick = |q: f64| lateness[((lateness.len() - 1) as f64 * q).round() as usize] as f64;
    print_figure("timer_lateness_p50_ms", backend, pick(0.50), "ms");
    print_figure("timer_lateness_p99_ms", backend, pick(0.99), "ms");
    Ok(())
}

/// Process memory growth per suspended instance.
async fn suspended_bytes(backend: Backend, sizes: Sizes) -> Result<()> {
    let bench = Bench::new(backend).await?;
    // Warm up allocator pools and the store before the baseline.
    for i in 0..100 {
        drop(
            bench
                .engine
                .invoke("suspend")
                .id(format!("warm{i}"))
                .await?,
        );
    }
    bench.engine.wait_all().await;
    let before = resident_bytes().unwrap_or(0);
    let batch = 1_000;
    for start in (0..sizes.suspended).step_by(batch) {
        let mut runs = Vec::with_capacity(batch);
        for i in start..(start + batch).min(sizes.suspended) {
            runs.push(bench.engine.invoke("suspend").id(format!("s{i}")).await?);
        }
        for run in runs {
            run.wait_idle().await?;
        }
    }
    bench.engine.wait_all().await;
    let after = resident_bytes().unwrap_or(0);
    let per_instance = after.saturating_sub(before) as f64 / sizes.suspended as f64;
    print_figure(
        "suspended_bytes_per_instance",
        backend,
        per_instance,
        "bytes",
    );
    let _ = (&bench.dir, &bench.shared);
    Ok(())
}

/// The step values of a disk workload.
#[derive(Clone, Copy)]
enum DiskValues {
    /// 8-byte `u64`s (workflow `steps`): figure `disk_bytes_per_step`.
    Small,
    /// 1,024-byte values (workflow `steps_1k`): figure
    /// `disk_bytes_per_step_1k`.
    Kib,
}

impl DiskValues {
    fn workflow(self) -> &'static str {
        match self {
            Self::Small => "steps",
            Self::Kib => "steps_1k",
        }
    }

    fn figure(self) -> &'static str {
        match self {
            Self::Small => "disk_bytes_per_step",
            Self::Kib => "disk_bytes_per_step_1k",
        }
    }
}

/// File size growth per committed step result (8 bytes or 1,024 bytes):
/// the durable size after a clean close (write-ahead logs and journals
/// checkpointed), before and after a round of `disk_steps` steps. A first
/// round of the same size warms the store up, so bounded side files are
/// already at their size.
async fn disk_bytes_per_step(backend: Backend, sizes: Sizes, values: DiskValues) -> Result<()> {
    let dir = tempfile::tempdir().map_err(io("tempdir"))?;
    let shared = MemoryStore::new();
    let per_workflow = 100u64;
    let workflows = (sizes.disk_steps as u64 / per_workflow).max(1);
    let round = |name: &'static str| {
        disk_round(
            backend,
            dir.path(),
            &shared,
            values.workflow(),
            name,
            workflows,
            per_workflow,
        )
    };
    round("warm").await?;
    let before = Backend::disk_bytes(dir.path());
    round("d").await?;
    let after = Backend::disk_bytes(dir.path());
    let steps = (workflows * per_workflow) as f64;
    print_figure(
        values.figure(),
        backend,
        after.saturating_sub(before) as f64 / steps,
        "bytes",
    );
    Ok(())
}

/// Opens the store in `dir`, runs `workflows` instances of `workflow` with
/// `steps` steps each and closes the store again.
async fn disk_round(
    backend: Backend,
    dir: &std::path::Path,
    shared: &MemoryStore,
    workflow: &'static str,
    name: &str,
    workflows: u64,
    steps: u64,
) -> Result<()> {
    let obs = Arc::new(Observations::default());
    let engine = engine_on(backend.open(dir, shared).await?, &obs).await?;
    let runs = (0..workflows)
        .map(|i| (format!("{name}{i}"), steps))
        .collect();
    for run in invoke_all(&engine, workflow, runs).await? {
        run.wait_output::<u64>().await?;
    }
    engine.shutdown().await;
    Ok(())
}
