//! The records that tie a parent instance to its child workflows.
//!
//! # The protocol
//!
//! A workflow starts a child with one [`WriteOp::StartChild`](crate::WriteOp::StartChild)
//! transition, which writes, together:
//!
//! - in the **parent**, the link `_child:<step key>` ([`ChildLink`]: the
//!   child's key, whether it is detached) and, for an awaited child, its
//!   **point** under `<step key>`: a `Suspended` record of kind
//!   [`StepKind::Child`] whose type tag is the output type the parent
//!   expects;
//! - the **child** instance (`Running`, its `_input`), with `_parent`
//!   ([`ParentLink`]: the parent's key, the step key, detached or not).
//!
//! The child's id is derived from the parent's key and the step key
//! ([`child_instance_id`]), so a parent that replays never starts a second
//! one: the link in its snapshot answers, and the transition itself answers
//! `Exists` without writing.
//!
//! States of an awaited child's point, and who moves it:
//!
//! | point | written by | means |
//! |---|---|---|
//! | `Suspended`, kind `Child` | `StartChild` | the child has not ended |
//! | `Completed`, kind `Child`, no error | the child's `Finish` (`Completed`) | the value is the child's `_output` |
//! | `Completed`, kind `Child`, `error` set, value `failed` | the child's `Finish` (`Failed`) | the error is the child's message |
//! | `Completed`, kind `Child`, `error` set, value `cancelled` | the child's `Cancel` | the child was cancelled |
//!
//! The child's end completes the point **in the same transaction** as the
//! end itself and wakes a `Suspended` parent (it becomes `Running`), exactly
//! as a delivered signal does; a parent that is no longer active is left
//! alone. Cancelling a parent cancels, in the same transaction, every child
//! it awaits and theirs (detached children are left running). Nothing but a
//! child's end writes a point of kind `Child`: a signal to it is refused
//! (`NotAPoint`), a commit keeps it, a wait never resolves it from a
//! buffered signal.
//!
//! Failures: every link is written and read inside the transitions, so a
//! crash leaves either all of a start (or an end with its delivery) or none
//! of it. A link that does not decode is a
//! [`Corrupt`](crate::StorageErrorKind::Corrupt) storage error.

use serde::{Deserialize, Serialize};

use crate::key::{CHILD_PREFIX, MAX_KEY_LEN};
use crate::{
    Codec, EngineError, InstanceKey, InvalidKeyReason, StepKind, StepRecord, StorageError,
    StorageErrorKind,
};

/// Type tag of a `_child:<key>` record.
const CHILD_LINK_TAG: &str = "memable:child-link";
/// Type tag of a `_parent` record.
const PARENT_LINK_TAG: &str = "memable:parent-link";

/// The value of a child point that a failed child completed.
pub(crate) const CHILD_FAILED: &[u8] = b"failed";
/// The value of a child point that a cancelled child completed.
pub(crate) const CHILD_CANCELLED: &[u8] = b"cancelled";

/// A parent's record of one child it started: `_child:<step key>`.
///
/// # Examples
///
/// ```
/// use memable_core::{ChildLink, InstanceKey};
///
/// let link = ChildLink { child: InstanceKey::new("charge", "order:1:pay").unwrap(), detached: false };
/// assert_eq!(ChildLink::from_record(&link.to_record()).unwrap(), link);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildLink {
    /// The child instance.
    pub child: InstanceKey,
    /// Started detached: the parent does not await it and cancelling the
    /// parent leaves it running.
    pub detached: bool,
}

/// A child's record of its parent: `_parent`.
///
/// # Examples
///
/// ```
/// use memable_core::{InstanceKey, ParentLink};
///
/// let link = ParentLink { parent: InstanceKey::new("order", "1").unwrap(), step_key: "pay".into(), detached: false };
/// assert_eq!(ParentLink::from_record(&link.to_record()).unwrap(), link);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    /// The parent instance.
    pub parent: InstanceKey,
    /// The parent's step key for this child.
    pub step_key: String,
    /// Started detached (see [`ChildLink::detached`]).
    pub detached: bool,
}

fn link_record<T: Serialize>(tag: &str, link: &T) -> StepRecord {
    let value = serde_json::to_vec(link).unwrap_or_default();
    StepRecord::completed(StepKind::Engine, tag, value, None).with_codec(Codec::Json)
}

