//! The input ([`ContainerEnvSpec`]) and output ([`ContainerEnv`]) of the assembly, and the
//! layout of a task directory on the host.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Path of the workspace inside every task container.
pub const WORKSPACE: &str = "/workspace";
/// Mount point of the task's agent-config directory.
pub const AGENT_CONFIG_MOUNT: &str = crate::wrappers::AGENT_CONFIG_MOUNT;
/// Host↔container protocol version (docs/compatibility.md#1).
pub const CONTAINER_PROTOCOL: &str = "1";
/// Default mount point of `--shared-dir`.
pub const DEFAULT_SHARED_MOUNT: &str = "/shared";

/// SELinux relabelling of a bind mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relabel {
    /// Private to this container (`:Z`): only directories terok owns.
    Private,
    /// Shared between containers (`:z`).
    Shared,
    /// Left alone: a user's own directory is never relabelled (docs/decisions.md#3.9).
    None,
}

/// One bind mount, in the order podman gets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Host path.
    pub host: PathBuf,
    /// Path in the container.
    pub container: String,
    /// Relabelling.
    pub relabel: Relabel,
    /// Read-only.
    pub read_only: bool,
}

/// Where `/workspace` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workspace {
    /// A directory of the user's, mounted as it is.
    Host(PathBuf),
    /// `<task dir>/workspace`, owned by the task (a git URL is cloned into it inside).
    Task,
}

/// Overrides of the agent's git identity (`None` = the roster's identity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitIdentityOverride {
    /// `GIT_AUTHOR_NAME`.
    pub author_name: Option<String>,
    /// `GIT_AUTHOR_EMAIL`.
    pub author_email: Option<String>,
    /// `GIT_COMMITTER_NAME` (default: the author).
    pub committer_name: Option<String>,
    /// `GIT_COMMITTER_EMAIL` (default: the author).
    pub committer_email: Option<String>,
}

/// How the container reaches the vault: the transport the daemon opened for it and the
/// phantom tokens it minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultWiring {
    /// The per-container socket directory, or a TCP listener.
    pub transport: VaultTransport,
    /// Provider → phantom token (only providers with a stored credential).
    pub tokens: BTreeMap<String, String>,
    /// Provider → kind of the stored credential (`api_key`, `oauth`, …).
    pub kinds: BTreeMap<String, String>,
}

/// Where a container's vault listener is (docs/scale.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultTransport {
    /// A Unix socket in a directory mounted into the container (the default): HTTP-only
    /// clients reach it through the in-container loopback bridge.
    Socket {
        /// The per-container socket directory on the host (mounted read-only).
        host_socket_dir: PathBuf,
        /// Where it is mounted (`/run/terok/vault`).
        container_socket_dir: String,
        /// The socket's file name in it (`vault.sock`).
        socket_name: String,
        /// The in-container loopback bridge port (`9419`).
        loopback_port: u16,
    },
    /// A TCP listener on an address the engine's containers reach as
    /// [`VAULT_TCP_HOST`] (`services.mode: tcp`): nothing is mounted, and socket-only
    /// clients reach it through the in-container socket bridge at [`VAULT_TCP_SOCKET`].
    Tcp {
        /// The listener's port.
        port: u16,
    },
}

/// The name containers reach a TCP vault listener by (podman's name for the host).
pub const VAULT_TCP_HOST: &str = "host.containers.internal";
/// The socket the in-container bridge serves in front of a TCP listener.
pub const VAULT_TCP_SOCKET: &str = "/tmp/terok-vault.sock";

impl VaultWiring {
    /// The socket path inside the container.
    pub fn container_socket(&self) -> String {
        match &self.transport {
            VaultTransport::Socket {
                container_socket_dir,
                socket_name,
                ..
            } => format!("{container_socket_dir}/{socket_name}"),
            VaultTransport::Tcp { .. } => VAULT_TCP_SOCKET.to_owned(),
        }
    }

    /// `host:port` of the vault as HTTP clients in the container reach it.
    pub fn authority(&self) -> String {
        match &self.transport {
            VaultTransport::Socket { loopback_port, .. } => format!("localhost:{loopback_port}"),
            VaultTransport::Tcp { port } => format!("{VAULT_TCP_HOST}:{port}"),
        }
    }

