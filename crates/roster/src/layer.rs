//! One roster file's contribution to an entry ([`Layer`]), where it came from
//! ([`LayerSource`]), and the merge of an entry's layers: shared by the loader, which makes
//! them, and the roster, which keeps them for `agents show`.

use std::borrow::Cow;
use std::path::PathBuf;

use serde_json::{Map, Value};
use terok_core::merge::deep_merge;

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
