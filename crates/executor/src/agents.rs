//! The roster as a user sees it: which agents and tools exist, one entry as merged from its
//! files, and the selection of agents baked into the L1 image (config.yml's `image.agents`).

use serde::Serialize;
use terok_podman::ContainerRuntime;

use crate::error::ExecutorError;
use crate::session::Executor;

/// One roster entry in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AgentSummary {
    /// Its name.
    pub name: String,
    /// Its label.
    pub label: String,
    /// `native`, `opencode`, `bridge`, `tool`, …
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// One roster entry as merged from the bundled file and the overrides.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentDocument {
    /// The files it was merged from, in order.
    pub origins: Vec<String>,
    /// The merged document.
    pub document: serde_json::Value,
}

/// The agents baked into L1 images.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageSelection {
    /// The selection as written (`None`: not configured, which means `all`).
    pub configured: Option<String>,
    /// What it resolves to, dependencies included.
    pub resolved: Vec<String>,
}

/// A selection written to config.yml.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SelectionWritten {
    /// The selection as written (lower case, no blanks).
    pub selection: String,
    /// The file.
    pub path: std::path::PathBuf,
    /// What it resolves to.
    pub resolved: Vec<String>,
}

/// The JSON Schema of one roster agent file, roster v1 or v3 (for editors and
/// yaml-language-server).
pub fn roster_schema() -> serde_json::Value {
    terok_roster::json_schema()
}

/// The JSON Schema of one roster v3 provider file.
pub fn roster_provider_schema() -> serde_json::Value {
    terok_roster::provider_json_schema()
}

impl<R: ContainerRuntime> Executor<R> {
    /// The runnable agents, sorted by name; with `all`, the tools too.
    pub fn agent_summaries(&self, all: bool) -> Result<Vec<AgentSummary>, ExecutorError> {
        Ok(self
            .roster()?
            .listed(all)
            .map(|a| AgentSummary {
                name: a.name.clone(),
                label: a.label.clone(),
                kind: a.kind.as_str(),
            })
            .collect())
    }

    /// How `agent` prints its headless output (Claude's stream-json is worth rendering).
    pub fn agent_log_format(
        &self,
        agent: &str,
    ) -> Result<terok_roster::model::LogFormat, ExecutorError> {
        Ok(self.roster()?.agent(agent)?.capabilities.log_format)
    }

    /// The entry `name` as merged, with the files it came from.
    pub fn agent_document(&self, name: &str) -> Result<AgentDocument, ExecutorError> {
        let roster = self.roster()?;
        roster.entry(name)?;
        Ok(AgentDocument {
            origins: roster.origins(name).iter().map(|o| o.to_string()).collect(),
            document: roster.document(name).unwrap_or_default(),
        })
    }

    /// The selection L1 images are built with.
    pub fn image_selection(&self) -> Result<ImageSelection, ExecutorError> {
        let configured = self.config.config.image.agents.clone();
        let resolved = self
            .roster()?
            .resolve_selection(configured.as_deref().unwrap_or("all"))?;
        Ok(ImageSelection {
            configured,
            resolved,
        })
    }

    /// Writes `selection` as `image.agents` to the writable config file (comments kept),
    /// after checking that every name in it exists; nothing is written otherwise.
    pub fn set_image_selection(&self, selection: &str) -> Result<SelectionWritten, ExecutorError> {
        let resolved = self.roster()?.resolve_selection(selection)?;
        let normalized = selection
            .split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        let selection = if normalized.is_empty() {
            "all".to_owned()
        } else {
            normalized
        };
        let path = self.writable_config_file()?;
        terok_core::config::edit::set_image_agents(&path, &selection)?;
        Ok(SelectionWritten {
            selection,
            path,
            resolved,
        })
    }
}
