//! Shared config patches (docs/compatibility.md#12.5): values terok writes into an agent's own
//! config file in its shared directory (codex `config.toml` → `openai_base_url`, vibe
//! `[[providers]]`, gh `config.yml` → `http_unix_socket`) so the agent talks to the vault.
//!
//! What terok wrote is recorded in `.terok-managed-config.json` beside the file, so disabling a
//! provider removes only values that are still exactly what terok wrote — the user's own edits
//! stay. Paths are relative, without `..`, and symbolic links are refused.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use terok_core::secure_fs;
use terok_roster::model::SharedConfigPatch;

/// Name of the ownership record in a shared directory.
pub const SIDECAR: &str = ".terok-managed-config.json";

/// How containers reach the vault; substituted for `{vault_url}` and `{vault_socket}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultAddress {
    /// Base URL (`http://localhost:9419`).
    pub url: String,
    /// Socket path in the container (`/run/terok/vault/vault.sock`).
    pub socket: String,
}

/// A patch could not be applied or removed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PatchError {
    /// The patch names a path outside the shared directory.
    #[error("config patch file `{file}` must be a relative path inside the shared directory")]
    BadPath {
        /// The file as written in the roster.
        file: String,
    },
    /// A symbolic link is in the way.
    #[error("refusing to patch {} through a symbolic link", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The existing file does not parse.
    #[error("cannot patch {}: it is not valid {format} ({detail})", path.display())]
    #[diagnostic(help("fix or remove the file; terok will not overwrite a file it cannot read"))]
    Unparseable {
        /// The file.
        path: PathBuf,
        /// TOML or YAML.
        format: &'static str,
        /// Where it broke.
        detail: String,
    },
    /// A patch has a value terok cannot write into that format.
    #[error("config patch for {file}: {detail}")]
    BadValue {
        /// The file.
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// I/O failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fs(#[from] secure_fs::SecureFsError),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Sidecar {
    version: u32,
    #[serde(default)]
    files: BTreeMap<String, FileRecord>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileRecord {
    #[serde(default)]
    providers: BTreeMap<String, Vec<Record>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    TomlTop {
        values: Map<String, Value>,
    },
    TomlTable {
        table: String,
        #[serde(rename = "match")]
        matcher: Map<String, Value>,
        values: Map<String, Value>,
        created: bool,
    },
    YamlTop {
        values: Map<String, Value>,
    },
}

/// Checks a patch's relative file name and returns its path under `shared_dir`, refusing any
/// symbolic link on the way.
fn target(shared_dir: &Path, file: &str) -> Result<PathBuf, PatchError> {
    let rel = Path::new(file);
    let ok = !file.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(PatchError::BadPath {
            file: file.to_owned(),
        });
    }
    let mut path = shared_dir.to_path_buf();
    for component in rel.components() {
        path.push(component);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(PatchError::Symlink { path });
        }
    }
    Ok(path)
}

fn substitute(value: &Value, addr: &VaultAddress) -> Value {
    match value {
        Value::String(s) => Value::String(
            s.replace("{vault_url}", &addr.url)
                .replace("{vault_socket}", &addr.socket),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, addr)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, addr)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn substitute_map(map: &Map<String, Value>, addr: &VaultAddress) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| (k.clone(), substitute(v, addr)))
        .collect()
}

fn read_text(path: &Path) -> Result<String, PatchError> {
    match secure_fs::read_nofollow(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(secure_fs::SecureFsError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(String::new())
        }
        Err(secure_fs::SecureFsError::Symlink { path }) => Err(PatchError::Symlink { path }),
        Err(err) => Err(err.into()),
    }
}

fn write_text(path: &Path, text: &str) -> Result<(), PatchError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| secure_fs::SecureFsError::Io {
            op: "create",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    secure_fs::write_atomic(path, text.as_bytes(), 0o600)?;
    Ok(())
}

fn to_toml(file: &str, value: &Value) -> Result<toml_edit::Value, PatchError> {
    let bad = |detail: &str| PatchError::BadValue {
        file: file.to_owned(),
        detail: detail.to_owned(),
    };
    Ok(match value {
        Value::String(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) => f.into(),
            _ => return Err(bad("number out of range")),
        },
        Value::Array(items) => {
            let mut array = toml_edit::Array::new();
            for item in items {
                array.push(to_toml(file, item)?);
            }
            array.into()
        }
        Value::Object(map) => {
            let mut table = toml_edit::InlineTable::new();
            for (k, v) in map {
                table.insert(k, to_toml(file, v)?);
            }
            table.into()
        }
        Value::Null => return Err(bad("null cannot be written to TOML")),
    })
}

