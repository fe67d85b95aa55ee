//! What a caller asks of a launch ([`RunOptions`]: a typed field for every applicable `run`
//! flag) and what the launch tells it while it happens ([`RunEvent`]).

use std::path::PathBuf;

use terok_credentials::routes::RouteChange;
use terok_image_build::{BuildEvent, BuildRequest};
use terok_podman::GpuRequest;

use crate::gate::record::GateMode;
use crate::host::GitIdentity;

/// What the agent does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Run once on `prompt`, stream the output, end with the agent's exit code.
    Headless {
        /// The task.
        prompt: String,
    },
    /// Start a container to log into (`podman exec -it NAME bash -l`).
    Interactive {
        /// First message of the agent's session, if any.
        initial_prompt: Option<String>,
    },
    /// Toad in the browser: its web UI behind a per-task token gate, published on this host's
    /// loopback only; Toad reaches every installed agent through its ACP server.
    Web(WebOptions),
    /// A sidecar tool (a roster entry with a `sidecar:` section, named by
    /// [`RunOptions::agent`]) once on the workspace, in its own image, with its real
    /// credential and nothing of an agent's; its output streamed, its exit code the run's.
    Tool {
        /// Arguments passed to the tool.
        args: Vec<String>,
    },
}

/// Where a web task's UI is served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebOptions {
    /// The port on 127.0.0.1 (default: a free one, chosen at launch).
    pub port: Option<u16>,
    /// The address the browser uses, when it is not `http://127.0.0.1:<port>` (a reverse
    /// proxy or tunnel in front): the page's links and its WebSocket point there.
    pub public_url: Option<String>,
}

/// What a task runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskRuntime {
    /// A container, with podman's configured OCI runtime.
    Podman,
    /// A KVM microVM, with podman's `krun` runtime: the guest's first process is its SSH
    /// server, and the agent's command reaches it over SSH with the vault's `%host` key.
    Krun(KrunOptions),
}

/// How a krun task's guest starts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KrunOptions {
    /// The OCI runtime podman starts the guest with: `krun`. Another (`runc`, `crun`) starts
    /// the same guest — SSH server first, the agent over SSH — as a plain container, which is
    /// how a host without libkrun exercises the path (`TEROK_KRUN_OCI_RUNTIME`).
    pub oci_runtime: String,
}

impl Default for KrunOptions {
    fn default() -> Self {
        Self {
            oci_runtime: terok_krun::KRUN_RUNTIME.to_owned(),
        }
    }
}

/// Seconds a sidecar tool may run when the caller sets no `timeout_secs`.
pub const TOOL_TIMEOUT_SECS: u64 = 600;

/// Which image the container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageSource {
    /// This image, as it is.
    Tag(String),
    /// The L1 image of this request, built first when missing or stale.
    Ensure(BuildRequest),
}

/// Every option of a headless or interactive launch.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunOptions {
    /// The agent (a roster name).
    pub agent: String,
    /// A directory or a git URL.
    pub repo: String,
    /// Headless or interactive.
    pub mode: Mode,
    /// The image.
    pub image: ImageSource,
    /// The model, for agents that can choose one.
    pub model: Option<String>,
    /// The turn limit.
    pub max_turns: Option<u32>,
    /// Seconds before the agent is stopped (default: configured, else 1800).
    pub timeout_secs: Option<u64>,
    /// Container name (default `terok-executor-<task id>`).
    pub name: Option<String>,
    /// Branch to clone or create (git URLs).
    pub branch: Option<String>,
    /// No auto-approve and `no-new-privileges` (no sudo inside).
    pub restricted: bool,
    /// GPUs through CDI.
    pub gpus: Option<GpuRequest>,
    /// Memory limit (`4g`).
    pub memory: Option<String>,
    /// CPU limit (`2.0`).
    pub cpus: Option<String>,
    /// The human the agent commits with (as co-author).
    pub human_identity: Option<GitIdentity>,
    /// A host directory shared with the task.
    pub shared_dir: Option<PathBuf>,
    /// Where it is mounted (default `/shared`).
    pub shared_mount: Option<String>,
    /// Time zone of the container (default: the host's).
    pub timezone: Option<String>,
    /// The host directory a git URL is cloned into (default: inside the task directory).
    pub workspace_dir: Option<PathBuf>,
    /// Remove the container, its task directory and its tokens when the run ends.
    pub remove_on_exit: bool,
    /// Fail instead of launching without credentials when the vault does not run.
    pub vault_required: bool,
    /// Providers the task gets a phantom token for besides its agent's own (and those of
    /// config.yml's `vault.task_credentials`).
    pub extra_credentials: Vec<String>,
    /// What the container may reach over the network (`None`: as config.yml says —
    /// `allowlist`, or `open` with `shield.bypass_firewall_no_protection`).
    pub egress: Option<Egress>,
    /// The podman network the container joins (default: podman's own); not with `offline`.
    pub network: Option<String>,
    /// Whether the repository goes through the git gate: `None` is the default — a git URL
    /// does, a directory does not; `Some(true)` gates a directory too (the container gets a
    /// clone through the gate instead of the directory); `Some(false)` clones a git URL
    /// directly.
    pub gate: Option<bool>,
    /// What the container's `origin` is when the gate is used.
    pub gate_mode: GateMode,
    /// What the task runs in (`None`: as config.yml's `container.runtime` says — a container,
    /// unless it says `krun`).
    pub runtime: Option<TaskRuntime>,
}

