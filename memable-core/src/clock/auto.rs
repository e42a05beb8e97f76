//! [`AutoAdvanceClock`]: a test clock that jumps to the next deadline
//! whenever nothing can make progress without time moving (feature
//! `test-util`).
//!
//! # The protocol
//!
//! **Who counts what.** The clock keeps three things under one lock:
//!
//! - the *pending sleepers*: the deadline of every [`Clock::sleep_until`]
//!   future that has been polled, is not yet due and is not dropped (a
//!   sleeper registers on its first poll and deregisters when it completes
//!   or is dropped);
//! - the *attached engines*: the [`EngineActivity`] each engine built on the
//!   clock handed over ([`Clock::attach`]); their busy counts are summed
//!   (an engine that is gone counts zero and is forgotten);
//! - the *holds*: [`ClockHold`] guards the test took to keep time still.
//!
//! **When time moves.** A driver task (spawned on the current tokio
//! runtime on the first attach or sleep, respawned if its runtime went
//! away) moves time when all of these hold: no hold, every attached engine
//! idle (busy count zero), no registered sleeper already due (it is about to
//! wake and may start work), and at least one sleeper pending. It then lets
//! every other ready task run (a few [`tokio::task::yield_now`] rounds,
//! so work that was just triggered gets counted), checks again that nothing
//! changed (same sleepers, same holds, still idle), and sets the time to the
//! earliest pending deadline. The sleepers due then wake; the driver waits
//! for any change (a sleeper, a hold, an engine's count, a hand-made move)
//! before it looks again.
//!
//! **What it never does.** It never moves time backwards, never moves it
//! past the earliest pending deadline, never moves it while a hold lives or
//! an attached engine is busy, and never moves it when nothing sleeps on it.
//! Time also moves by hand ([`advance`](AutoAdvanceClock::advance),
//! [`set`](AutoAdvanceClock::set)), as with a `ManualClock`.
//!
//! **What it cannot see.** Work outside the engines — the test's own task
//! awaiting `invoke` or `signal`, another task of the test, and work a
//! workflow does outside its steps while all of its steps in flight sleep
//! in a backoff — is not counted: while the engines are idle and a timer is pending, time may jump
//! under it. Take a [`hold`](AutoAdvanceClock::hold) around such set-up
//! (for example, starting several instances that must see the same "now").
//! With no engine attached, the clock advances whenever something sleeps on
//! it.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Clock, EngineActivity, ManualClock, Sleep};

/// Rounds of `yield_now` the driver gives other tasks before it moves time.
const SETTLE_ROUNDS: usize = 8;

/// A test clock that moves by itself: whenever every engine on it is idle
/// (no run in progress, or every run only sleeping in a retry backoff) and
/// something sleeps on it, time jumps to the earliest pending deadline.
///
/// A test of a workflow that waits a day, or retries with minutes of
/// backoff, finishes at once and deterministically; `now_ms()` shows the
/// skipped time. Clones share the same time. It can also be moved by hand
/// ([`advance`](Self::advance), [`set`](Self::set)) and kept still
/// ([`hold`](Self::hold)). The module documentation states the protocol.
///
/// # Examples
///
/// Testing a workflow that waits a day:
///
/// ```
/// use std::time::Duration;
/// use memable_core::{AutoAdvanceClock, Clock, Context, Engine, EngineError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), EngineError> {
/// let clock = AutoAdvanceClock::new(0);
/// let engine = Engine::builder().clock(clock.clone()).build();
/// engine.register("trial", |ctx: Context| async move {
///     ctx.timer("trial-period", Duration::from_secs(86_400)).await?;
///     Ok("converted".to_string())
/// })?;
/// engine.start().await?;
///
/// engine.invoke("trial").id("user-1").await?;
/// let mut states = engine.subscribe("trial", "user-1").await?;
/// while states.next().await.is_some() {} // ends once the instance is finished
/// assert_eq!(engine.output::<String>("trial", "user-1").await?, "converted");
/// assert_eq!(clock.now_ms(), 86_400_000); // a day passed, in no time
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AutoAdvanceClock {
    shared: Arc<Shared>,
}

