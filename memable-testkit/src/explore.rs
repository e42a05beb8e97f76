//! Crash-exploring tests of your own workflows: is every step of a workflow
//! safe to run again after a crash?
//!
//! [`CrashExplorer`] runs a workflow once on a [`MemoryStore`] to learn how
//! many store transitions it makes (`N`), then for every `i` in `0..N`
//! runs it again from scratch and **crashes right after transition `i`**:
//! transition `i + 1` never completes and the engine is aborted at that
//! moment (every run dropped where it stands, nothing written after),
//! which is what a process kill leaves behind. A new engine with the same
//! workflows then recovers on the same store, as an application restarting
//! would (an invocation whose start was never acknowledged is made again,
//! as its caller would), and runs it until it is idle. The explorer
//! compares each run's end (status and output) with the uncrashed run's and
//! counts how many times each step's closure ran, across the crash and the
//! recovery (from the engine's `memable.step` spans: one per attempt).
//!
//! A step whose closure ran twice at some crash point is one whose side
//! effect happens twice if the process dies at that moment: it must be
//! idempotent (or [`at_most_once`](memable_core::StepBuilder::at_most_once)).
//! A run whose end differs is a workflow that is not deterministic about
//! its stored results, or a bug in memable.
//!
//! Everything runs on one thread (a current-thread runtime) with a clock
//! that moves by itself when every engine is idle
//! ([`AutoAdvanceClock`]), so timers and backoff cost no real time and a
//! crash point `i` reproduces exactly. Workflows that wait for a signal
//! end the exploration at that wait (their end is `Suspended`).
//!
//! ```
//! use memable_core::{Context, Engine, StepError};
//! use memable_testkit::explore::CrashExplorer;
//!
//! fn register(engine: &Engine) -> Result<(), memable_core::EngineError> {
//!     engine.register("sum", |ctx: Context| async move {
//!         let mut total = 0u32;
//!         for i in 0..3u32 {
//!             total += ctx.step(format!("add:{i}")).run(move || async move { Ok::<_, StepError>(i) }).await?;
//!         }
//!         Ok(total)
//!     })
//! }
//!
//! let report = CrashExplorer::new("sum", register).explore();
//! report.assert_same_ends(); // every crash point recovers to the same output
//! assert!(report.transitions() >= 4); // start, three commits, finish
//! // The step in flight at a crash runs again; a committed one never does.
//! assert_eq!(report.max_closure_runs("add:0"), 2);
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use memable_core::{
    AutoAdvanceClock, Clock, Engine, EngineError, EngineSlot, InstanceFilter, InstanceKey,
    InstanceSnapshot, MemoryStore, StatusKind, StepRecord, StepStore, TimerEntry, WorkflowMetadata,
    WriteOp, WriteOutcome,
};
use serde::Serialize;
use tokio::sync::Notify;
use tracing::span::{Attributes, Id};
use tracing::subscriber::Subscriber;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::Registry;

/// Registers the workflows under test on an engine (the function the
/// application uses).
type Register = dyn Fn(&Engine) -> Result<(), EngineError> + Send + Sync;

/// The instance id every explored run uses.
const INSTANCE_ID: &str = "explored";

/// Explores every crash point of one invocation of a workflow; see the
/// module docs.
///
/// # Examples
///
/// See the [module docs](self).
pub struct CrashExplorer {
    workflow: String,
    register: Arc<Register>,
    input: Option<Arc<SetInput>>,
    input_json: Option<serde_json::Value>,
    start_ms: u64,
}

/// Puts the typed input on an invocation.
type SetInput = dyn Fn(memable_core::InvokeBuilder) -> memable_core::InvokeBuilder + Send + Sync;

impl std::fmt::Debug for CrashExplorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrashExplorer")
            .field("workflow", &self.workflow)
            .field("input", &self.input_json)
            .finish_non_exhaustive()
    }
}

