//! Loading and layering roster files (docs/compatibility.md#5.1): the bundled files, then
//! `/etc/terok/agent/agents/`, then `~/.config/terok/agent/agents/`; roster v3 provider files
//! from the `providers/` directories beside them. Same-name files are deep-merged with the
//! `_inherit` / `null` rules; new names add entries.
//!
//! Every file is checked against the schema on its own, so a typo is reported in the file that
//! has it. The merged entry is then resolved; a problem found there is reported in the last
//! layer that set the offending field.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use terok_core::paths::TerokPaths;
use terok_core::yaml::{self, YamlError, YamlIndex};

use crate::bundled::BUNDLED;
use crate::error::RosterError;
use crate::layer::{Layer, LayerSource, locate, merge_layers};
use crate::providers::{AGENT_KEYS, assemble};
use crate::resolve::{Issue, resolve_agent, valid_entry_name};
use crate::roster::Roster;
use crate::schema::{AgentFile, ProviderFile, ROSTER_VERSION};

/// Configures where roster files come from.
#[derive(Debug, Clone, Default)]
pub struct RosterLoader {
    override_dirs: Vec<PathBuf>,
    provider_dirs: Vec<PathBuf>,
}

/// Which kind of roster file is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    /// An agent, tool or image component (`agents/<name>.yaml`).
    Entry,
    /// A roster v3 provider (`providers/<name>.yaml`).
    Provider,
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
            provider_dirs: paths.provider_override_dirs().to_vec(),
        }
    }

    /// Adds a directory of override files, layered after the ones already added.
    pub fn with_override_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.override_dirs.push(dir.into());
        self
    }

    /// Adds a directory of roster v3 provider files, layered after the ones already added.
    pub fn with_provider_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.provider_dirs.push(dir.into());
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
                level: 0,
            });
        }
        for (i, dir) in self.override_dirs.iter().enumerate() {
            for (name, layer) in read_dir_layers(dir, FileKind::Entry, i + 1, &mut warnings)? {
                layers.entry(name).or_default().push(layer);
            }
        }
        let mut provider_layers: BTreeMap<String, Vec<Layer>> = BTreeMap::new();
        for (i, dir) in self.provider_dirs.iter().enumerate() {
            for (name, layer) in read_dir_layers(dir, FileKind::Provider, i + 1, &mut warnings)? {
                provider_layers.entry(name).or_default().push(layer);
            }
        }
        add_opencode_family_layers(&mut layers, &provider_layers, &mut warnings);
        build_roster(layers, &provider_layers, warnings)
    }
}

/// The layers of every `*.yaml` file of `dir`, by entry name, in name order.
fn read_dir_layers(
    dir: &Path,
    kind: FileKind,
    level: usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, Layer)>, RosterError> {
    let mut out = Vec::new();
    for (name, path) in override_files(dir, warnings)? {
        let text = fs_err::read_to_string(&path).map_err(|source| RosterError::Read {
            path: path.clone(),
            source,
        })?;
        if !valid_entry_name(&name) {
            let what = match kind {
                FileKind::Entry => "roster entry",
                FileKind::Provider => "provider",
            };
            return Err(YamlError::at_offset(
                &path,
                &text,
                None,
                None,
                format!("`{name}` is not a valid {what} name"),
                Some(
                    "rename the file: names use lowercase letters, digits, `-` and `_`, \
                     and start with a letter or digit"
                        .to_owned(),
                ),
            )
            .into());
        }
        if let Some(mut layer) = read_layer(LayerSource::File(path), text, kind, warnings)? {
            layer.level = level;
            out.push((name, layer));
        }
    }
    Ok(out)
}