struct Shared {
    time: ManualClock,
    state: Mutex<State>,
    /// Wakes the driver on every change it cares about.
    wake: Arc<Notify>,
}

#[derive(Default)]
struct State {
    /// Deadline → number of pending sleepers with it.
    sleepers: BTreeMap<u64, usize>,
    engines: Vec<EngineActivity>,
    holds: usize,
    /// Bumped on every change of sleepers, holds or engines.
    generation: u64,
    driver: Option<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The driver holds only a weak reference: let it see that.
        self.wake.notify_one();
    }
}

/// What the driver should do next.
enum Plan {
    /// Wait for a change: of the clock's state, or of one of these counts.
    Wait(Vec<EngineActivity>),
    /// Move time to `to`, if nothing changes before.
    Advance { to: u64, generation: u64 },
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a change and wakes the driver.
    fn changed(&self, state: &mut State) {
        state.generation = state.generation.wrapping_add(1);
        self.wake.notify_one();
    }

    /// Spawns the driver if none runs and a runtime is at hand.
    fn ensure_driver(self: &Arc<Self>, state: &mut State) {
        if state.driver.as_ref().is_some_and(|d| !d.is_finished()) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            state.driver = Some(runtime.spawn(drive(Arc::downgrade(self), Arc::clone(&self.wake))));
        }
    }

    fn plan(&self) -> Plan {
        let mut state = self.lock();
        let mut busy = 0usize;
        state.engines.retain_mut(|engine| match engine.observe() {
            Some(count) => {
                busy = busy.saturating_add(count);
                true
            }
            None => false,
        });
        let now = self.time.now_ms();
        let earliest = state.sleepers.keys().next().copied();
        match earliest {
            Some(to) if busy == 0 && state.holds == 0 && to > now => Plan::Advance {
                to,
                generation: state.generation,
            },
            _ => Plan::Wait(state.engines.clone()),
        }
    }
}

/// The driver: moves time when the protocol allows; ends when the clock is
/// dropped.
async fn drive(clock: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let Some(shared) = clock.upgrade() else {
            return;
        };
        match shared.plan() {
            Plan::Wait(engines) => {
                drop(shared);
                any_change(&wake, engines).await;
            }
            Plan::Advance { to, generation } => {
                drop(shared);
                for _ in 0..SETTLE_ROUNDS {
                    tokio::task::yield_now().await;
                }
                let Some(shared) = clock.upgrade() else {
                    return;
                };
                if let Plan::Advance {
                    to: again,
                    generation: still,
                } = shared.plan()
                    && again == to
                    && still == generation
                {
                    tracing::trace!(to_ms = to, "auto-advancing clock");
                    shared.time.set(to);
                }
            }
        }
    }
}

