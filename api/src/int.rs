//! Integers as JSON Schema means them: `3` and `3.0` are the same integer. serde takes only
//! the first for an integer field; these helpers take both, and refuse fractions, negatives
//! and values out of the field's range, as the schema does.
//!
//! `#[serde(deserialize_with = "crate::int::exact")]` on an integer field,
//! `crate::int::optional` on an `Option` of one, `crate::int::list` on an `Option<Vec<_>>`.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{self, SeqAccess, Visitor};

/// The largest integer every JSON reader holds exactly (2^53): the schema's maximum where a
/// field names none smaller.
pub const EXACT_MAX: u64 = 1 << 53;

struct Whole<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        if value > EXACT_MAX {
            return Err(E::custom(format!("{value} is past 2^53")));
        }
        T::try_from(value).map_err(|_| E::custom(format!("{value} is out of range")))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        let value = u64::try_from(value).map_err(|_| E::custom("a negative number"))?;
        self.visit_u64(value)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        // Integral floats up to 2^53 are exact; beyond, they are not the integer written.
        if value.fract() == 0.0 && (0.0..=EXACT_MAX as f64).contains(&value) {
            self.visit_u64(value as u64)
        } else {
            Err(E::custom(format!("{value} is not a non-negative integer")))
        }
    }
}

/// A non-negative integer, written with or without `.0`.
pub fn exact<'de, D: Deserializer<'de>, T: TryFrom<u64>>(deserializer: D) -> Result<T, D::Error> {
    deserializer.deserialize_any(Whole(PhantomData))
}

struct Maybe<T>(PhantomData<T>);

impl<'de, T: TryFrom<u64>> Visitor<'de> for Maybe<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        exact(deserializer).map(Some)
    }
}

/// An optional non-negative integer (absent or `null`: `None`).
pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    deserializer.deserialize_option(Maybe(PhantomData))
}

struct Items<T>(PhantomData<T>);

/// One element of a list, through [`exact`].
struct Element<T>(T);

impl<'de, T: TryFrom<u64>> serde::Deserialize<'de> for Element<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        exact(deserializer).map(Element)
    }
}

impl<'de, T: TryFrom<u64>> Visitor<'de> for Items<T> {
    type Value = Option<Vec<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of non-negative integers or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Element(item)) = seq.next_element::<Element<T>>()? {
            items.push(item);
        }
        Ok(Some(items))
    }
}

/// An optional list of non-negative integers.
pub fn list<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    deserializer: D,
) -> Result<Option<Vec<T>>, D::Error> {
    deserializer.deserialize_option(Items(PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "super::exact")]
        n: u32,
        #[serde(default, deserialize_with = "super::optional")]
        m: Option<usize>,
        #[serde(default, deserialize_with = "super::list")]
        l: Option<Vec<usize>>,
    }

    fn parse(text: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn integers_are_integers_with_or_without_a_point() {
        let body = parse(r#"{"n": 3.0, "m": 4, "l": [1, 2.0]}"#).unwrap();
        assert_eq!(
            body,
            Body {
                n: 3,
                m: Some(4),
                l: Some(vec![1, 2])
            }
        );
        assert_eq!(parse(r#"{"n": 1, "m": null}"#).unwrap().m, None);
        assert_eq!(parse(r#"{"n": 1}"#).unwrap().l, None);
        // Large integral floats parse exactly (serde_json's float_roundtrip): 3655677191092222.0
        // is that integer, not the neighbouring float a fast parser lands on.
        let large: Option<usize> = super::optional(&mut serde_json::Deserializer::from_str(
            "3655677191092222.0",
        ))
        .unwrap();
        assert_eq!(large, Some(3_655_677_191_092_222));
        for bad in [
            r#"{"n": 3.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": 1, "m": 9007199254740993}"#,
            r#"{"n": "3"}"#,
            r#"{"n": 1, "l": [1.5]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
