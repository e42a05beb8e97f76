//! Helpers shared by the integration tests.
#![allow(dead_code)]

use memable_core::{InstanceKey, StepKind, StepRecord};

pub fn key(workflow: &str, instance: &str) -> InstanceKey {
    InstanceKey::new(workflow, instance).expect("valid test key")
}

pub fn value(bytes: &[u8]) -> StepRecord {
    StepRecord::completed(StepKind::Step, "bytes", bytes.to_vec(), None)
}

pub fn input() -> StepRecord {
    StepRecord::completed(StepKind::Engine, "()", Vec::new(), None)
}

/// The text of an error, for message assertions.
pub fn text(err: &memable_core::EngineError) -> String {
    err.to_string()
}

pub mod backend;

/// Polls `future` once, so that everything before its first wait (for a
/// store write: queueing the operation) has happened.
pub fn poll_once<F: std::future::Future + ?Sized>(future: &mut std::pin::Pin<Box<F>>) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        future.as_mut().poll(&mut cx).is_pending(),
        "the operation finished without waiting for the writer"
    );
}