impl CrashExplorer {
    /// Explores workflow `workflow` as `register` registers it.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    #[must_use]
    pub fn new(
        workflow: impl Into<String>,
        register: impl Fn(&Engine) -> Result<(), EngineError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            workflow: workflow.into(),
            register: Arc::new(register),
            input: None,
            input_json: None,
            start_ms: 1_000_000,
        }
    }

    /// The invocation's input.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine};
    /// let explorer = memable_testkit::explore::CrashExplorer::new("echo", |e: &Engine| {
    ///     e.register("echo", |ctx: Context| async move { ctx.input::<u32>() })
    /// })
    /// .input(&7u32);
    /// assert_eq!(explorer.explore().baseline_output(), Some(&serde_json::json!(7)));
    /// ```
    #[must_use]
    pub fn input<T: Serialize + Clone + Send + Sync + 'static>(mut self, input: &T) -> Self {
        self.input_json = serde_json::to_value(input).ok();
        let input = input.clone();
        self.input = Some(Arc::new(move |invoke: memable_core::InvokeBuilder| {
            invoke.input(input.clone())
        }));
        self
    }

    /// Runs the exploration: the uncrashed run, then one crashed and
    /// recovered run per transition.
    ///
    /// # Panics
    ///
    /// If the uncrashed run itself fails to run (the workflow is not
    /// registered, the engine cannot start): a broken test set-up.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    #[must_use]
    pub fn explore(&self) -> CrashReport {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread tokio runtime");
        let spans = StepSpans::default();
        let subscriber = Registry::default().with(spans.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        runtime.block_on(async {
            let baseline = self.run_once(usize::MAX, &spans).await;
            let transitions = baseline.transitions;
            let mut crashes = Vec::with_capacity(transitions);
            for after in 0..transitions {
                let run = self.run_once(after, &spans).await;
                crashes.push(CrashRun {
                    after_transition: after,
                    same_end: run.end == baseline.end,
                    end: run.end,
                    closure_runs: run.closure_runs,
                });
            }
            CrashReport {
                workflow: self.workflow.clone(),
                baseline_end: baseline.end,
                baseline_closure_runs: baseline.closure_runs,
                transitions,
                crashes,
            }
        })
    }

    /// One run on a fresh store, crashing after `budget` transitions (none
    /// if the run makes fewer), then recovering.
    async fn run_once(&self, budget: usize, spans: &StepSpans) -> Outcome {
        spans.reset();
        let memory = MemoryStore::new();
        let crashing = CrashAfter::new(memory.clone(), budget);
        let clock = AutoAdvanceClock::new(self.start_ms);
        let first = Engine::builder()
            .store(crashing.clone())
            .clock(clock.clone())
            .build();
        (self.register)(&first).expect("register the workflows");
        first.start().await.expect("start the engine");
        tokio::select! {
            () = self.invoke_until_idle(&first, &memory, &clock) => {}
            () = crashing.crashed() => {}
        }
        let transitions = crashing.writes();
        let crashed = crashing.has_crashed();
        if crashed {
            first.abort();
        } else {
            first.shutdown().await;
        }
        drop(first);
        if crashed {
            // The restart: the same store, a new engine, the same code (and
            // a clock of its own that goes on from the first one's time).
            let clock = AutoAdvanceClock::new(clock.now_ms());
            let second = Engine::builder()
                .store(memory.clone())
                .clock(clock.clone())
                .build();
            (self.register)(&second).expect("register the workflows");
            second.start().await.expect("start the engine");
            self.invoke_until_idle(&second, &memory, &clock).await;
            second.shutdown().await;
        }
        Outcome {
            transitions,
            end: End::read(&memory, &self.workflow).await,
            closure_runs: spans.counts(),
        }
    }

    /// Invokes the instance (again: an existing id follows the instance)
    /// and waits until it is idle for good: ended, or waiting with no
    /// deadline pending (a signal). Errors end the wait (the end is read
    /// from the store).
    async fn invoke_until_idle(
        &self,
        engine: &Engine,
        memory: &MemoryStore,
        clock: &AutoAdvanceClock,
    ) {
        let mut invoke = engine.invoke(&self.workflow).id(INSTANCE_ID);
        if let Some(set_input) = &self.input {
            invoke = set_input(invoke);
        }
        let Ok(run) = invoke.await else { return };
        let _ = run.wait_idle().await;
        // A pending timer fires once every engine is idle (the clock moves
        // by itself); follow the instance until none is left.
        for _ in 0..100_000 {
            engine.wait_all().await;
            let Some(deadline) = self.pending_deadline(memory).await else {
                return;
            };
            clock.sleep_until(deadline).await;
            tokio::task::yield_now().await;
        }
    }

    /// The earliest deadline the instance waits on, if it is not ended.
    async fn pending_deadline(&self, memory: &MemoryStore) -> Option<u64> {
        let key = InstanceKey::new(&self.workflow, INSTANCE_ID).ok()?;
        let snapshot = memory.load_instance(&key).await.ok()??;
        if snapshot.metadata.status.is_terminal() {
            return None;
        }
        snapshot
            .steps
            .iter()
            .filter(|(_, r)| r.state == memable_core::StepState::Suspended)
            .filter_map(|(_, r)| r.deadline_ms)
            .min()
    }
}

