//! terok-roster: the agent roster — which agents, tools and runtime components terok knows, how
//! they are installed, run, authenticated and routed through the vault.
//!
//! The roster is a set of YAML files (one per entry): the bundled ones in `resources/agents/`
//! (embedded at compile time), overridden or extended by `/etc/terok/agent/agents/*.yaml` and
//! `~/.config/terok/agent/agents/*.yaml`. [`RosterLoader`] reads and merges them into a
//! [`Roster`]; a bad file is an error that names the file, line, column and field.
//!
//! ```
//! let roster = terok_roster::RosterLoader::bundled().load()?;
//! let claude = roster.agent("claude")?;
//! let cmd = terok_roster::headless_command(claude, &Default::default());
//! assert!(cmd.to_shell().starts_with("claude --terok-timeout 1800"));
//! # Ok::<(), terok_roster::RosterError>(())
//! ```

// Test code writes its fixtures directly; shipped code writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod agent_settings;
mod bundled;
mod error;
mod headless;
mod instructions;
mod layer;
mod load;
pub mod model;
mod provider_config;
mod providers;
mod resolve;
mod roster;
pub mod schema;
mod selection;

pub use agent_settings::{
    AgentDefaults, AgentSettings, DEFAULT_KEY, InstructionsConfig, InstructionsText, PerAgent,
    SubagentDefinition,
};
pub use bundled::{DEFAULT_INSTRUCTIONS, bundled_agents};
pub use error::RosterError;
pub use headless::{
    HeadlessCommand, HeadlessOptions, PROMPT_FILE, Word, headless_command, shell_quote,
};
pub use instructions::resolve_instructions;
pub use layer::LayerSource;
pub use load::RosterLoader;
pub use model::{Agent, AgentKind, Provider, SidecarSpec};
pub use provider_config::{
    DEFAULT_TIMEOUT_SECS, InstructionsDelivery, RunOverrides, RunSettings, apply_provider_config,
    instructions_delivery,
};
pub use roster::{AuthProvider, Roster, SharedMount};
pub use selection::Selection;

/// The JSON Schema of one roster agent file (both shapes), as published in
/// docs/roster.schema.json.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<schema::AgentFile>();
    schema.to_value()
}

/// The JSON Schema of one roster v3 provider file, as published in
/// docs/roster-provider.schema.json.
pub fn provider_json_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<schema::ProviderFile>();
    schema.to_value()
}
