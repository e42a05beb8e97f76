//! Upgrades of stored step values: reading a result committed as an older
//! type and converting it to the type the code asks for now
//! ([`StepBuilder::upgrade_from`](super::step::StepBuilder::upgrade_from)).
//!
//! # The rule
//!
//! A committed result is read as the step's type `T` when its type tag is
//! `T`'s and its bytes decode as `T`. Otherwise each upgrade whose source
//! type has the record's tag is tried, in the order they were declared: its
//! source type decodes the bytes and its conversion makes the `T`. The
//! first that decodes wins. With none that applies, the read fails as it
//! would without upgrades ([`TypeMismatch`](crate::EngineError::TypeMismatch)
//! or [`Serialization`](crate::EngineError::Serialization)), never with a
//! wrong value.
//!
//! An upgrade converts on every read and writes nothing: the record keeps
//! its old bytes and tag (a replay that ends as before writes nothing, an
//! older binary still reads it), so the upgrade stays in the code for as
//! long as records of the old type may be replayed.

use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;

use crate::{EngineError, StepRecord, decode_record, decode_value, type_tag};

/// Decodes a record's bytes as an old type and converts them to the new
/// one, boxed.
type Convert<'a> =
    Box<dyn Fn(&str, &StepRecord) -> Result<Box<dyn Any + Send>, EngineError> + Send + Sync + 'a>;

/// One declared upgrade: the old type's tag, the new type, the conversion.
struct Upgrade<'a> {
    from_tag: &'static str,
    to: TypeId,
    convert: Convert<'a>,
}

/// The upgrades declared on one step, in order.
#[derive(Default)]
pub(super) struct Upgrades<'a> {
    declared: Vec<Upgrade<'a>>,
}

impl<'a> Upgrades<'a> {
    /// Declares that a value stored as `Old` is read through `convert`.
    pub(super) fn add<Old, New>(&mut self, convert: impl Fn(Old) -> New + Send + Sync + 'a)
    where
        Old: DeserializeOwned + 'static,
        New: Send + 'static,
    {
        self.declared.push(Upgrade {
            from_tag: type_tag::<Old>(),
            to: TypeId::of::<New>(),
            convert: Box::new(move |key, record| {
                let old: Old = decode_value(key, record.codec, &record.type_tag, &record.value)?;
                Ok(Box::new(convert(old)))
            }),
        });
    }

    /// Reads a completed record as `T`, through an upgrade if it was
    /// written as an older type (see the module header).
    pub(super) fn decode<T: DeserializeOwned + 'static>(
        &self,
        key: &str,
        record: &StepRecord,
    ) -> Result<T, EngineError> {
        let direct = decode_record::<T>(key, record);
        if direct.is_ok() || self.declared.is_empty() {
            return direct;
        }
        for upgrade in &self.declared {
            if upgrade.from_tag != record.type_tag || upgrade.to != TypeId::of::<T>() {
                continue;
            }
            if let Ok(value) = (upgrade.convert)(key, record)
                && let Ok(value) = value.downcast::<T>()
            {
                tracing::debug!(
                    step = key,
                    from = %record.type_tag,
                    to = type_tag::<T>(),
                    "stored step value upgraded"
                );
                return Ok(*value);
            }
        }
        direct
    }
}

#[cfg(test)]
mod tests {
    use super::Upgrades;
    use crate::{EngineError, StepKind, StepRecord, encode_value, type_tag};

    mod v1 {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Price {
            pub cents: u32,
        }
    }
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Price {
        cents: u64,
        currency: String,
    }
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Amount(u32);

    fn record<V: serde::Serialize + 'static>(value: &V) -> StepRecord {
        StepRecord::completed(
            StepKind::Step,
            type_tag::<V>(),
            encode_value("p", value).unwrap(),
            None,
        )
    }

    fn upgrades() -> Upgrades<'static> {
        let mut upgrades = Upgrades::default();
        upgrades.add(|old: v1::Price| Price {
            cents: u64::from(old.cents),
            currency: "EUR".into(),
        });
        upgrades.add(|old: Amount| Price {
            cents: u64::from(old.0),
            currency: "USD".into(),
        });
        upgrades
    }

    #[test]
    fn a_value_of_the_current_type_is_read_as_it_is() {
        let now = Price {
            cents: 5,
            currency: "CHF".into(),
        };
        assert_eq!(upgrades().decode::<Price>("p", &record(&now)).unwrap(), now);
    }

    #[test]
    fn an_old_shape_under_the_same_name_is_upgraded() {
        let old = record(&v1::Price { cents: 7 });
        assert_eq!(old.type_tag, "Price", "same tag: the shape changed");
        let read: Price = upgrades().decode("p", &old).unwrap();
        assert_eq!(read.cents, 7);
        assert_eq!(read.currency, "EUR");
    }

    #[test]
    fn a_renamed_type_is_upgraded_by_its_old_tag() {
        let read: Price = upgrades().decode("p", &record(&Amount(9))).unwrap();
        assert_eq!(read.currency, "USD");
    }

    #[test]
    fn without_a_matching_upgrade_the_read_fails_as_before() {
        let err = upgrades()
            .decode::<Price>("p", &record(&"text".to_string()))
            .unwrap_err();
        assert!(matches!(err, EngineError::TypeMismatch { .. }), "{err:?}");
        // An upgrade to another type does not apply to this read.
        let err = upgrades()
            .decode::<u64>("p", &record(&Amount(1)))
            .unwrap_err();
        assert!(matches!(err, EngineError::TypeMismatch { .. }), "{err:?}");
    }
}
