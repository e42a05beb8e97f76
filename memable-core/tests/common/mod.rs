//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memable_core::{
    Engine, InstanceKey, ManualClock, MemoryStore, RetryPolicy, StepError, StepRecord, StepStore,
    WorkflowState,
};
use tokio::sync::Semaphore;

/// Upper bound on any wait in a test: a hang fails the test instead of
/// blocking the suite. Under paused time it elapses instantly when idle.
pub const GUARD: Duration = Duration::from_secs(20);

pub type Counter = Arc<AtomicUsize>;

pub fn counter() -> Counter {
    Arc::new(AtomicUsize::new(0))
}

pub fn get(c: &Counter) -> usize {
    c.load(Ordering::SeqCst)
}

/// One attempt of a step: counts the call and succeeds with `value`.
pub fn tick<T: Send>(c: &Counter, value: T) -> impl Future<Output = Result<T, StepError>> + Send {
    c.fetch_add(1, Ordering::SeqCst);
    std::future::ready(Ok(value))
}

/// One attempt that counts the call and fails retryably.
pub fn fail_retryable<T: Send>(c: &Counter) -> impl Future<Output = Result<T, StepError>> + Send {
    let n = c.fetch_add(1, Ordering::SeqCst) + 1;
    std::future::ready(Err(StepError::retryable(format!("attempt {n} failed"))))
}

/// An engine on `store` with a manual clock and retries without delay.
pub fn engine_on(store: &MemoryStore, clock: &ManualClock) -> Engine {
    Engine::builder()
        .store(store.clone())
        .clock(clock.clone())
        .default_retry(RetryPolicy::fixed(3, Duration::ZERO))
        .build()
}

/// A fresh store, clock and engine (not started).
pub fn fresh() -> (MemoryStore, ManualClock, Engine) {
    let store = MemoryStore::new();
    let clock = ManualClock::new(1_000);
    let engine = engine_on(&store, &clock);
    (store, clock, engine)
}

/// A gate a step can wait on; the test opens it.
#[derive(Clone)]
pub struct Gate(Arc<Semaphore>);

impl Gate {
    pub fn new() -> Self {
        Self(Arc::new(Semaphore::new(0)))
    }

    /// Waits until the test lets one waiter through.
    pub async fn pass(&self) {
        self.0
            .acquire()
            .await
            .expect("gate semaphore is never closed")
            .forget();
    }

    /// Lets `n` waiters through.
    pub fn open(&self, n: usize) {
        self.0.add_permits(n);
    }
}

/// Polls `check` until it is true (or the guard elapses: panic).
pub async fn until<F: FnMut() -> bool>(what: &str, mut check: F) {
    let waited = tokio::time::timeout(GUARD, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// Polls the engine's state of an instance until `pred` holds; returns it.
pub async fn state_until(
    engine: &Engine,
    workflow: &str,
    id: &str,
    pred: impl Fn(&WorkflowState) -> bool,
) -> WorkflowState {
    let result = tokio::time::timeout(GUARD, async {
        loop {
            if let Ok(state) = engine.state(workflow, id).await
                && pred(&state)
            {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    match result {
        Ok(state) => state,
        Err(elapsed) => panic!(
            "{elapsed} waiting for {workflow}/{id}; last state {:?}",
            engine.state(workflow, id).await
        ),
    }
}

/// Waits until the instance has settled: not running and no run in progress.
pub async fn settled(engine: &Engine, workflow: &str, id: &str) -> WorkflowState {
    let state = state_until(engine, workflow, id, |s| !s.is_running()).await;
    guarded(engine.wait_all()).await;
    engine.state(workflow, id).await.unwrap_or(state)
}

/// Awaits `fut` under the guard.
pub async fn guarded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(GUARD, fut)
        .await
        .expect("operation did not finish within the test guard")
}

/// Lets every task that can make progress do so (for "did not happen"
/// checks): yields a lot and waits a little real time.
pub async fn quiesce() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

pub fn key(workflow: &str, id: &str) -> InstanceKey {
    InstanceKey::new(workflow, id).expect("valid test key")
}

/// The stored record of one step.
pub async fn step_record(
    store: &MemoryStore,
    workflow: &str,
    id: &str,
    step: &str,
) -> Option<StepRecord> {
    store
        .get_step(&key(workflow, id), step)
        .await
        .expect("memory store never fails")
}

/// Waits until the instance is terminal (completed, failed or cancelled)
/// and no run is in progress.
pub async fn finished(engine: &Engine, workflow: &str, id: &str) -> WorkflowState {
    state_until(engine, workflow, id, WorkflowState::is_terminal).await;
    guarded(engine.wait_all()).await;
    engine
        .state(workflow, id)
        .await
        .expect("a finished instance has a state")
}
