//! Key validation and the `(workflow name, instance id)` pair that names an instance.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{EngineError, InvalidKeyReason};

/// The longest key component accepted, in bytes (workflow names, instance
/// ids and step keys alike).
///
/// # Examples
///
/// ```
/// assert_eq!(memable_core::MAX_KEY_LEN, 4096);
/// ```
pub const MAX_KEY_LEN: usize = 4096;

/// Key of the reserved step holding an instance's input.
pub(crate) const INPUT_KEY: &str = "_input";
/// Key of the reserved step holding an instance's output.
pub(crate) const OUTPUT_KEY: &str = "_output";
/// Prefix of the reserved step key under which a signal that arrived before
/// its workflow reached the point is buffered: `_signal:<point key>`.
pub(crate) const SIGNAL_PREFIX: &str = "_signal:";
/// Prefix of a parent's link to a child it started: `_child:<step key>`.
pub(crate) const CHILD_PREFIX: &str = "_child:";
/// Key of a queued instance's ticket, and the point a queued instance
/// waits at until it is admitted.
pub(crate) const QUEUE_KEY: &str = "_queue";
/// Key of a child's link to its parent.
pub(crate) const PARENT_KEY: &str = "_parent";

/// The reserved step key of the buffered signal for `point`.
pub(crate) fn buffered_signal_key(point: &str) -> String {
    format!("{SIGNAL_PREFIX}{point}")
}

/// Checks one key component: not empty, no `/`, at most [`MAX_KEY_LEN`] bytes.
///
/// `label` names the component in the error (`"workflow_name"`,
/// `"instance_id"`, `"step_key"`).
///
/// # Examples
///
/// ```
/// use memable_core::{validate_key, EngineError, InvalidKeyReason};
///
/// assert!(validate_key("step_key", "fetch:v1").is_ok());
/// assert!(matches!(
///     validate_key("step_key", "a/b"),
///     Err(EngineError::InvalidKey { reason: InvalidKeyReason::ContainsSlash, .. })
/// ));
/// assert!(matches!(
///     validate_key("step_key", ""),
///     Err(EngineError::InvalidKey { reason: InvalidKeyReason::Empty, .. })
/// ));
/// ```
pub fn validate_key(label: &'static str, value: &str) -> Result<(), EngineError> {
    let reason = if value.is_empty() {
        InvalidKeyReason::Empty
    } else if value.len() > MAX_KEY_LEN {
        InvalidKeyReason::TooLong {
            len: value.len(),
            max: MAX_KEY_LEN,
        }
    } else if value.contains('/') {
        InvalidKeyReason::ContainsSlash
    } else {
        return Ok(());
    };
    Err(invalid(label, value, reason))
}

fn invalid(label: &'static str, value: &str, reason: InvalidKeyReason) -> EngineError {
    EngineError::InvalidKey {
        label,
        value: value.to_owned(),
        reason,
    }
}

/// Checks a key chosen by user code: [`validate_key`] plus the rule that keys
/// starting with `_` are reserved for the engine.
///
/// # Examples
///
/// ```
/// use memable_core::{validate_user_key, EngineError, InvalidKeyReason};
///
/// assert!(validate_user_key("step_key", "charge").is_ok());
/// assert!(matches!(
///     validate_user_key("step_key", "_input"),
///     Err(EngineError::InvalidKey { reason: InvalidKeyReason::Reserved, .. })
/// ));
/// ```
pub fn validate_user_key(label: &'static str, value: &str) -> Result<(), EngineError> {
    validate_key(label, value)?;
    if value.starts_with('_') {
        return Err(invalid(label, value, InvalidKeyReason::Reserved));
    }
    Ok(())
}

/// Names one workflow instance: `(workflow name, instance id)`.
///
/// Every table of every store is keyed by this pair, so two workflows may use
/// the same instance id. Cloning is cheap (two reference counts).
///
/// # Examples
///
/// ```
/// use memable_core::InstanceKey;
///
/// let key = InstanceKey::new("orders", "order-42").unwrap();
/// assert_eq!(key.workflow(), "orders");
/// assert_eq!(key.instance(), "order-42");
/// assert!(InstanceKey::new("orders", "a/b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceKey {
    workflow: Arc<str>,
    instance: Arc<str>,
}

