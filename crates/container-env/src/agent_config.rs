//! The per-task agent-config directory, mounted at `/home/dev/.terok` (executor.md §6.4): the
//! wrapper functions, the instructions, Claude's sub-agents, the prompt, the vault variables,
//! and the host-side edits to shared config files that the agents need.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use terok_core::secure_fs;
use terok_roster::Roster;

use crate::error::ContainerEnvError;
use crate::spec::AGENT_CONFIG_MOUNT;
use crate::wrappers::render_wrappers;

/// Instructions used when none are configured and the roster has no default.
pub const NEUTRAL_INSTRUCTIONS: &str =
    "Follow the project's coding conventions and existing patterns.";
/// The OpenCode config schema URL every managed `opencode.json` carries.
const OPENCODE_SCHEMA: &str = "https://opencode.ai/config.json";
/// The Claude SessionStart hook that records the session id for `--resume`.
const CLAUDE_SESSION_HOOK: &str = "python3 -c \"import json,sys; print(json.load(sys.stdin)['session_id'])\" > /home/dev/.terok/claude-session.txt";
/// Files in the agent-config dir are read by the container's `dev`, which is the invoking user
/// (rootless) or host root (rootful): owner-only is enough, and the prompt may be private.
const FILE_MODE: u32 = 0o600;

/// What goes into the agent-config directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentConfigSpec {
    /// Task id (named in the wrapper file's header).
    pub task_id: String,
    /// The agent being run.
    pub agent: String,
    /// The directory to fill (`<task>/agent-config`).
    pub dir: PathBuf,
    /// The resolved instructions (empty → [`NEUTRAL_INSTRUCTIONS`]).
    pub instructions: String,
    /// The prompt of a headless run.
    pub prompt: Option<String>,
    /// The first message of an interactive session.
    pub initial_prompt: Option<String>,
    /// Sub-agent definitions (a list of mappings; `file:` entries are read from `base_dir`).
    pub subagents: Vec<Value>,
    /// Names of sub-agents to include besides those marked `default: true`.
    pub selected_subagents: Vec<String>,
    /// Where relative sub-agent `file:` paths are resolved.
    pub base_dir: Option<PathBuf>,
    /// The vault variables (`vault.env`).
    pub vault_env: Vec<(String, String)>,
    /// The shared mounts directory (host side effects).
    pub mounts_dir: PathBuf,
}

/// What [`prepare_agent_config`] wrote, and what the user should hear about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedAgentConfig {
    /// Files written, relative to the directory.
    pub files: Vec<String>,
    /// Things that did not apply (sub-agents for an agent without support, …).
    pub warnings: Vec<String>,
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> Result<(), ContainerEnvError> {
    secure_fs::write_atomic(&dir.join(name), contents, FILE_MODE)?;
    Ok(())
}

/// Fills the agent-config directory and makes the host-side edits (executor.md §6.4).
pub fn prepare_agent_config(
    roster: &Roster,
    spec: &AgentConfigSpec,
) -> Result<PreparedAgentConfig, ContainerEnvError> {
    let agent = roster.agent(&spec.agent)?;
    secure_fs::ensure_private_dir(&spec.dir)?;
    let mut out = PreparedAgentConfig::default();

    write(
        &spec.dir,
        "terok-executor.sh",
        render_wrappers(roster, &spec.task_id)?.as_bytes(),
    )?;
    out.files.push("terok-executor.sh".to_owned());

    let instructions = if spec.instructions.trim().is_empty() {
        NEUTRAL_INSTRUCTIONS.to_owned()
    } else {
        spec.instructions.clone()
    };
    write(
        &spec.dir,
        "instructions.md",
        format!("{}\n", instructions.trim_end()).as_bytes(),
    )?;
    out.files.push("instructions.md".to_owned());

    if !spec.subagents.is_empty() {
        if agent.capabilities.agents_json {
            let agents = subagents_json(
                &spec.subagents,
                &spec.selected_subagents,
                spec.base_dir.as_deref(),
            )?;
            if !agents.is_empty() {
                write(
                    &spec.dir,
                    "agents.json",
                    Value::Object(agents).to_string().as_bytes(),
                )?;
                out.files.push("agents.json".to_owned());
            }
        } else {
            out.warnings.push(format!(
                "{} does not support sub-agents; ignoring {} definition(s)",
                agent.label,
                spec.subagents.len()
            ));
        }
    }

    if let Some(prompt) = &spec.prompt {
        write(&spec.dir, "prompt.txt", prompt.as_bytes())?;
        out.files.push("prompt.txt".to_owned());
    }
    if let Some(prompt) = &spec.initial_prompt {
        write(&spec.dir, "initial-prompt.txt", prompt.as_bytes())?;
        out.files.push("initial-prompt.txt".to_owned());
    }
    write(
        &spec.dir,
        "vault.env",
        crate::assemble::vault_env_file(&spec.vault_env).as_bytes(),
    )?;
    out.files.push("vault.env".to_owned());

    // Claude records its session id through a SessionStart hook in the shared settings.
    if agent.session.supports_hook
        && let Ok(auth) = roster.auth_provider(&agent.name)
    {
        merge_session_hook(
            &spec
                .mounts_dir
                .join(&auth.spec.host_dir)
                .join("settings.json"),
        )?;
    }
    // Every OpenCode config reads the task's instructions.
    for path in opencode_configs(roster, &spec.mounts_dir) {
        ensure_opencode_config(&path)?;
    }
    Ok(out)
}

