//! [`EngineBuilder`]: store, clock and defaults of an [`Engine`].

use std::sync::Arc;

use super::Engine;
use crate::{Clock, MemoryStore, RetryPolicy, StepStore, SystemClock};

/// Configures and builds an [`Engine`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::{Engine, ManualClock, RetryPolicy};
///
/// let engine = Engine::builder()
///     .in_memory()
///     .clock(ManualClock::new(0))
///     .default_retry(RetryPolicy::fixed(5, Duration::from_millis(10)))
///     .resume_on_start(false)
///     .build();
/// # let _ = engine;
/// ```
#[must_use]
pub struct EngineBuilder {
    store: Option<Arc<dyn StepStore>>,
    clock: Arc<dyn Clock>,
    default_retry: RetryPolicy,
    resume_on_start: bool,
    strict_keys: bool,
    worker_id: Option<String>,
    capacity: Option<usize>,
    lease: std::time::Duration,
    poll_interval: std::time::Duration,
    queues: Vec<super::Queue>,
    listen_queues: Option<Vec<String>>,
    retention: Option<super::RetentionPolicy>,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        Self {
            store: None,
            clock: Arc::new(SystemClock),
            default_retry: RetryPolicy::default(),
            resume_on_start: true,
            strict_keys: false,
            worker_id: None,
            capacity: None,
            lease: super::worker::DEFAULT_LEASE,
            poll_interval: super::worker::DEFAULT_POLL,
            queues: Vec::new(),
            listen_queues: None,
            retention: None,
        }
    }
}

impl EngineBuilder {
    /// Uses a fresh [`MemoryStore`] (the default when no store is given):
    /// memoisation, signals and timers work, but nothing survives the process.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = memable_core::Engine::builder().in_memory().build();
    /// # let _ = engine;
    /// ```
    pub fn in_memory(self) -> Self {
        self.store(MemoryStore::new())
    }

    /// Uses `store` for every instance.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Engine, MemoryStore};
    ///
    /// let store = MemoryStore::new();
    /// let engine = Engine::builder().store(store.clone()).build();
    /// # let _ = engine;
    /// ```
    pub fn store(mut self, store: impl StepStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Replaces the system clock (tests use `ManualClock`, feature `test-util`,
    /// to move timers and backoff without sleeping).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Engine, ManualClock};
    /// let engine = Engine::builder().clock(ManualClock::new(0)).build();
    /// # let _ = engine;
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The retry policy of steps that do not set their own (default:
    /// [`RetryPolicy::default`], three attempts with exponential backoff).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Engine, RetryPolicy};
    /// let engine = Engine::builder().default_retry(RetryPolicy::none()).build();
    /// # let _ = engine;
    /// ```
    pub fn default_retry(mut self, policy: RetryPolicy) -> Self {
        self.default_retry = policy;
        self
    }

    /// Whether [`Engine::start`] re-runs instances left `Running` by a crash
    /// (default `true`). With `false` they wait for [`Engine::resume`].
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = memable_core::Engine::builder().resume_on_start(false).build();
    /// # let _ = engine;
    /// ```
    pub fn resume_on_start(mut self, resume: bool) -> Self {
        self.resume_on_start = resume;
        self
    }

    /// Makes a step key used twice in one run an error
    /// ([`EngineError::KeyReused`](crate::EngineError::KeyReused)) instead of
    /// a `tracing` warning (default `false`: the second use returns the first
    /// result).
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = memable_core::Engine::builder().strict_keys(true).build();
    /// # let _ = engine;
    /// ```
    pub fn strict_keys(mut self, strict: bool) -> Self {
        self.strict_keys = strict;
        self
    }

    /// The id of this engine as a worker of a shared store (PostgreSQL):
    /// unique among every engine on the store. Default: a new UUID v7 per
    /// engine. Ignored by a store that serves one engine.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = memable_core::Engine::builder().worker_id("billing-7").build();
    /// # let _ = engine;
    /// ```
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// At most `runs` runs at once in this engine; the rest wait (on a
    /// shared store: are left to other workers). Default: no limit on a
    /// store that serves one engine, 256 on a shared store.
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = memable_core::Engine::builder().capacity(32).build();
    /// # let _ = engine;
    /// ```
    pub fn capacity(mut self, runs: usize) -> Self {
        self.capacity = Some(runs);
        self
    }

    /// On a shared store: how long the store keeps this worker alive
    /// without a heartbeat (it heartbeats every third of it). A dead
    /// worker's instances are taken over by others within the lease plus
    /// one poll interval. Default 10 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let engine = memable_core::Engine::builder().lease(Duration::from_secs(5)).build();
    /// # let _ = engine;
    /// ```
    pub fn lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Builds the engine. Register workflows, then call [`Engine::start`].
    ///
    /// # Examples
    ///
    /// ```
    /// let engine = memable_core::Engine::builder().build();
    /// # let _ = engine;
    /// ```
    #[must_use]
    pub fn build(self) -> Engine {
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        Engine::from_parts(
            store,
            self.clock,
            self.default_retry,
            self.resume_on_start,
            self.strict_keys,
            super::worker::WorkerConfig {
                id: self
                    .worker_id
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
                    .into(),
                capacity: self.capacity,
                lease: self.lease,
                poll: self.poll_interval,
                shared: false,
            },
            super::queue::Queues::new(self.queues, self.listen_queues),
            self.retention,
        )
    }

    /// Declares a queue that invocations may go through (see [`Queue`]);
    /// a queue declared again replaces the earlier declaration.
    ///
    /// # Examples
    ///
    /// See [`Queue`].
    ///
    /// [`Queue`]: super::Queue
    pub fn queue(mut self, queue: super::Queue) -> Self {
        self.queues.retain(|q| q.name() != queue.name());
        self.queues.push(queue);
        self
    }

    /// Admits work only from these declared queues (default: every declared
    /// queue). Invocations may still go through the others; engines that
    /// listen to them admit those.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Engine, Queue};
    /// let engine = Engine::builder()
    ///     .queue(Queue::new("gpu").concurrency(2))
    ///     .queue(Queue::new("cpu").concurrency(32))
    ///     .listen_queues(["gpu"])
    ///     .build();
    /// # let _ = engine;
    /// ```
    pub fn listen_queues<S: Into<String>>(mut self, queues: impl IntoIterator<Item = S>) -> Self {
        self.listen_queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// Deletes ended instances in the background by `policy` (see
    /// [`RetentionPolicy`](super::RetentionPolicy)): the started engine
    /// sweeps at once and then every interval, on its clock, in bounded
    /// batches, until it stops. Default: no retention, nothing is deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Engine, RetentionPolicy, RetentionRule};
    /// let week = Duration::from_secs(7 * 86_400);
    /// let engine = Engine::builder()
    ///     .retention(RetentionPolicy::new().rule(RetentionRule::new(week)))
    ///     .build();
    /// # let _ = engine;
    /// ```
    pub fn retention(mut self, policy: super::RetentionPolicy) -> Self {
        self.retention = Some(policy);
        self
    }

    /// On a shared store: the longest time between two looks for runnable
    /// work when no notification arrives. Default 500 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let engine = memable_core::Engine::builder().poll_interval(Duration::from_millis(100)).build();
    /// # let _ = engine;
    /// ```
    pub fn poll_interval(mut self, interval: std::time::Duration) -> Self {
        self.poll_interval = interval;
        self
    }
}