fn link_from<T: serde::de::DeserializeOwned>(
    tag: &str,
    what: &str,
    record: &StepRecord,
) -> Result<T, EngineError> {
    if record.type_tag != tag || record.codec != Codec::Json {
        return Err(StorageError::new(
            StorageErrorKind::Corrupt,
            "read_link",
            format!("the {what} record is not a {what} link"),
        )
        .into());
    }
    serde_json::from_slice(&record.value).map_err(|e| {
        StorageError::new(StorageErrorKind::Corrupt, "read_link", e.to_string()).into()
    })
}

impl ChildLink {
    /// The link as the record stored under `_child:<step key>`.
    ///
    /// # Examples
    ///
    /// See [`ChildLink`].
    #[must_use]
    pub fn to_record(&self) -> StepRecord {
        link_record(CHILD_LINK_TAG, self)
    }

    /// Reads a `_child:<step key>` record back.
    ///
    /// # Errors
    ///
    /// A record that is not a child link is a
    /// [`Corrupt`](StorageErrorKind::Corrupt) storage error.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{ChildLink, StepKind, StepRecord};
    /// assert!(ChildLink::from_record(&StepRecord::completed(StepKind::Engine, "u8", vec![1], None)).is_err());
    /// ```
    pub fn from_record(record: &StepRecord) -> Result<Self, EngineError> {
        link_from(CHILD_LINK_TAG, "child", record)
    }
}

impl ParentLink {
    /// The link as the record stored under `_parent`.
    ///
    /// # Examples
    ///
    /// See [`ParentLink`].
    #[must_use]
    pub fn to_record(&self) -> StepRecord {
        link_record(PARENT_LINK_TAG, self)
    }

    /// Reads a `_parent` record back.
    ///
    /// # Errors
    ///
    /// A record that is not a parent link is a
    /// [`Corrupt`](StorageErrorKind::Corrupt) storage error.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{ParentLink, StepKind, StepRecord};
    /// assert!(ParentLink::from_record(&StepRecord::completed(StepKind::Engine, "u8", vec![1], None)).is_err());
    /// ```
    pub fn from_record(record: &StepRecord) -> Result<Self, EngineError> {
        link_from(PARENT_LINK_TAG, "parent", record)
    }
}

/// The step key of a parent's link to the child it started under
/// `step_key`: `_child:<step_key>`.
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::child_link_key("pay"), "_child:pay");
/// ```
#[must_use]
pub fn child_link_key(step_key: &str) -> String {
    format!("{CHILD_PREFIX}{step_key}")
}

/// The step key a `_child:<step key>` record belongs to, if `key` is one.
pub(crate) fn child_step_of(key: &str) -> Option<&str> {
    key.strip_prefix(CHILD_PREFIX)
}

/// Escapes `:` and `%` so the parts of a derived id cannot run together.
pub(crate) fn escape(part: &str) -> String {
    part.replace('%', "%25").replace(':', "%3A")
}

/// The id of the child a parent starts under `step_key`:
/// `<parent workflow>:<parent id>:<step key>`, with `%` and `:` inside each
/// part escaped (`%25`, `%3A`) so two parents never derive the same id.
///
/// # Errors
///
/// [`InvalidKey`](EngineError::InvalidKey) (reason `TooLong`) if the id
/// would be longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN).
///
/// # Examples
///
/// ```
/// use memable_core::{child_instance_id, InstanceKey};
///
/// let parent = InstanceKey::new("order", "42").unwrap();
/// assert_eq!(child_instance_id(&parent, "pay").unwrap(), "order:42:pay");
/// let odd = InstanceKey::new("a:b", "c").unwrap();
/// assert_eq!(child_instance_id(&odd, "d").unwrap(), "a%3Ab:c:d");
/// ```
pub fn child_instance_id(parent: &InstanceKey, step_key: &str) -> Result<String, EngineError> {
    let id = format!(
        "{}:{}:{}",
        escape(parent.workflow()),
        escape(parent.instance()),
        escape(step_key)
    );
    if id.len() > MAX_KEY_LEN {
        return Err(EngineError::InvalidKey {
            label: "instance_id",
            value: id.chars().take(64).collect(),
            reason: InvalidKeyReason::TooLong {
                len: id.len(),
                max: MAX_KEY_LEN,
            },
        });
    }
    Ok(id)
}
