//! Step values: postcard bytes plus a type tag that guards against reading a
//! value as the wrong type.
//!
//! # What the type tag guards
//!
//! postcard is not self-describing: the bytes of an `i32` decode happily as a
//! `u32`, and a struct may decode as another of the same shape. The tag makes
//! such a mix-up a [`TypeMismatch`](EngineError::TypeMismatch) instead of a
//! silently wrong value.
//!
//! The tag is [`std::any::type_name`] with every module path removed:
//! `my_app::orders::Order` and `Vec<my_app::orders::Order>` are stored as
//! `Order` and `Vec<Order>`. So **moving a type to another module, crate or
//! compiler version keeps in-flight workflows working**, while **renaming a
//! type or reading a value as a different type is a `TypeMismatch`**. When a
//! type is renamed on purpose, change the step key (`"fetch:v2"`) so the step
//! runs again with the new type.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use foldhash::fast::RandomState;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::EngineError;

/// The type tag stored with values of type `T`: its type name with module
/// paths removed, string types (`&str`, `Box<str>`, …) written as `String`.
///
/// # Examples
///
/// ```
/// use memable_core::type_tag;
///
/// mod billing { #[derive(serde::Serialize)] pub struct Invoice; }
/// assert_eq!(type_tag::<billing::Invoice>(), "Invoice");
/// assert_eq!(type_tag::<Vec<String>>(), "Vec<String>");
/// assert_eq!(type_tag::<Option<(u32, i64)>>(), "Option<(u32, i64)>");
/// assert_eq!(type_tag::<&str>(), "String");
/// ```
#[must_use]
pub fn type_tag<T: ?Sized + 'static>() -> &'static str {
    static TAGS: OnceLock<RwLock<HashMap<TypeId, &'static str, RandomState>>> = OnceLock::new();
    let tags = TAGS.get_or_init(Default::default);
    let id = TypeId::of::<T>();
    if let Some(tag) = tags.read().ok().and_then(|map| map.get(&id).copied()) {
        return tag;
    }
    let tag: &'static str = Box::leak(normalize(std::any::type_name::<T>()).into_boxed_str());
    if let Ok(mut map) = tags.write() {
        map.insert(id, tag);
    }
    tag
}

/// The tag of a type name: module paths removed, and the string types that
/// serialize like `String` (`&str`, `Box<str>`, `Cow<str>`, `Arc<str>`,
/// `Rc<str>`) written as `String`, so a workflow may return `"done"` and be
/// read back as a `String`.
fn normalize(name: &str) -> String {
    let mut tag = strip_paths(name);
    for alias in [
        "&'static str",
        "&str",
        "Box<str>",
        "Cow<str>",
        "Arc<str>",
        "Rc<str>",
    ] {
        tag = tag.replace(alias, "String");
    }
    tag
}

/// Removes every `path::` prefix from a type name, keeping generics.
fn strip_paths(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut segment = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            segment.clear();
        } else if c.is_alphanumeric() || c == '_' {
            segment.push(c);
        } else {
            out.push_str(&segment);
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(&segment);
    out
}

/// Serializes a step value with postcard; `key` names the step in errors.
///
/// # Examples
///
/// ```
/// let bytes = memable_core::encode_value("k", &7u32).unwrap();
/// assert_eq!(bytes, vec![7]);
/// ```
pub fn encode_value<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, EngineError> {
    postcard::to_allocvec(value).map_err(|e| EngineError::Serialization {
        key: key.to_owned(),
        source: Box::new(e),
    })
}

/// Deserializes a step value after checking its type tag against `T`.
///
/// # Examples
///
/// ```
/// use memable_core::{decode_value, encode_value, type_tag, EngineError};
///
/// let bytes = encode_value("k", &7u32).unwrap();
/// assert_eq!(decode_value::<u32>("k", type_tag::<u32>(), &bytes).unwrap(), 7);
/// assert!(matches!(
///     decode_value::<i32>("k", type_tag::<u32>(), &bytes),
///     Err(EngineError::TypeMismatch { .. })
/// ));
/// ```
pub fn decode_value<T: DeserializeOwned + 'static>(
    key: &str,
    found_tag: &str,
    bytes: &[u8],
) -> Result<T, EngineError> {
    let expected = type_tag::<T>();
    if expected != found_tag {
        return Err(EngineError::TypeMismatch {
            key: key.to_owned(),
            expected: expected.to_owned(),
            found: found_tag.to_owned(),
        });
    }
    postcard::from_bytes(bytes).map_err(|e| EngineError::Serialization {
        key: key.to_owned(),
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    mod old_home {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        pub struct Order {
            pub id: u32,
        }
    }
    mod new_home {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        pub struct Order {
            pub id: u32,
        }
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        pub struct Invoice {
            pub id: u32,
        }
    }

    #[test]
    fn a_type_that_moves_module_keeps_its_tag() {
        let bytes = encode_value("k", &old_home::Order { id: 3 }).unwrap();
        let moved: new_home::Order =
            decode_value("k", type_tag::<old_home::Order>(), &bytes).unwrap();
        assert_eq!(moved, new_home::Order { id: 3 });
    }

    #[test]
    fn a_renamed_type_of_the_same_shape_is_a_mismatch() {
        let bytes = encode_value("k", &old_home::Order { id: 3 }).unwrap();
        let err = decode_value::<new_home::Invoice>("k", type_tag::<old_home::Order>(), &bytes)
            .unwrap_err();
        match err {
            EngineError::TypeMismatch {
                key,
                expected,
                found,
            } => {
                assert_eq!(
                    (key.as_str(), expected.as_str(), found.as_str()),
                    ("k", "Invoice", "Order")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn strips_paths_inside_generics_and_tuples() {
        assert_eq!(strip_paths("alloc::vec::Vec<my::T>"), "Vec<T>");
        assert_eq!(
            strip_paths("core::option::Option<(a::B, std::string::String)>"),
            "Option<(B, String)>"
        );
        assert_eq!(strip_paths("[u8; 4]"), "[u8; 4]");
        assert_eq!(strip_paths("&str"), "&str");
    }

    #[test]
    fn borrowed_and_owned_strings_share_a_tag() {
        assert_eq!(type_tag::<&'static str>(), type_tag::<String>());
        assert_eq!(type_tag::<Vec<&'static str>>(), "Vec<String>");
        let bytes = encode_value("k", "done").unwrap();
        let owned: String = decode_value("k", type_tag::<&str>(), &bytes).unwrap();
        assert_eq!(owned, "done");
    }

    #[test]
    fn same_width_integers_do_not_alias() {
        let bytes = encode_value("k", &5i32).unwrap();
        assert!(matches!(
            decode_value::<u32>("k", type_tag::<i32>(), &bytes),
            Err(EngineError::TypeMismatch { .. })
        ));
    }

    #[test]
    fn corrupt_bytes_with_the_right_tag_are_a_serialization_error() {
        let err = decode_value::<String>("k", type_tag::<String>(), &[200]).unwrap_err();
        assert!(matches!(err, EngineError::Serialization { .. }), "{err:?}");
    }
}
