//! Deep merge of layered YAML documents with the Python terok-executor's `_inherit` / `null`
//! rules (docs/compatibility.md#4), shared by config.yml layering and roster overrides.
//!
//! - mappings merge key by key, recursively;
//! - an override value of `null` deletes the key;
//! - the bare string `_inherit` keeps the base value;
//! - a list replaces the base list, unless it contains `_inherit`, which is replaced in place by
//!   the base list's items;
//! - a mapping key `_inherit` (as in `{_inherit: true, …}`) is a sentinel and is stripped.

use serde_json::{Map, Value};

/// The marker that asks for the base value (or base list items) to be kept.
pub const INHERIT: &str = "_inherit";

/// Merges `overlay` over `base` and returns the result. Neither input is assumed clean: markers
/// in parts of `overlay` that have no base counterpart are removed.
pub fn deep_merge(base: Value, overlay: Value) -> Value {
    match (base, overlay) {
        (base, Value::String(marker)) if marker == INHERIT => base,
        (Value::Object(base), Value::Object(overlay)) => Value::Object(merge_maps(base, overlay)),
        (Value::Array(base), Value::Array(overlay)) => Value::Array(merge_lists(base, overlay)),
        (_, overlay) => strip_markers(overlay),
    }
}

fn merge_maps(mut base: Map<String, Value>, overlay: Map<String, Value>) -> Map<String, Value> {
    for (key, value) in overlay {
        if key == INHERIT {
            continue;
        }
        if value.is_null() {
            base.shift_remove(&key);
            continue;
        }
        match base.get_mut(&key) {
            Some(slot) => {
                let previous = std::mem::take(slot);
                *slot = deep_merge(previous, value);
            }
            None if is_inherit_marker(&value) => {}
            None => {
                base.insert(key, strip_markers(value));
            }
        }
    }
    base
}

fn merge_lists(base: Vec<Value>, overlay: Vec<Value>) -> Vec<Value> {
    if !overlay.iter().any(is_inherit_marker) {
        return overlay.into_iter().map(strip_markers).collect();
    }
    let mut base = Some(base);
    let mut merged = Vec::with_capacity(overlay.len());
    for item in overlay {
        if is_inherit_marker(&item) {
            // Only the first marker splices; a second one has nothing left to inherit.
            merged.extend(base.take().unwrap_or_default());
        } else {
            merged.push(strip_markers(item));
        }
    }
    merged
}

/// Removes `_inherit` markers and null-valued keys from a value that has nothing to inherit from.
pub fn strip_markers(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, v)| k != INHERIT && !v.is_null() && !is_inherit_marker(v))
                .map(|(k, v)| (k, strip_markers(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|v| !is_inherit_marker(v))
                .map(strip_markers)
                .collect(),
        ),
        other => other,
    }
}

fn is_inherit_marker(value: &Value) -> bool {
    value.as_str() == Some(INHERIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_recursively_and_keep_order() {
        let base = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": 3});
        let over = json!({"b": {"y": 20, "z": 30}, "d": 4});
        let merged = deep_merge(base, over);
        assert_eq!(
            merged,
            json!({"a": 1, "b": {"x": 1, "y": 20, "z": 30}, "c": 3, "d": 4})
        );
        let keys: Vec<_> = merged.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "b", "c", "d"]);
    }

    #[test]
    fn null_deletes_a_key() {
        let merged = deep_merge(
            json!({"a": 1, "b": {"x": 1}}),
            json!({"a": null, "b": {"x": null}}),
        );
        assert_eq!(merged, json!({"b": {}}));
    }

    #[test]
    fn null_for_a_missing_key_adds_nothing() {
        assert_eq!(
            deep_merge(json!({"a": 1}), json!({"z": null})),
            json!({"a": 1})
        );
    }

    #[test]
    fn inherit_string_keeps_the_base_value() {
        let merged = deep_merge(
            json!({"a": [1, 2], "b": "x"}),
            json!({"a": "_inherit", "b": "y"}),
        );
        assert_eq!(merged, json!({"a": [1, 2], "b": "y"}));
    }

    #[test]
    fn lists_replace_unless_they_inherit() {
        assert_eq!(deep_merge(json!([1, 2]), json!([3])), json!([3]));
        assert_eq!(
            deep_merge(json!([1, 2]), json!([0, "_inherit", 3])),
            json!([0, 1, 2, 3])
        );
        assert_eq!(
            deep_merge(json!([1]), json!(["_inherit", "_inherit"])),
            json!([1])
        );
    }

    #[test]
    fn inherit_sentinel_key_is_stripped() {
        let merged = deep_merge(
            json!({"m": {"a": 1}}),
            json!({"m": {"_inherit": true, "b": 2}}),
        );
        assert_eq!(merged, json!({"m": {"a": 1, "b": 2}}));
    }

    #[test]
    fn markers_without_a_base_are_removed() {
        let merged = deep_merge(
            json!({}),
            json!({"new": {"_inherit": true, "l": ["_inherit", 1], "k": "_inherit", "n": null}, "s": "_inherit"}),
        );
        assert_eq!(merged, json!({"new": {"l": [1]}}));
    }

    #[test]
    fn scalars_and_type_changes_replace() {
        assert_eq!(
            deep_merge(json!({"a": {"x": 1}}), json!({"a": 5})),
            json!({"a": 5})
        );
        assert_eq!(
            deep_merge(json!({"a": 5}), json!({"a": {"x": 1}})),
            json!({"a": {"x": 1}})
        );
    }
}