/// A provider file's `opencode`, `install` and `help` describe the OpenCode-family agent of its
/// name: they are a layer of that entry at the file's level, over a harness entry made for it
/// when the roster has none (and only while the merged provider has `opencode:`).
fn add_opencode_family_layers(
    layers: &mut BTreeMap<String, Vec<Layer>>,
    provider_layers: &BTreeMap<String, Vec<Layer>>,
    warnings: &mut Vec<String>,
) {
    for (name, files) in provider_layers {
        let agent_parts: Vec<Layer> = files
            .iter()
            .filter_map(|file| {
                let map = file.value.as_object()?;
                let part: Map<String, Value> = map
                    .iter()
                    .filter(|(k, _)| AGENT_KEYS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (!part.is_empty()).then(|| Layer {
                    source: file.source.clone(),
                    text: file.text.clone(),
                    value: Value::Object(part),
                    level: file.level,
                })
            })
            .collect();
        if agent_parts.is_empty() {
            continue;
        }
        if !layers.contains_key(name) {
            let merged = merge_layers(files);
            if merged.get("opencode").is_none_or(Value::is_null) {
                warnings.push(format!(
                    "{}: `install` and `help` ignored: they describe the OpenCode agent of a \
                     provider, and provider `{name}` has no `opencode:` section",
                    agent_parts[0].source
                ));
                continue;
            }
            layers.entry(name.clone()).or_default().push(Layer {
                source: agent_parts[0].source.clone(),
                text: agent_parts[0].text.clone(),
                value: opencode_harness(name, &merged),
                level: 0,
            });
        }
        let entry = layers.entry(name.clone()).or_default();
        entry.extend(agent_parts);
        // Stable: files of one level keep their order.
        entry.sort_by_key(|l| l.level);
    }
}

/// The entry an OpenCode-family provider file implies when no agent file describes it: a
/// harness run through `opencode-provider` under the provider's name, with the key in
/// `<PREFIX>_API_KEY`.
fn opencode_harness(name: &str, provider: &Value) -> Value {
    let opencode = provider.get("opencode");
    let label = provider
        .get("label")
        .or_else(|| opencode.and_then(|o| o.get("display_name")))
        .and_then(Value::as_str)
        .unwrap_or(name);
    let mut binding = serde_json::json!({ "default": name });
    if let Some(prefix) = opencode
        .and_then(|o| o.get("env_var_prefix"))
        .and_then(Value::as_str)
    {
        binding["token_env"] = serde_json::json!({ "_default": format!("{prefix}_API_KEY") });
    }
    serde_json::json!({
        "kind": "harness",
        "label": label,
        "binary": name,
        "headless": { "subcommand": "run", "prompt_flag": "" },
        "acp": { "command": [format!("{name}-acp")] },
        "install": {
            "depends_on": "opencode",
            "run_as_root": format!(
                "RUN ln -sf /usr/local/bin/opencode-provider /usr/local/bin/{name} \\\n \
                 && ln -sf /usr/local/bin/opencode-provider /usr/local/bin/{name}-acp\n"
            ),
            "smoke": format!("test -x \"$(command -v {name})\" && opencode --version"),
        },
        "provider": binding,
    })
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
    kind: FileKind,
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
    let version = map
        .shift_remove("roster_version")
        .map(|version| match version.as_u64() {
            Some(v) if v > ROSTER_VERSION => {
                warnings.push(format!(
                    "{source}: roster_version {v} is newer than this terok-executor understands \
                     ({ROSTER_VERSION}); loading it as version {ROSTER_VERSION}"
                ));
                ROSTER_VERSION
            }
            Some(v) => v,
            None => {
                warnings.push(format!(
                    "{source}: roster_version `{}` is not an integer; treating the file as version {ROSTER_VERSION}",
                    version_text(&version)
                ));
                ROSTER_VERSION
            }
        });
    if map.is_empty() {
        tracing::info!("{source}: nothing but roster_version; skipped");
        return Ok(None);
    }
    if kind == FileKind::Provider {
        check_provider_file(&path, &text)?;
        return Ok(Some(Layer {
            source,
            text: Cow::Owned(text),
            value,
            level: 0,
        }));
    }
    check_route_shape(&path, &text, map, version)?;
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
        level: 0,
    }))
}

/// An entry routes through `vault:` (roster v1) or `provider:` (v3); a v3 file has no `vault:`.
fn check_route_shape(
    path: &Path,
    text: &str,
    map: &Map<String, Value>,
    version: Option<u64>,
) -> Result<(), RosterError> {
    let has = |key: &str| map.get(key).is_some_and(|v| !v.is_null());
    let problem = if has("vault") && has("provider") {
        Some(
            "`vault:` (roster v1) and `provider:` (roster v3) both route this entry; a file uses one",
        )
    } else if has("vault") && version.is_some_and(|v| v >= 3) {
        Some("a roster v3 agent file has no `vault:` section; its route is a provider's")
    } else {
        None
    };
    let Some(message) = problem else {
        return Ok(());
    };
    Err(YamlError::at_offset(
        path,
        text,
        YamlIndex::build(text).key_offset("vault"),
        Some("vault".to_owned()),
        message,
        Some(
            "move the route into providers/<name>.yaml and name it in `provider.default`, \
             or write the file as roster_version 1 without `provider:`"
                .to_owned(),
        ),
    )
    .into())
}

/// A provider file alone: the schema, and what the vault can do with its `auth:` (OAuth goes
/// as `Authorization: Bearer`; extra headers only with OAuth).
fn check_provider_file(path: &Path, text: &str) -> Result<(), RosterError> {
    let file: ProviderFile = yaml::parse_typed(text, path)?;
    let auth = file.auth.unwrap_or_default();
    let oauth = auth.oauth.unwrap_or_default();
    let problem = if oauth
        .header
        .as_deref()
        .is_some_and(|h| !h.eq_ignore_ascii_case("authorization"))
    {
        Some((
            "auth.oauth.header",
            "the vault presents OAuth tokens as `Authorization: Bearer …`; another header is not supported",
        ))
    } else if oauth.prefix.as_deref().is_some_and(|p| p != "Bearer ") {
        Some((
            "auth.oauth.prefix",
            "the vault presents OAuth tokens as `Authorization: Bearer …`; another prefix is not supported",
        ))
    } else if auth
        .api_key
        .and_then(|k| k.extra_headers)
        .is_some_and(|h| !h.is_empty())
    {
        Some((
            "auth.api_key.extra_headers",
            "the vault adds extra headers to OAuth requests only (`auth.oauth.extra_headers`)",
        ))
    } else {
        None
    };
    let Some((field, message)) = problem else {
        return Ok(());
    };
    Err(YamlError::at_offset(
        path,
        text,
        YamlIndex::build(text).value_offset(field),
        Some(field.to_owned()),
        message,
        Some("remove this key".to_owned()),
    )
    .into())
}

fn version_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn build_roster(
    layers: BTreeMap<String, Vec<Layer>>,
    provider_layers: &BTreeMap<String, Vec<Layer>>,
    warnings: Vec<String>,
) -> Result<Roster, RosterError> {
    let mut problems = Vec::new();
    let mut agents = BTreeMap::new();
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
            Ok(agent) => {
                agents.insert(name.clone(), agent);
            }
            Err(issues) => problems.extend(issues.iter().map(|i| locate(entry_layers, i))),
        }
    }
    let assembled = assemble(&layers, provider_layers, &mut agents);
    problems.extend(assembled.problems);
    let providers = assembled.providers;
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
