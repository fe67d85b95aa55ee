//! Loading and layering roster files (docs/compatibility.md#5.1): the bundled files, then
//! `/etc/terok/agent/agents/`, then `~/.config/terok/agent/agents/`. Same-name files are
//! deep-merged with the `_inherit` / `null` rules; new names add entries.
//!
//! Every file is checked against the schema on its own, so a typo is reported in the file that
//! has it. The merged entry is then resolved; a problem found there is reported in the last
//! layer that set the offending field.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use terok_core::paths::TerokPaths;
use terok_core::yaml::{self, YamlError, YamlIndex, parent_path};

use crate::bundled::BUNDLED;
use crate::error::RosterError;
use crate::layer::{Layer, LayerSource, merge_layers};
use crate::resolve::{Issue, resolve_agent, valid_entry_name};
use crate::roster::Roster;
use crate::schema::{AgentFile, ROSTER_VERSION};

/// Configures where roster files come from.
#[derive(Debug, Clone, Default)]
pub struct RosterLoader {
    override_dirs: Vec<PathBuf>,
}

impl RosterLoader {
    /// The bundled roster only.
    pub fn bundled() -> Self {
        Self::default()
    }

    /// The bundled roster with the system and user override directories of `paths`.
    pub fn for_paths(paths: &TerokPaths) -> Self {
        Self {
            override_dirs: paths.roster_override_dirs().to_vec(),
        }
    }

    /// Adds a directory of override files, layered after the ones already added.
    pub fn with_override_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.override_dirs.push(dir.into());
        self
    }

    /// Reads, validates, merges and resolves every entry.
    pub fn load(&self) -> Result<Roster, RosterError> {
        let mut warnings = Vec::new();
        let mut layers: BTreeMap<String, Vec<Layer>> = BTreeMap::new();
        for (name, yaml, json) in BUNDLED {
            // Bundled files are checked against the strict schema by the test suite; here only
            // their pre-converted JSON is parsed.
            let mut value: Value = serde_json::from_str(json).map_err(|e| {
                YamlError::at_offset(
                    &LayerSource::Bundled(name).display_path(),
                    yaml,
                    None,
                    None,
                    e.to_string(),
                    None,
                )
            })?;
            if let Value::Object(map) = &mut value {
                map.shift_remove("roster_version");
            }
            layers.entry((*name).to_owned()).or_default().push(Layer {
                source: LayerSource::Bundled(name),
                text: Cow::Borrowed(yaml),
                value,
            });
        }
        for dir in &self.override_dirs {
            for (name, path) in override_files(dir, &mut warnings)? {
                let text = fs_err::read_to_string(&path).map_err(|source| RosterError::Read {
                    path: path.clone(),
                    source,
                })?;
                if !valid_entry_name(&name) {
                    return Err(YamlError::at_offset(
                        &path,
                        &text,
                        None,
                        None,
                        format!("`{name}` is not a valid roster entry name"),
                        Some(
                            "rename the file: entry names use lowercase letters, digits, `-` and `_`, \
                             and start with a letter or digit"
                                .to_owned(),
                        ),
                    )
                    .into());
                }
                if let Some(layer) = read_layer(LayerSource::File(path), text, &mut warnings)? {
                    layers.entry(name).or_default().push(layer);
                }
            }
        }
        build_roster(layers, warnings)
    }
}

/// The `*.yaml` files of `dir`, sorted, as `(entry name, path)`. A missing directory is empty.
fn override_files(
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, PathBuf)>, RosterError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RosterError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RosterError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = file_name.strip_suffix(".yaml") {
            files.push((stem.to_owned(), path));
        } else if file_name.ends_with(".yml") {
            warnings.push(format!(
                "{}: ignored; roster files must end in .yaml",
                path.display()
            ));
        }
    }
    files.sort();
    Ok(files)
}