struct Outcome {
    transitions: usize,
    end: End,
    closure_runs: BTreeMap<String, usize>,
}

/// How an explored instance ended: its status and its output record (type
/// and bytes), or that it does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// The status; `None` if the instance does not exist.
    pub status: Option<StatusKind>,
    /// The status's message (a failure's error).
    pub message: Option<String>,
    /// The output as JSON, if it has one.
    pub output: Option<serde_json::Value>,
    output_record: Option<(String, Vec<u8>)>,
}

impl End {
    async fn read(store: &MemoryStore, workflow: &str) -> Self {
        let Ok(key) = InstanceKey::new(workflow, INSTANCE_ID) else {
            return Self::missing();
        };
        let Ok(Some(snapshot)) = store.load_instance(&key).await else {
            return Self::missing();
        };
        let output = snapshot.step("_output");
        let meta = &snapshot.metadata;
        let message = match &meta.status {
            memable_core::MetadataStatus::Failed(error) => Some(error.clone()),
            memable_core::MetadataStatus::Completed(status)
            | memable_core::MetadataStatus::Suspended { status, .. } => status.clone(),
            _ => None,
        };
        Self {
            status: Some(meta.status.kind()),
            message,
            output: output.and_then(|r| serde_json::from_slice(&r.value).ok()),
            output_record: output.map(|r| (r.type_tag.clone(), r.value.clone())),
        }
    }

    fn missing() -> Self {
        Self {
            status: None,
            message: None,
            output: None,
            output_record: None,
        }
    }
}

/// One crash point: the run crashed after transition `after_transition`
/// and recovered.
#[derive(Clone, Debug)]
pub struct CrashRun {
    /// How many transitions were acknowledged before the crash.
    pub after_transition: usize,
    /// How the instance ended after the recovery.
    pub end: End,
    /// Whether that is how the uncrashed run ended.
    pub same_end: bool,
    /// How many times each step's closure ran, across the crash and the
    /// recovery.
    pub closure_runs: BTreeMap<String, usize>,
}

/// What [`CrashExplorer::explore`] found.
///
/// # Examples
///
/// See the [module docs](self).
#[derive(Clone, Debug)]
pub struct CrashReport {
    workflow: String,
    baseline_end: End,
    baseline_closure_runs: BTreeMap<String, usize>,
    transitions: usize,
    crashes: Vec<CrashRun>,
}

impl CrashReport {
    /// The transitions of the uncrashed run (and so the crash points).
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    #[must_use]
    pub fn transitions(&self) -> usize {
        self.transitions
    }

    /// The uncrashed run's output, as JSON.
    ///
    /// # Examples
    ///
    /// See [`CrashExplorer::input`].
    #[must_use]
    pub fn baseline_output(&self) -> Option<&serde_json::Value> {
        self.baseline_end.output.as_ref()
    }

    /// Every crash point, in order.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    #[must_use]
    pub fn crashes(&self) -> &[CrashRun] {
        &self.crashes
    }

    /// The crash points whose recovery ended differently from the
    /// uncrashed run.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    #[must_use]
    pub fn different_ends(&self) -> Vec<&CrashRun> {
        self.crashes.iter().filter(|c| !c.same_end).collect()
    }

    /// The most times step `key`'s closure ran at any one crash point (0 if
    /// it never ran).
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    #[must_use]
    pub fn max_closure_runs(&self, key: &str) -> usize {
        self.crashes
            .iter()
            .filter_map(|c| c.closure_runs.get(key).copied())
            .max()
            .unwrap_or(0)
    }

