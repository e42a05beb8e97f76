//! [`Engine::step_history`]: what an instance's steps did, for operators
//! (the `memable` CLI's `steps`) and for tests.
//!
//! The history is read from one snapshot of the instance's records; nothing
//! is written. Values are shown as JSON when their codec is JSON (the
//! default); a value in a codec that does not describe itself (postcard,
//! written by memable before codec ids) is shown by its length only.

use serde::Serialize;

use super::Engine;
use super::not_found;
use crate::key::SIGNAL_PREFIX;
use crate::{Codec, EngineError, InstanceKey, StepKind, StepRecord, StepState};

/// An instance's steps in order of completion, its buffered signals and its
/// pending timers; see [`Engine::step_history`].
///
/// # Examples
///
/// See [`Engine::step_history`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepHistory {
    /// The steps and points, completed ones first in order of completion
    /// (then by start, then by key); the others (waiting, retrying,
    /// dead-lettered, and records written before memable kept times) after
    /// them, by start, then by key.
    pub steps: Vec<StepEntry>,
    /// Signals sent before the workflow reached their points, by point key.
    pub buffered_signals: Vec<BufferedSignal>,
    /// The durable deadlines still pending (timers, and suspend points or
    /// groups waiting with a timeout), soonest first.
    pub timers: Vec<PendingTimer>,
}

/// One step or point of a [`StepHistory`].
///
/// # Examples
///
/// See [`Engine::step_history`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepEntry {
    /// The step key.
    pub key: String,
    /// What created the record: a step, suspend point, timer, child, ….
    pub kind: StepKind,
    /// Completed, suspended (waiting), retrying or failed (a dead letter).
    pub state: StepState,
    /// Attempts made: for a completed step, the successful one included (a
    /// step that succeeded on its third attempt shows 3); for a retrying or
    /// dead-lettered one, the failed attempts. 0 for points and records
    /// written before memable counted successful attempts.
    pub attempts: u32,
    /// When the step's first attempt began, or the point started waiting
    /// (ms since the Unix epoch, on the engine's clock).
    pub started_at_ms: Option<u64>,
    /// When the step was committed, or the point was signalled, fired or
    /// its child ended.
    pub completed_at_ms: Option<u64>,
    /// The Rust type the value was written as (see
    /// [`type_tag`](crate::type_tag)).
    pub type_tag: String,
    /// The value decoded as JSON, when there is one and its codec is JSON.
    /// The winner of a [`first_of`](crate::Context::first_of) group is the
    /// winning point's key, as a string.
    pub value: Option<serde_json::Value>,
    /// The length of the stored value in bytes.
    pub value_len: usize,
    /// The error of a retrying step or dead letter, or of a failed or
    /// cancelled child.
    pub error: Option<String>,
    /// For a waiting timer or point with a timeout: when it fires.
    pub deadline_ms: Option<u64>,
    /// The workflow's status message when the record was written.
    pub status: Option<String>,
}

/// A signal buffered for a point the workflow has not reached yet.
///
/// # Examples
///
/// See [`Engine::step_history`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BufferedSignal {
    /// The point's key.
    pub point: String,
    /// The type the signal carries.
    pub type_tag: String,
    /// The payload as JSON, when its codec is JSON.
    pub value: Option<serde_json::Value>,
    /// When the signal arrived.
    pub received_at_ms: Option<u64>,
}

/// A durable deadline of a waiting timer or point.
///
/// # Examples
///
/// See [`Engine::step_history`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingTimer {
    /// The key of the timer, point or group.
    pub key: String,
    /// When it fires (ms since the Unix epoch).
    pub deadline_ms: u64,
}

impl Engine {
    /// The history of an instance: its steps and points in order of
    /// completion with their attempts, times, values and errors, its
    /// buffered signals and its pending timers. Engine bookkeeping (`_input`,
    /// `_output`, ownership, child and queue links) is left out; see
    /// [`get_metadata`](Self::get_metadata) and [`output`](Self::output).
    ///
    /// Works on an engine that was never started and on any instance,
    /// whatever its workflow's registration.
    ///
    /// Errors: [`InstanceNotFound`](EngineError::InstanceNotFound), key
    /// errors, storage errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use memable_core::{Context, Engine, RetryPolicy, StepError, StepState};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), memable_core::EngineError> {
    /// let engine = Engine::builder().build();
    /// engine.register("fetch", |ctx: Context| async move {
    ///     let mut calls = 0;
    ///     let body = ctx.step("get").retry(RetryPolicy::fixed(5, Duration::ZERO)).run(|| {
    ///         calls += 1;
    ///         let n = calls;
    ///         async move { if n < 3 { Err(StepError::retryable("503")) } else { Ok("body".to_string()) } }
    ///     }).await?;
    ///     let len = body.len();
    ///     ctx.step("len").run(|| async move { Ok::<_, StepError>(len) }).await
    /// })?;
    /// engine.start().await?;
    /// engine.invoke("fetch").id("f1").await?.wait_output::<usize>().await?;
    ///
    /// let history = engine.step_history("fetch", "f1").await?;
    /// let keys: Vec<_> = history.steps.iter().map(|s| s.key.as_str()).collect();
    /// assert_eq!(keys, ["get", "len"]);
    /// assert_eq!(history.steps[0].attempts, 3);
    /// assert_eq!(history.steps[0].state, StepState::Completed);
    /// assert_eq!(history.steps[0].value, Some(serde_json::json!("body")));
    /// # Ok(()) }
    /// ```
    pub async fn step_history(
        &self,
        workflow: &str,
        instance_id: &str,
    ) -> Result<StepHistory, EngineError> {
        let key = InstanceKey::new(workflow, instance_id)?;
        let Some(snapshot) = self.inner.store.load_instance(&key).await? else {
            return Err(not_found(&key));
        };
        Ok(history_of(snapshot.steps))
    }
}

