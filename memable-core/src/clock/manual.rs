//! [`ManualClock`]: time that moves only when a test says so (feature
//! `test-util`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Clock, Sleep};

/// A clock that only moves when told to: tests advance it and every sleeper
/// whose deadline has passed wakes at once.
///
/// Clones share the same time.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::{Clock, ManualClock};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let clock = ManualClock::new(0);
/// let sleeper = tokio::spawn(clock.sleep_until(500));
/// clock.advance(Duration::from_millis(500));
/// sleeper.await.unwrap();
/// assert_eq!(clock.now_ms(), 500);
/// # });
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<u64>>,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_core::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new(7).now_ms(), 7);
    /// ```
    #[must_use]
    pub fn new(start_ms: u64) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(start_ms)),
        }
    }

    /// Moves time forward by `by`, waking every sleeper now due.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use memable_core::{Clock, ManualClock};
    /// let clock = ManualClock::new(0);
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(clock.now_ms(), 2_000);
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now.send_modify(|now| *now = now.saturating_add(by));
    }

    /// Sets the time to `now_ms` (never backwards: earlier values are ignored).
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_core::{Clock, ManualClock};
    /// let clock = ManualClock::new(10);
    /// clock.set(5);
    /// assert_eq!(clock.now_ms(), 10);
    /// clock.set(50);
    /// assert_eq!(clock.now_ms(), 50);
    /// ```
    pub fn set(&self, now_ms: u64) {
        self.now.send_if_modified(|now| {
            let moved = now_ms > *now;
            if moved {
                *now = now_ms;
            }
            moved
        });
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now_ms", &*self.now.borrow())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; if every
            // clone is gone, time can never reach the deadline.
            if rx.wait_for(|now| *now >= deadline_ms).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleeper_waits_until_its_deadline() {
        let clock = ManualClock::new(0);
        let mut sleeper = tokio::spawn(clock.sleep_until(100));
        clock.advance(Duration::from_millis(99));
        tokio::task::yield_now().await;
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut sleeper)
                .await
                .is_err()
        );
        clock.advance(Duration::from_millis(1));
        sleeper.await.unwrap();
    }

    #[tokio::test]
    async fn past_deadline_completes_immediately() {
        let clock = ManualClock::new(1_000);
        clock.sleep_until(10).await;
    }
}
