//! The conformance suite every memable [`StepStore`](memable_core::StepStore)
//! must pass, plus helpers for users' own tests.
//!
//! The suite is the contract between the engine and storage: a backend is
//! correct exactly when it passes it. A backend implements [`StoreFactory`]
//! (fresh isolated stores, optionally reopenable) and runs every case with
//! one line in `tests/conformance.rs`:
//!
//! ```
//! memable_testkit::conformance_tests!(memable_testkit::MemoryFactory);
//! ```
//!
//! That expands into one `#[test]` per case, named after it, each running the
//! case on a two-worker multi-thread tokio runtime (the backend needs no tokio
//! dev-dependency). Every case is also a plain
//! `pub async fn case(factory: &dyn StoreFactory)` under [`cases`], grouped by
//! family. A case the factory's [`Capabilities`] rule out prints
//! `SKIPPED <case> ...` and returns.
//!
//! Helpers: [`FaultyStore`] wraps any store and injects failures or delays;
//! [`ManualClock`] moves time by hand and [`AutoAdvanceClock`] moves it by
//! itself to the next deadline whenever the engine is idle; [`crash`] kills a child process
//! that writes to a file store, for tests of what survives.
#![forbid(unsafe_code)]

pub mod backup;
pub mod cases;
pub mod crash;
pub mod explore;
mod factory;
mod faulty;
mod macros;
mod model;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod soak;
mod support;

#[doc(hidden)]
pub mod __private;

pub use factory::{Capabilities, MemoryFactory, StoreFactory, StoreFixture};
pub use faulty::{FaultKind, FaultyStore, FaultyStoreBuilder, StoreOp};
pub use memable_core::{AutoAdvanceClock, ClockHold, ManualClock};
