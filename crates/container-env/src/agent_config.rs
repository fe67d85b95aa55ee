//! The per-task agent-config directory, mounted at `/home/dev/.terok` (docs/compatibility.md#10):
//! the wrapper functions, the instructions, Claude's sub-agents, the prompt, the vault variables,
//! and the host-side edits to shared config files that the agents need.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use terok_core::secure_fs;
use terok_roster::{Roster, SubagentDefinition};

use crate::error::ContainerEnvError;
use crate::wrappers::render_wrappers;

/// Instructions used when none are configured and the roster has no default.
pub const NEUTRAL_INSTRUCTIONS: &str =
    "Follow the project's coding conventions and existing patterns.";
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
    /// Sub-agent definitions (`file` entries are read from `base_dir`).
    pub subagents: Vec<SubagentDefinition>,
    /// Names of sub-agents to include besides those marked `default: true`.
    pub selected_subagents: Vec<String>,
    /// Where relative sub-agent `file:` paths are resolved.
    pub base_dir: Option<PathBuf>,
    /// The vault variables (`vault.env`).
    pub vault_env: Vec<(String, String)>,
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

/// Fills the agent-config directory and makes the host-side edits
/// (docs/compatibility.md#10.1, §10.3).
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

/// Completes a definition from its Markdown `file` (front matter = fields the definition
/// does not set itself, body = prompt). `None` when the file cannot be read (skipped with a
/// log line: a project may list a sub-agent it has not written yet).
fn with_file_contents(
    definition: &SubagentDefinition,
    base_dir: Option<&Path>,
) -> Result<Option<SubagentDefinition>, ContainerEnvError> {
    let Some(file) = &definition.file else {
        return Ok(Some(definition.clone()));
    };
    let path = match base_dir {
        Some(base) if file.is_relative() => base.join(file),
        _ => file.clone(),
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        tracing::warn!("sub-agent file {} not found; skipping it", path.display());
        return Ok(None);
    };
    let mut def = definition.clone();
    let body = match split_front_matter(&text) {
        Some((yaml, body)) => {
            let front = terok_core::yaml::parse_value(yaml, &path).map_err(|e| {
                ContainerEnvError::SubAgent {
                    name: file.display().to_string(),
                    detail: e.to_string(),
                }
            })?;
            if let Value::Object(fields) = front {
                merge_front_matter(&mut def, fields);
            }
            body
        }
        None => text.as_str(),
    };
    def.prompt = Some(body.trim().to_owned());
    Ok(Some(def))
}

/// Fills what `def` leaves unset from a file's front matter.
fn merge_front_matter(def: &mut SubagentDefinition, fields: Map<String, Value>) {
    for (key, value) in fields {
        match key.as_str() {
            "name" => {
                if def.name.is_none() {
                    def.name = value.as_str().map(str::to_owned);
                }
            }
            "default" => def.default |= value.as_bool() == Some(true),
            "file" | "prompt" | "system_prompt" => {}
            _ => {
                def.fields.entry(key).or_insert(value);
            }
        }
    }
}

/// The `--agents` JSON for Claude: definitions with a `file` are read from their Markdown (a
/// missing file is skipped); only `default` ones and those named in `selected` are kept;
/// keyed by name, with the fields Claude accepts and the prompt.
pub fn subagents_json(
    definitions: &[SubagentDefinition],
    selected: &[String],
    base_dir: Option<&Path>,
) -> Result<Map<String, Value>, ContainerEnvError> {
    let mut out = Map::new();
    for definition in definitions {
        let Some(def) = with_file_contents(definition, base_dir)? else {
            continue;
        };
        let Some(name) = def.name.clone() else {
            continue;
        };
        if !def.default && !selected.contains(&name) {
            continue;
        }
        let mut entry: Map<String, Value> = def
            .fields
            .iter()
            .filter(|(k, _)| SUBAGENT_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(prompt) = def.prompt {
            entry.insert("prompt".to_owned(), Value::String(prompt));
        }
        out.insert(name, Value::Object(entry));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let def = |value: Value| -> SubagentDefinition { serde_json::from_value(value).unwrap() };
        let defs = vec![
            def(json!({"file": "rev.md"})),
            def(json!({"file": "missing.md"})),
            def(json!({"name": "tester", "system_prompt": "Test it", "model": "haiku"})),
            def(json!({"name": "unused", "prompt": "x"})),
            def(json!({"description": "nameless", "default": true})),
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
}
