//! One roster file's contribution to an entry ([`Layer`]), where it came from
//! ([`LayerSource`]), the merge of an entry's layers, and finding the file and line a problem
//! with a merged entry comes from: shared by the loader and the provider assembly, which make
//! them, and the roster, which keeps them for `agents show`.

use std::borrow::Cow;
use std::path::PathBuf;

use serde_json::{Map, Value};
use terok_core::merge::deep_merge;
use terok_core::yaml::{YamlError, YamlIndex, parent_path};

use crate::resolve::Issue;

/// Where one layer of an entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSource {
    /// A file embedded in the binary.
    Bundled(&'static str),
    /// A file on disk.
    File(PathBuf),
}

impl LayerSource {
    /// The path shown in messages (`<bundled>/claude.yaml` for embedded files).
    pub fn display_path(&self) -> PathBuf {
        match self {
            Self::Bundled(name) => PathBuf::from(format!("<bundled>/{name}.yaml")),
            Self::File(path) => path.clone(),
        }
    }
}

impl std::fmt::Display for LayerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bundled(name) => write!(f, "bundled {name}.yaml"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One file's contribution to an entry.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) source: LayerSource,
    pub(crate) text: Cow<'static, str>,
    pub(crate) value: Value,
    /// Where it stands in the layering: 0 bundled, then 1, 2 … for the override directories
    /// in order (the system one, then the user's); agent and provider files of one level are
    /// one level.
    pub(crate) level: usize,
}

/// The merged document of one entry's layers.
pub(crate) fn merge_layers(layers: &[Layer]) -> Value {
    match layers {
        [only] => terok_core::merge::strip_markers(only.value.clone()),
        _ => layers.iter().fold(Value::Object(Map::new()), |acc, layer| {
            deep_merge(acc, layer.value.clone())
        }),
    }
}

/// Points `issue` at the last layer that sets its field (or the nearest enclosing field).
pub(crate) fn locate(layers: &[Layer], issue: &Issue) -> YamlError {
    let mut candidate = Some(issue.path.clone());
    while let Some(path) = candidate {
        if let Some(layer) = layers
            .iter()
            .rev()
            .find(|l| value_at(&l.value, &path).is_some())
        {
            let index = YamlIndex::build(&layer.text);
            let offset = if path == issue.path {
                index.value_offset(&path)
            } else {
                index.nearest_offset(&path)
            };
            return YamlError::at_offset(
                &layer.source.display_path(),
                &layer.text,
                offset,
                Some(issue.path.clone()).filter(|p| !p.is_empty()),
                issue.message.clone(),
                issue.help.clone(),
            );
        }
        candidate = parent_path(&path);
    }
    let last = layers.last();
    YamlError::at_offset(
        &last.map_or_else(|| PathBuf::from("<roster>"), |l| l.source.display_path()),
        last.map_or("", |l| l.text.as_ref()),
        None,
        Some(issue.path.clone()).filter(|p| !p.is_empty()),
        issue.message.clone(),
        issue.help.clone(),
    )
}

/// The value at a field path like `vault.path_upstreams` or `mounts[1].host_dir`.
pub(crate) fn value_at<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(value);
    }
    let mut current = value;
    for segment in path.split('.') {
        let (key, indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.as_object()?.get(key)?;
        }
        for index in indices.split(']').filter(|s| !s.is_empty()) {
            let i: usize = index.trim_start_matches('[').parse().ok()?;
            current = current.as_array()?.get(i)?;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn value_paths() {
        let v = json!({"a": {"b": [1, {"c": 2}]}});
        assert_eq!(value_at(&v, "a.b[1].c"), Some(&json!(2)));
        assert_eq!(value_at(&v, "a.b[0]"), Some(&json!(1)));
        assert_eq!(value_at(&v, "a.x"), None);
        assert_eq!(value_at(&v, ""), Some(&v));
    }
}
