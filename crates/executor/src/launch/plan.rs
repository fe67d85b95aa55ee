//! [`LaunchPlan`]: everything a launch decides before it creates anything — the agent, where
//! the code comes from, the settings of the run, which roster entries the image has and which
//! providers the container gets tokens for. A bad option fails here, with nothing to undo.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use terok_container_env::Workspace;
use terok_podman::ContainerRuntime;
use terok_roster::{
    Agent, HeadlessOptions, RunOverrides, RunSettings, SidecarSpec, apply_provider_config,
    headless_command,
};
use terok_shield::Profile;

use crate::error::ExecutorError;
use crate::gate::{GatePlan, plan_gate};
use crate::launch::options::{Egress, ImageSource, Mode, RunOptions, TOOL_TIMEOUT_SECS};
use crate::launched::READY_MARKER;
use crate::repo::{RepoSource, classify_repo};
use crate::session::Executor;
use crate::task::TaskMode;
use crate::task::{KrunRecord, WebRecord};
use crate::web::reserve_port;

/// What a launch will do.
#[derive(Debug)]
pub(crate) struct LaunchPlan<'o> {
    /// The caller's options.
    pub options: &'o RunOptions,
    /// The agent's roster entry.
    pub agent: Agent,
    /// Where the code comes from.
    pub repo: RepoSource,
    /// The git URL cloned inside, if any.
    pub git_url: Option<String>,
    /// Where `/workspace` comes from.
    pub workspace: Workspace,
    /// Model, turn limit, timeout, prompt prefix.
    pub settings: RunSettings,
    /// Roster entries the image has (`None`: unknown, nothing is left out).
    pub installed: Option<BTreeSet<String>>,
    /// Providers the container gets tokens for (those with a stored credential): the
    /// agent's own and the ones asked for, never every stored one.
    pub providers: Vec<String>,
    /// What the container may reach.
    pub egress: Egress,
    /// The allow-list profiles (for `allowlist`).
    pub shield_profiles: Vec<Profile>,
    /// The git gate, when the repository goes through it.
    pub gate: Option<GatePlan>,
    /// A web task's UI: its port (free when planned) and public address.
    pub web: Option<WebRecord>,
    /// A tool run's sidecar settings.
    pub tool: Option<SidecarSpec>,
    /// A krun task's guest: its OCI runtime and SSH port (free when planned).
    pub krun: Option<KrunRecord>,
}

