//! Suspension: [`SuspendPoint`]s resumed by signals, their deadlines
//! ([`SuspendTimeout`]) and durable timers ([`Context::timer`]).

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::super::check::{CheckKind, CheckStop, TypeMismatchReport};
use super::context::Context;
use crate::{
    EngineError, MetadataStatus, StepKind, StepRecord, StepState, StepStoreExt, StorageError,
    StorageErrorKind, WaitOutcome, decode_record, type_tag, validate_user_key,
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
/// let state = engine.invoke("ask").id("q").await?.wait_idle().await?;
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
    /// engine.invoke("ask").id("q").await?.wait_idle().await?;
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
            return ctx.dry_checked(key, type_tag::<T>(), resolved(key, record));
        }
        let deadline = timeout.map(|duration| ctx.deadline_of(existing, duration));
        let status = self.status.or_else(|| ctx.current_status());
        let record =
            StepRecord::suspended(StepKind::Suspend, type_tag::<T>(), status.clone(), deadline);
        match ctx.wait_at(key, record, Vec::new(), status).await? {
            Some((completed, _)) => resolved(key, &completed),
            None => Err(EngineError::Suspended {
                key: key.to_owned(),
            }),
        }
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

/// Waiting for whichever of several points — and, with
/// [`timeout`](FirstOfBuilder::timeout), a deadline — comes first; see
/// [`Context::first_of`]. Await it for a [`FirstOf`].
///
/// The group is one step under its own key. A signal to any of its points
/// completes that point *and* the group in one compare-and-set, so exactly
/// one of them wins (a later signal to another point is
/// [`SignalSuperseded`](EngineError::SignalSuperseded)); the deadline races
/// through the same compare-and-set. A signal that arrives before the
/// workflow reaches the group is buffered and wins when it gets there.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::{Context, Engine, SuspendPoint};
///
/// static APPROVE: SuspendPoint<String> = SuspendPoint::new("approve");
/// static REJECT: SuspendPoint<u32> = SuspendPoint::new("reject");
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), memable_core::EngineError> {
/// let engine = Engine::builder().build();
/// engine.register("review", |ctx: Context| async move {
///     let first = ctx.first_of("decision").or(&APPROVE).or(&REJECT)
///         .timeout(Duration::from_secs(86_400)).await?;
///     Ok(if let Some(by) = first.value(&APPROVE)? {
///         format!("approved by {by}")
///     } else if let Some(code) = first.value(&REJECT)? {
///         format!("rejected ({code})")
///     } else {
///         "no decision in a day".to_string()
///     })
/// })?;
/// engine.start().await?;
/// engine.invoke("review").id("r1").await?.wait_idle().await?;
/// let run = engine.signal("review", "r1", &REJECT, 7).await?;
/// let late = engine.signal("review", "r1", &APPROVE, "ann".to_string()).await;
/// assert!(matches!(late, Err(memable_core::EngineError::SignalSuperseded { .. })));
/// assert_eq!(run.wait_output::<String>().await?, "rejected (7)");
/// # Ok(()) }
/// ```
#[must_use = "a wait does nothing until it is awaited"]
pub struct FirstOfBuilder<'a> {
    ctx: &'a Context,
    key: String,
    members: Vec<(&'static str, &'static str)>,
    status: Option<String>,
    timeout: Option<Duration>,
}

