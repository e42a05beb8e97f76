//! Where the engine gets time from: [`SystemClock`] by default, and (feature
//! `test-util`) `ManualClock` in tests so timers and backoff move without
//! sleeping.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "test-util")]
mod manual;

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