impl LaunchPlan<'_> {
    /// How the task runs.
    pub fn mode(&self) -> TaskMode {
        match self.options.mode {
            Mode::Headless { .. } => TaskMode::Headless,
            Mode::Interactive { .. } => TaskMode::Interactive,
            Mode::Web(_) => TaskMode::Web,
            Mode::Tool { .. } => TaskMode::Tool,
        }
    }

    /// What the container runs (through `bash -lc`), after the init script.
    pub fn shell_command(&self) -> String {
        let settings = &self.settings;
        match &self.options.mode {
            Mode::Headless { .. } => {
                let cmd = headless_command(
                    &self.agent,
                    &HeadlessOptions {
                        timeout_secs: settings.timeout_secs,
                        model: settings.model.clone(),
                        max_turns: settings.max_turns,
                    },
                );
                format!("init-ssh-and-repo.sh && {}", cmd.to_shell())
            }
            Mode::Interactive { .. } => {
                format!("init-ssh-and-repo.sh && echo {READY_MARKER}; tail -f /dev/null")
            }
            Mode::Web(_) => {
                let public_url = self
                    .web
                    .as_ref()
                    .map(|w| terok_roster::shell_quote(&w.public_url))
                    .unwrap_or_default();
                format!("init-ssh-and-repo.sh && exec terok-toad-entry --public-url {public_url}")
            }
            Mode::Tool { args } => {
                let tool = self
                    .tool
                    .as_ref()
                    .map_or(self.agent.name.as_str(), |t| t.tool_name.as_str());
                let mut words = vec![terok_roster::shell_quote(tool)];
                words.extend(args.iter().map(|a| terok_roster::shell_quote(a)));
                format!(
                    "init-ssh-and-repo.sh && timeout {} {}",
                    settings.timeout_secs,
                    words.join(" ")
                )
            }
        }
    }

    /// The repository as recorded: a resolved path or the URL.
    pub fn repo_text(&self) -> String {
        match &self.repo {
            RepoSource::Local(dir) => dir.display().to_string(),
            RepoSource::GitUrl(url) => url.clone(),
        }
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// Checks `options` as [`Executor::launch`] will, creating and starting nothing: a caller
    /// can refuse bad options before it prepares the host (images, the vault).
    pub fn check_launch(&self, options: &RunOptions) -> Result<(), ExecutorError> {
        self.plan_launch(options).map(drop)
    }

    /// Checks `options` and decides what the launch does; creates nothing.
    pub(crate) fn plan_launch<'o>(
        &self,
        options: &'o RunOptions,
    ) -> Result<LaunchPlan<'o>, ExecutorError> {
        let roster = self.roster()?;
        let (agent, tool) = match &options.mode {
            Mode::Tool { .. } => {
                let (agent, spec) = roster.sidecar(&options.agent)?;
                (agent.clone(), Some(spec.clone()))
            }
            _ => (roster.agent(&options.agent)?.clone(), None),
        };
        if options.remove_on_exit && !options.is_headless() {
            return Err(ExecutorError::RemoveOnExitInteractive);
        }
        if options.model.is_some() && agent.headless.model_flag.is_none() {
            return Err(ExecutorError::NoModelFlag {
                agent: agent.name.clone(),
            });
        }
        let repo = classify_repo(&options.repo, &self.env, self.cwd.as_deref())?;
        let installed = match tool {
            Some(_) => None,
            None => installed_entries(&options.image, &agent)?,
        };
        let gate = plan_gate(&repo, options.gate, options.gate_mode)?;
        let (git_url, workspace) = self.workspace_of(&repo, options, gate.is_some())?;
        let mut settings = apply_provider_config(
            &agent,
            &RunOverrides {
                model: options.model.clone(),
                max_turns: options.max_turns,
                timeout_secs: options.timeout_secs,
                subagents: !self.defaults.subagents.is_empty(),
            },
            &self.defaults.settings,
        );
        if tool.is_some() {
            settings.timeout_secs = options.timeout_secs.unwrap_or(TOOL_TIMEOUT_SECS);
        }
        // A tool gets its real credential, never phantom tokens.
        let providers = match tool {
            Some(_) => Vec::new(),
            None => self.task_providers(&agent, options)?,
        };
        let egress = self.egress_for(options.egress);
        let web = match &options.mode {
            Mode::Web(web) => Some(plan_web(
                web,
                &self.task_store().list(),
                roster,
                installed.as_ref(),
                &options.image,
                egress,
            )?),
            _ => None,
        };
        if let Some(network) = &options.network {
            check_network(network, egress)?;
        }
        let krun = self.plan_krun(options, egress)?;
        let shield_profiles = match egress {
            Egress::Allowlist => {
                self.check_shield_ready()?;
                self.shield_profiles()?
            }
            Egress::Open | Egress::Offline => Vec::new(),
        };
        Ok(LaunchPlan {
            options,
            agent,
            repo,
            git_url,
            workspace,
            settings,
            installed,
            providers,
            egress,
            shield_profiles,
            gate,
            web,
            tool,
            krun,
        })
    }

    /// The providers a task of `agent` gets tokens for: its own, then the ones the run and
    /// config.yml ask for. A token is a way for the agent to act as the user there, so no
    /// other stored credential is handed out.
    fn task_providers(
        &self,
        agent: &Agent,
        options: &RunOptions,
    ) -> Result<Vec<String>, ExecutorError> {
        let roster = self.roster()?;
        let mut providers: BTreeSet<String> = roster
            .provider_for(agent)
            .map(|p| p.name.clone())
            .into_iter()
            .collect();
        let asked = options
            .extra_credentials
            .iter()
            .chain(&self.config.config.vault.task_credentials);
        for name in asked {
            let provider = crate::error::provider_named(roster, name)?;
            providers.insert(provider.name.clone());
        }
        Ok(providers.into_iter().collect())
    }

    /// The git URL to clone (if any) and where `/workspace` comes from: a gated directory is
    /// cloned through the gate into the task, never mounted.
    fn workspace_of(
        &self,
        repo: &RepoSource,
        options: &RunOptions,
        gated: bool,
    ) -> Result<(Option<String>, Workspace), ExecutorError> {
        let workspace_dir = match &options.workspace_dir {
            Some(dir) => {
                let dir = self
                    .absolute(dir)
                    .filter(|d| d.is_dir())
                    .ok_or_else(|| ExecutorError::WorkspaceNotADirectory(dir.clone()))?;
                Some(dir)
            }
            None => None,
        };
        let (url, workspace) = match repo {
            RepoSource::Local(_) if gated => (None, Workspace::Task),
            RepoSource::Local(dir) => (None, Workspace::Host(dir.clone())),
            RepoSource::GitUrl(url) => (
                Some(url.clone()),
                workspace_dir.map_or(Workspace::Task, Workspace::Host),
            ),
        };
        if let Workspace::Host(dir) = &workspace {
            self.refuse_terok_files_in("workspace", dir)?;
        }
        if let Some(dir) = &options.shared_dir {
            let dir = self.absolute(dir).unwrap_or_else(|| dir.clone());
            self.refuse_terok_files_in("shared directory", &dir)?;
        }
        Ok((url, workspace))
    }

    /// A directory lent to the container (`lent`: the workspace, the shared directory) that
    /// holds terok's own files (`run claude ~`), or lies inside them, would hand the agent the
    /// vault, the other tasks and the config that decides its own limits.
    fn refuse_terok_files_in(
        &self,
        lent: &'static str,
        workspace: &Path,
    ) -> Result<(), ExecutorError> {
        let paths = &self.paths;
        let db = self.vault_paths.db();
        let own: [(&'static str, &Path); 9] = [
            ("credentials database", &db),
            ("vault directory", &paths.vault_dir),
            ("shared agent configs", &paths.mounts_dir),
            ("runtime directory", &paths.runtime_dir),
            ("state directory", &paths.state_root),
            ("task directory", &paths.executor_state_dir),
            ("sandbox state directory", &paths.sandbox_state_dir),
            ("config directory", &paths.user_config_dir),
            ("system config directory", &paths.system_config_dir),
        ];
        let workspace = canonical(workspace);
        for (what, path) in own {
            let path = canonical(path);
            if path.starts_with(&workspace) || workspace.starts_with(&path) {
                return Err(ExecutorError::WorkspaceHoldsTerokFiles {
                    lent,
                    workspace,
                    what,
                    path,
                });
            }
        }
        Ok(())
    }
}