impl FirstOfBuilder<'_> {
    /// Adds `point` to the group.
    ///
    /// # Examples
    ///
    /// See [`FirstOfBuilder`].
    pub fn or<T: 'static>(mut self, point: &SuspendPoint<T>) -> Self {
        self.members.push((point.key(), type_tag::<T>()));
        self
    }

    /// The status message shown while waiting.
    ///
    /// # Examples
    ///
    /// See [`SuspendBuilder::status`].
    pub fn status(mut self, message: impl Into<String>) -> Self {
        self.status = Some(message.into());
        self
    }

    /// Races a deadline, `duration` from the first time the group is
    /// reached (by the engine's clock, surviving restarts), against the
    /// points: if it wins, [`FirstOf::timed_out`] is `true`.
    ///
    /// # Examples
    ///
    /// See [`FirstOfBuilder`].
    pub fn timeout(mut self, duration: Duration) -> Self {
        self.timeout = Some(duration);
        self
    }

    async fn resolve(self) -> Result<FirstOf, EngineError> {
        let ctx = self.ctx;
        for (member, _) in &self.members {
            validate_user_key("step_key", member)?;
        }
        let key = self.key;
        let existing = ctx.enter_step(&key)?.record;
        ctx.dry_reach_all(self.members.iter().map(|(member, _)| *member));
        if let Some(record) = existing
            && record.state == StepState::Completed
        {
            return ctx.first_of_resolved(&key, record, None);
        }
        let deadline = self
            .timeout
            .map(|duration| ctx.deadline_of(existing, duration));
        let status = self.status.or_else(|| ctx.current_status());
        let group = StepRecord::suspended(StepKind::Select, "", status.clone(), deadline);
        let members = self
            .members
            .iter()
            .map(|(member, tag)| {
                let record = StepRecord {
                    value: key.as_bytes().to_vec(),
                    ..StepRecord::suspended(StepKind::Member, *tag, status.clone(), None)
                };
                ((*member).to_owned(), record)
            })
            .collect();
        match ctx.wait_at(&key, group, members, status).await? {
            Some((record, winner)) => ctx.first_of_resolved(&key, &record, winner),
            None => Err(EngineError::Suspended { key }),
        }
    }
}

impl<'a> IntoFuture for FirstOfBuilder<'a> {
    type Output = Result<FirstOf, EngineError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.resolve())
    }
}

/// How a [`FirstOfBuilder`] group was resolved: by which point's signal,
/// with its value, or by its deadline.
///
/// # Examples
///
/// See [`FirstOfBuilder`].
#[derive(Clone, Debug)]
pub struct FirstOf {
    winner: Option<(String, StepRecord)>,
}

impl FirstOf {
    /// The key of the point whose signal won; `None` if the deadline won.
    ///
    /// # Examples
    ///
    /// See [`FirstOfBuilder`].
    #[must_use]
    pub fn point(&self) -> Option<&str> {
        self.winner.as_ref().map(|(point, _)| point.as_str())
    }

    /// `true` if the deadline won.
    ///
    /// # Examples
    ///
    /// See [`FirstOfBuilder`].
    #[must_use]
    pub fn timed_out(&self) -> bool {
        self.winner.is_none()
    }

    /// The value of `point`'s signal if it won, else `None`.
    ///
    /// Errors: [`TypeMismatch`](EngineError::TypeMismatch) if the stored
    /// value is not a `T`.
    ///
    /// # Examples
    ///
    /// See [`FirstOfBuilder`].
    pub fn value<T: DeserializeOwned + 'static>(
        &self,
        point: &SuspendPoint<T>,
    ) -> Result<Option<T>, EngineError> {
        match &self.winner {
            Some((won, record)) if won == point.key() => decode_record(won, record).map(Some),
            _ => Ok(None),
        }
    }
}

