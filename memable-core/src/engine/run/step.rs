//! [`StepBuilder`]: running one step — replay from the snapshot, attempts
//! with retry and timeout (a timed-out attempt is a retryable failure), and
//! the commit of the result.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::super::check::CheckKind;
use super::super::metrics;
use super::super::telemetry::{self, Attempt};
use super::context::{Context, lock};
use super::memo::Entered;
use super::upgrade::Upgrades;
use crate::{
    CommitOutcome, EngineError, RetryPolicy, StepError, StepKind, StepRecord, StepState,
    StepStoreExt, encode_value, type_tag,
};

/// A step being configured; finish with [`run`](StepBuilder::run).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::{Context, Engine, RetryPolicy, StepError};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// engine.register("fetch", |ctx: Context| async move {
///     ctx.step("fetch:v1")
///         .retry(RetryPolicy::fixed(3, Duration::from_millis(1)))
///         .timeout(Duration::from_secs(5))
///         .run(|| async { Ok::<_, StepError>("body".to_string()) })
///         .await
/// })?;
/// engine.start().await?;
/// assert_eq!(engine.invoke("fetch").await?.wait_output::<String>().await?, "body");
/// # Ok(()) }
/// ```
#[must_use = "a step does nothing until `run` is awaited"]
pub struct StepBuilder<'a> {
    ctx: &'a Context,
    key: String,
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
    upgrades: Upgrades<'a>,
    at_most_once: bool,
}

impl<'a> StepBuilder<'a> {
    pub(super) fn new(ctx: &'a Context, key: String) -> Self {
        Self {
            ctx,
            key,
            retry: None,
            timeout: None,
            upgrades: Upgrades::default(),
            at_most_once: false,
        }
    }

    /// Reads a result committed as an older type `Old` through `convert`
    /// instead of failing with a type mismatch: for a deploy that changed
    /// the step's output type while instances have its result stored.
    ///
    /// A stored result is read as the step's type when its type tag and
    /// bytes fit it; otherwise each upgrade declared for the stored tag is
    /// tried in order (`Old` decodes the bytes, `convert` makes the new
    /// value), the first that decodes wins. `Old` may have the same name as
    /// the new type (a field added: keep the old shape in a `v1` module) or
    /// another (a rename). The conversion runs on every read and writes
    /// nothing — the record keeps its old bytes — so keep the upgrade for as
    /// long as instances with old results may be replayed. The conversion
    /// must be deterministic, like the rest of the workflow's code. Without
    /// an upgrade that applies, the read fails as before
    /// ([`TypeMismatch`](EngineError::TypeMismatch) or
    /// [`Serialization`](EngineError::Serialization)). A step may declare
    /// several (`V1 -> V3`, `V2 -> V3`).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, StepError};
    /// use serde::{Deserialize, Serialize};
    ///
    /// mod v1 {
    ///     #[derive(serde::Serialize, serde::Deserialize)]
    ///     pub struct Quote { pub cents: u32 }
    /// }
    /// #[derive(Serialize, Deserialize)]
    /// struct Quote { cents: u64, currency: String }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let store = memable_core::MemoryStore::new(); // a clone shares the data
    /// let engine = Engine::builder().store(store.clone()).build();
    /// // Yesterday's code committed a v1::Quote for "quote".
    /// engine.register("order", |ctx: Context| async move {
    ///     ctx.step("quote").run(|| async { Ok::<_, StepError>(v1::Quote { cents: 250 }) }).await?;
    ///     ctx.suspend(&memable_core::SuspendPoint::<()>::new("paid")).await
    /// })?;
    /// engine.start().await?;
    /// engine.invoke("order").id("o1").await?.wait_idle().await?;
    /// engine.shutdown().await;
    ///
    /// // Today's code reads it as a Quote.
    /// let engine = Engine::builder().store(store).build();
    /// engine.register("order", |ctx: Context| async move {
    ///     let quote: Quote = ctx
    ///         .step("quote")
    ///         .upgrade_from(|old: v1::Quote| Quote { cents: old.cents.into(), currency: "EUR".into() })
    ///         .run(|| async { Ok::<_, StepError>(Quote { cents: 0, currency: "EUR".into() }) })
    ///         .await?;
    ///     Ok(format!("{} {}", quote.cents, quote.currency))
    /// })?;
    /// engine.start().await?;
    /// let out = engine.resume("order", "o1").await?.wait_output::<String>().await?;
    /// assert_eq!(out, "250 EUR");
    /// # Ok(()) }
    /// ```
    pub fn upgrade_from<Old, New>(mut self, convert: impl Fn(Old) -> New + Send + Sync + 'a) -> Self
    where
        Old: DeserializeOwned + 'static,
        New: Send + 'static,
    {
        self.upgrades.add(convert);
        self
    }
}

impl StepBuilder<'_> {
    /// Retries retryable failures with `policy` instead of the engine default.
    ///
    /// # Examples
    ///
    /// See [`StepBuilder`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// One attempt only: a retryable failure is dead-lettered at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Context, Engine, EngineError, StepError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("flaky", |ctx: Context| async move {
    ///     ctx.step("call").no_retry().run(|| async { Err::<(), _>(StepError::retryable("503")) }).await
    /// })?;
    /// engine.start().await?;
    /// let err = engine.invoke("flaky").await?.wait_output::<()>().await.unwrap_err();
    /// assert!(err.to_string().contains("after 1 attempts"));
    /// # Ok(()) }
    /// ```
    pub fn no_retry(self) -> Self {
        self.retry(RetryPolicy::none())
    }