/// `path` with links resolved when it exists (a missing path is compared as it is).
fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// The roster entries the image of `source` has; an agent that is not among them fails.
fn installed_entries(
    source: &ImageSource,
    agent: &Agent,
) -> Result<Option<BTreeSet<String>>, ExecutorError> {
    match source {
        ImageSource::Tag(_) => Ok(None),
        ImageSource::Ensure(request) => {
            if !request.selection.contains(&agent.name) {
                return Err(ExecutorError::AgentNotInImage {
                    agent: agent.name.clone(),
                    selection: request.selection.join(","),
                });
            }
            Ok(Some(request.selection.iter().cloned().collect()))
        }
    }
}

/// A web task's UI: an entry that serves one (`web_ingress`: Toad) must be in the image, the
/// container needs a network to be reached through, and the port must be free.
fn plan_web(
    web: &crate::launch::options::WebOptions,
    tasks: &[crate::task::TaskRecord],
    roster: &terok_roster::Roster,
    installed: Option<&BTreeSet<String>>,
    image: &ImageSource,
    egress: Egress,
) -> Result<WebRecord, ExecutorError> {
    if let (Some(installed), ImageSource::Ensure(request)) = (installed, image)
        && !roster.web_ingress().any(|e| installed.contains(&e.name))
    {
        return Err(ExecutorError::WebNeedsToad {
            selection: request.selection.join(","),
        });
    }
    if egress == Egress::Offline {
        return Err(ExecutorError::WebNeedsNetwork);
    }
    if let Some(url) = &web.public_url {
        // Pages of one origin can read each other: another web task at the same origin (a
        // proxy serving two tasks under different paths) could drive this one's UI.
        let origin = crate::origin::origin_of(url)?;
        if let Some(other) = tasks
            .iter()
            .find(|t| t.web.as_ref().is_some_and(|w| w.origin() == origin))
        {
            return Err(ExecutorError::PublicOriginTaken {
                origin,
                task: other.name.clone(),
            });
        }
    }
    let port = reserve_port(web.port)?;
    Ok(WebRecord::new(port, web.public_url.as_deref()))
}

/// Whether the container may join `network`: a network of its own (a podman network, the
/// bridge, slirp4netns, pasta), never one it would share with the host or another container —
/// the firewall is loaded into the container's own namespace, and a shared one would put the
/// host's (or the other container's) under it, or hand the agent the host's loopback.
fn check_network(network: &str, egress: Egress) -> Result<(), ExecutorError> {
    let refused = |reason: &str| {
        Err(ExecutorError::NetworkRefused {
            network: network.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if egress == Egress::Offline {
        return refused("an offline task has no network to join");
    }
    match network.split_once(':').map_or(network, |(mode, _)| mode) {
        "host" => refused("it shares this host's network, loopback services included"),
        "container" | "ns" => refused("it shares another namespace's network"),
        "none" => refused("for no network, use --shield offline"),
        // slirp4netns:allow_host_loopback=true, pasta:-T,… and the like open this host's
        // loopback to the container.
        _ if network.contains(':') => {
            refused("options of a network mode are not taken (some open this host's loopback)")
        }
        _ if !network
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            refused("a podman network name is letters, digits, `-`, `_` and `.`")
        }
        _ => Ok(()),
    }
}