fn toml_equals(item: Option<&toml_edit::Item>, file: &str, value: &Value) -> bool {
    match (
        item.and_then(toml_edit::Item::as_value),
        to_toml(file, value),
    ) {
        (Some(current), Ok(wanted)) => current.to_string().trim() == wanted.to_string().trim(),
        _ => false,
    }
}

fn table_matches(table: &toml_edit::Table, file: &str, matcher: &Map<String, Value>) -> bool {
    matcher
        .iter()
        .all(|(k, v)| toml_equals(table.get(k), file, v))
}

/// Applies `patch` for `provider` in `shared_dir`. With `record`, remembers what was written in
/// the ownership sidecar so it can be removed later. Returns whether the file changed.
pub fn apply(
    shared_dir: &Path,
    provider: &str,
    patch: &SharedConfigPatch,
    addr: &VaultAddress,
    record: bool,
) -> Result<bool, PatchError> {
    let path = target(shared_dir, &patch.file)?;
    let before = read_text(&path)?;
    let mut records = Vec::new();
    let after = if !patch.toml_set.is_empty() || patch.toml_table.is_some() {
        let mut doc =
            toml_edit::DocumentMut::from_str(&before).map_err(|e| PatchError::Unparseable {
                path: path.clone(),
                format: "TOML",
                detail: e.to_string().lines().next().unwrap_or_default().to_owned(),
            })?;
        let values = substitute_map(&patch.toml_set, addr);
        match &patch.toml_table {
            None => {
                for (k, v) in &values {
                    doc[k.as_str()] = toml_edit::Item::Value(to_toml(&patch.file, v)?);
                }
                records.push(Record::TomlTop { values });
            }
            Some(table) => {
                let matcher = substitute_map(&patch.toml_match, addr);
                if !doc.contains_key(table) {
                    doc[table.as_str()] =
                        toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new());
                }
                let array = doc[table.as_str()]
                    .as_array_of_tables_mut()
                    .ok_or_else(|| PatchError::BadValue {
                        file: patch.file.clone(),
                        detail: format!(
                            "`{table}` exists but is not an array of tables ([[{table}]])"
                        ),
                    })?;
                let existing = array
                    .iter_mut()
                    .find(|t| table_matches(t, &patch.file, &matcher));
                let created = existing.is_none();
                let entry = match existing {
                    Some(entry) => entry,
                    None => {
                        let mut fresh = toml_edit::Table::new();
                        for (k, v) in &matcher {
                            fresh.insert(k, toml_edit::Item::Value(to_toml(&patch.file, v)?));
                        }
                        array.push(fresh);
                        let last = array.len() - 1;
                        array.get_mut(last).ok_or_else(|| PatchError::BadValue {
                            file: patch.file.clone(),
                            detail: "could not add the table entry".to_owned(),
                        })?
                    }
                };
                for (k, v) in &values {
                    entry.insert(k, toml_edit::Item::Value(to_toml(&patch.file, v)?));
                }
                records.push(Record::TomlTable {
                    table: table.clone(),
                    matcher,
                    values,
                    created,
                });
            }
        }
        doc.to_string()
    } else {
        let values = substitute_map(&patch.yaml_set, addr);
        let mut text = before.clone();
        for (k, v) in &values {
            let rendered = match v {
                Value::String(s) => s.clone(),
                Value::Bool(_) | Value::Number(_) => v.to_string(),
                _ => {
                    return Err(PatchError::BadValue {
                        file: patch.file.clone(),
                        detail: format!(
                            "yaml_set.{k}: only strings, numbers and booleans can be set"
                        ),
                    });
                }
            };
            text = set_yaml_top(&path, &text, k, &rendered)?;
        }
        records.push(Record::YamlTop { values });
        text
    };
    let changed = after != before;
    if changed {
        write_text(&path, &after)?;
    }
    if record {
        let mut sidecar = read_sidecar(shared_dir)?;
        sidecar
            .files
            .entry(patch.file.clone())
            .or_default()
            .providers
            .insert(provider.to_owned(), records);
        write_sidecar(shared_dir, &sidecar)?;
    }
    Ok(changed)
}

fn set_yaml_top(path: &Path, text: &str, key: &str, value: &str) -> Result<String, PatchError> {
    let unparseable = |detail: String| PatchError::Unparseable {
        path: path.to_path_buf(),
        format: "YAML",
        detail,
    };
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        let quoted = serde_json::Value::String(value.to_owned()).to_string();
        let mut out = text.to_owned();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{key}: {quoted}\n"));
        return Ok(out);
    }
    terok_core::yaml::parse_value(text, path).map_err(|e| unparseable(e.message.clone()))?;
    let doc = yaml_edit::Document::from_str(text).map_err(|e| unparseable(e.to_string()))?;
    if doc.as_mapping().is_none() {
        return Err(unparseable("the top level is not a mapping".to_owned()));
    }
    doc.set(key, value);
    let mut out = doc.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

