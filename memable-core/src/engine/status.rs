//! Live workflow state: [`WorkflowState`] and the [`StatusStream`] that
//! follows it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use tokio::sync::watch;

use super::live::{LiveGuard, RunEnd};
use crate::{MetadataStatus, StorageErrorKind};

/// The state of an instance as the engine sees it now, including the status
/// message of a running workflow (`ctx.set_status`), which is not persisted.
///
/// # Examples
///
/// ```
/// use memable_core::{MetadataStatus, WorkflowState};
///
/// let state = WorkflowState::from(&MetadataStatus::Completed(Some("done".into())));
/// assert_eq!(state, WorkflowState::Completed { status: Some("done".into()) });
/// assert!(state.is_terminal());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkflowState {
    /// A run is in progress; `status` is the last `set_status` message.
    Running {
        /// The current status message.
        status: Option<String>,
    },
    /// Waiting at a suspend point or timer.
    Suspended {
        /// The suspended step's key.
        key: String,
        /// The status message given when suspending.
        status: Option<String>,
    },
    /// Waiting in a queue for admission (see [`Queue`](crate::Queue)).
    Queued {
        /// The queue's name.
        queue: String,
    },
    /// Finished successfully.
    Completed {
        /// The last status message.
        status: Option<String>,
    },
    /// Finished with an error.
    Failed {
        /// The error, as text.
        error: String,
    },
    /// Cancelled by `Engine::cancel`.
    Cancelled,
    /// The run ended but the store failed to record how (a storage error
    /// while loading, reviving or finishing the instance): the outcome is
    /// unknown. The store still holds the instance's previous state
    /// (usually `Running`); it runs again on the next
    /// [`Engine::start`](crate::Engine::start),
    /// [`Engine::resume`](crate::Engine::resume) or invoke of its id.
    /// A [`StatusStream`] ends after it.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{StorageErrorKind, WorkflowState};
    ///
    /// let state = WorkflowState::OutcomeUnknown { kind: StorageErrorKind::Io, error: "finish_instance: EIO".into() };
    /// assert!(!state.is_terminal() && !state.is_running());
    /// ```
    OutcomeUnknown {
        /// The storage error's kind.
        kind: StorageErrorKind,
        /// The storage error, as text.
        error: String,
    },
}

impl WorkflowState {
    /// `true` for `Completed`, `Failed` and `Cancelled`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::WorkflowState;
    /// assert!(!WorkflowState::Running { status: None }.is_terminal());
    /// ```
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed { .. } | Self::Failed { .. } | Self::Cancelled
        )
    }

    /// `true` while a run is in progress.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::WorkflowState;
    /// assert!(WorkflowState::Running { status: None }.is_running());
    /// ```
    #[must_use]
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running { .. })
    }

    /// The status message, if the state carries one.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::WorkflowState;
    /// let s = WorkflowState::Running { status: Some("fetching".into()) };
    /// assert_eq!(s.status(), Some("fetching"));
    /// ```
    #[must_use]
    pub fn status(&self) -> Option<&str> {
        match self {
            Self::Running { status }
            | Self::Suspended { status, .. }
            | Self::Completed { status } => status.as_deref(),
            Self::Failed { .. }
            | Self::Cancelled
            | Self::OutcomeUnknown { .. }
            | Self::Queued { .. } => None,
        }
    }
}

impl From<&MetadataStatus> for WorkflowState {
    fn from(status: &MetadataStatus) -> Self {
        if crate::store::is_queued(status) {
            let queue = match status {
                MetadataStatus::Suspended { status, .. } => status.clone().unwrap_or_default(),
                _ => String::new(),
            };
            return Self::Queued { queue };
        }
        match status {
            MetadataStatus::Running => Self::Running { status: None },
            MetadataStatus::Suspended { key, status } => Self::Suspended {
                key: key.clone(),
                status: status.clone(),
            },
            MetadataStatus::Completed(status) => Self::Completed {
                status: status.clone(),
            },
            MetadataStatus::Failed(error) => Self::Failed {
                error: error.clone(),
            },
            MetadataStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running { .. } => f.write_str("running"),
            Self::Suspended { key, .. } => write!(f, "suspended at '{key}'"),
            Self::Queued { queue } => write!(f, "queued in '{queue}'"),
            Self::Completed { .. } => f.write_str("completed"),
            Self::Failed { error } => write!(f, "failed: {error}"),
            Self::Cancelled => f.write_str("cancelled"),
            Self::OutcomeUnknown { error, .. } => write!(f, "outcome unknown: {error}"),
        }
    }
}

type NextState =
    Pin<Box<dyn Future<Output = (watch::Receiver<WorkflowState>, Option<WorkflowState>)> + Send>>;

