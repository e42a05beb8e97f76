//! Every conformance case, grouped by family. Each case is a plain
//! `pub async fn case(factory: &dyn StoreFactory)` that panics (fails the
//! test) when the store breaks the contract it checks, and prints
//! `SKIPPED <case> ...` when the factory's capabilities rule it out.
//!
//! # Examples
//!
//! ```
//! use memable_testkit::{cases, MemoryFactory};
//! # memable_testkit::__private::block_on(async {
//! cases::start::start_existing_is_reported_never_overwrites(&MemoryFactory).await;
//! # });
//! ```
// Cases are assertions: they panic on purpose when a store breaks a contract.
#![allow(clippy::missing_panics_doc)]

pub mod age;
pub mod atomicity;
pub mod children;
pub mod claim;
pub mod concurrency;
pub mod delete;
pub mod engine;
pub mod isolation;
pub mod lifecycle;
pub mod listing;
pub mod model;
pub mod ownership;
pub mod persistence;
pub mod queues;
pub mod repair;
pub mod signals;
pub mod snapshot;
pub mod start;
pub mod steps;
pub mod suspend;
pub mod timers;
pub mod values;
