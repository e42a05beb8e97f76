//! Suspension: [`SuspendPoint`]s resumed by signals, their deadlines
//! ([`SuspendTimeout`]) and durable timers ([`Context::timer`]).

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::context::Context;
use crate::{
    EngineError, MetadataStatus, StepKind, StepRecord, StepState, StepStoreExt, SuspendOutcome,
    WorkflowState, decode_record, type_tag,
};

/// A typed suspend point: a step key and the type of value that resumes it.
/// Declare it once as a `static` or `const` and use it both in the workflow
/// (`ctx.suspend(&POINT)`) and to signal (`engine.signal(.., &POINT, value)`).
///
/// # Examples
///
/// ```
/// use memable_core::SuspendPoint;
///
/// static APPROVAL: SuspendPoint<bool> = SuspendPoint::new("approval:v1");
/// assert_eq!(APPROVAL.key(), "approval:v1");
/// ```
pub struct SuspendPoint<T> {
    key: &'static str,
    _value: PhantomData<fn() -> T>,
}

impl<T> SuspendPoint<T> {
    /// A suspend point named `key`, resumed by a value of type `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// const REPLY: memable_core::SuspendPoint<String> = memable_core::SuspendPoint::new("reply");
    /// # let _ = REPLY;
    /// ```
    #[must_use]
    pub const fn new(key: &'static str) -> Self {
        Self {
            key,
            _value: PhantomData,
        }
    }

    /// The step key.
    ///
    /// # Examples
    ///
    /// See [`SuspendPoint`].
    #[must_use]
    pub const fn key(&self) -> &'static str {
        self.key
    }
}

impl<T> std::fmt::Debug for SuspendPoint<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SuspendPoint({:?}: {})",
            self.key,
            std::any::type_name::<T>()
        )
    }
}

impl<T> Clone for SuspendPoint<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SuspendPoint<T> {}

/// A pending suspension; await it. See [`Context::suspend`].
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, SuspendPoint, WorkflowState};
///
/// static REPLY: SuspendPoint<String> = SuspendPoint::new("reply");
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// engine.register("ask", |ctx: Context| async move {
///     ctx.suspend(&REPLY).status("waiting for a reply").await
/// })?;
/// engine.start().await?;
/// let state = engine.invoke("ask").id("q").await?.wait().await?;
/// assert_eq!(state, WorkflowState::Suspended { key: "reply".into(), status: Some("waiting for a reply".into()) });
/// # Ok(()) }
/// ```
#[must_use = "a suspension does nothing until it is awaited"]
pub struct SuspendBuilder<'a, T> {
    ctx: &'a Context,
    key: &'static str,
    status: Option<String>,
    _value: PhantomData<fn() -> T>,
}

impl<'a, T> SuspendBuilder<'a, T> {
    pub(super) fn new(ctx: &'a Context, key: &'static str) -> Self {
        Self {
            ctx,
            key,
            status: None,
            _value: PhantomData,
        }
    }

    /// The status message shown while suspended.
    ///
    /// # Examples
    ///
    /// See [`SuspendBuilder`].
    pub fn status(mut self, message: impl Into<String>) -> Self {
        self.status = Some(message.into());
        self
    }
}

impl<'a, T: DeserializeOwned + Send + 'static> SuspendBuilder<'a, T> {
    /// Waits at most `duration` (from the first time this point is reached,
    /// by the engine's clock, surviving restarts): resolves to `Some(value)`
    /// if a signal arrives first, `None` if the deadline passes first. The
    /// signal and the timer race through the same compare-and-set, so
    /// exactly one of them wins.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, ManualClock, SuspendPoint};
    ///
    /// static ANSWER: SuspendPoint<String> = SuspendPoint::new("answer");
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let clock = ManualClock::new(0);
    /// let engine = Engine::builder().clock(clock.clone()).build();
    /// engine.register("ask", |ctx: Context| async move {
    ///     let answer = ctx.suspend(&ANSWER).timeout(Duration::from_secs(60)).await?;
    ///     Ok(answer.unwrap_or_else(|| "no answer".to_string()))
    /// })?;
    /// engine.start().await?;
    /// engine.invoke("ask").id("q").await?.wait().await?;
    /// let mut states = engine.subscribe("ask", "q").await?;
    /// clock.advance(Duration::from_secs(60));
    /// while states.next().await.is_some() {}
    /// assert_eq!(engine.output::<String>("ask", "q").await?, "no answer");
    /// # Ok(()) }
    /// ```
    pub fn timeout(self, duration: Duration) -> SuspendTimeout<'a, T> {
        SuspendTimeout {
            suspension: self,
            duration,
        }
    }

    /// `Some(value)` once signalled, `None` once timed out.
    async fn resolve(self, timeout: Option<Duration>) -> Result<Option<T>, EngineError> {
        let ctx = self.ctx;
        let key = self.key;
        let existing = ctx.enter_step(key)?.record;
        if let Some(record) = existing
            && record.state == StepState::Completed
        {
            return resolved(key, record);
        }
        let deadline = timeout.map(|duration| match existing {
            Some(record)
                if record.state == StepState::Suspended && record.deadline_ms.is_some() =>
            {
                record.deadline_ms.unwrap_or_default()
            }
            _ => ctx
                .run
                .env
                .clock
                .now_ms()
                .saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
        });
        let status = self.status.or_else(|| ctx.current_status());
        let record =
            StepRecord::suspended(StepKind::Suspend, type_tag::<T>(), status.clone(), deadline);
        if let Some(completed) = ctx.suspend_at(key, record, status).await? {
            return resolved(key, &completed);
        }
        if let Some(deadline) = deadline {
            ctx.run.env.timers.scheduled(deadline);
        }
        Err(EngineError::Suspended {
            key: key.to_owned(),
        })
    }
}