fn read_sidecar(shared_dir: &Path) -> Result<Sidecar, PatchError> {
    let text = read_text(&shared_dir.join(SIDECAR))?;
    if text.trim().is_empty() {
        return Ok(Sidecar {
            version: 1,
            ..Sidecar::default()
        });
    }
    Ok(serde_json::from_str(&text).unwrap_or(Sidecar {
        version: 1,
        ..Sidecar::default()
    }))
}

fn write_sidecar(shared_dir: &Path, sidecar: &Sidecar) -> Result<(), PatchError> {
    let path = shared_dir.join(SIDECAR);
    if sidecar.files.values().all(|f| f.providers.is_empty()) {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(secure_fs::SecureFsError::Io {
                    op: "remove",
                    path,
                    source,
                }
                .into());
            }
        }
        return Ok(());
    }
    let mut text = serde_json::to_string_pretty(sidecar).unwrap_or_default();
    text.push('\n');
    write_text(&path, &text)
}

/// Removes what terok wrote for `provider` in `shared_dir`, keeping every value the user has
/// changed since. A created table entry is reduced to its match keys.
pub fn remove(shared_dir: &Path, provider: &str) -> Result<(), PatchError> {
    let mut sidecar = read_sidecar(shared_dir)?;
    let mut dirty = false;
    for (file, record) in sidecar.files.iter_mut() {
        let Some(records) = record.providers.remove(provider) else {
            continue;
        };
        dirty = true;
        let path = target(shared_dir, file)?;
        let before = read_text(&path)?;
        if before.trim().is_empty() {
            continue;
        }
        let after = undo(&path, file, &before, &records)?;
        if after != before {
            write_text(&path, &after)?;
        }
    }
    if dirty {
        write_sidecar(shared_dir, &sidecar)?;
    }
    Ok(())
}