    /// Runs each attempt **at most once**, for side effects that must not
    /// happen twice and cannot be made idempotent (a payment without an
    /// idempotency key, a message that cannot be taken back).
    ///
    /// Before each attempt the engine records durably that it began; the
    /// outcome replaces that record. If the outcome is never recorded — the
    /// process crashed or was killed, the engine aborted, or the attempt
    /// timed out (its future was dropped mid-flight) — the step is not run
    /// again: this run and every later one get
    /// [`EngineError::Ambiguous`] at the step, until the workflow handles
    /// that error or an operator decides ([`Engine::forget`](crate::Engine::forget)
    /// runs it again; [`Engine::resume`](crate::Engine::resume) and
    /// `memable resume` retry it). A failure the closure *returns* is a
    /// known outcome and retries by the policy as usual; combine with
    /// [`no_retry`](Self::no_retry) for one attempt in all. Costs one more
    /// durable write per attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, EngineError, StepError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("pay", |ctx: Context| async move {
    ///     let paid = ctx
    ///         .step("charge")
    ///         .at_most_once()
    ///         .timeout(Duration::from_millis(20))
    ///         .run(|| async {
    ///             std::future::pending::<()>().await; // the card service hangs
    ///             Ok::<_, StepError>(())
    ///         })
    ///         .await;
    ///     // Timed out mid-flight: maybe charged, maybe not. Not retried.
    ///     Ok(matches!(paid, Err(EngineError::Ambiguous { attempt: 1, .. })))
    /// })?;
    /// engine.start().await?;
    /// assert!(engine.invoke("pay").await?.wait_output::<bool>().await?);
    /// # Ok(()) }
    /// ```
    pub fn at_most_once(mut self) -> Self {
        self.at_most_once = true;
        self
    }

    /// Bounds each attempt to `duration`. An attempt that takes longer is
    /// dropped and counts as a **retryable failure**: it is recorded as a
    /// retry (like a [`StepError::Retryable`]) and attempted again after the
    /// policy's backoff. When the attempts run out the step is dead-lettered
    /// and fails with [`RetriesExhausted`](EngineError::RetriesExhausted),
    /// whose `source` is a [`StepTimeout`](EngineError::StepTimeout) (so the
    /// cause stays visible). A step that must not run twice after a timeout
    /// (its side effect may have happened) uses
    /// [`no_retry`](Self::no_retry): one attempt, then the dead letter.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, EngineError, StepError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("slow", |ctx: Context| async move {
    ///     let r = ctx.step("slow").timeout(Duration::from_millis(10)).no_retry()
    ///         .run(|| async { std::future::pending::<Result<(), StepError>>().await }).await;
    ///     Ok(match r {
    ///         Err(EngineError::RetriesExhausted { attempts: 1, source, .. }) => {
    ///             matches!(source.downcast_ref(), Some(EngineError::StepTimeout { .. }))
    ///         }
    ///         _ => false,
    ///     })
    /// })?;
    /// engine.start().await?;
    /// assert!(engine.invoke("slow").await?.wait_output::<bool>().await?);
    /// # Ok(()) }
    /// ```
    pub fn timeout(mut self, duration: Duration) -> Self {
        self.timeout = Some(duration);
        self
    }

