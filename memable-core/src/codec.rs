//! Step values: bytes in a codec plus a type tag that guards against reading
//! a value as the wrong type.
//!
//! # Codecs
//!
//! Every stored value (step results, `_input`, `_output`, signal and timer
//! payloads) carries the id of the [`Codec`] that wrote it
//! ([`StepRecord::codec`]), and is read back with that codec
//! ([`decode_record`]). Values are written with [`Codec::Json`]
//! (`serde_json`), which is self-describing: fields are found by name.
//! [`Codec::Postcard`] is the encoding of memable before codec ids; records
//! it wrote stay readable, and nothing writes it any more. (postcard remains
//! the encoding of the engine's own envelopes and of the journal.)
//!
//! # Changing a stored type between deploys
//!
//! In-flight workflows replay their completed steps from the store, so a
//! value written by the old code is read by the new code's type. Safe — the
//! step replays with the right values, it does not run again:
//!
//! - **reordering** fields;
//! - **adding a field** with `#[serde(default)]`, or of type `Option<_>`
//!   (missing reads as `None`);
//! - **removing a field** (the stored one is ignored, unless the type says
//!   `#[serde(deny_unknown_fields)]`);
//! - **moving a type** to another module, crate or compiler version (the tag
//!   has no module path, see below);
//! - types whose encoding depends on the data, which a non-self-describing
//!   codec cannot replay: `serde_json::Value`, `#[serde(skip_serializing_if =
//!   .., default)]`, untagged enums, flattened structs.
//!
//! A typed error, never a silently different value:
//!
//! - **renaming a type** (or reading a value as another type):
//!   [`EngineError::TypeMismatch`], from the type tag;
//! - **changing a field's type** (`u32` to `String`), adding a field without
//!   a default, or any value the new type cannot read:
//!   [`EngineError::Serialization`], from the codec.
//!
//! To change a type on purpose, **change the step key** (`"fetch"` to
//! `"fetch:v2"`): instances that already ran the old step run the new one
//! once, with the new type. Instances that suspended with the old type at a
//! suspension point are signalled with the old type, or with a new point
//! name.
//!
//! JSON has limits postcard had not: a map's keys must serialize as strings
//! or integers (a `HashMap<(u32, u32), _>` fails to encode), and
//! non-finite floats (`NaN`, infinities) are written as `null` and fail to
//! read back; both are [`EngineError::Serialization`]. Wrap such values
//! (a `Vec` of pairs, a finite float) or encode them yourself into a
//! `Vec<u8>`.
//!
//! # What the type tag guards
//!
//! A codec alone may read a value as another type of the same shape: an
//! `i32` as a `u32`, a struct as another with the same fields. The tag makes
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
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{EngineError, StepRecord};

/// The encoding of a stored value, recorded with it by its stable id
/// ([`id`](Self::id)).
///
/// Which type changes each codec keeps readable: `docs/guarantees.md` §7.
///
/// # Examples
///
/// ```
/// use memable_core::Codec;
///
/// assert_eq!(Codec::default(), Codec::Json);
/// assert_eq!(Codec::from_id(Codec::Postcard.id()), Some(Codec::Postcard));
/// assert_eq!(Codec::from_id(200), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum Codec {
    /// postcard, the encoding of memable before codec ids (id 0): compact
    /// but not self-describing. Read only for records written then.
    Postcard,
    /// JSON through `serde_json` (id 1): self-describing, the encoding of every
    /// value written now.
    #[default]
    Json,
}

impl Codec {
    /// The stable id stored with a value.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::Codec;
    ///
    /// assert_eq!((Codec::Postcard.id(), Codec::Json.id()), (0, 1));
    /// ```
    #[must_use]
    pub const fn id(self) -> u8 {
        match self {
            Self::Postcard => 0,
            Self::Json => 1,
        }
    }

    /// The codec of a stored id; `None` for an id this build does not know
    /// (written by a newer memable, or damaged).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::Codec;
    ///
    /// assert_eq!(Codec::from_id(1), Some(Codec::Json));
    /// assert_eq!(Codec::from_id(2), None);
    /// ```
    #[must_use]
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Self::Postcard),
            1 => Some(Self::Json),
            _ => None,
        }
    }

    /// Serializes `value` in this codec; `key` names the step in errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::Codec;
    ///
    /// assert_eq!(Codec::Json.encode("k", &[1u8, 2]).unwrap(), b"[1,2]");
    /// assert_eq!(Codec::Postcard.encode("k", &7u32).unwrap(), [7]);
    /// ```
    pub fn encode<T: Serialize + ?Sized>(
        self,
        key: &str,
        value: &T,
    ) -> Result<Vec<u8>, EngineError> {
        let encoded = match self {
            Self::Postcard => postcard::to_allocvec(value).map_err(boxed),
            Self::Json => serde_json::to_vec(value).map_err(boxed),
        };
        encoded.map_err(|source| EngineError::Serialization {
            key: key.to_owned(),
            source,
        })
    }

    /// Deserializes bytes written by [`encode`](Self::encode) in this codec
    /// (no type tag check: see [`decode_value`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use memable_core::{Codec, EngineError};
    ///
    /// assert_eq!(Codec::Json.decode::<u32>("k", b"7").unwrap(), 7);
    /// assert!(matches!(
    ///     Codec::Json.decode::<u32>("k", b"\"seven\""),
    ///     Err(EngineError::Serialization { .. })
    /// ));
    /// ```
    pub fn decode<T: DeserializeOwned>(self, key: &str, bytes: &[u8]) -> Result<T, EngineError> {
        let decoded = match self {
            Self::Postcard => postcard::from_bytes(bytes).map_err(boxed),
            Self::Json => serde_json::from_slice(bytes).map_err(boxed),
        };
        decoded.map_err(|source| EngineError::Serialization {
            key: key.to_owned(),
            source,
        })
    }
}