impl Context {
    /// Waits for whichever of several points (and optionally a deadline)
    /// comes first, under the step key `key`; see [`FirstOfBuilder`].
    ///
    /// # Examples
    ///
    /// See [`FirstOfBuilder`].
    pub fn first_of(&self, key: impl Into<String>) -> FirstOfBuilder<'_> {
        FirstOfBuilder {
            ctx: self,
            key: key.into(),
            members: Vec::new(),
            status: None,
            timeout: None,
        }
    }

    /// A completed group record (and, if a transition just resolved it,
    /// its winner) as a [`FirstOf`].
    fn first_of_resolved(
        &self,
        key: &str,
        group: &StepRecord,
        winner: Option<(String, StepRecord)>,
    ) -> Result<FirstOf, EngineError> {
        match group.kind {
            StepKind::Timer => Ok(FirstOf { winner: None }),
            StepKind::Select => {
                let member = std::str::from_utf8(&group.value).map_err(|_| {
                    StorageError::new(
                        StorageErrorKind::Corrupt,
                        "first_of",
                        format!("the group record '{key}' does not name its winner"),
                    )
                })?;
                let record = winner
                    .map(|(_, record)| record)
                    .or_else(|| self.run.steps.get(member).cloned())
                    .filter(|record| record.state == StepState::Completed)
                    .ok_or_else(|| {
                        StorageError::new(
                            StorageErrorKind::Corrupt,
                            "first_of",
                            format!("the group '{key}' was won by '{member}', which has no value"),
                        )
                    })?;
                Ok(FirstOf {
                    winner: Some((member.to_owned(), record)),
                })
            }
            _ => Err(EngineError::SuspendedStepConflict {
                key: key.to_owned(),
            }),
        }
    }

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
    /// assert!(matches!(run.wait_idle().await?, WorkflowState::Suspended { .. }));
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
                return self.dry_checked(&key, type_tag::<()>(), decode_record(&key, record));
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
        match self.wait_at(&key, record, Vec::new(), status).await? {
            Some((completed, _)) => decode_record(&key, &completed),
            None => Err(EngineError::Suspended { key }),
        }
    }

    /// The deadline of a point waited at with a timeout: the one stored
    /// when it was first reached, else `duration` from now.
    pub(super) fn deadline_of(&self, existing: Option<&StepRecord>, duration: Duration) -> u64 {
        match existing.and_then(|r| {
            (r.state == StepState::Suspended)
                .then_some(r.deadline_ms)
                .flatten()
        }) {
            Some(deadline) => deadline,
            None => self
                .run
                .env
                .clock
                .now_ms()
                .saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// Registers a wait at `key` (a point, a timer or a group with its
    /// `members`): `Ok(Some((record, winner)))` if it already has its value
    /// (a signal that came first, a timer that fired, a buffered signal now
    /// consumed), `Ok(None)` once the run waits there. A point the snapshot
    /// already shows waiting exactly so is not written again, so a replay
    /// that stops where it stopped before writes nothing.
    pub(super) async fn wait_at(
        &self,
        key: &str,
        record: StepRecord,
        members: Vec<(String, StepRecord)>,
        status: Option<String>,
    ) -> Result<Option<(StepRecord, Option<(String, StepRecord)>)>, EngineError> {
        self.check_active()?;
        let already_waiting_here = self.run.steps.get(key).is_some_and(|r| {
            r.state == StepState::Suspended
                && r.kind == record.kind
                && r.deadline_ms == record.deadline_ms
        }) && members.iter().all(|(member, _)| {
            self.run
                .steps
                .get(member)
                .is_some_and(|r| r.state == StepState::Suspended && r.kind == StepKind::Member)
        });
        if let Some(dry) = self.dry() {
            // A dry run writes nothing: it stops here, at a point the
            // instance already waits at or at a new one.
            if !already_waiting_here {
                return self
                    .dry_new_work(key, CheckKind::of(record.kind), 0)
                    .map(|()| None);
            }
            if let Some(stored) = self.run.steps.get(key)
                && stored.kind == StepKind::Suspend
                && stored.type_tag != record.type_tag
            {
                // It waits for a value of another type than the code's.
                dry.mismatch(TypeMismatchReport {
                    key: key.to_owned(),
                    stored: stored.type_tag.clone(),
                    expected: record.type_tag.clone(),
                    error: "the point waits for a signal of another type".to_owned(),
                });
                dry.stop(CheckStop::TypeMismatch {
                    key: key.to_owned(),
                });
            }
        }
        let deadline = record.deadline_ms;
        if !already_waiting_here {
            self.revive_if_pending().await?;
            let now = self.run.env.clock.now_ms();
            match self
                .run
                .env
                .store
                .wait_at(self.run.key.clone(), key.to_owned(), record, members, now)
                .await?
            {
                WaitOutcome::Waiting => {}
                WaitOutcome::Resolved { record, winner } => return Ok(Some((record, winner))),
                WaitOutcome::NotActive(Some(MetadataStatus::Cancelled)) => {
                    return Err(self.cancelled());
                }
                WaitOutcome::NotActive(Some(other)) => {
                    return Err(EngineError::InvalidState {
                        operation: "wait",
                        key: self.run.key.clone(),
                        state: other.kind(),
                    });
                }
                WaitOutcome::NotActive(None) => return Err(self.not_found()),
            }
        }
        if let Some(deadline) = deadline {
            self.run.env.timers.scheduled(deadline);
        }
        self.note_waiting(key, status);
        Ok(None)
    }
}