fn undo(path: &Path, file: &str, text: &str, records: &[Record]) -> Result<String, PatchError> {
    if records.iter().all(|r| matches!(r, Record::YamlTop { .. })) {
        let doc = yaml_edit::Document::from_str(text).map_err(|e| PatchError::Unparseable {
            path: path.to_path_buf(),
            format: "YAML",
            detail: e.to_string(),
        })?;
        let current = terok_core::yaml::parse_value(text, path).unwrap_or(Value::Null);
        for record in records {
            if let Record::YamlTop { values } = record {
                for (k, v) in values {
                    let same = match (current.get(k), v) {
                        (Some(Value::String(a)), Value::String(b)) => a == b,
                        (Some(a), b) => a == b,
                        _ => false,
                    };
                    if same {
                        doc.remove(k.as_str());
                    }
                }
            }
        }
        return Ok(doc.to_string());
    }
    let mut doc = toml_edit::DocumentMut::from_str(text).map_err(|e| PatchError::Unparseable {
        path: path.to_path_buf(),
        format: "TOML",
        detail: e.to_string().lines().next().unwrap_or_default().to_owned(),
    })?;
    for record in records {
        match record {
            Record::TomlTop { values } => {
                for (k, v) in values {
                    if toml_equals(doc.get(k), file, v) {
                        doc.remove(k);
                    }
                }
            }
            Record::TomlTable {
                table,
                matcher,
                values,
                ..
            } => {
                if let Some(array) = doc
                    .get_mut(table)
                    .and_then(toml_edit::Item::as_array_of_tables_mut)
                {
                    for entry in array.iter_mut().filter(|t| table_matches(t, file, matcher)) {
                        for (k, v) in values {
                            if toml_equals(entry.get(k), file, v) {
                                entry.remove(k);
                            }
                        }
                    }
                }
            }
            Record::YamlTop { .. } => {}
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> VaultAddress {
        VaultAddress {
            url: "http://localhost:9419".into(),
            socket: "/run/terok/vault/vault.sock".into(),
        }
    }

    fn patch(
        file: &str,
        toml: &[(&str, &str)],
        table: Option<(&str, &[(&str, &str)])>,
        yaml: &[(&str, &str)],
    ) -> SharedConfigPatch {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect()
        };
        SharedConfigPatch {
            file: file.into(),
            toml_set: map(toml),
            toml_table: table.map(|(t, _)| t.to_owned()),
            toml_match: table.map(|(_, m)| map(m)).unwrap_or_default(),
            yaml_set: map(yaml),
        }
    }

    #[test]
    fn toml_top_level_values_are_set_and_removed_unless_edited() {
        let dir = tempfile::tempdir().unwrap();
        let p = patch(
            "config.toml",
            &[
                ("openai_base_url", "{vault_url}/v1"),
                ("chatgpt_base_url", "{vault_url}/backend-api/"),
            ],
            None,
            &[],
        );
        std::fs::write(dir.path().join("config.toml"), "# mine\nmodel = \"o3\"\n").unwrap();
        assert!(apply(dir.path(), "codex", &p, &addr(), true).unwrap());
        let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
        assert!(text.contains("# mine") && text.contains("model = \"o3\""));
        assert!(
            text.contains("openai_base_url = \"http://localhost:9419/v1\""),
            "{text}"
        );
        assert!(
            !apply(dir.path(), "codex", &p, &addr(), true).unwrap(),
            "second apply changes nothing"
        );
        // The user changes one of the values; removal keeps it.
        let edited = text.replace(
            "http://localhost:9419/backend-api/",
            "https://mine.example/",
        );
        std::fs::write(dir.path().join("config.toml"), edited).unwrap();
        remove(dir.path(), "codex").unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
        assert!(!text.contains("openai_base_url"), "{text}");
        assert!(
            text.contains("chatgpt_base_url = \"https://mine.example/\""),
            "{text}"
        );
        assert!(
            !dir.path().join(SIDECAR).exists(),
            "the sidecar goes when nothing is managed"
        );
    }

    #[test]
    fn toml_tables_are_matched_or_created() {
        let dir = tempfile::tempdir().unwrap();
        let p = patch(
            "config.toml",
            &[("api_base", "{vault_url}/v1")],
            Some(("providers", &[("name", "mistral")])),
            &[],
        );
        std::fs::write(
            dir.path().join("config.toml"),
            "[[providers]]\nname = \"other\"\napi_base = \"x\"\n\n[[providers]]\nname = \"mistral\"\napi_base = \"https://api.mistral.ai/v1\"\n",
        )
        .unwrap();
        apply(dir.path(), "vibe", &p, &addr(), true).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
        assert!(
            text.contains("name = \"other\"\napi_base = \"x\""),
            "{text}"
        );
        assert!(
            text.contains("name = \"mistral\"\napi_base = \"http://localhost:9419/v1\""),
            "{text}"
        );
        let fresh = tempfile::tempdir().unwrap();
        apply(fresh.path(), "vibe", &p, &addr(), true).unwrap();
        let text = std::fs::read_to_string(fresh.path().join("config.toml")).unwrap();
        assert!(
            text.contains(
                "[[providers]]\nname = \"mistral\"\napi_base = \"http://localhost:9419/v1\""
            ),
            "{text}"
        );
        remove(fresh.path(), "vibe").unwrap();
        let text = std::fs::read_to_string(fresh.path().join("config.toml")).unwrap();
        assert!(
            text.contains("name = \"mistral\"") && !text.contains("api_base"),
            "{text}"
        );
    }

    #[test]
    fn yaml_top_level_values_keep_comments() {
        let dir = tempfile::tempdir().unwrap();
        let p = patch(
            "config.yml",
            &[],
            None,
            &[("http_unix_socket", "{vault_socket}")],
        );
        std::fs::write(
            dir.path().join("config.yml"),
            "# gh settings\ngit_protocol: https\n",
        )
        .unwrap();
        apply(dir.path(), "gh", &p, &addr(), true).unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.yml")).unwrap();
        assert!(
            text.starts_with("# gh settings\ngit_protocol: https\n"),
            "{text}"
        );
        assert!(
            text.contains("http_unix_socket: /run/terok/vault/vault.sock"),
            "{text}"
        );
        remove(dir.path(), "gh").unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.yml")).unwrap();
        assert!(!text.contains("http_unix_socket"), "{text}");
    }

    #[test]
    fn traversal_symlinks_and_broken_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x.toml", "/etc/x.toml", "a/../../b.toml", ""] {
            let p = patch(bad, &[("a", "b")], None, &[]);
            assert!(
                matches!(
                    apply(dir.path(), "x", &p, &addr(), false),
                    Err(PatchError::BadPath { .. })
                ),
                "{bad}"
            );
        }
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim.toml"), "a = 1\n").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("victim.toml"),
            dir.path().join("config.toml"),
        )
        .unwrap();
        let p = patch("config.toml", &[("a", "b")], None, &[]);
        assert!(matches!(
            apply(dir.path(), "x", &p, &addr(), false),
            Err(PatchError::Symlink { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(outside.path().join("victim.toml")).unwrap(),
            "a = 1\n"
        );
        std::fs::remove_file(dir.path().join("config.toml")).unwrap();
        std::fs::write(dir.path().join("config.toml"), "this is = = not toml").unwrap();
        assert!(matches!(
            apply(dir.path(), "x", &p, &addr(), false),
            Err(PatchError::Unparseable { .. })
        ));
    }
}