/// Validates one file and returns its tree without `roster_version`; `None` for a file that
/// says nothing (empty, or only `roster_version`).
fn read_layer(
    source: LayerSource,
    text: String,
    warnings: &mut Vec<String>,
) -> Result<Option<Layer>, RosterError> {
    let path = source.display_path();
    let mut value = yaml::parse_value(&text, &path)?;
    if value.is_null() {
        value = Value::Object(Map::new());
    }
    let Value::Object(map) = &mut value else {
        return Err(YamlError::at_offset(
            &path,
            &text,
            Some(0),
            None,
            "a roster file must be a mapping of fields (kind, label, headless, …)",
            None,
        )
        .into());
    };
    if let Some(version) = map.shift_remove("roster_version") {
        match version.as_u64() {
            Some(v) if v > ROSTER_VERSION => warnings.push(format!(
                "{source}: roster_version {v} is newer than this terok-executor understands \
                 ({ROSTER_VERSION}); loading it as version {ROSTER_VERSION}"
            )),
            Some(_) => {}
            None => warnings.push(format!(
                "{source}: roster_version `{}` is not an integer; treating the file as version {ROSTER_VERSION}",
                version_text(&version)
            )),
        }
    }
    if map.is_empty() {
        tracing::info!("{source}: nothing but roster_version; skipped");
        return Ok(None);
    }
    // The Python terok-executor once let users pick the vault socket; say why it is gone rather
    // than "unknown field".
    if map
        .get("vault")
        .and_then(|v| v.get("socket_path"))
        .is_some()
    {
        let offset = YamlIndex::build(&text).value_offset("vault.socket_path");
        return Err(YamlError::at_offset(
            &path,
            &text,
            offset,
            Some("vault.socket_path".to_owned()),
            "`socket_path` is no longer configurable: every container gets its own vault socket",
            Some("remove this key".to_owned()),
        )
        .into());
    }
    // Strict check of this file alone, so the error points into it.
    yaml::parse_typed::<AgentFile>(&text, &path)?;
    Ok(Some(Layer {
        source,
        text: Cow::Owned(text),
        value,
    }))
}

fn version_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn build_roster(
    layers: BTreeMap<String, Vec<Layer>>,
    warnings: Vec<String>,
) -> Result<Roster, RosterError> {
    let mut problems = Vec::new();
    let mut agents = BTreeMap::new();
    let mut providers = BTreeMap::new();
    for (name, entry_layers) in &layers {
        let merged = merge_layers(entry_layers);
        // Each file passed the strict check alone; the merge can still fail where YAML's
        // scalars read differently as a tree (`3.10` is the number 3.1): name the field.
        let file = match serde_path_to_error::deserialize::<_, AgentFile>(&merged) {
            Ok(file) => file,
            Err(err) => {
                let path = err.path().to_string();
                problems.push(locate(
                    entry_layers,
                    &Issue {
                        path: if path == "." { String::new() } else { path },
                        message: format!("the merged entry `{name}` is invalid: {}", err.inner()),
                        help: None,
                    },
                ));
                continue;
            }
        };
        match resolve_agent(name, &file) {
            Ok((agent, provider)) => {
                if let Some(provider) = provider {
                    providers.insert(provider.name.clone(), provider);
                }
                agents.insert(name.clone(), agent);
            }
            Err(issues) => problems.extend(issues.iter().map(|i| locate(entry_layers, i))),
        }
    }
    let cross = {
        let probe = Roster::new(agents, providers, BTreeMap::new(), Vec::new());
        let issues = probe.cross_entry_issues();
        (probe, issues)
    };
    let (probe, cross_issues) = cross;
    for (name, issue) in cross_issues {
        if let Some(entry_layers) = layers.get(&name) {
            problems.push(locate(entry_layers, &issue));
        }
    }
    match problems.len() {
        0 => Ok(probe.with_layers(layers, warnings)),
        1 => Err(RosterError::Invalid(problems.remove(0))),
        _ => Err(RosterError::Problems { problems }),
    }
}

/// Points `issue` at the last layer that sets its field (or the nearest enclosing field).
fn locate(layers: &[Layer], issue: &Issue) -> YamlError {
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
fn value_at<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
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
