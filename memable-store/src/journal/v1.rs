//! Journal format 1: the layout of [`WriteOp`]s before step records carried
//! a codec id. Only read: a journal of format 1 left by an older memable is
//! replayed through these types, each record converted to a
//! [`StepRecord`] of [`Codec::Postcard`](memable_core::Codec::Postcard).
//!
//! The variants mirror [`WriteOp`] as it was at format 1, in the same order
//! (postcard encodes a variant by its index): never reorder or extend them.

use memable_core::transitions::WriteOp;
use memable_core::{Finish, InstanceKey, StepRecord, StepRecordV1};
use serde::Deserialize;

/// A [`WriteOp`] as journal format 1 holds it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) enum OpV1 {
    Start {
        key: InstanceKey,
        input: StepRecordV1,
        now_ms: u64,
    },
    Commit {
        key: InstanceKey,
        step_key: String,
        record: StepRecordV1,
    },
    Suspend {
        key: InstanceKey,
        step_key: String,
        record: StepRecordV1,
        status: Option<String>,
        now_ms: u64,
    },
    Claim {
        key: InstanceKey,
        step_key: String,
        payload: StepRecordV1,
        now_ms: u64,
    },
    Finish {
        key: InstanceKey,
        finish: FinishV1,
        now_ms: u64,
    },
    Revive {
        key: InstanceKey,
        now_ms: u64,
    },
    Cancel {
        key: InstanceKey,
        now_ms: u64,
    },
    Delete {
        key: InstanceKey,
    },
}

/// A [`Finish`] as journal format 1 holds it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) enum FinishV1 {
    Completed {
        status: Option<String>,
        output: StepRecordV1,
    },
    Failed(String),
}

impl From<OpV1> for WriteOp {
    fn from(op: OpV1) -> Self {
        let rec = StepRecord::from;
        match op {
            OpV1::Start { key, input, now_ms } => WriteOp::Start {
                key,
                input: rec(input),
                now_ms,
            },
            OpV1::Commit {
                key,
                step_key,
                record,
            } => WriteOp::Commit {
                key,
                step_key,
                record: rec(record),
            },
            OpV1::Suspend {
                key,
                step_key,
                record,
                status,
                now_ms,
            } => WriteOp::Suspend {
                key,
                step_key,
                record: rec(record),
                status,
                now_ms,
            },
            OpV1::Claim {
                key,
                step_key,
                payload,
                now_ms,
            } => WriteOp::Claim {
                key,
                step_key,
                payload: rec(payload),
                now_ms,
            },
            OpV1::Finish {
                key,
                finish,
                now_ms,
            } => WriteOp::Finish {
                key,
                finish: match finish {
                    FinishV1::Completed { status, output } => Finish::Completed {
                        status,
                        output: rec(output),
                    },
                    FinishV1::Failed(error) => Finish::Failed(error),
                },
                now_ms,
            },
            OpV1::Revive { key, now_ms } => WriteOp::Revive { key, now_ms },
            OpV1::Cancel { key, now_ms } => WriteOp::Cancel { key, now_ms },
            OpV1::Delete { key } => WriteOp::Delete { key },
        }
    }
}

/// Decodes the ops of one format-1 record.
pub(super) fn decode(payload: &[u8]) -> Result<Vec<WriteOp>, postcard::Error> {
    let ops: Vec<OpV1> = postcard::from_bytes(payload)?;
    Ok(ops.into_iter().map(WriteOp::from).collect())
}
