//! The loaded roster and its projections (docs/compatibility.md#5.3): runnable agents, credential
//! providers and vault routes, auth providers (including the ones derived from `opencode:`
//! sections), shared mounts with their credential-file overlays, sidecars, install specs, help
//! lines, web ingress, and agent selections.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::error::RosterError;
use crate::layer::{Layer, LayerSource, merge_layers};
use crate::model::*;
use crate::resolve::Issue;

/// Every roster entry, resolved.
#[derive(Debug, Clone)]
pub struct Roster {
    agents: BTreeMap<String, Agent>,
    providers: BTreeMap<String, Provider>,
    layers: BTreeMap<String, Vec<Layer>>,
    warnings: Vec<String>,
}

/// A way for `auth` to obtain a credential, written in the roster or derived from `opencode:`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthProvider {
    /// Entry name.
    pub name: String,
    /// The credential's name in the store: the entry's provider (shared by every agent using
    /// it), or the entry's own name when it has no route.
    pub credential: String,
    /// Display name.
    pub label: String,
    /// How to authenticate.
    pub spec: AuthSpec,
    /// Whether it was derived from an `opencode:` section rather than written as `auth:`.
    pub derived: bool,
}

/// A host directory under the mounts dir shared with every agent container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedMount {
    /// Directory name under the mounts dir.
    pub host_dir: String,
    /// Mount point in the container.
    pub container_path: String,
    /// Description.
    pub label: String,
    /// A vendor credential file inside it, mounted read-only over the shared directory.
    pub credential_file: Option<String>,
    /// The provider owning that credential file.
    pub provider: Option<String>,
    /// The roster entry that declared the mount (the first one, when several share it).
    pub owner: String,
}

impl Roster {
    pub(crate) fn new(
        agents: BTreeMap<String, Agent>,
        providers: BTreeMap<String, Provider>,
        layers: BTreeMap<String, Vec<Layer>>,
        warnings: Vec<String>,
    ) -> Self {
        Self {
            agents,
            providers,
            layers,
            warnings,
        }
    }

    pub(crate) fn with_layers(
        mut self,
        layers: BTreeMap<String, Vec<Layer>>,
        warnings: Vec<String>,
    ) -> Self {
        self.layers = layers;
        self.warnings = warnings;
        self
    }