impl From<Codec> for u8 {
    fn from(codec: Codec) -> u8 {
        codec.id()
    }
}

impl TryFrom<u8> for Codec {
    type Error = String;

    fn try_from(id: u8) -> Result<Self, String> {
        Self::from_id(id).ok_or_else(|| format!("unknown value codec id {id}"))
    }
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(
    e: E,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

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

/// Serializes a step value with the default codec ([`Codec::Json`]), the
/// codec of the records built by [`StepRecord::completed`]; `key` names the
/// step in errors.
///
/// # Examples
///
/// ```
/// let bytes = memable_core::encode_value("k", &7u32).unwrap();
/// assert_eq!(bytes, b"7");
/// ```
pub fn encode_value<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<u8>, EngineError> {
    Codec::default().encode(key, value)
}

/// Deserializes a step value written in `codec` after checking its type tag
/// against `T`: [`EngineError::TypeMismatch`] if the tags differ,
/// [`EngineError::Serialization`] if the bytes do not read as `T`. The
/// engine reads stored records with [`decode_record`], which passes the
/// record's own codec and tag.
///
/// # Examples
///
/// ```
/// use memable_core::{decode_value, encode_value, type_tag, Codec, EngineError};
///
/// let bytes = encode_value("k", &7u32).unwrap();
/// assert_eq!(decode_value::<u32>("k", Codec::Json, type_tag::<u32>(), &bytes).unwrap(), 7);
/// assert!(matches!(
///     decode_value::<i32>("k", Codec::Json, type_tag::<u32>(), &bytes),
///     Err(EngineError::TypeMismatch { .. })
/// ));
/// // Bytes written by memable before codec ids:
/// assert_eq!(decode_value::<u32>("k", Codec::Postcard, "u32", &[7]).unwrap(), 7);
/// ```
pub fn decode_value<T: DeserializeOwned + 'static>(
    key: &str,
    codec: Codec,
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
    codec.decode(key, bytes)
}

/// Reads the value of a stored record as `T`: its type tag is checked, then
/// its bytes decoded with the record's own [`codec`](StepRecord::codec).
///
/// # Examples
///
/// ```
/// use memable_core::{decode_record, encode_value, type_tag, Codec, EngineError, StepKind, StepRecord};
///
/// let rec = StepRecord::completed(StepKind::Step, type_tag::<String>(), encode_value("k", "hi").unwrap(), None);
/// assert_eq!(decode_record::<String>("k", &rec).unwrap(), "hi");
/// assert!(matches!(decode_record::<u32>("k", &rec), Err(EngineError::TypeMismatch { .. })));
///
/// // A record written by memable before codec ids.
/// let old = StepRecord::completed(StepKind::Step, "u32", vec![7], None).with_codec(Codec::Postcard);
/// assert_eq!(decode_record::<u32>("k", &old).unwrap(), 7);
/// ```
pub fn decode_record<T: DeserializeOwned + 'static>(
    key: &str,
    record: &StepRecord,
) -> Result<T, EngineError> {
    decode_value(key, record.codec, &record.type_tag, &record.value)
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
            decode_value("k", Codec::Json, type_tag::<old_home::Order>(), &bytes).unwrap();
        assert_eq!(moved, new_home::Order { id: 3 });
    }

    #[test]
    fn a_renamed_type_of_the_same_shape_is_a_mismatch() {
        let bytes = encode_value("k", &old_home::Order { id: 3 }).unwrap();
        let err = decode_value::<new_home::Invoice>(
            "k",
            Codec::Json,
            type_tag::<old_home::Order>(),
            &bytes,
        )
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
        let owned: String = decode_value("k", Codec::Json, type_tag::<&str>(), &bytes).unwrap();
        assert_eq!(owned, "done");
    }

    #[test]
    fn same_width_integers_do_not_alias() {
        let bytes = encode_value("k", &5i32).unwrap();
        assert!(matches!(
            decode_value::<u32>("k", Codec::Json, type_tag::<i32>(), &bytes),
            Err(EngineError::TypeMismatch { .. })
        ));
    }

    #[test]
    fn corrupt_bytes_with_the_right_tag_are_a_serialization_error() {
        for codec in [Codec::Json, Codec::Postcard] {
            let err = decode_value::<String>("k", codec, type_tag::<String>(), &[200]).unwrap_err();
            assert!(matches!(err, EngineError::Serialization { .. }), "{err:?}");
        }
    }
}