    /// Runs the step: returns the committed result if there is one, else
    /// calls `attempt` (retrying per the policy), commits its result and
    /// returns it. The closure runs at least once; once its result is
    /// committed it never runs again for this instance.
    ///
    /// Errors: [`StepFailed`](EngineError::StepFailed) for a permanent
    /// failure, [`RetriesExhausted`](EngineError::RetriesExhausted) (and a
    /// dead-letter record) when retries run out (also when the attempts timed
    /// out: the source is then a [`StepTimeout`](EngineError::StepTimeout)),
    /// [`TypeMismatch`](EngineError::TypeMismatch) when the committed result
    /// has another type, [`SuspendedStepConflict`](EngineError::SuspendedStepConflict)
    /// when the key belongs to a suspend point, key errors, storage errors.
    ///
    /// # Examples
    ///
    /// See [`StepBuilder`].
    pub async fn run<T, F, Fut>(self, mut attempt: F) -> Result<T, EngineError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let ctx = self.ctx;
        let key = self.key;
        let entered = ctx.enter_step(&key)?;
        let mut earlier = Earlier::default();
        let reading = Reading {
            upgrades: &self.upgrades,
            at_most_once: self.at_most_once,
        };
        if let Some(memoised) = ctx.memoised(&key, &entered, &mut earlier, &reading) {
            telemetry::memoised(&key);
            return ctx.dry_checked(&key, type_tag::<T>(), memoised);
        }
        // `started_at_ms`: when the first attempt began, across retries and runs.
        let Earlier {
            mut attempts,
            mut started_at_ms,
        } = earlier;
        ctx.dry_new_work(&key, CheckKind::Step, attempts)?;
        ctx.go_live().await?;
        let policy = self.retry.unwrap_or(ctx.run.env.default_retry);
        let _in_flight = ctx.run.env.activity.step();
        let workflow = ctx.run.key.workflow();
        loop {
            ctx.check_boundary()?;
            let started = *started_at_ms.get_or_insert_with(|| ctx.run.env.clock.now_ms());
            if self.at_most_once
                && let Some(done) = ctx
                    .attempt_begins::<T>(&key, attempts, started, &reading)
                    .await?
            {
                return done;
            }
            let mut span = Attempt::start(&key, attempts + 1);
            let future = attempt().instrument(span.span());
            let timer = metrics::AttemptTimer::start();
            let result = within(self.timeout, &key, future).await;
            timer.record(workflow, &result);
            match result {
                Ok(value) => {
                    return ctx
                        .commit_value(&key, value, (started, attempts), &reading, &mut span)
                        .await;
                }
                Err(StepError::Permanent(source)) => {
                    span.end("permanent");
                    if self.at_most_once {
                        ctx.attempt_failed(&key, attempts, started, &*source)
                            .await?;
                    }
                    return Err(EngineError::StepFailed {
                        key,
                        source,
                        retryable: false,
                    });
                }
                // Dropped mid-flight: the outcome is unknown, and the record
                // of its beginning stays.
                Err(StepError::Retryable(source)) if self.at_most_once && timed_out(&*source) => {
                    span.end("ambiguous");
                    return Err(EngineError::Ambiguous {
                        key,
                        attempt: attempts + 1,
                    });
                }
                Err(StepError::Retryable(source)) => {
                    attempts += 1;
                    let exhausted = attempts >= policy.max_attempts();
                    let state = if exhausted {
                        StepState::Failed
                    } else {
                        StepState::Retrying
                    };
                    // Recorded durably so a crash mid-sequence does not grant a fresh budget.
                    ctx.commit(
                        &key,
                        StepRecord::failure(state, attempts, source.to_string())
                            .with_times(Some(started), None),
                    )
                    .await?;
                    if exhausted {
                        metrics::step_dead_letter(workflow);
                        span.dead_letter(&key, attempts, &source);
                        return Err(EngineError::RetriesExhausted {
                            key,
                            attempts,
                            source,
                        });
                    }
                    metrics::step_retry(workflow);
                    let delay = policy.jittered_delay_for(attempts);
                    // Rounded up to the clock's millisecond: never shorter than the policy.
                    let delay_ms = delay.as_nanos().div_ceil(1_000_000);
                    span.retry(&key, attempts, delay_ms, &*source);
                    ctx.back_off(u64::try_from(delay_ms).unwrap_or(u64::MAX))
                        .await;
                    ctx.check_boundary()?;
                }
            }
        }
    }
}