/// Replaces the vault variables of an existing task (a restarted container gets fresh tokens).
pub fn write_vault_env(
    dir: &Path,
    vault_env: &[(String, String)],
) -> Result<(), ContainerEnvError> {
    write(
        dir,
        "vault.env",
        crate::assemble::vault_env_file(vault_env).as_bytes(),
    )
}

/// Reads `path` as a JSON object; a missing, empty or corrupt file counts as `{}` (the file
/// is shared with the agents, which may have left anything in it).
fn read_json_object(path: &Path) -> Map<String, Value> {
    secure_fs::read_nofollow(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default()
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
pub fn merge_session_hook(settings: &Path) -> Result<bool, ContainerEnvError> {
    let _lock = secure_fs::lock_exclusive(&lock_path(settings))?;
    let mut root = read_json_object(settings);
    let hooks = root
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()));
    if !hooks.is_object() {
        *hooks = Value::Object(Map::new());
    }
    let Some(hooks) = hooks.as_object_mut() else {
        return Ok(false);
    };
    let session_start = hooks
        .entry("SessionStart")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !session_start.is_array() {
        *session_start = Value::Array(Vec::new());
    }
    let Some(entries) = session_start.as_array_mut() else {
        return Ok(false);
    };
    let present = entries.iter().any(|entry| {
        entry["hooks"]
            .as_array()
            .is_some_and(|h| h.iter().any(|x| x["command"] == CLAUDE_SESSION_HOOK))
    });
    if present {
        return Ok(false);
    }
    entries.push(json!({"hooks": [{"type": "command", "command": CLAUDE_SESSION_HOOK}]}));
    write_json(settings, &root)?;
    Ok(true)
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
pub fn ensure_opencode_config(path: &Path) -> Result<bool, ContainerEnvError> {
    let _lock = secure_fs::lock_exclusive(&lock_path(path))?;
    let mut root = read_json_object(path);
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
    Ok(changed)
}

/// Fields of a sub-agent definition Claude's `--agents` accepts.
const SUBAGENT_FIELDS: &[&str] = &[
    "description",
    "tools",
    "disallowedTools",
    "model",
    "permissionMode",
    "mcpServers",
    "hooks",
    "maxTurns",
    "skills",
    "memory",
    "background",
    "isolation",
];

/// Splits `---\nYAML\n---\nbody` into the front matter and the body.
fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("---")?;
    let rest = rest
        .strip_prefix('\n')
        .or_else(|| rest.strip_prefix("\r\n"))?;
    let end = rest.find("\n---")?;
    let yaml = &rest[..end];
    let after = &rest[end + 4..];
    let body = after.split_once('\n').map_or("", |(_, b)| b);
    Some((yaml, body))
}

