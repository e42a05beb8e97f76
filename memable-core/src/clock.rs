//! Where the engine gets time from: [`SystemClock`] by default, and (feature
//! `test-util`) `ManualClock` or `AutoAdvanceClock` in tests so timers and
//! backoff move without sleeping.
//!
//! An engine tells its clock how busy it is: when it is built it hands the
//! clock an [`EngineActivity`] through [`Clock::attach`]. Clocks that only
//! read time ignore it; `AutoAdvanceClock` uses it to move time only while
//! every engine on it is idle.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

#[cfg(feature = "test-util")]
mod auto;
#[cfg(feature = "test-util")]
mod manual;

#[cfg(feature = "test-util")]
pub use auto::{AutoAdvanceClock, ClockHold};
#[cfg(feature = "test-util")]
pub use manual::ManualClock;

/// A boxed future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// Timer deadlines, retry backoff and the timestamps in instance metadata all
/// come from the engine's clock.
///
/// # Examples
///
/// ```
/// use memable_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_000);
/// assert_eq!(clock.now_ms(), 1_000);
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// A future that completes once `now_ms() >= deadline_ms`.
    fn sleep_until(&self, deadline_ms: u64) -> Sleep;

    /// Called once by every engine built on this clock, as it is built,
    /// with a live view of how much work that engine is doing (see
    /// [`EngineActivity`]). The default ignores it; a test clock that moves
    /// time by itself keeps it to know when the engines are idle.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use memable_core::{Clock, Engine, EngineActivity, Sleep, SystemClock};
    ///
    /// #[derive(Debug, Default)]
    /// struct Watching(Mutex<Vec<EngineActivity>>);
    ///
    /// impl Clock for Watching {
    ///     fn now_ms(&self) -> u64 { SystemClock.now_ms() }
    ///     fn sleep_until(&self, deadline_ms: u64) -> Sleep { SystemClock.sleep_until(deadline_ms) }
    ///     fn attach(&self, activity: EngineActivity) {
    ///         assert_eq!(activity.busy(), 0); // a new engine runs nothing yet
    ///         self.0.lock().unwrap().push(activity);
    ///     }
    /// }
    ///
    /// let _engine = Engine::builder().clock(Watching::default()).build();
    /// ```
    fn attach(&self, activity: EngineActivity) {
        let _ = activity;
    }
}

/// How busy one engine is, as it tells its clock through [`Clock::attach`].
///
/// [`busy`](EngineActivity::busy) counts the pieces of work the engine has
/// in progress: each run of an instance (from the moment it is triggered
/// until its task ends) and the timer scheduler while it is awake (reading
/// due timers, firing them). A run that is only sleeping on the clock in a
/// retry backoff, and a scheduler that is only sleeping until the next
/// deadline or a new timer, do not count. Zero means the engine can make
/// no progress until its clock moves (or something outside it — a signal,
/// a new invocation — arrives).
///
/// # Examples
///
/// See [`Clock::attach`].
#[derive(Clone, Debug)]
pub struct EngineActivity {
    busy: watch::Receiver<usize>,
}

impl EngineActivity {
    pub(crate) fn new(busy: watch::Receiver<usize>) -> Self {
        Self { busy }
    }

    /// The engine's pieces of work in progress now; 0 when it is idle.
    ///
    /// # Examples
    ///
    /// See [`Clock::attach`].
    #[must_use]
    pub fn busy(&self) -> usize {
        *self.busy.borrow()
    }

    /// Waits until the count changes; `false` once the engine is gone (its
    /// last count stays readable).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use memable_core::{Clock, Engine, EngineActivity, Sleep, SystemClock};
    ///
    /// #[derive(Clone, Debug, Default)]
    /// struct Watching(Arc<Mutex<Option<EngineActivity>>>);
    /// impl Clock for Watching {
    ///     fn now_ms(&self) -> u64 { SystemClock.now_ms() }
    ///     fn sleep_until(&self, deadline_ms: u64) -> Sleep { SystemClock.sleep_until(deadline_ms) }
    ///     fn attach(&self, activity: EngineActivity) { *self.0.lock().unwrap() = Some(activity); }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Watching::default();
    /// let engine = Engine::builder().clock(clock.clone()).build();
    /// let mut activity = clock.0.lock().unwrap().take().unwrap();
    /// drop(engine);
    /// assert!(!activity.changed().await); // the engine is gone
    /// # });
    /// ```
    pub async fn changed(&mut self) -> bool {
        self.busy.changed().await.is_ok()
    }

    /// The count, marking it seen (so [`changed`](Self::changed) waits for
    /// the next change), or `None` once the engine is gone.
    #[cfg(feature = "test-util")]
    pub(crate) fn observe(&mut self) -> Option<usize> {
        if self.busy.has_changed().is_err() {
            return None;
        }
        Some(*self.busy.borrow_and_update())
    }
}

/// The real clock: [`SystemTime`] for readings, tokio's timer for sleeping.
///
/// # Examples
///
/// ```
/// use memable_core::{Clock, SystemClock};
///
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep {
        let wait = deadline_ms.saturating_sub(self.now_ms());
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_deadline_completes_immediately() {
        SystemClock.sleep_until(0).await;
    }
}