/// Whether a retryable failure is an attempt's timeout.
fn timed_out(source: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    matches!(
        source.downcast_ref::<EngineError>(),
        Some(EngineError::StepTimeout { .. })
    )
}

/// One attempt, limited to `timeout` if set: a timed-out attempt is a
/// retryable failure like any other.
async fn within<T>(
    timeout: Option<std::time::Duration>,
    key: &str,
    attempt: impl Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    match timeout {
        Some(limit) => match tokio::time::timeout(limit, attempt).await {
            Ok(result) => result,
            Err(_) => Err(StepError::Retryable(Box::new(EngineError::StepTimeout {
                key: key.to_owned(),
                duration: limit,
            }))),
        },
        None => attempt.await,
    }
}

impl Context {
    /// Waits `delay_ms` on the engine's clock before a retry; a cancel or
    /// a halt ends the wait early (the caller checks the boundary).
    async fn back_off(&self, delay_ms: u64) {
        let env = &self.run.env;
        let wake = env.clock.now_ms().saturating_add(delay_ms);
        let _backoff = env.activity.backoff();
        let mut halt = env.halt.clone();
        tokio::select! {
            () = env.clock.sleep_until(wake) => {}
            () = env.entry.cancelled() => {}
            _ = halt.wait_for(|halted| *halted) => {}
        }
    }
}

/// How a step reads what is stored for it.
pub(super) struct Reading<'u, 'a> {
    upgrades: &'u Upgrades<'a>,
    at_most_once: bool,
}

/// The record an [at-most-once](StepBuilder::at_most_once) step writes
/// before attempt `attempts + 1`: retrying, with no error (every failure
/// record carries one).
fn in_flight(attempts: u32, started_at_ms: u64) -> StepRecord {
    let mut record = StepRecord::failure(StepState::Retrying, attempts, String::new())
        .with_times(Some(started_at_ms), None);
    record.error = None;
    record
}

/// Whether `record` is an attempt that began and recorded no outcome.
pub(crate) fn is_in_flight(record: &StepRecord) -> bool {
    record.kind == StepKind::Step && record.state == StepState::Retrying && record.error.is_none()
}

/// What earlier attempts of a step left that is not a result: how many
/// were made and when the first began (from a `Retrying` or re-attempted
/// `Failed` record).
#[derive(Default)]
pub(super) struct Earlier {
    attempts: u32,
    started_at_ms: Option<u64>,
}

