//! memable: an embeddable durable execution engine.
#![forbid(unsafe_code)]
pub use memable_core::*;