    /// The base URL HTTP clients in the container use.
    pub fn url(&self) -> String {
        format!("http://{}", self.authority())
    }

    /// The socket directory mounted into the container (none over TCP).
    pub fn socket_mount(&self) -> Option<(&Path, &str)> {
        match &self.transport {
            VaultTransport::Socket {
                host_socket_dir,
                container_socket_dir,
                ..
            } => Some((host_socket_dir, container_socket_dir)),
            VaultTransport::Tcp { .. } => None,
        }
    }
}

/// How the container reaches the git gate: the task's gate server and the task's gate token
/// (also part of the gate URL its `origin` points at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateWiring {
    /// Where the task's gate server listens.
    pub transport: GateTransport,
    /// The task's token (`terok-g-…`).
    pub token: String,
}

/// Where a task's gate server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateTransport {
    /// The task's socket directory on the host (mounted read-only), which the in-container
    /// bridge serves on git's `localhost:9418`.
    Socket(PathBuf),
    /// A TCP port the container reaches at [`VAULT_TCP_HOST`] (`services.mode: tcp`).
    Tcp(u16),
}

impl GateWiring {
    /// Where the socket directory is mounted in the container.
    pub const CONTAINER_DIR: &'static str = "/run/terok/gate";
    /// The socket's file name in it.
    pub const SOCKET_NAME: &'static str = "gate-server.sock";
    /// The in-container loopback port of the bridge to the socket (git's `localhost:9418`).
    pub const LOOPBACK_PORT: u16 = 9418;

    /// The URL of mirror `repo` as git in the container reaches it.
    pub fn url(&self, repo: &str) -> String {
        let authority = match &self.transport {
            GateTransport::Socket(_) => format!("localhost:{}", Self::LOOPBACK_PORT),
            GateTransport::Tcp(port) => format!("{VAULT_TCP_HOST}:{port}"),
        };
        format!("http://{}@{authority}/{repo}.git", self.token)
    }

    /// The socket directory mounted into the container (none over TCP).
    pub fn socket_mount(&self) -> Option<Volume> {
        match &self.transport {
            GateTransport::Socket(dir) => Some(Volume {
                host: dir.clone(),
                container: Self::CONTAINER_DIR.to_owned(),
                relabel: Relabel::Private,
                read_only: true,
            }),
            GateTransport::Tcp(_) => None,
        }
    }

    /// The variables of the in-container side: the token, and the socket its bridge serves.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let GateTransport::Socket(_) = &self.transport {
            env.push((
                "TEROK_GATE_SOCKET".to_owned(),
                format!("{}/{}", Self::CONTAINER_DIR, Self::SOCKET_NAME),
            ));
        }
        env.push(("TEROK_GATE_TOKEN".to_owned(), self.token.clone()));
        env
    }
}

/// Everything that decides a task container's environment and mounts (docs/compatibility.md#9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEnvSpec {
    /// Task id (12 hex digits).
    pub task_id: String,
    /// The agent (roster name).
    pub agent: String,
    /// Where `/workspace` comes from.
    pub workspace: Workspace,
    /// Repository URL cloned inside the container (`CODE_REPO`).
    pub code_repo: Option<String>,
    /// Faster source of the same repository (`CLONE_FROM`).
    pub clone_from: Option<String>,
    /// Branch (`GIT_BRANCH`).
    pub branch: Option<String>,
    /// Git identity overrides.
    pub git: GitIdentityOverride,
    /// `TEROK_GIT_AUTHORSHIP` (`agent`, `agent-human`, `human-agent`, `human`).
    pub authorship: String,
    /// `HUMAN_GIT_NAME`.
    pub human_name: String,
    /// `HUMAN_GIT_EMAIL`.
    pub human_email: String,
    /// Unrestricted: auto-approve everything (`TEROK_UNRESTRICTED=1`).
    pub unrestricted: bool,
    /// `TZ` (already resolved: explicit, or detected on the host).
    pub timezone: Option<String>,
    /// Host directory shared with the task.
    pub shared_dir: Option<PathBuf>,
    /// Where it is mounted.
    pub shared_mount: String,
    /// The task's directory on the host.
    pub task_dir: PathBuf,
    /// The shared mounts directory (`<root>/sandbox-live/mounts`).
    pub mounts_dir: PathBuf,
    /// Vault wiring, when the vault runs.
    pub vault: Option<VaultWiring>,
    /// Gate wiring, when the task's git goes through the gate.
    pub gate: Option<GateWiring>,
    /// Providers whose credential files are NOT overlaid with a phantom (rare: tools that
    /// must write their own file).
    pub expose_credential_providers: BTreeSet<String>,
    /// Extra mounts, verbatim, last.
    pub extra_volumes: Vec<Volume>,
    /// Roster entries installed in the image: shared mounts (and credential overlays) of other
    /// entries are left out — a container gets no config directory of an agent it cannot run.
    /// `None` mounts every entry's, as the Python terok-executor does (docs/decisions.md#3.16).
    pub installed: Option<BTreeSet<String>>,
}