impl Context {
    /// The memoised outcome of step `key`, if it has one: a result committed
    /// earlier in this run (a reused key) or in the snapshot, a dead letter,
    /// or a conflict. Sets `earlier` from a recorded retry sequence.
    pub(super) fn memoised<T: DeserializeOwned + 'static>(
        &self,
        key: &str,
        entered: &Entered<'_>,
        earlier: &mut Earlier,
        reading: &Reading<'_, '_>,
    ) -> Option<Result<T, EngineError>> {
        // Only a key used before in this run can have a result of this run.
        let this_run = if entered.fresh {
            None
        } else {
            lock(&self.run.committed).get(key).cloned()
        };
        let record = this_run.as_ref().or(entered.record)?;
        let dead_letter = || {
            Err(EngineError::retries_exhausted(
                key,
                record.attempts,
                record.error.clone().unwrap_or_default(),
            ))
        };
        match record.state {
            StepState::Completed => Some(reading.upgrades.decode(key, record)),
            StepState::Suspended => Some(Err(EngineError::SuspendedStepConflict {
                key: key.to_owned(),
            })),
            // An at-most-once attempt that began and never recorded its
            // outcome: not run again, unless a resume decided so (the
            // interrupted attempt counts).
            StepState::Retrying if reading.at_most_once && is_in_flight(record) => {
                if self.run.retry_dead_letters {
                    *earlier = Earlier {
                        attempts: record.attempts.saturating_add(1),
                        started_at_ms: record.started_at_ms,
                    };
                    None
                } else {
                    Some(Err(EngineError::Ambiguous {
                        key: key.to_owned(),
                        attempt: record.attempts.saturating_add(1),
                    }))
                }
            }
            StepState::Retrying => {
                *earlier = Earlier {
                    attempts: record.attempts,
                    started_at_ms: record.started_at_ms,
                };
                None
            }
            // A dead letter written by this run is final for this run.
            StepState::Failed if this_run.is_some() || !self.run.retry_dead_letters => {
                Some(dead_letter())
            }
            // A re-attempted dead letter gets a fresh budget of attempts; its
            // first start is kept.
            StepState::Failed => {
                *earlier = Earlier {
                    attempts: 0,
                    started_at_ms: record.started_at_ms,
                };
                None
            }
        }
    }

    /// Commits a step's result (`started`: when its first attempt began,
    /// and the attempts before this successful one).
    async fn commit_value<T: DeserializeOwned + Serialize + 'static>(
        &self,
        key: &str,
        value: T,
        (started, attempts): (u64, u32),
        reading: &Reading<'_, '_>,
        span: &mut Attempt,
    ) -> Result<T, EngineError> {
        let bytes = encode_value(key, &value)?;
        let mut record = StepRecord::completed(
            StepKind::Step,
            type_tag::<T>(),
            bytes,
            self.current_status(),
        )
        .with_times(Some(started), Some(self.run.env.clock.now_ms()));
        // The attempts made, this successful one included.
        record.attempts = attempts.saturating_add(1);
        let committed = self.commit(key, record).await?;
        span.committed(&committed);
        match committed {
            CommitOutcome::Committed => {
                metrics::step_committed(self.run.key.workflow());
                Ok(value)
            }
            CommitOutcome::Kept(existing) if existing.state == StepState::Completed => {
                reading.upgrades.decode(key, &existing)
            }
            CommitOutcome::Kept(_) => Err(EngineError::SuspendedStepConflict {
                key: key.to_owned(),
            }),
            CommitOutcome::InstanceMissing => Err(self.not_found()),
            CommitOutcome::Cancelled => Err(self.cancelled()),
        }
    }

    /// Replaces the record of an at-most-once attempt's beginning with its
    /// known failure (a later run retries it, as any step that failed
    /// permanently runs again on a replay).
    async fn attempt_failed(
        &self,
        key: &str,
        attempts: u32,
        started: u64,
        source: &(dyn std::error::Error + Send + Sync),
    ) -> Result<(), EngineError> {
        let failed = StepRecord::failure(StepState::Retrying, attempts + 1, source.to_string())
            .with_times(Some(started), None);
        self.commit(key, failed).await.map(drop)
    }

    /// Records durably that an at-most-once attempt begins. `Some` ends
    /// the step: another run committed it meanwhile, or the instance is
    /// gone or cancelled.
    async fn attempt_begins<T: DeserializeOwned + 'static>(
        &self,
        key: &str,
        attempts: u32,
        started_at_ms: u64,
        reading: &Reading<'_, '_>,
    ) -> Result<Option<Result<T, EngineError>>, EngineError> {
        Ok(
            match self.commit(key, in_flight(attempts, started_at_ms)).await? {
                CommitOutcome::Committed => None,
                CommitOutcome::Kept(existing) if existing.state == StepState::Completed => {
                    Some(reading.upgrades.decode(key, &existing))
                }
                CommitOutcome::Kept(_) => Some(Err(EngineError::SuspendedStepConflict {
                    key: key.to_owned(),
                })),
                CommitOutcome::InstanceMissing => Some(Err(self.not_found())),
                CommitOutcome::Cancelled => Some(Err(self.cancelled())),
            },
        )
    }

    pub(super) async fn commit(
        &self,
        key: &str,
        record: StepRecord,
    ) -> Result<CommitOutcome, EngineError> {
        self.check_active()?;
        let remember = matches!(record.state, StepState::Completed | StepState::Failed)
            .then(|| record.clone());
        let outcome = self
            .run
            .env
            .store
            .commit_step(self.run.key.clone(), key.to_owned(), record)
            .await?;
        if let (CommitOutcome::Committed, Some(record)) = (&outcome, remember) {
            lock(&self.run.committed).insert(key.to_owned(), record);
        }
        Ok(outcome)
    }
}