/// A stream of an instance's live states: the current state first, then
/// every change, ending after a terminal state (`Completed`, `Failed`,
/// `Cancelled`) or [`WorkflowState::OutcomeUnknown`].
///
/// Changes that happen faster than the stream is read are coalesced: a
/// reader always sees the latest state, possibly skipping intermediate ones.
/// Steps replayed from the store do not produce states.
///
/// It implements [`futures_core::Stream`]; [`next`](Self::next) reads it
/// without extra crates.
///
/// # Examples
///
/// ```
/// use memable_core::{Context, Engine, EngineError, WorkflowState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), EngineError> {
/// let engine = Engine::builder().in_memory().build();
/// engine.register("hello", |ctx: Context| async move {
///     ctx.set_status("greeting");
///     ctx.step("greet").run(|| async { Ok::<_, memable_core::StepError>(()) }).await
/// })?;
/// engine.start().await?;
/// let mut stream = engine.invoke("hello").await?.into_stream();
/// let mut last = None;
/// while let Some(state) = stream.next().await {
///     last = Some(state);
/// }
/// assert_eq!(last, Some(WorkflowState::Completed { status: Some("greeting".into()) }));
/// # Ok(()) }
/// ```
pub struct StatusStream {
    // Declared first so its Drop runs while the receiver below is alive.
    guard: LiveGuard,
    current: WorkflowState,
    // In a mutex only so the stream is `Sync`; it is reached through
    // `get_mut`, never locked.
    pending: std::sync::Mutex<Option<NextState>>,
    receiver: Option<watch::Receiver<WorkflowState>>,
    yielded_first: bool,
    finished: bool,
}

impl StatusStream {
    pub(crate) fn new(guard: LiveGuard, mut receiver: watch::Receiver<WorkflowState>) -> Self {
        let current = receiver.borrow_and_update().clone();
        Self {
            guard,
            current,
            pending: std::sync::Mutex::new(None),
            receiver: Some(receiver),
            yielded_first: false,
            finished: false,
        }
    }

    /// The latest state known to this stream, without waiting.
    ///
    /// # Examples
    ///
    /// See [`StatusStream`].
    #[must_use]
    pub fn current(&self) -> WorkflowState {
        match &self.receiver {
            Some(rx) => rx.borrow().clone(),
            None => self.current.clone(),
        }
    }

    /// The next state, or `None` once a terminal state has been yielded.
    ///
    /// # Examples
    ///
    /// See [`StatusStream`].
    pub async fn next(&mut self) -> Option<WorkflowState> {
        std::future::poll_fn(|cx| self.poll_state(cx)).await
    }

    /// How the last run that ended on this instance's live entry ended,
    /// beyond its state (its output, its panic, its storage error).
    pub(crate) fn run_end(&self) -> Option<RunEnd> {
        self.guard.entry().run_end()
    }

    /// Waits until the state is no longer `Running` and returns it.
    pub(crate) async fn idle(&self) -> WorkflowState {
        self.wait_for(|state| !state.is_running()).await
    }

    /// Waits until the state is terminal (or the outcome of a run is
    /// unknown) and returns it.
    pub(crate) async fn terminal(&self) -> WorkflowState {
        self.wait_for(ends_stream).await
    }

    async fn wait_for(&self, done: impl Fn(&WorkflowState) -> bool) -> WorkflowState {
        let mut rx = self.guard.entry().state.subscribe();
        // The sender lives in the entry this stream's guard holds, so it
        // cannot close while we wait.
        match rx.wait_for(|state| done(state)).await {
            Ok(state) => state.clone(),
            Err(_) => self.current(),
        }
    }

    fn poll_state(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<WorkflowState>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if !self.yielded_first {
            self.yielded_first = true;
            self.finished = ends_stream(&self.current);
            return Poll::Ready(Some(self.current.clone()));
        }
        let pending = self
            .pending
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.is_none() {
            let Some(mut rx) = self.receiver.take() else {
                return Poll::Ready(None);
            };
            *pending = Some(Box::pin(async move {
                let next = match rx.changed().await {
                    Ok(()) => Some(rx.borrow_and_update().clone()),
                    Err(_) => None,
                };
                (rx, next)
            }));
        }
        let Some(next) = pending.as_mut() else {
            return Poll::Ready(None);
        };
        match next.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((rx, next)) => {
                *pending = None;
                self.receiver = Some(rx);
                if let Some(state) = next {
                    self.finished = ends_stream(&state);
                    self.current = state.clone();
                    Poll::Ready(Some(state))
                } else {
                    self.finished = true;
                    Poll::Ready(None)
                }
            }
        }
    }
}

/// Whether a stream ends after yielding `state`: nothing more will be
/// published for this run.
fn ends_stream(state: &WorkflowState) -> bool {
    state.is_terminal() || matches!(state, WorkflowState::OutcomeUnknown { .. })
}

impl futures_core::Stream for StatusStream {
    type Item = WorkflowState;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_state(cx)
    }
}

impl fmt::Debug for StatusStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusStream")
            .field("instance", self.guard.key())
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_be_shared_across_tasks() {
        assert_send_sync::<StatusStream>();
        assert_send_sync::<crate::Invocation>();
        assert_send_sync::<crate::Engine>();
        assert_send_sync::<crate::Context>();
    }
}