/// A completed suspend record: the signal's value, or `None` if its timer
/// claimed it.
fn resolved<T: DeserializeOwned + 'static>(
    key: &str,
    record: &StepRecord,
) -> Result<Option<T>, EngineError> {
    if record.kind == StepKind::Timer {
        return Ok(None);
    }
    decode_record(key, record).map(Some)
}

impl<'a, T: DeserializeOwned + Send + 'static> IntoFuture for SuspendBuilder<'a, T> {
    type Output = Result<T, EngineError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        let key = self.key;
        Box::pin(async move {
            self.resolve(None)
                .await?
                .ok_or_else(|| EngineError::TypeMismatch {
                    key: key.to_owned(),
                    expected: type_tag::<T>().to_owned(),
                    found: "a timeout (this point was awaited with .timeout() before)".to_owned(),
                })
        })
    }
}

/// A suspension with a deadline; see [`SuspendBuilder::timeout`].
#[must_use = "a suspension does nothing until it is awaited"]
pub struct SuspendTimeout<'a, T> {
    suspension: SuspendBuilder<'a, T>,
    duration: Duration,
}

impl<'a, T: DeserializeOwned + Send + 'static> IntoFuture for SuspendTimeout<'a, T> {
    type Output = Result<Option<T>, EngineError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.suspension.resolve(Some(self.duration)))
    }
}

impl Context {
    /// A durable timer: suspends the workflow until `duration` has passed
    /// (measured from the first time this key is reached, by the engine's
    /// clock), surviving restarts. Returns [`EngineError::Suspended`] until
    /// then; propagate it with `?`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, ManualClock, WorkflowState};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let clock = ManualClock::new(0);
    /// let engine = Engine::builder().clock(clock.clone()).build();
    /// engine.register("remind", |ctx: Context| async move {
    ///     ctx.timer("wait-a-day", Duration::from_secs(86_400)).await?;
    ///     Ok("reminded")
    /// })?;
    /// engine.start().await?;
    /// let run = engine.invoke("remind").id("r").await?;
    /// assert!(matches!(run.wait().await?, WorkflowState::Suspended { .. }));
    /// clock.advance(Duration::from_secs(86_400));
    /// let mut states = engine.subscribe("remind", "r").await.unwrap();
    /// while states.next().await.is_some() {}
    /// assert_eq!(engine.output::<String>("remind", "r").await?, "reminded");
    /// # Ok(()) }
    /// ```
    pub async fn timer(
        &self,
        key: impl Into<String>,
        duration: Duration,
    ) -> Result<(), EngineError> {
        let key = key.into();
        let deadline = match self.enter_step(&key)?.record {
            Some(record) if record.state == StepState::Completed => {
                return decode_record(&key, record);
            }
            Some(record)
                if record.state == StepState::Suspended && record.deadline_ms.is_some() =>
            {
                record.deadline_ms.unwrap_or_default()
            }
            _ => {
                if duration.is_zero() {
                    return Ok(());
                }
                let wait = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
                self.run.env.clock.now_ms().saturating_add(wait)
            }
        };
        let status = self.current_status();
        let record = StepRecord::suspended(
            StepKind::Timer,
            type_tag::<()>(),
            status.clone(),
            Some(deadline),
        );
        if let Some(completed) = self.suspend_at(&key, record, status).await? {
            return decode_record(&key, &completed);
        }
        self.run.env.timers.scheduled(deadline);
        Err(EngineError::Suspended { key })
    }

    /// Writes a suspension; `Ok(Some(record))` if the step was completed in
    /// the meantime (a signal won the race), `Ok(None)` once suspended.
    pub(super) async fn suspend_at(
        &self,
        key: &str,
        record: StepRecord,
        status: Option<String>,
    ) -> Result<Option<StepRecord>, EngineError> {
        let already_suspended_here = matches!(
            &self.run.metadata_status,
            MetadataStatus::Suspended { key: at, .. } if at == key
        ) && self
            .run
            .steps
            .get(key)
            .is_some_and(|r| r.state == StepState::Suspended);
        if !already_suspended_here {
            self.revive_if_pending().await?;
            let now = self.run.env.clock.now_ms();
            match self
                .run
                .env
                .store
                .suspend_step(
                    self.run.key.clone(),
                    key.to_owned(),
                    record,
                    status.clone(),
                    now,
                )
                .await?
            {
                SuspendOutcome::Suspended => {}
                SuspendOutcome::AlreadyCompleted(completed) => return Ok(Some(completed)),
                SuspendOutcome::NotActive(Some(MetadataStatus::Cancelled)) => {
                    return Err(self.cancelled());
                }
                SuspendOutcome::NotActive(Some(other)) => {
                    return Err(EngineError::InvalidState {
                        operation: "suspend",
                        key: self.run.key.clone(),
                        state: other.kind(),
                    });
                }
                SuspendOutcome::NotActive(None) => {
                    return Err(self.not_found());
                }
            }
        }
        self.run.suspended.store(true, Ordering::Release);
        self.run.live.store(true, Ordering::Release);
        self.run.env.entry.publish(WorkflowState::Suspended {
            key: key.to_owned(),
            status,
        });
        Ok(None)
    }
}
