//! [`RetryPolicy`]: how often and how patiently a failing step is retried.

use std::time::Duration;

/// The default cap on exponential backoff.
const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

/// How a step whose closure returns [`StepError::Retryable`](crate::StepError::Retryable)
/// is retried. `max_attempts` counts every attempt, the first included.
///
/// The engine waits at least the delay before the next attempt: its clock
/// counts milliseconds, so a fractional delay is rounded up (1.5 ms waits
/// 2 ms, 300 µs waits 1 ms), never down. Jitter, when configured, shortens
/// a delay by design (see [`with_jitter`](Self::with_jitter)).
///
/// The engine default (see `EngineBuilder::default_retry`) is
/// `RetryPolicy::exponential(3, 100 ms)`; a step overrides it with
/// `.retry(policy)` or `.no_retry()`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use memable_core::RetryPolicy;
///
/// let policy = RetryPolicy::exponential(5, Duration::from_millis(100))
///     .with_max_delay(Duration::from_secs(1));
/// assert_eq!(policy.delay_for(1), Duration::from_millis(100));
/// assert_eq!(policy.delay_for(2), Duration::from_millis(200));
/// assert_eq!(policy.delay_for(10), Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    multiplier: u32,
    max_delay: Duration,
    jitter: f64,
}

impl RetryPolicy {
    /// One attempt, no retry.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(memable_core::RetryPolicy::none().max_attempts(), 1);
    /// ```
    #[must_use]
    pub fn none() -> Self {
        Self::fixed(1, Duration::ZERO)
    }

    /// Up to `max_attempts` attempts, `delay` apart.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let p = memable_core::RetryPolicy::fixed(3, Duration::from_millis(50));
    /// assert_eq!(p.delay_for(1), p.delay_for(2));
    /// ```
    #[must_use]
    pub fn fixed(max_attempts: u32, delay: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            initial_delay: delay,
            multiplier: 1,
            max_delay: delay,
            jitter: 0.0,
        }
    }

    /// Up to `max_attempts` attempts; the delay starts at `initial` and
    /// doubles after each failure, capped at 30 s (see
    /// [`with_max_delay`](Self::with_max_delay)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let p = memable_core::RetryPolicy::exponential(10, Duration::from_secs(8));
    /// assert_eq!(p.delay_for(3), Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn exponential(max_attempts: u32, initial: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            initial_delay: initial,
            multiplier: 2,
            max_delay: DEFAULT_MAX_DELAY.max(initial),
            jitter: 0.0,
        }
    }

    /// Caps the delay between attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let p = memable_core::RetryPolicy::exponential(9, Duration::from_secs(1))
    ///     .with_max_delay(Duration::from_secs(3));
    /// assert_eq!(p.delay_for(5), Duration::from_secs(3));
    /// ```
    #[must_use]
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Randomises each delay by up to `fraction` (clamped to `0.0..=1.0`) of
    /// itself, downwards, so many failing workflows do not retry in lockstep.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let p = memable_core::RetryPolicy::fixed(3, Duration::from_millis(100)).with_jitter(0.5);
    /// let d = p.jittered_delay_for(1);
    /// assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(100));
    /// ```
    #[must_use]
    pub fn with_jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// Total attempts allowed, the first included.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(memable_core::RetryPolicy::fixed(4, Duration::ZERO).max_attempts(), 4);
    /// ```
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before the attempt that follows failed attempt number
    /// `attempt` (1-based), without jitter.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let p = memable_core::RetryPolicy::exponential(5, Duration::from_millis(10));
    /// assert_eq!(p.delay_for(3), Duration::from_millis(40));
    /// ```
    #[must_use]
    pub fn delay_for(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(32);
        let factor = self.multiplier.saturating_pow(exponent);
        self.initial_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// [`delay_for`](Self::delay_for) with the configured jitter applied.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let p = memable_core::RetryPolicy::fixed(2, Duration::from_millis(10));
    /// assert_eq!(p.jittered_delay_for(1), Duration::from_millis(10));
    /// ```
    #[must_use]
    pub fn jittered_delay_for(&self, attempt: u32) -> Duration {
        let delay = self.delay_for(attempt);
        if self.jitter == 0.0 {
            return delay;
        }
        delay.mul_f64(1.0 - self.jitter * fastrand::f64())
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::exponential(3, Duration::from_millis(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_up_to_the_default_cap() {
        let p = RetryPolicy::exponential(20, Duration::from_secs(1));
        let delays: Vec<u64> = (1..=7).map(|a| p.delay_for(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(p.delay_for(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = RetryPolicy::fixed(5, Duration::from_secs(1)).with_jitter(0.25);
        for _ in 0..200 {
            let d = p.jittered_delay_for(1);
            assert!(
                d >= Duration::from_millis(750) && d <= Duration::from_secs(1),
                "{d:?}"
            );
        }
        assert_eq!(
            p.with_jitter(f64::NAN).jittered_delay_for(1),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn zero_attempts_means_one() {
        assert_eq!(RetryPolicy::fixed(0, Duration::ZERO).max_attempts(), 1);
        assert_eq!(RetryPolicy::default().max_attempts(), 3);
    }
}