    /// The steps whose closure ran more often at some crash point than in
    /// the uncrashed run, with the crash points where it did: the steps
    /// that must be safe to run again.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    #[must_use]
    pub fn rerun_steps(&self) -> BTreeMap<String, Vec<usize>> {
        let mut rerun: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for crash in &self.crashes {
            for (key, runs) in &crash.closure_runs {
                let before = self.baseline_closure_runs.get(key).copied().unwrap_or(0);
                if *runs > before {
                    rerun
                        .entry(key.clone())
                        .or_default()
                        .push(crash.after_transition);
                }
            }
        }
        rerun
    }

    /// Panics, naming every crash point `i` to reproduce, if a recovery
    /// ended differently from the uncrashed run.
    ///
    /// # Panics
    ///
    /// As described.
    ///
    /// # Examples
    ///
    /// See the [module docs](self).
    #[track_caller]
    pub fn assert_same_ends(&self) {
        let different = self.different_ends();
        assert!(
            different.is_empty(),
            "workflow {}: {} of {} crash points recovered to another end than the uncrashed run ({:?}):\n{}",
            self.workflow,
            different.len(),
            self.crashes.len(),
            self.baseline_end,
            different
                .iter()
                .map(|c| format!(
                    "  crash after transition {}: {:?}",
                    c.after_transition, c.end
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Counts `memable.step` spans (one per attempt, so per closure run) by
/// step key.
#[derive(Clone, Default)]
struct StepSpans(Arc<Mutex<BTreeMap<String, usize>>>);

impl StepSpans {
    fn reset(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn counts(&self) -> BTreeMap<String, usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Reads the `step` field of a span.
struct StepField(Option<String>);

impl tracing::field::Visit for StepField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "step" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "step" && self.0.is_none() {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for StepSpans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: LayerContext<'_, S>) {
        if attrs.metadata().name() != memable_core::telemetry::STEP_SPAN {
            return;
        }
        let mut step = StepField(None);
        attrs.record(&mut step);
        if let Some(key) = step.0 {
            *self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default() += 1;
        }
    }
}

/// A store that acknowledges its first `budget` writes and never completes
/// the next one: the moment of the crash.
#[derive(Clone)]
struct CrashAfter {
    inner: MemoryStore,
    budget: usize,
    writes: Arc<AtomicUsize>,
    crash: Arc<Notify>,
}

impl CrashAfter {
    fn new(inner: MemoryStore, budget: usize) -> Self {
        Self {
            inner,
            budget,
            writes: Arc::new(AtomicUsize::new(0)),
            crash: Arc::new(Notify::new()),
        }
    }

    /// Acknowledged writes.
    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst).min(self.budget)
    }

    fn has_crashed(&self) -> bool {
        self.writes.load(Ordering::SeqCst) > self.budget
    }

    /// Completes once a write went past the budget.
    fn crashed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                let notified = self.crash.notified();
                if self.has_crashed() {
                    return;
                }
                notified.await;
            }
        })
    }
}

#[async_trait]
impl StepStore for CrashAfter {
    fn name(&self) -> &'static str {
        "crash-after"
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, EngineError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        if n >= self.budget {
            self.crash.notify_waiters();
            // The process is gone: this write never completes.
            std::future::pending::<()>().await;
        }
        self.inner.write(op).await
    }

    async fn load_instance(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<InstanceSnapshot>, EngineError> {
        self.inner.load_instance(key).await
    }

    async fn get_step(
        &self,
        key: &InstanceKey,
        step_key: &str,
    ) -> Result<Option<StepRecord>, EngineError> {
        self.inner.get_step(key, step_key).await
    }

    async fn get_metadata(
        &self,
        key: &InstanceKey,
    ) -> Result<Option<WorkflowMetadata>, EngineError> {
        self.inner.get_metadata(key).await
    }

    async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<WorkflowMetadata>, EngineError> {
        self.inner.list_instances(filter).await
    }

    async fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<TimerEntry>, EngineError> {
        self.inner.due_timers(now_ms, limit).await
    }

    async fn next_timer_deadline(&self) -> Result<Option<u64>, EngineError> {
        self.inner.next_timer_deadline().await
    }

    fn engine_slot(&self) -> &EngineSlot {
        self.inner.engine_slot()
    }
}