    /// Warnings raised while loading (newer roster_version, ignored files …).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every entry, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Agent> {
        self.agents.get(name)
    }

    /// The entry called `name`, or an error listing the names that exist.
    pub fn entry(&self, name: &str) -> Result<&Agent, RosterError> {
        self.get(name).ok_or_else(|| {
            RosterError::unknown("roster entry", name, self.agents.keys().cloned().collect())
        })
    }

    /// Entries that can be run as agents (`native` and `harness`), sorted by name.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.entries().filter(|a| a.kind.is_agent())
    }

    /// The runnable agent called `name`, or an error listing the runnable agents.
    pub fn agent(&self, name: &str) -> Result<&Agent, RosterError> {
        match self.get(name) {
            Some(agent) if agent.kind.is_agent() => Ok(agent),
            _ => Err(RosterError::unknown(
                "agent",
                name,
                self.agents().map(|a| a.name.clone()).collect(),
            )),
        }
    }

    /// What `agents list` shows: agents, plus with `all` every other kind (tools, the
    /// frontend, infrastructure), as the Python terok-executor 0.5.0's `agents list --all`.
    pub fn listed(&self, all: bool) -> impl Iterator<Item = &Agent> {
        self.entries().filter(move |a| a.kind.is_agent() || all)
    }

    /// The merged document of an entry (what its files say together), for `agents show`.
    pub fn document(&self, name: &str) -> Option<Value> {
        self.layers.get(name).map(|layers| merge_layers(layers))
    }

    /// The files an entry was merged from, in layering order.
    pub fn origins(&self, name: &str) -> Vec<&LayerSource> {
        self.layers
            .get(name)
            .map(|layers| layers.iter().map(|l| &l.source).collect())
            .unwrap_or_default()
    }

    /// Every credential provider (vault route), sorted by name.
    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }

    /// The provider called `name`, or that has `name` among its aliases (roster v3's names of
    /// the bundled routes: `anthropic` is claude's).
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name).or_else(|| {
            self.providers
                .values()
                .find(|p| p.aliases.iter().any(|a| a == name))
        })
    }

    /// The provider an entry's requests go through.
    pub fn provider_for(&self, agent: &Agent) -> Option<&Provider> {
        agent
            .provider
            .as_deref()
            .and_then(|p| self.providers.get(p))
    }

    /// Every way to authenticate, sorted by name: `auth:` sections, and OpenCode providers
    /// without one (host dir `_<name>-config`, mounted at `/home/dev/<config_dir>`).
    pub fn auth_providers(&self) -> Vec<AuthProvider> {
        self.entries()
            .filter_map(|a| self.auth_provider_of(a))
            .collect()
    }

    /// The auth provider called `name` — an entry, or a provider (or its alias) through the
    /// first entry using it that can authenticate — or an error listing them.
    pub fn auth_provider(&self, name: &str) -> Result<AuthProvider, RosterError> {
        self.get(name)
            .and_then(|a| self.auth_provider_of(a))
            .or_else(|| {
                let provider = self.provider(name)?;
                self.entries()
                    .filter(|a| a.provider.as_deref() == Some(provider.name.as_str()))
                    .find_map(|a| self.auth_provider_of(a))
            })
            .ok_or_else(|| {
                RosterError::unknown(
                    "auth provider",
                    name,
                    self.auth_providers().into_iter().map(|p| p.name).collect(),
                )
            })
    }

    fn auth_provider_of(&self, agent: &Agent) -> Option<AuthProvider> {
        let credential = self
            .provider_for(agent)
            .map_or_else(|| agent.name.clone(), |p| p.name.clone());
        if let Some(spec) = &agent.auth {
            return Some(AuthProvider {
                name: agent.name.clone(),
                credential,
                label: agent.label.clone(),
                spec: spec.clone(),
                derived: false,
            });
        }
        let oc = agent.opencode.as_ref().filter(|_| agent.kind.is_agent())?;
        Some(AuthProvider {
            name: agent.name.clone(),
            credential,
            label: agent.label.clone(),
            spec: AuthSpec {
                host_dir: format!("_{}-config", agent.name),
                container_mount: format!("/home/dev/{}", oc.config_dir),
                command: None,
                auth_key: None,
                banner_hint: None,
                extra_run_args: Vec::new(),
                modes: vec![AuthMode::ApiKey],
                api_key_hint: Some(
                    oc.api_key_hint
                        .clone()
                        .unwrap_or_else(|| format!("Get your API key at: {}", oc.auth_key_url)),
                ),
                post_capture_state: BTreeMap::new(),
            },
            derived: true,
        })
    }

    /// Host directories shared with containers: for each entry (by name) its auth directory
    /// (with the provider's credential file) and then its `mounts:`; the first one to claim a
    /// host directory wins.
    pub fn shared_mounts(&self) -> Vec<SharedMount> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for agent in self.entries() {
            if let Some(auth) = self.auth_provider_of(agent) {
                let provider = self.provider_for(agent);
                if seen.insert(auth.spec.host_dir.clone()) {
                    out.push(SharedMount {
                        host_dir: auth.spec.host_dir.clone(),
                        container_path: auth.spec.container_mount.clone(),
                        label: format!("{} config", agent.label),
                        credential_file: provider.and_then(|p| p.credential_file.clone()),
                        provider: provider.map(|p| p.name.clone()),
                        owner: agent.name.clone(),
                    });
                }
            }
            for mount in &agent.mounts {
                if seen.insert(mount.host_dir.clone()) {
                    out.push(SharedMount {
                        host_dir: mount.host_dir.clone(),
                        container_path: mount.container_path.clone(),
                        label: mount
                            .label
                            .clone()
                            .unwrap_or_else(|| mount.host_dir.clone()),
                        credential_file: None,
                        provider: None,
                        owner: agent.name.clone(),
                    });
                }
            }
        }
        out
    }

    /// Entries that run as sidecar tools.
    pub fn sidecars(&self) -> impl Iterator<Item = (&Agent, &SidecarSpec)> {
        self.entries()
            .filter_map(|a| a.sidecar.as_ref().map(|s| (a, s)))
    }

    /// The sidecar spec of `name`, or an error listing the sidecar tools.
    pub fn sidecar(&self, name: &str) -> Result<(&Agent, &SidecarSpec), RosterError> {
        self.sidecars()
            .find(|(a, _)| a.name == name)
            .ok_or_else(|| {
                RosterError::unknown(
                    "sidecar tool",
                    name,
                    self.sidecars().map(|(a, _)| a.name.clone()).collect(),
                )
            })
    }

    /// Entries with an `install:` section, sorted by name.
    pub fn installable(&self) -> impl Iterator<Item = (&Agent, &InstallSpec)> {
        self.entries()
            .filter_map(|a| a.install.as_ref().map(|i| (a, i)))
    }

    /// Help lines of the selected entries, in selection order, split into agents and dev tools.
    pub fn help_lines(&self, selection: &[String]) -> (Vec<String>, Vec<String>) {
        let mut agents = Vec::new();
        let mut tools = Vec::new();
        for help in selection
            .iter()
            .filter_map(|n| self.get(n))
            .filter_map(|a| a.help.as_ref())
        {
            match help.section {
                HelpSection::Agent => agents.push(help.label.clone()),
                HelpSection::DevTool => tools.push(help.label.clone()),
            }
        }
        (agents, tools)
    }

    /// Entries that serve a web UI through the ingress proxy.
    pub fn web_ingress(&self) -> impl Iterator<Item = &Agent> {
        self.entries().filter(|a| a.web_ingress)
    }

    /// The union of every entry's auto-approve environment (all agents share one container).
    pub fn all_auto_approve_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for agent in self.entries() {
            for (k, v) in &agent.auto_approve.env {
                env.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        env
    }

    /// `TEROK_OC_<NAME>_*` variables describing every OpenCode provider to the in-container
    /// `opencode-provider` wrapper.
    pub fn opencode_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for agent in self.entries() {
            let Some(oc) = &agent.opencode else { continue };
            let prefix = format!(
                "TEROK_OC_{}_",
                agent.name.to_ascii_uppercase().replace('-', "_")
            );
            for (suffix, value) in [
                ("BASE_URL", &oc.base_url),
                ("PREFERRED_MODEL", &oc.preferred_model),
                ("FALLBACK_MODEL", &oc.fallback_model),
                ("DISPLAY_NAME", &oc.display_name),
                ("ENV_VAR_PREFIX", &oc.env_var_prefix),
                ("CONFIG_DIR", &oc.config_dir),
            ] {
                env.push((format!("{prefix}{suffix}"), value.clone()));
            }
        }
        env
    }

    /// Problems that involve more than one entry: shared route prefixes, dependencies on
    /// missing or uninstallable entries, and conflicting auto-approve values.
    pub(crate) fn cross_entry_issues(&self) -> Vec<(String, Issue)> {
        let mut issues = Vec::new();
        for (agent, install) in self.installable() {
            for dep in &install.depends_on {
                let problem = match self.get(dep) {
                    None => format!("depends on `{dep}`, which is not in the roster"),
                    Some(d) if d.install.is_none() => {
                        format!("depends on `{dep}`, which has no install section")
                    }
                    Some(_) => continue,
                };
                issues.push((
                    agent.name.clone(),
                    Issue {
                        path: "install.depends_on".to_owned(),
                        message: problem,
                        help: None,
                    },
                ));
            }
        }
        let mut seen: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
        for agent in self.entries() {
            for (var, value) in &agent.auto_approve.env {
                match seen.get(var.as_str()) {
                    Some((first, first_value)) if *first_value != value => issues.push((
                        agent.name.clone(),
                        Issue {
                            path: format!("auto_approve.env.{var}"),
                            message: format!(
                                "`{var}` is `{value}` here but `{first_value}` in `{first}`; all \
                                 agents share one container environment"
                            ),
                            help: None,
                        },
                    )),
                    Some(_) => {}
                    None => {
                        seen.insert(var, (&agent.name, value));
                    }
                }
            }
        }
        issues
    }
}