/// Completes on the next wake-up of the driver or change of an engine's
/// count (or an engine going away).
async fn any_change(wake: &Notify, engines: Vec<EngineActivity>) {
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = engines
        .into_iter()
        .map(|mut engine| {
            Box::pin(async move {
                engine.changed().await;
            }) as Pin<Box<dyn Future<Output = ()> + Send>>
        })
        .collect();
    waits.push(Box::pin(wake.notified()));
    std::future::poll_fn(|cx| {
        if waits
            .iter_mut()
            .any(|wait| wait.as_mut().poll(cx).is_ready())
        {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// A pending sleeper's registration; deregisters on drop.
struct Pending {
    shared: Arc<Shared>,
    deadline_ms: u64,
}

impl Pending {
    fn register(shared: &Arc<Shared>, deadline_ms: u64) -> Self {
        let mut state = shared.lock();
        *state.sleepers.entry(deadline_ms).or_default() += 1;
        shared.ensure_driver(&mut state);
        shared.changed(&mut state);
        drop(state);
        Self {
            shared: Arc::clone(shared),
            deadline_ms,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(count) = state.sleepers.get_mut(&self.deadline_ms) {
            *count -= 1;
            if *count == 0 {
                state.sleepers.remove(&self.deadline_ms);
            }
        }
        self.shared.changed(&mut state);
    }
}

/// Keeps an [`AutoAdvanceClock`] still while it lives; see
/// [`AutoAdvanceClock::hold`].
///
/// # Examples
///
/// ```
/// use memable_core::AutoAdvanceClock;
///
/// let clock = AutoAdvanceClock::new(0);
/// let hold = clock.hold();
/// drop(hold); // time may move again
/// ```
#[must_use = "time is held only while the guard lives"]
pub struct ClockHold {
    shared: Arc<Shared>,
}

impl fmt::Debug for ClockHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClockHold").finish_non_exhaustive()
    }
}

impl Drop for ClockHold {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.holds = state.holds.saturating_sub(1);
        self.shared.changed(&mut state);
    }
}

impl AutoAdvanceClock {
    /// A clock reading `start_ms`.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{AutoAdvanceClock, Clock};
    /// assert_eq!(AutoAdvanceClock::new(7).now_ms(), 7);
    /// ```
    #[must_use]
    pub fn new(start_ms: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                time: ManualClock::new(start_ms),
                state: Mutex::default(),
                wake: Arc::new(Notify::new()),
            }),
        }
    }

    /// Moves time forward by `by`, waking every sleeper now due.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use memable_core::{AutoAdvanceClock, Clock};
    /// let clock = AutoAdvanceClock::new(0);
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(clock.now_ms(), 2_000);
    /// ```
    pub fn advance(&self, by: Duration) {
        self.shared.time.advance(by);
        let mut state = self.shared.lock();
        self.shared.changed(&mut state);
    }

    /// Sets the time to `now_ms` (never backwards: earlier values are ignored).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{AutoAdvanceClock, Clock};
    /// let clock = AutoAdvanceClock::new(10);
    /// clock.set(5);
    /// assert_eq!(clock.now_ms(), 10);
    /// clock.set(50);
    /// assert_eq!(clock.now_ms(), 50);
    /// ```
    pub fn set(&self, now_ms: u64) {
        self.shared.time.set(now_ms);
        let mut state = self.shared.lock();
        self.shared.changed(&mut state);
    }

    /// Keeps time still until the returned guard drops: for set-up the
    /// engines cannot see, such as starting several instances that must all
    /// start at the same time. Holds nest.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{AutoAdvanceClock, Clock};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let clock = AutoAdvanceClock::new(0);
    /// let hold = clock.hold();
    /// let sleeper = tokio::spawn(clock.sleep_until(1_000));
    /// for _ in 0..100 {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert_eq!(clock.now_ms(), 0); // held
    /// drop(hold);
    /// sleeper.await.unwrap();
    /// assert_eq!(clock.now_ms(), 1_000);
    /// # }
    /// ```
    pub fn hold(&self) -> ClockHold {
        let mut state = self.shared.lock();
        state.holds += 1;
        self.shared.changed(&mut state);
        ClockHold {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl fmt::Debug for AutoAdvanceClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("AutoAdvanceClock")
            .field("now_ms", &self.shared.time.now_ms())
            .field("sleepers", &state.sleepers.values().sum::<usize>())
            .field("engines", &state.engines.len())
            .field("holds", &state.holds)
            .finish()
    }
}

impl Clock for AutoAdvanceClock {
    fn now_ms(&self) -> u64 {
        self.shared.time.now_ms()
    }

    fn sleep_until(&self, deadline_ms: u64) -> Sleep {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            if shared.time.now_ms() >= deadline_ms {
                return;
            }
            let _pending = Pending::register(&shared, deadline_ms);
            shared.time.sleep_until(deadline_ms).await;
        })
    }

    fn attach(&self, activity: EngineActivity) {
        let mut state = self.shared.lock();
        state.engines.push(activity);
        self.shared.ensure_driver(&mut state);
        self.shared.changed(&mut state);
    }
}
