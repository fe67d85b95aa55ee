//! The edits terok makes to the agents' shared config files (docs/compatibility.md#10.3):
//! Claude's SessionStart hook and OpenCode's instructions list, under file locks, moving aside
//! a file that does not parse instead of losing or failing on it.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use terok_core::secure_fs;
use terok_roster::Roster;

use crate::error::ContainerEnvError;
use crate::spec::AGENT_CONFIG_MOUNT;

/// The OpenCode config schema URL every managed `opencode.json` carries.
const OPENCODE_SCHEMA: &str = "https://opencode.ai/config.json";
/// The Claude SessionStart hook that records the session id for `--resume`.
const CLAUDE_SESSION_HOOK: &str = "python3 -c \"import json,sys; print(json.load(sys.stdin)['session_id'])\" > /home/dev/.terok/claude-session.txt";
/// Shared config files are read by the container's `dev`: owner-only is enough.
const FILE_MODE: u32 = 0o600;

/// The edits terok makes to the agents' shared config files before a task's copy of them is
/// made: Claude's SessionStart hook, and the instructions list of every OpenCode config.
/// Returns what the user should hear (a file that did not parse and was moved aside).
pub fn edit_shared_configs(
    roster: &Roster,
    agent: &str,
    mounts_dir: &Path,
) -> Result<Vec<String>, ContainerEnvError> {
    let agent = roster.agent(agent)?;
    let mut warnings = Vec::new();
    // Claude records its session id through a SessionStart hook in the shared settings.
    if agent.session.supports_hook
        && let Ok(auth) = roster.auth_provider(&agent.name)
    {
        let settings = mounts_dir.join(&auth.spec.host_dir).join("settings.json");
        warnings.extend(merge_session_hook(&settings)?.warning);
    }
    // Every OpenCode config reads the task's instructions.
    for path in opencode_configs(roster, mounts_dir) {
        warnings.extend(ensure_opencode_config(&path)?.warning);
    }
    Ok(warnings)
}

/// What an edit of a shared config file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edited {
    /// The file changed.
    pub changed: bool,
    /// The file did not parse: it was moved aside (said here) and written fresh.
    pub warning: Option<String>,
}

/// Reads `path` as a JSON object: missing or empty is `{}`; anything else that is not a JSON
/// object is moved aside (kept for the user) and counts as `{}`.
fn read_json_object(
    path: &Path,
) -> Result<(Map<String, Value>, Option<String>), ContainerEnvError> {
    let bytes = match secure_fs::read_nofollow(path) {
        Ok(bytes) => bytes,
        Err(secure_fs::SecureFsError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok((Map::new(), None));
        }
        Err(err) => return Err(err.into()),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((Map::new(), None));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok((map, None)),
        Ok(_) => Ok((
            Map::new(),
            Some(crate::copy::back_up_unparseable(path, "not a JSON object")?),
        )),
        Err(err) => Ok((
            Map::new(),
            Some(crate::copy::back_up_unparseable(path, &err.to_string())?),
        )),
    }
}

fn write_json(path: &Path, value: &Map<String, Value>) -> Result<(), ContainerEnvError> {
    if let Some(parent) = path.parent() {
        secure_fs::ensure_dir_with_mode(parent, 0o700)?;
    }
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    secure_fs::write_atomic(path, text.as_bytes(), FILE_MODE)?;
    Ok(())
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

/// Adds the session-id hook to Claude's `settings.json` once, under a lock (parallel launches
/// share the file).
pub fn merge_session_hook(settings: &Path) -> Result<Edited, ContainerEnvError> {
    let _lock = secure_fs::lock_exclusive(&lock_path(settings))?;
    let (mut root, warning) = read_json_object(settings)?;
    let unchanged = Edited {
        changed: false,
        warning: warning.clone(),
    };
    let hooks = root
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()));
    if !hooks.is_object() {
        *hooks = Value::Object(Map::new());
    }
    let Some(hooks) = hooks.as_object_mut() else {
        return Ok(unchanged);
    };
    let session_start = hooks
        .entry("SessionStart")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !session_start.is_array() {
        *session_start = Value::Array(Vec::new());
    }
    let Some(entries) = session_start.as_array_mut() else {
        return Ok(unchanged);
    };
    let present = entries.iter().any(|entry| {
        entry["hooks"]
            .as_array()
            .is_some_and(|h| h.iter().any(|x| x["command"] == CLAUDE_SESSION_HOOK))
    });
    if present {
        return Ok(unchanged);
    }
    entries.push(json!({"hooks": [{"type": "command", "command": CLAUDE_SESSION_HOOK}]}));
    write_json(settings, &root)?;
    Ok(Edited {
        changed: true,
        warning,
    })
}

/// The OpenCode config files terok keeps pointed at the task's instructions.
fn opencode_configs(roster: &Roster, mounts_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for agent in roster.agents() {
        if agent.binary == "opencode" && agent.opencode.is_none() {
            out.push(mounts_dir.join("_opencode-config").join("opencode.json"));
        } else if agent.opencode.is_some() {
            out.push(
                mounts_dir
                    .join(format!("_{}-config", agent.name))
                    .join("opencode")
                    .join("opencode.json"),
            );
        }
    }
    out
}

/// Makes sure `path` has the schema and lists the task's instructions file.
pub fn ensure_opencode_config(path: &Path) -> Result<Edited, ContainerEnvError> {
    let _lock = secure_fs::lock_exclusive(&lock_path(path))?;
    let (mut root, warning) = read_json_object(path)?;
    let wanted = format!("{AGENT_CONFIG_MOUNT}/instructions.md");
    let mut changed = false;
    if root.get("$schema").and_then(Value::as_str) != Some(OPENCODE_SCHEMA) {
        root.insert(
            "$schema".to_owned(),
            Value::String(OPENCODE_SCHEMA.to_owned()),
        );
        changed = true;
    }
    let list = root
        .entry("instructions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Some(items) = list.as_array_mut()
        && !items.iter().any(|i| i.as_str() == Some(&wanted))
    {
        items.push(Value::String(wanted));
        changed = true;
    }
    if changed {
        write_json(path, &root)?;
    }
    Ok(Edited { changed, warning })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_hook_is_merged_once_and_survives_corrupt_json() {
        let dir = tempfile::tempdir().unwrap();
        let settings = dir.path().join("settings.json");
        std::fs::write(&settings, "{not json").unwrap();
        let first = merge_session_hook(&settings).unwrap();
        assert!(first.changed);
        let said = first.warning.unwrap();
        assert!(said.contains("was moved to"), "{said}");
        let backup = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("settings.json.unparseable-")
            })
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(backup.path()).unwrap(),
            "{not json",
            "kept"
        );
        assert!(!merge_session_hook(&settings).unwrap().changed);
        let value: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
        assert_eq!(value["hooks"]["SessionStart"].as_array().unwrap().len(), 1);
        std::fs::write(
            &settings,
            r#"{"theme":"dark","hooks":{"SessionStart":[{"hooks":[]}]}}"#,
        )
        .unwrap();
        assert!(merge_session_hook(&settings).unwrap().changed);
        let value: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
        assert_eq!(value["theme"], "dark");
        assert_eq!(value["hooks"]["SessionStart"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn opencode_config_gets_schema_and_instructions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oc/opencode.json");
        assert!(ensure_opencode_config(&path).unwrap().changed);
        assert!(!ensure_opencode_config(&path).unwrap().changed);
        let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(value["$schema"], OPENCODE_SCHEMA);
        assert_eq!(
            value["instructions"],
            json!(["/home/dev/.terok/instructions.md"])
        );
    }
}
