//! Per-run settings of an agent (executor.md §6.1 `apply_provider_config`): the command-line
//! value wins, then the configured value (flat, or per provider with `_default`), and what the
//! agent cannot do is turned into a warning or a prompt instruction instead of a failure.

use serde_json::Value;

use crate::model::Agent;

/// Seconds a headless agent may run when nothing else is configured.
pub const DEFAULT_TIMEOUT_SECS: u64 = 1800;

/// Values given on the command line; they win over configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOverrides {
    /// `-m MODEL`.
    pub model: Option<String>,
    /// `--max-turns N`.
    pub max_turns: Option<u32>,
    /// `--timeout SECONDS`.
    pub timeout_secs: Option<u64>,
    /// Whether sub-agent definitions were given.
    pub subagents: bool,
}

/// The settings a run ends up with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSettings {
    /// Model passed with the agent's model flag.
    pub model: Option<String>,
    /// Turn limit passed with the agent's max-turns flag.
    pub max_turns: Option<u32>,
    /// Timeout in seconds.
    pub timeout_secs: u64,
    /// Sentences to put before the user's prompt.
    pub prompt_prefix: Vec<String>,
    /// Things the user asked for that this agent cannot do, said once.
    pub warnings: Vec<String>,
}

/// How an agent receives its instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstructionsDelivery {
    /// `--append-system-prompt "$(cat instructions.md)"` (Claude).
    SystemPrompt,
    /// `-c model_instructions_file=…` (Codex).
    ConfigFile,
    /// The `instructions` list of opencode.json (the OpenCode family).
    OpencodeConfig,
    /// Prepended to the prompt (everyone else).
    PromptPrefix,
}

/// How `agent` is given its instructions.
pub fn instructions_delivery(agent: &Agent) -> InstructionsDelivery {
    match agent.binary.as_str() {
        "claude" => InstructionsDelivery::SystemPrompt,
        "codex" => InstructionsDelivery::ConfigFile,
        "opencode" => InstructionsDelivery::OpencodeConfig,
        _ if agent.opencode.is_some() => InstructionsDelivery::OpencodeConfig,
        _ => InstructionsDelivery::PromptPrefix,
    }
}

/// The configured value for `provider`: a flat value applies to every provider; a mapping is
/// looked up by provider name, then `_default` (a `null` entry also falls back to `_default`).
pub fn resolve_config_value<'v>(value: Option<&'v Value>, provider: &str) -> Option<&'v Value> {
    match value? {
        Value::Null => None,
        Value::Object(map) => match map.get(provider) {
            Some(Value::Null) | None => map.get("_default").filter(|v| !v.is_null()),
            Some(v) => Some(v),
        },
        flat => Some(flat),
    }
}

/// Resolves model, turn limit and timeout for a run of `agent`. `config` is the agent section of
/// a configuration (`{model: …, max_turns: …, timeout: …}`, each flat or per provider).
pub fn apply_provider_config(
    agent: &Agent,
    overrides: &RunOverrides,
    config: &Value,
) -> RunSettings {
    let from_config = |key: &str| resolve_config_value(config.get(key), &agent.name);
    let mut settings = RunSettings {
        timeout_secs: overrides
            .timeout_secs
            .or_else(|| from_config("timeout").and_then(Value::as_u64))
            .unwrap_or(DEFAULT_TIMEOUT_SECS),
        ..RunSettings::default()
    };

    let model = overrides.model.clone().or_else(|| {
        from_config("model").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    });
    if let Some(model) = model {
        if agent.headless.model_flag.is_some() {
            settings.model = Some(model);
        } else {
            settings.warnings.push(format!(
                "{} does not support choosing a model; ignoring model `{model}`",
                agent.label
            ));
        }
    }

    let max_turns = overrides.max_turns.or_else(|| {
        from_config("max_turns")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    });
    if let Some(turns) = max_turns {
        if agent.headless.max_turns_flag.is_some() {
            settings.max_turns = Some(turns);
        } else {
            settings.warnings.push(format!(
                "{} has no turn limit flag; asking it in the prompt to finish within {turns} steps",
                agent.label
            ));
            settings.prompt_prefix.push(format!(
                "Important: complete this task in no more than {turns} steps."
            ));
        }
    }

    if overrides.subagents && !agent.capabilities.agents_json {
        settings.warnings.push(format!(
            "{} does not support sub-agent definitions; ignoring them",
            agent.label
        ));
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_values_resolve_per_provider() {
        let per = json!({"claude": "opus", "codex": null, "_default": "base"});
        assert_eq!(
            resolve_config_value(Some(&per), "claude"),
            Some(&json!("opus"))
        );
        assert_eq!(
            resolve_config_value(Some(&per), "codex"),
            Some(&json!("base"))
        );
        assert_eq!(
            resolve_config_value(Some(&per), "vibe"),
            Some(&json!("base"))
        );
        assert_eq!(
            resolve_config_value(Some(&json!("flat")), "x"),
            Some(&json!("flat"))
        );
        assert_eq!(resolve_config_value(Some(&json!({"a": 1})), "b"), None);
        assert_eq!(resolve_config_value(None, "b"), None);
    }
}
