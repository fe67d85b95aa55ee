//! [`Executor`]: the session an orchestrator (or the CLI) opens once and asks for everything —
//! configuration, paths, the roster, the container runtime and the vault, owned in one value.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use terok_core::config::{ConfigSource, LoadedConfig, load_config};
use terok_core::env::HostEnv;
use terok_core::paths::TerokPaths;
use terok_podman::{ContainerRuntime, PodmanCli};
use terok_roster::{AgentDefaults, Roster, RosterLoader};
use terok_vault::VaultPaths;

use crate::error::ExecutorError;
use crate::shield::hook::ShieldHook;
use crate::task::TaskStore;
use crate::vault::{ServeCommand, VaultClient, VaultLauncher};

/// One terok session: the configuration of one invocation (or one orchestrator), the host
/// paths it resolves to, the roster (loaded on first use), a container runtime and the vault.
///
/// Every operation the `terok-executor` command performs is a method here; the command only
/// parses its arguments, calls one of them and prints the result. Build one with
/// [`Executor::builder`].
pub struct Executor<R = PodmanCli> {
    pub(crate) env: HostEnv,
    pub(crate) config: LoadedConfig,
    pub(crate) config_source: ConfigSource,
    pub(crate) paths: TerokPaths,
    pub(crate) vault_paths: VaultPaths,
    roster: OnceLock<Roster>,
    pub(crate) runtime: Arc<R>,
    pub(crate) vault: VaultClient,
    pub(crate) launcher: Option<VaultLauncher>,
    pub(crate) sidecar_launcher: Option<ServeCommand>,
    pub(crate) gate_launcher: Option<ServeCommand>,
    pub(crate) acp_launcher: Option<ServeCommand>,
    pub(crate) shield_hook: Option<ShieldHook>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) defaults: AgentDefaults,
}

impl<R> std::fmt::Debug for Executor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("config_source", &self.config_source)
            .field("paths", &self.paths)
            .field("cwd", &self.cwd)
            .finish_non_exhaustive()
    }
}

/// How to open an [`Executor`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ExecutorBuilder {
    env: HostEnv,
    config: ConfigSource,
    connection: Option<String>,
    remember_images: bool,
    cwd: Option<PathBuf>,
    launcher: Option<VaultLauncher>,
    sidecar_launcher: Option<ServeCommand>,
    gate_launcher: Option<ServeCommand>,
    acp_launcher: Option<ServeCommand>,
    shield_hook: Option<ShieldHook>,
    defaults: AgentDefaults,
}

impl ExecutorBuilder {
    /// Which config files to read (default: the layered `/etc/terok` and user files).
    pub fn config(mut self, source: ConfigSource) -> Self {
        self.config = source;
        self
    }

    /// The podman system connection to use (a remote engine); `None` is the local one, or
    /// whatever `CONTAINER_HOST` names.
    pub fn connection(mut self, connection: Option<String>) -> Self {
        self.connection = connection;
        self
    }

    /// Remember image inspections for the life of the session, so a check followed by a build
    /// asks podman once. For short-lived sessions (one command); a long-lived one would miss
    /// images changed by others.
    pub fn remember_image_checks(mut self, remember: bool) -> Self {
        self.remember_images = remember;
        self
    }

    /// The directory relative repository paths are resolved against. Without one, a
    /// relative path is an error.
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// The program (and arguments) that serves the vault in the foreground, used to start it
    /// in the background when a launch or `ensure_vault` needs it.
    pub fn vault_launcher(mut self, launcher: VaultLauncher) -> Self {
        self.launcher = Some(launcher);
        self
    }

    /// The program (and arguments) that serves a Pod's vault sidecar (`… vault serve
    /// --sidecar`; the paths are appended): the program goes into the sidecar's image, so
    /// the arguments must not depend on this host. Without one, `emit_kube` is refused.
    pub fn vault_sidecar_launcher(mut self, launcher: ServeCommand) -> Self {
        self.sidecar_launcher = Some(launcher);
        self
    }

    /// How a task's gate server is started (`… gate serve-task`; the container name is
    /// appended). Without one, launches through the git gate fail.
    pub fn gate_launcher(mut self, launcher: ServeCommand) -> Self {
        self.gate_launcher = Some(launcher);
        self
    }

    /// How a task's ACP proxy is started in the background (`… acp`; the task name and
    /// `--socket PATH` are appended). Without one, [`Executor::connect_acp`] needs a proxy
    /// that runs already.
    pub fn acp_launcher(mut self, launcher: ServeCommand) -> Self {
        self.acp_launcher = Some(launcher);
        self
    }

    /// The program (and arguments) podman runs as the egress firewall's OCI hook; without
    /// one, `allowlist` launches are refused.
    pub fn shield_hook(mut self, hook: ShieldHook) -> Self {
        self.shield_hook = Some(hook);
        self
    }