impl InstanceKey {
    /// Builds a key after validating both components with [`validate_key`].
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{EngineError, InstanceKey, InvalidKeyReason};
    ///
    /// assert!(matches!(
    ///     InstanceKey::new("", "1"),
    ///     Err(EngineError::InvalidKey { label: "workflow_name", reason: InvalidKeyReason::Empty, .. })
    /// ));
    /// ```
    pub fn new(workflow: &str, instance: &str) -> Result<Self, EngineError> {
        validate_key("workflow_name", workflow)?;
        validate_key("instance_id", instance)?;
        Ok(Self {
            workflow: Arc::from(workflow),
            instance: Arc::from(instance),
        })
    }

    /// The smallest key in `(workflow, instance)` order, for range scans.
    pub(crate) fn min() -> Self {
        Self {
            workflow: Arc::from(""),
            instance: Arc::from(""),
        }
    }

    /// The workflow name.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_core::InstanceKey;
    /// assert_eq!(InstanceKey::new("etl", "1").unwrap().workflow(), "etl");
    /// ```
    #[must_use]
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// The instance id.
    ///
    /// # Examples
    ///
    /// ```
    /// # use memable_core::InstanceKey;
    /// assert_eq!(InstanceKey::new("etl", "1").unwrap().instance(), "1");
    /// ```
    #[must_use]
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

/// Serializes as the pair `(workflow, instance)`.
impl Serialize for InstanceKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.workflow(), self.instance()).serialize(serializer)
    }
}

/// Deserializes the pair `(workflow, instance)` and validates it like
/// [`InstanceKey::new`]: stored bytes never produce a key that `new` refuses.
impl<'de> Deserialize<'de> for InstanceKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (workflow, instance) = <(Cow<'de, str>, Cow<'de, str>)>::deserialize(deserializer)?;
        Self::new(&workflow, &instance).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.workflow, self.instance)
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.workflow, self.instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_slash_empty_reserved_and_long_keys() {
        assert!(matches!(
            validate_key("step_key", "a/b"),
            Err(EngineError::InvalidKey {
                label: "step_key",
                reason: InvalidKeyReason::ContainsSlash,
                ..
            })
        ));
        assert!(matches!(
            validate_key("instance_id", ""),
            Err(EngineError::InvalidKey {
                label: "instance_id",
                reason: InvalidKeyReason::Empty,
                ..
            })
        ));
        assert!(matches!(
            validate_user_key("step_key", "_output"),
            Err(EngineError::InvalidKey {
                reason: InvalidKeyReason::Reserved,
                ..
            })
        ));
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(matches!(
            validate_key("step_key", &long),
            Err(EngineError::InvalidKey {
                reason: InvalidKeyReason::TooLong { len, max: MAX_KEY_LEN },
                ..
            }) if len == MAX_KEY_LEN + 1
        ));
    }

    #[test]
    fn accepts_unicode_and_limit_length_keys() {
        assert!(validate_user_key("step_key", "étape-ß-步骤").is_ok());
        assert!(validate_key("step_key", &"k".repeat(MAX_KEY_LEN)).is_ok());
        // Reserved keys are fine for the engine itself.
        assert!(validate_key("step_key", INPUT_KEY).is_ok());
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let key = InstanceKey::new("orders", "42").unwrap();
        let bytes = postcard::to_allocvec(&key).unwrap();
        assert_eq!(postcard::from_bytes::<InstanceKey>(&bytes).unwrap(), key);
        let bad = postcard::to_allocvec(&("orders", "a/b")).unwrap();
        assert!(postcard::from_bytes::<InstanceKey>(&bad).is_err());
        let empty = postcard::to_allocvec(&("", "1")).unwrap();
        assert!(postcard::from_bytes::<InstanceKey>(&empty).is_err());
    }

    #[test]
    fn same_instance_id_under_two_workflows_differs() {
        let a = InstanceKey::new("a", "1").unwrap();
        let b = InstanceKey::new("b", "1").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.to_string(), "a/1");
    }
}