/// The history of an instance's records.
fn history_of(records: impl IntoIterator<Item = (String, StepRecord)>) -> StepHistory {
    let mut steps = Vec::new();
    let mut buffered_signals = Vec::new();
    for (key, record) in records {
        if let Some(point) = key.strip_prefix(SIGNAL_PREFIX) {
            buffered_signals.push(BufferedSignal {
                point: point.to_owned(),
                value: json_of(&record),
                type_tag: record.type_tag,
                received_at_ms: record.started_at_ms,
            });
        } else if !key.starts_with('_') {
            steps.push(entry(key, record));
        }
    }
    steps.sort_by(|a, b| {
        let order = |s: &StepEntry| {
            (
                s.completed_at_ms
                    .filter(|_| s.state == StepState::Completed),
                s.started_at_ms,
            )
        };
        let (a_done, a_start) = order(a);
        let (b_done, b_start) = order(b);
        // `None` after every time: completed ones first.
        let last = |t: Option<u64>| (t.is_none(), t);
        (last(a_done), last(a_start), &a.key).cmp(&(last(b_done), last(b_start), &b.key))
    });
    let mut timers: Vec<PendingTimer> = steps
        .iter()
        .filter(|s| s.state == StepState::Suspended)
        .filter_map(|s| {
            s.deadline_ms.map(|deadline_ms| PendingTimer {
                key: s.key.clone(),
                deadline_ms,
            })
        })
        .collect();
    timers.sort_by(|a, b| (a.deadline_ms, &a.key).cmp(&(b.deadline_ms, &b.key)));
    buffered_signals.sort_by(|a, b| a.point.cmp(&b.point));
    StepHistory {
        steps,
        buffered_signals,
        timers,
    }
}

fn entry(key: String, record: StepRecord) -> StepEntry {
    let value = match (record.state, record.kind) {
        // A won group's value is the winning point's key, as text.
        (StepState::Completed, StepKind::Select) => String::from_utf8(record.value.clone())
            .ok()
            .map(serde_json::Value::String),
        // A waiting member's value names its group: bookkeeping.
        (StepState::Suspended, _) => None,
        // A failed or cancelled child's value is a marker; its error says.
        _ if record.error.is_some() => None,
        _ => json_of(&record),
    };
    StepEntry {
        key,
        kind: record.kind,
        state: record.state,
        attempts: record.attempts,
        started_at_ms: record.started_at_ms,
        completed_at_ms: record.completed_at_ms,
        value,
        value_len: record.value.len(),
        type_tag: record.type_tag,
        error: record.error,
        deadline_ms: record.deadline_ms,
        status: record.status,
    }
}

/// A record's value as JSON, when its codec is JSON and it has one.
fn json_of(record: &StepRecord) -> Option<serde_json::Value> {
    (record.codec == Codec::Json && !record.value.is_empty())
        .then(|| serde_json::from_slice(&record.value).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(at: Option<u64>) -> StepRecord {
        StepRecord::completed(StepKind::Step, "u8", b"1".to_vec(), None).with_times(at, at)
    }

    #[test]
    fn completed_steps_come_first_in_order_of_completion() {
        let waiting = StepRecord::suspended(StepKind::Suspend, "u8", None, Some(50))
            .with_times(Some(1), None);
        let history = history_of([
            ("a".to_owned(), done(Some(30))),
            ("b".to_owned(), done(Some(10))),
            ("c".to_owned(), waiting),
            ("d".to_owned(), done(None)),
            ("e".to_owned(), done(Some(10))),
            ("_input".to_owned(), done(Some(0))),
            ("_signal:p".to_owned(), done(Some(5))),
        ]);
        let keys: Vec<_> = history.steps.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["b", "e", "a", "c", "d"]);
        assert_eq!(
            history.timers,
            [PendingTimer {
                key: "c".into(),
                deadline_ms: 50
            }]
        );
        assert_eq!(history.buffered_signals[0].point, "p");
        assert_eq!(history.buffered_signals[0].received_at_ms, Some(5));
        assert_eq!(
            history.buffered_signals[0].value,
            Some(serde_json::json!(1))
        );
    }

    #[test]
    fn a_postcard_value_is_shown_by_its_length_only() {
        let rec =
            StepRecord::completed(StepKind::Step, "u32", vec![7], None).with_codec(Codec::Postcard);
        let history = history_of([("k".to_owned(), rec)]);
        assert_eq!(history.steps[0].value, None);
        assert_eq!(history.steps[0].value_len, 1);
    }
}