    /// Per-agent settings, instructions and sub-agents that apply to every launch.
    pub fn agent_defaults(mut self, defaults: AgentDefaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// Opens the session on the podman command line.
    pub fn build(self) -> Result<Executor<PodmanCli>, ExecutorError> {
        let mut podman = PodmanCli::new().with_connection(self.connection.clone());
        if self.remember_images {
            podman = podman.with_image_memo();
        }
        self.build_with_runtime(podman)
    }

    /// Opens the session on `runtime` (a fake in tests, another engine elsewhere).
    pub fn build_with_runtime<R: ContainerRuntime>(
        self,
        runtime: R,
    ) -> Result<Executor<R>, ExecutorError> {
        let config = load_config(&self.config, &self.env)?;
        let paths = TerokPaths::resolve(&self.env, config.config.paths.root.as_deref())?;
        let mut vault_paths = VaultPaths::from_terok(&paths);
        vault_paths.db_override = config
            .config
            .credentials
            .db_path
            .as_deref()
            .map(|p| terok_core::paths::expand_tilde(p, &self.env));
        let vault = VaultClient::new(vault_paths.control_socket());
        Ok(Executor {
            env: self.env,
            config,
            config_source: self.config,
            paths,
            vault_paths,
            roster: OnceLock::new(),
            runtime: Arc::new(runtime),
            vault,
            launcher: self.launcher,
            sidecar_launcher: self.sidecar_launcher,
            gate_launcher: self.gate_launcher,
            acp_launcher: self.acp_launcher,
            shield_hook: self.shield_hook,
            cwd: self.cwd,
            defaults: self.defaults,
        })
    }
}

impl Executor<PodmanCli> {
    /// A builder for a session in the host environment `env`.
    pub fn builder(env: HostEnv) -> ExecutorBuilder {
        ExecutorBuilder {
            env,
            config: ConfigSource::Layered,
            connection: None,
            remember_images: false,
            cwd: None,
            launcher: None,
            sidecar_launcher: None,
            gate_launcher: None,
            acp_launcher: None,
            shield_hook: None,
            defaults: AgentDefaults::default(),
        }
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// The host environment the session was opened in.
    pub fn env(&self) -> &HostEnv {
        &self.env
    }

    /// The validated, merged configuration.
    pub fn config(&self) -> &LoadedConfig {
        &self.config
    }

    /// Which config files were read.
    pub fn config_source(&self) -> &ConfigSource {
        &self.config_source
    }

    /// The host directories.
    pub fn paths(&self) -> &TerokPaths {
        &self.paths
    }

    /// The vault's files and sockets.
    pub fn vault_paths(&self) -> &VaultPaths {
        &self.vault_paths
    }

    /// The container runtime.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// The roster: the bundled entries with the system and user overrides, loaded on first
    /// use (a broken override fails the operations that need the roster, not the others).
    pub fn roster(&self) -> Result<&Roster, ExecutorError> {
        if let Some(roster) = self.roster.get() {
            return Ok(roster);
        }
        let loaded = RosterLoader::for_paths(&self.paths).load()?;
        Ok(self.roster.get_or_init(|| loaded))
    }

    /// Things worth telling the user that are not errors (a roster file of a newer version,
    /// …), once the roster is loaded.
    pub fn warnings(&self) -> &[String] {
        self.roster.get().map_or(&[], |r| r.warnings())
    }

    /// The task directories.
    pub fn task_store(&self) -> TaskStore {
        TaskStore::new(self.paths.tasks_dir())
    }

    /// The client of the vault daemon's control socket.
    pub fn vault_client(&self) -> &VaultClient {
        &self.vault
    }

    /// The config file that writes go to: `--config`'s file, else `TEROK_CONFIG_FILE`, else
    /// the user's `config.yml`.
    pub fn writable_config_file(&self) -> Result<PathBuf, ExecutorError> {
        match &self.config_source {
            ConfigSource::File(path) => Ok(path.clone()),
            ConfigSource::Nothing => Err(ExecutorError::NoConfigFile),
            ConfigSource::Layered => Ok(self
                .env
                .path_var(terok_core::paths::vars::CONFIG_FILE)
                .unwrap_or_else(|| self.paths.user_config_file())),
        }
    }

    /// Resolves `path` (as given by a user) against the session's working directory.
    pub(crate) fn absolute(&self, path: &Path) -> Option<PathBuf> {
        let expanded = terok_core::paths::expand_tilde(path, &self.env);
        if expanded.is_absolute() {
            Some(expanded)
        } else {
            self.cwd.as_ref().map(|cwd| cwd.join(expanded))
        }
    }
}
