//! Typed per-agent settings an orchestrator hands to a launch: model, turn limit and timeout
//! (each the same for every agent, or per agent with a `_default`), instructions, and Claude
//! sub-agent definitions. They deserialize from the shapes a project file writes them in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The key of a per-agent mapping that applies to every agent not named in it.
pub const DEFAULT_KEY: &str = "_default";

/// A value that is either the same for every agent or chosen per agent.
///
/// ```
/// # use terok_roster::PerAgent;
/// let per: PerAgent<String> =
///     serde_json::from_str(r#"{"claude": "opus", "codex": null, "_default": "base"}"#).unwrap();
/// assert_eq!(per.for_agent("claude").map(String::as_str), Some("opus"));
/// assert_eq!(per.for_agent("codex").map(String::as_str), Some("base"), "null falls back");
/// let flat: PerAgent<u64> = serde_json::from_str("60").unwrap();
/// assert_eq!(flat.for_agent("anyone"), Some(&60));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerAgent<T> {
    /// One value for every agent.
    All(T),
    /// Agent name (or [`DEFAULT_KEY`]) → value; a `null` entry falls back to `_default`.
    ByAgent(BTreeMap<String, Option<T>>),
}

impl<T> PerAgent<T> {
    /// The value for `agent`: the flat value, else the agent's entry, else `_default`.
    pub fn for_agent(&self, agent: &str) -> Option<&T> {
        match self {
            Self::All(value) => Some(value),
            Self::ByAgent(map) => match map.get(agent) {
                Some(Some(value)) => Some(value),
                _ => map.get(DEFAULT_KEY).and_then(Option::as_ref),
            },
        }
    }
}

/// Model, turn limit and timeout configured for agents (the command line wins over these).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AgentSettings {
    /// The model, for agents that can choose one.
    pub model: Option<PerAgent<String>>,
    /// The turn limit.
    pub max_turns: Option<PerAgent<u32>>,
    /// Seconds a headless run may take.
    pub timeout: Option<PerAgent<u64>>,
}

/// One piece of configured instructions: a text, or parts joined by blank lines in which the
/// part `_inherit` stands for the bundled default instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InstructionsText {
    /// A single text (`_inherit` alone means the default).
    Text(String),
    /// Parts, in order.
    Parts(Vec<String>),
}

/// Configured instructions: the same for every agent, or per agent with `_default`.
pub type InstructionsConfig = PerAgent<InstructionsText>;

/// A Claude sub-agent definition (`--agents`), inline or read from a Markdown `file` whose
/// front matter holds the fields and whose body is the prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SubagentDefinition {
    /// The sub-agent's name (may come from the file's front matter instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A Markdown file with front matter, relative to the project directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Included in every task (others only when selected by name).
    pub default: bool,
    /// The sub-agent's prompt (`system_prompt` is accepted as the same).
    #[serde(alias = "system_prompt", skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Fields passed to Claude as they are (`description`, `tools`, `model`, …); Claude's
    /// `--agents` schema decides which it accepts.
    #[serde(flatten)]
    pub fields: BTreeMap<String, Value>,
}

impl SubagentDefinition {
    /// An inline definition named `name` with `prompt`.
    pub fn inline(name: impl Into<String>, prompt: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            prompt: Some(prompt.into()),
            ..Self::default()
        }
    }

    /// A definition read from the Markdown `file`.
    pub fn from_file(file: impl Into<PathBuf>) -> Self {
        Self {
            file: Some(file.into()),
            ..Self::default()
        }
    }
}

/// What an orchestrator configures for agents, beyond the command line of one run.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct AgentDefaults {
    /// Model, turn limit, timeout.
    pub settings: AgentSettings,
    /// Instructions (default: the bundled ones, plus the project's `instructions.md`).
    pub instructions: Option<InstructionsConfig>,
    /// Claude sub-agent definitions.
    pub subagents: Vec<SubagentDefinition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_agent_values_fall_back_to_default() {
        let per: PerAgent<String> =
            serde_json::from_value(serde_json::json!({"claude": "opus", "_default": "base"}))
                .unwrap();
        assert_eq!(per.for_agent("vibe").map(String::as_str), Some("base"));
        let none: PerAgent<String> = serde_json::from_value(serde_json::json!({"a": "x"})).unwrap();
        assert_eq!(none.for_agent("b"), None);
    }

    #[test]
    fn settings_read_from_a_project_section() {
        let settings: AgentSettings = serde_json::from_value(serde_json::json!({
            "model": {"claude": "opus"},
            "timeout": 60,
        }))
        .unwrap();
        assert_eq!(settings.timeout.unwrap().for_agent("codex"), Some(&60));
        let err =
            serde_json::from_value::<AgentSettings>(serde_json::json!({"modle": "x"})).unwrap_err();
        assert!(err.to_string().contains("modle"), "{err}");
        let instructions: InstructionsConfig =
            serde_json::from_value(serde_json::json!(["Be brief.", "_inherit"])).unwrap();
        assert_eq!(
            instructions,
            PerAgent::All(InstructionsText::Parts(vec![
                "Be brief.".into(),
                "_inherit".into()
            ]))
        );
        let sub: SubagentDefinition = serde_json::from_value(
            serde_json::json!({"name": "t", "system_prompt": "Test", "tools": ["Read"], "default": true}),
        )
        .unwrap();
        assert_eq!(sub.prompt.as_deref(), Some("Test"));
        assert!(sub.default);
        assert_eq!(sub.fields["tools"], serde_json::json!(["Read"]));
    }
}