impl ContainerEnvSpec {
    /// Whether the entry `name` is installed (or nothing restricts it).
    pub fn is_installed(&self, name: &str) -> bool {
        self.installed.as_ref().is_none_or(|set| set.contains(name))
    }

    /// A spec with the Python terok-executor's defaults: the workspace in the task, authorship
    /// `agent`, human `Nobody <nobody@localhost>`, unrestricted, no vault.
    pub fn new(
        task_id: impl Into<String>,
        agent: impl Into<String>,
        task_dir: impl Into<PathBuf>,
        mounts_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            task_id: task_id.into(),
            agent: agent.into(),
            workspace: Workspace::Task,
            code_repo: None,
            clone_from: None,
            branch: None,
            git: GitIdentityOverride::default(),
            authorship: "agent".to_owned(),
            human_name: "Nobody".to_owned(),
            human_email: "nobody@localhost".to_owned(),
            unrestricted: true,
            timezone: None,
            shared_dir: None,
            shared_mount: DEFAULT_SHARED_MOUNT.to_owned(),
            task_dir: task_dir.into(),
            mounts_dir: mounts_dir.into(),
            vault: None,
            gate: None,
            expose_credential_providers: BTreeSet::new(),
            extra_volumes: Vec::new(),
            installed: None,
        }
    }
}

/// The assembled environment (docs/compatibility.md#9.2, §9.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEnv {
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// The vault part of [`Self::env`] (also written to the agent-config's `vault.env` so a
    /// restarted task can be given fresh tokens).
    pub vault_env: Vec<(String, String)>,
    /// Mounts, in order.
    pub volumes: Vec<Volume>,
    /// What the user should hear (a shared config file that did not parse was moved aside).
    pub warnings: Vec<String>,
}

/// The files of one task on the host (docs/decisions.md#3.7: under the executor state root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLayout {
    /// `<tasks dir>/<task id>`.
    pub dir: PathBuf,
}

impl TaskLayout {
    /// The layout of the task directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Mounted at `/home/dev/.terok`.
    pub fn agent_config(&self) -> PathBuf {
        self.dir.join("agent-config")
    }

    /// The workspace when it is not a directory of the user's.
    pub fn workspace(&self) -> PathBuf {
        self.dir.join("workspace")
    }

    /// The task's own copy of the shared config directory `host_dir`, mounted where the agent
    /// keeps its config: what one task writes there never reaches another.
    pub fn config_copy(&self, host_dir: &str) -> PathBuf {
        self.dir.join("config").join(host_dir)
    }

    /// Phantom credential files, mounted read-only over the vendors' files.
    pub fn credentials(&self) -> PathBuf {
        self.dir.join("credentials")
    }

    /// The phantom copy of `file` of the shared directory `host_dir`.
    pub fn phantom_file(&self, host_dir: &str, file: &str) -> PathBuf {
        self.credentials().join(host_dir).join(file)
    }

    /// Private scratch space (the env file podman reads during create).
    pub fn private_dir(&self) -> PathBuf {
        self.dir.join("private")
    }

    /// What the container's `dev` reads and writes of the task directory (everything but the
    /// record and the private scratch space).
    pub fn container_files(&self) -> Vec<PathBuf> {
        vec![
            self.agent_config(),
            self.workspace(),
            self.dir.join("config"),
            self.credentials(),
        ]
    }

    /// Whether `path` lies inside this task directory.
    pub fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.dir)
    }
}
