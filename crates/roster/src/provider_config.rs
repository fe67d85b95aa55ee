//! Per-run settings of an agent (docs/compatibility.md#11.2): the command-line
//! value wins, then the configured value (flat, or per provider with `_default`), and what the
//! agent cannot do is turned into a warning or a prompt instruction instead of a failure.

use crate::agent_settings::{AgentSettings, PerAgent};
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

/// Resolves model, turn limit and timeout for a run of `agent`: the command line's value,
/// else the configured one for this agent, else the default.
pub fn apply_provider_config(
    agent: &Agent,
    overrides: &RunOverrides,
    config: &AgentSettings,
) -> RunSettings {
    let mut settings = RunSettings {
        timeout_secs: overrides
            .timeout_secs
            .or_else(|| configured(&config.timeout, &agent.name).copied())
            .unwrap_or(DEFAULT_TIMEOUT_SECS),
        ..RunSettings::default()
    };

    let model = overrides
        .model
        .clone()
        .or_else(|| configured(&config.model, &agent.name).cloned());
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

    let max_turns = overrides
        .max_turns
        .or_else(|| configured(&config.max_turns, &agent.name).copied());
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

fn configured<'a, T>(value: &'a Option<PerAgent<T>>, agent: &str) -> Option<&'a T> {
    value.as_ref().and_then(|v| v.for_agent(agent))
}