/// The `--agents` JSON for Claude (executor.md §6.4): definitions with `file:` are read from
/// their Markdown (front matter = fields, body = prompt; a missing file is skipped); only
/// `default: true` ones and those named in `selected` are kept; keyed by name.
pub fn subagents_json(
    definitions: &[Value],
    selected: &[String],
    base_dir: Option<&Path>,
) -> Result<Map<String, Value>, ContainerEnvError> {
    let mut out = Map::new();
    for definition in definitions {
        let Some(def) = definition.as_object() else {
            continue;
        };
        let mut def = def.clone();
        if let Some(file) = def.get("file").and_then(Value::as_str).map(str::to_owned) {
            let path = match base_dir {
                Some(base) if Path::new(&file).is_relative() => base.join(&file),
                _ => PathBuf::from(&file),
            };
            let Ok(text) = std::fs::read_to_string(&path) else {
                tracing::warn!("sub-agent file {} not found; skipping it", path.display());
                continue;
            };
            match split_front_matter(&text) {
                Some((yaml, body)) => {
                    let front = terok_core::yaml::parse_value(yaml, &path).map_err(|e| {
                        ContainerEnvError::SubAgent {
                            name: file.clone(),
                            detail: e.to_string(),
                        }
                    })?;
                    if let Value::Object(fields) = front {
                        for (k, v) in fields {
                            def.entry(k).or_insert(v);
                        }
                    }
                    def.insert("prompt".to_owned(), Value::String(body.trim().to_owned()));
                }
                None => {
                    def.insert("prompt".to_owned(), Value::String(text.trim().to_owned()));
                }
            }
        }
        let Some(name) = def.get("name").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let is_default = def.get("default").and_then(Value::as_bool) == Some(true);
        if !is_default && !selected.contains(&name) {
            continue;
        }
        let mut entry = Map::new();
        for field in SUBAGENT_FIELDS {
            if let Some(v) = def.get(*field) {
                entry.insert((*field).to_owned(), v.clone());
            }
        }
        if let Some(prompt) = def.get("system_prompt").or_else(|| def.get("prompt")) {
            entry.insert("prompt".to_owned(), prompt.clone());
        }
        out.insert(name, Value::Object(entry));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter() {
        let (yaml, body) = split_front_matter("---\nname: x\n---\nHello\n").unwrap();
        assert_eq!(yaml, "name: x");
        assert_eq!(body, "Hello\n");
        assert!(split_front_matter("no front matter").is_none());
    }

    #[test]
    fn subagents_from_markdown_and_inline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rev.md"),
            "---\nname: reviewer\ndescription: Reviews\ntools: [Read]\ndefault: true\n---\nReview carefully.\n",
        )
        .unwrap();
        let defs = vec![
            json!({"file": "rev.md"}),
            json!({"file": "missing.md"}),
            json!({"name": "tester", "system_prompt": "Test it", "model": "haiku"}),
            json!({"name": "unused", "prompt": "x"}),
            json!({"description": "nameless", "default": true}),
        ];
        let out = subagents_json(&defs, &["tester".to_owned()], Some(dir.path())).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({
                "reviewer": {"description": "Reviews", "tools": ["Read"], "prompt": "Review carefully."},
                "tester": {"model": "haiku", "prompt": "Test it"},
            })
        );
    }

    #[test]
    fn session_hook_is_merged_once_and_survives_corrupt_json() {
        let dir = tempfile::tempdir().unwrap();
        let settings = dir.path().join("settings.json");
        std::fs::write(&settings, "{not json").unwrap();
        assert!(merge_session_hook(&settings).unwrap());
        assert!(!merge_session_hook(&settings).unwrap());
        let value: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
        assert_eq!(value["hooks"]["SessionStart"].as_array().unwrap().len(), 1);
        std::fs::write(
            &settings,
            r#"{"theme":"dark","hooks":{"SessionStart":[{"hooks":[]}]}}"#,
        )
        .unwrap();
        assert!(merge_session_hook(&settings).unwrap());
        let value: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
        assert_eq!(value["theme"], "dark");
        assert_eq!(value["hooks"]["SessionStart"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn opencode_config_gets_schema_and_instructions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oc/opencode.json");
        assert!(ensure_opencode_config(&path).unwrap());
        assert!(!ensure_opencode_config(&path).unwrap());
        let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(value["$schema"], OPENCODE_SCHEMA);
        assert_eq!(
            value["instructions"],
            json!(["/home/dev/.terok/instructions.md"])
        );
    }
}
