//! Whether every mapping in a YAML text names each key once, with keys compared as the config
//! reader sees them: a tag can make YAML count two keys (`!t image` and `image`) where serde
//! gets one twice.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// `true` when no mapping in `text` repeats a key; `false` when one does, or when the text
/// cannot be walked (then nothing can be promised about it).
pub fn keys_are_unique(text: &str) -> bool {
    let options = serde_saphyr::options! { with_snippet: false };
    matches!(
        serde_saphyr::from_str_with_options::<Option<Unique>>(text, options),
        Ok(None | Some(Unique(true)))
    )
}

/// Whether the value just read, and everything in it, repeats no key.
struct Unique(bool);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

/// A scalar holds no keys.
macro_rules! scalars {
    ($($method:ident($type:ty)),* $(,)?) => {
        $(fn $method<E>(self, _: $type) -> Result<Unique, E> {
            Ok(Unique(true))
        })*
    };
}

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    scalars!(
        visit_bool(bool),
        visit_i64(i64),
        visit_i128(i128),
        visit_u64(u64),
        visit_u128(u128),
        visit_f64(f64),
        visit_str(&str),
        visit_string(String),
        visit_bytes(&[u8]),
    );

    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique(true))
    }

    fn visit_none<E>(self) -> Result<Unique, E> {
        Ok(Unique(true))
    }

    fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Unique, D::Error> {
        Unique::deserialize(inner)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        let mut unique = true;
        while let Some(Unique(inner)) = seq.next_element()? {
            unique &= inner;
        }
        Ok(Unique(unique))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = BTreeSet::new();
        let mut unique = true;
        while let Some(key) = map.next_key::<serde_json::Value>()? {
            let name = match key {
                serde_json::Value::String(name) => name,
                other => other.to_string(),
            };
            unique &= seen.insert(name);
            let Unique(inner) = map.next_value()?;
            unique &= inner;
        }
        Ok(Unique(unique))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_seen_at_any_depth_and_through_tags() {
        assert!(keys_are_unique(""));
        assert!(keys_are_unique("a: 1\nb: [x, {c: 2}]\nd:\n  e: f\n"));
        assert!(!keys_are_unique("!t image: 1\nimage: 2\n"));
        assert!(!keys_are_unique("a:\n  - b: 1\n    !t b: 2\n"));
        assert!(!keys_are_unique("a: [\n"));
    }
}