/// What a task's container may reach over the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Egress {
    /// Only the destinations of the configured shield profiles (and live `allow`s), enforced
    /// by an nftables ruleset an OCI hook loads into the container's network namespace before
    /// its first process runs; private, link-local and metadata addresses are refused.
    Allowlist,
    /// Any address its network reaches: this host's services, the LAN, the internet.
    Open,
    /// No network but loopback (`--network none`). The vault (and later the gate) reach the
    /// container through their mounted Unix sockets, so an agent that talks only to its
    /// model API through the vault works; nothing else leaves the container.
    Offline,
}

impl RunOptions {
    /// A headless run of `agent` on `repo` with `prompt`, everything else at its default.
    pub fn headless(
        agent: impl Into<String>,
        repo: impl Into<String>,
        prompt: impl Into<String>,
        image: ImageSource,
    ) -> Self {
        Self::new(
            agent,
            repo,
            Mode::Headless {
                prompt: prompt.into(),
            },
            image,
        )
    }

    /// An interactive container for `agent` on `repo`.
    pub fn interactive(
        agent: impl Into<String>,
        repo: impl Into<String>,
        image: ImageSource,
    ) -> Self {
        Self::new(
            agent,
            repo,
            Mode::Interactive {
                initial_prompt: None,
            },
            image,
        )
    }

    /// Toad in the browser for a task of `agent` on `repo`.
    pub fn web(
        agent: impl Into<String>,
        repo: impl Into<String>,
        web: WebOptions,
        image: ImageSource,
    ) -> Self {
        Self::new(agent, repo, Mode::Web(web), image)
    }

    /// The sidecar tool `tool` once on `repo` with `args`. Its container is removed when it
    /// ends: its environment holds the real credential.
    pub fn tool(
        tool: impl Into<String>,
        repo: impl Into<String>,
        args: Vec<String>,
        image: ImageSource,
    ) -> Self {
        let mut options = Self::new(tool, repo, Mode::Tool { args }, image);
        options.remove_on_exit = true;
        options
    }

    /// A launch of `agent` on `repo` in `mode`, everything else at its default.
    pub fn new(
        agent: impl Into<String>,
        repo: impl Into<String>,
        mode: Mode,
        image: ImageSource,
    ) -> Self {
        Self {
            agent: agent.into(),
            repo: repo.into(),
            mode,
            image,
            model: None,
            max_turns: None,
            timeout_secs: None,
            name: None,
            branch: None,
            restricted: false,
            gpus: None,
            memory: None,
            cpus: None,
            human_identity: None,
            shared_dir: None,
            shared_mount: None,
            timezone: None,
            workspace_dir: None,
            remove_on_exit: false,
            vault_required: false,
            extra_credentials: Vec::new(),
            egress: None,
            network: None,
            gate: None,
            gate_mode: GateMode::default(),
            runtime: None,
        }
    }

    /// Whether the launcher follows the run to its end (headless and tool runs); the others
    /// keep running until stopped.
    pub fn is_headless(&self) -> bool {
        matches!(self.mode, Mode::Headless { .. } | Mode::Tool { .. })
    }
}

/// Progress of a launch, for the caller to show.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunEvent {
    /// Image preparation.
    Image(BuildEvent),
    /// Something the user asked for that does not apply, said once.
    Warning(String),
    /// The task's network is not filtered ([`crate::EGRESS_OPEN`] says what that means).
    EgressOpen,
    /// The vault listener is open; tokens were minted for these providers (none when no
    /// credential is stored for them).
    VaultWired {
        /// Providers with a token.
        providers: Vec<String>,
    },
    /// The repository's gate mirror is up to date and the task's gate serves.
    GateOpened {
        /// The mirror.
        repo: String,
        /// How the container uses it.
        mode: GateMode,
        /// The source's branches left as they were in the mirror: a branch an agent pushed
        /// is in the way of their names.
        blocked: Vec<String>,
    },
    /// The vault served routes of an older roster; it serves the roster's now.
    RoutesUpdated {
        /// What changed, by provider.
        changes: Vec<RouteChange>,
    },
    /// The sidecar tool gets no credential: none is stored for its provider (the tool runs
    /// without one).
    ToolCredentialMissing {
        /// The tool (its roster name).
        tool: String,
        /// The provider whose credential it would get.
        provider: String,
        /// The credential field it maps (`key`).
        field: String,
    },
    /// The container is being created.
    Launching {
        /// Container name.
        name: String,
        /// Image.
        image: String,
    },
}
