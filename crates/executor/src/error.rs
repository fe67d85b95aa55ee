//! Why an operation of the executor failed. Messages state the condition; what to do about it
//! depends on the caller (the `terok-executor` CLI maps these to the verb to run next).

use std::path::PathBuf;

/// An operation of the executor failed. Nothing is left half-done: a failed launch removes its
/// task directory, its tokens, its listener and its container.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum ExecutorError {
    /// config.yml could not be loaded.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] terok_core::config::ConfigError),
    /// A config.yml edit failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    ConfigEdit(#[from] terok_core::config::edit::ConfigEditError),
    /// Host paths could not be resolved.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Paths(#[from] terok_core::paths::PathsError),
    /// `--raw` reads no config file, so there is none to write to.
    #[error("no config file is read (raw configuration), so there is none to write to")]
    NoConfigFile,
    /// The repository argument is neither an existing directory nor a git URL.
    #[error("Local path not found: {0}")]
    LocalPathNotFound(String),
    /// A relative repository path was given to a session without a working directory.
    #[error("`{0}` is a relative path, and this session has no working directory to resolve it")]
    RelativeRepoWithoutCwd(String),
    /// A step that only root may take.
    #[error("{what} needs root")]
    NeedsRoot {
        /// The step.
        what: String,
    },
    /// A privileged command of a security-module setup failed.
    #[error("`{command}` failed: {detail}")]
    PolicyCommand {
        /// The command line.
        command: String,
        /// What it said.
        detail: String,
    },
    /// A sandbox name that is a task's, an existing container's, or served by the vault.
    #[error("`{name}` is taken: a task, a container or the vault's listener has that name")]
    NameTaken {
        /// The name.
        name: String,
    },
    /// A provider's clients reach the vault only through terok's in-container bridge.
    #[error("provider `{provider}` has no socket variable: a container without terok's bridge cannot reach the vault for it (providers that can: {})", usable.join(", "))]
    NoSocketClient {
        /// The provider asked for.
        provider: String,
        /// The ones a user's container can use.
        usable: Vec<String>,
    },
    /// No credential is stored for a provider asked for.
    #[error("no credential is stored for `{provider}`")]
    NoStoredCredential {
        /// The provider.
        provider: String,
    },
    /// `sandbox prepare | run` for a name that has a prepared sandbox already.
    #[error("a sandbox for the container `{name}` is prepared already")]
    SandboxExists {
        /// The container's name.
        name: String,
    },
    /// Not a container name podman accepts.
    #[error(
        "`{name}` is not a container name (a letter or digit, then letters, digits, `_`, `.`, `-`; at most 128)"
    )]
    BadContainerName {
        /// The name given.
        name: String,
    },
    /// The workspace directory for a git URL is not a directory.
    #[error("workspace {} is not a directory", .0.display())]
    WorkspaceNotADirectory(PathBuf),
    /// A directory lent to the container (the workspace, the shared directory) holds terok's
    /// own files, or lies inside them.
    #[error(
        "the {lent} {} overlaps terok's {what} ({}): the agent could read or change it",
        workspace.display(),
        path.display()
    )]
    WorkspaceHoldsTerokFiles {
        /// Which directory: `workspace` or `shared directory`.
        lent: &'static str,
        /// The directory.
        workspace: PathBuf,
        /// Which of terok's files.
        what: &'static str,
        /// Where they are.
        path: PathBuf,
    },
    /// A credential was asked for a provider the roster does not route.
    #[error("no provider `{name}` in the roster (providers: {})", known.join(", "))]
    UnknownProvider {
        /// The name given.
        name: String,
        /// The providers there are.
        known: Vec<String>,
    },
    /// A model was asked for an agent whose command line cannot choose one.
    #[error("{agent} has no model flag: its model comes from its own configuration")]
    NoModelFlag {
        /// The agent.
        agent: String,
    },
    /// The agent is not in the image selection.
    #[error("{agent} is not installed in the image (the image selection is: {selection})")]
    AgentNotInImage {
        /// The agent.
        agent: String,
        /// The selection the image is built with.
        selection: String,
    },
    /// Removal at the end was asked for a task nobody waits for.
    #[error(
        "removal when the run ends applies to headless runs only; an interactive task is removed explicitly"
    )]
    RemoveOnExitInteractive,
    /// The krun host context cannot be provided.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Krun(#[from] terok_krun::KrunError),
    /// A krun task on a host that cannot start microVMs.
    #[error("this host cannot start krun microVMs: {}", missing.join("; "))]
    KrunUnavailable {
        /// What is missing, each with what provides it.
        missing: Vec<String>,
    },
    /// A krun task in a mode not wired over SSH (web, tool).
    #[error("{mode} tasks cannot run in a krun microVM yet (headless and interactive can)")]
    KrunModeUnsupported {
        /// The mode.
        mode: &'static str,
    },
    /// A krun task without a network.
    #[error("a krun guest is reached over SSH through a published port, so it needs a network")]
    KrunNeedsNetwork,
    /// A web task asked for an image without Toad.
    #[error(
        "web mode serves Toad, which is not in the image (the image selection is: {selection})"
    )]
    WebNeedsToad {
        /// The selection.
        selection: String,
    },
    /// A web task's public address is not one a browser page can have.
    #[error("the public URL {url:?} cannot be used: {reason}")]
    PublicUrlInvalid {
        /// The address given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Another web task is served at the same origin.
    #[error(
        "{task} is served at {origin} already; pages of one origin can reach each other, so each \
         web task needs an address (host or port) of its own"
    )]
    PublicOriginTaken {
        /// The origin.
        origin: String,
        /// The task served there.
        task: String,
    },
    /// The vault's systemd unit cannot be written as this session runs.
    #[error("cannot write the vault's systemd unit: {detail}")]
    VaultUnitUnwritable {
        /// What cannot go in it.
        detail: String,
    },
    /// No systemd user session to install the vault's unit in.
    #[error("no systemd user session ({detail})")]
    NoUserSession {
        /// What systemctl said.
        detail: String,
    },
    /// A web task without a network.
    #[error("web mode needs a network: the browser reaches Toad through a published port")]
    WebNeedsNetwork,
    /// The web UI's port cannot be had.
    #[error("{}", match port {
        Some(port) => format!("port {port} on 127.0.0.1 is not free"),
        None => "no free port on 127.0.0.1".to_owned(),
    })]
    PortUnavailable {
        /// The port asked for (`None`: any).
        port: Option<u16>,
        /// Why.
        source: std::io::Error,
    },
    /// A web request for a task that is not a web task.
    #[error("{name} is not a web task")]
    NotAWebTask {
        /// The task.
        name: String,
    },
    /// The container of a web task ended before its UI answered.
    #[error("{name} ended before its web UI answered")]
    WebUiExited {
        /// The task.
        name: String,
    },
    /// The web UI did not answer in time.
    #[error("the web UI of {name} did not answer within {secs} s")]
    WebUiTimedOut {
        /// The task.
        name: String,
        /// The limit.
        secs: u64,
    },
    /// The vault is needed but does not run.
    #[error("the vault is not running, and this launch requires it")]
    VaultRequired,
    /// The vault refused a request, or the exchange broke.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Vault(#[from] terok_vault::control::ControlError),
    /// The vault daemon could not run in this process.
    #[error(transparent)]
    #[diagnostic(transparent)]
    VaultDaemon(#[from] terok_vault::VaultError),
    /// The session has no program to start the vault daemon with.
    #[error("the vault is not running, and this session has no program to start it with")]
    NoVaultLauncher,
    /// The vault daemon program could not be started.
    #[error("cannot start the vault daemon `{}`: {source}", program.display())]
    VaultSpawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The vault daemon started but did not answer.
    #[error("the vault daemon (pid {pid}) did not come up; the last lines of {}:\n{tail}", log.display())]
    VaultDidNotStart {
        /// Its process id.
        pid: u32,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// The git gate's mirrors or tokens failed.
    #[error(transparent)]
    Gate(#[from] terok_gate::GateError),
    /// The ACP proxy failed.
    #[error(transparent)]
    Acp(#[from] terok_acp::AcpError),
    /// An ACP daemon was needed in the background, and this session has no program to serve it.
    #[error(
        "the ACP proxy needs a program to serve it in the background, and this session has none"
    )]
    NoAcpLauncher,
    /// The ACP daemon could not be started.
    #[error("cannot start the ACP proxy {}: {source}", program.display())]
    AcpSpawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The ACP daemon started in the background did not open its socket.
    #[error("the task's ACP proxy did not come up; the last lines of {}:\n{tail}", log.display())]
    AcpDidNotStart {
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// `TEROK_ACP_PROBE_TIMEOUT_SECS` is not a number of seconds.
    #[error("TEROK_ACP_PROBE_TIMEOUT_SECS is `{0}`, not a number of seconds")]
    InvalidProbeTimeout(String),
    /// A gated launch in a session that has no program to serve a task's gate.
    #[error("the git gate needs a program to serve it, and this session has none")]
    NoGateLauncher,
    /// A task's gate server could not be started.
    #[error("cannot start the gate server {}: {source}", program.display())]
    GateSpawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A task's gate server started but its socket did not answer.
    #[error("the task's gate server did not come up; the last lines of {}:\n{tail}", log.display())]
    GateDidNotStart {
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// `online` mode for a directory: its origin would be a host path the container cannot
    /// reach.
    #[error("{} is a directory: the gate's online mode needs a git URL (a directory is gated in gatekeeping mode)", .0.display())]
    GateOnlineNeedsUrl(PathBuf),
    /// A directory to gate that is not a git repository.
    #[error("{} is not a git repository, so the gate has nothing to mirror", .0.display())]
    GateNotARepository(PathBuf),
    /// A gate verb for a task that did not go through the gate.
    #[error("task {0} does not go through the git gate")]
    NotGated(String),
    /// A gate verb for something that is neither a task nor a mirror.
    #[error("`{0}` is neither a task nor a gate repository")]
    UnknownGateTarget(String),
    /// A review without a branch, when the task pushed none or several.
    #[error("which branch of {target}? {}", if pushed.is_empty() { "it pushed none".to_owned() } else { format!("it pushed {}", pushed.join(", ")) })]
    GateBranchNeeded {
        /// The task or mirror.
        target: String,
        /// The branches it pushed.
        pushed: Vec<String>,
    },
    /// The egress firewall's profiles, state or hook failed.
    #[error(transparent)]
    Shield(#[from] terok_shield::ShieldError),
    /// An `allowlist` launch on a host without the firewall's tools.
    #[error("the egress firewall needs {} on this host", .0.join(" and "))]
    ShieldToolsMissing(Vec<String>),
    /// An `allowlist` launch in a session that has no program to serve the shield's hook.
    #[error("the egress firewall needs a hook program, and this session has none")]
    NoShieldHook,
    /// A hook program someone other than root could change, with rootful podman (which runs
    /// it as root).
    #[error("the shield's hook program {} could be changed by someone other than root: {detail}", program.display())]
    UnsafeShieldHook {
        /// The program.
        program: PathBuf,
        /// What is not root's.
        detail: String,
    },
    /// A task's gate server could not listen on TCP.
    #[error("the gate server cannot listen: {detail}")]
    GateListen {
        /// What the bind said.
        detail: String,
    },
    /// A launch a remote engine cannot run.
    #[error("the remote engine `{engine}` cannot run this task: {reason}")]
    RemoteEngineRefused {
        /// The engine (connection name or `CONTAINER_HOST`).
        engine: String,
        /// Why.
        reason: RemoteRefusal,
    },
    /// A task that cannot be written as a Kubernetes Pod.
    #[error("this task cannot run as a Kubernetes Pod: {reason}")]
    KubeRefused {
        /// Why.
        reason: KubeRefusal,
    },
    /// The task's Kubernetes objects could not be written.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Kube(#[from] terok_kube::KubeError),
    /// `services.mode: tcp` cannot serve this launch.
    #[error("config.yml `services.mode: tcp` cannot serve this task: {reason}")]
    TcpServicesRefused {
        /// Why.
        reason: TcpRefusal,
    },
    /// A `--network` the container may not join.
    #[error("the container cannot join the network `{network}`: {reason}")]
    NetworkRefused {
        /// The value given.
        network: String,
        /// Why.
        reason: String,
    },
    /// A config.yml value that cannot be used.
    #[error("config.yml `{key}`: {detail}")]
    BadSetting {
        /// The key.
        key: String,
        /// What is wrong with its value.
        detail: String,
    },
    /// The running firewall refused a read or a change.
    #[error("the firewall of {name}: {detail}")]
    ShieldLive {
        /// The container.
        name: String,
        /// What nft said.
        detail: String,
    },
    /// A live change for a task that runs without the allow-list firewall.
    #[error(
        "{0} runs without the allow-list firewall (offline or open), so it has no allow-list to change"
    )]
    NotShielded(String),
    /// An `allow`/`deny` target that is neither a domain nor an address (block).
    #[error("`{0}` is not a domain, an address or an address/prefix")]
    BadShieldTarget(String),
    /// A domain whose addresses are all private, link-local or metadata ones.
    #[error("{name} resolves only to private, link-local or metadata addresses ({}); allow such an address by giving it literally", addresses.join(", "))]
    PrivateName {
        /// The domain.
        name: String,
        /// Its addresses.
        addresses: Vec<String>,
    },
    /// A domain with no address.
    #[error("{0} has no address (this host cannot resolve it)")]
    Unresolved(String),
    /// No such task or container.
    #[error("Container not found: {0}")]
    TaskNotFound(String),
    /// The container runs already (for `start`).
    #[error("{0} is already running")]
    AlreadyRunning(String),
    /// The roster has no such entry, or a roster file is invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Roster(Box<terok_roster::RosterError>),
    /// Images could not be built.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Images(Box<terok_image_build::ImageBuildError>),
    /// `image.user_snippet_file` could not be read.
    #[error("cannot read image.user_snippet_file {}: {source}", path.display())]
    UserSnippetFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A sidecar image was asked for without naming the tool, and the roster has none.
    #[error("no roster entry has a sidecar section")]
    NoSidecarTool,
    /// A sidecar image was asked for without naming the tool, and the roster has several.
    #[error("several sidecar tools exist: {}", tools.join(", "))]
    AmbiguousSidecar {
        /// Their names.
        tools: Vec<String>,
    },
    /// The container environment could not be assembled.
    #[error(transparent)]
    #[diagnostic(transparent)]
    ContainerEnv(#[from] terok_container_env::ContainerEnvError),
    /// Podman failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Podman(#[from] terok_podman::PodmanError),
    /// A host file operation failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fs(#[from] terok_core::secure_fs::SecureFsError),
    /// The credential database refused.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Credentials(#[from] terok_credentials::DbError),
    /// The credential database's key is not available.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Key(#[from] terok_credentials::key::KeyError),
    /// A credential could not be stored or captured.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Auth(#[from] terok_credentials::auth::AuthError),
    /// routes.json could not be written or read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Routes(#[from] terok_credentials::routes::RoutesError),
    /// An agent's config file could not be pointed at the vault.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Patch(#[from] terok_credentials::patch::PatchError),
    /// The provider has no login command (only API keys).
    #[error("{label} has no login command; it authenticates with an API key")]
    NoLoginCommand {
        /// The provider's label.
        label: String,
    },
    /// The login container failed.
    #[error("the login container exited with {code}")]
    LoginFailed {
        /// Its exit code.
        code: i32,
    },
    /// A headless run was to end (timeout, interrupt, refused credential) and its container
    /// could not be stopped. The run's tokens were revoked all the same, so whatever still
    /// runs in it reaches no upstream through the vault.
    #[error("{} could not be stopped ({}); {}", .0.name, .0.source, after_stop_failed(.0))]
    StopFailed(Box<StopFailure>),
    /// A task record could not be read or written.
    #[error("task record {}: {detail}", path.display())]
    TaskRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Podman could not run the container (its messages were in the output).
    #[error("podman could not run {name}: {}", failure_text(*.code))]
    LaunchFailed {
        /// Container name.
        name: String,
        /// Podman's exit status (125, 126 or 127).
        code: i32,
    },
    /// The OS random number generator failed.
    #[error("cannot draw a random task id")]
    Rng,
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// What podman's exit statuses 125–127 mean when no container was left to look at.
fn failure_text(code: i32) -> String {
    match code {
        125 => "podman itself failed (exit status 125; its message is above)".to_owned(),
        126 => "the container's command could not be invoked (exit status 126)".to_owned(),
        127 => "the container's command was not found (exit status 127)".to_owned(),
        other => format!("exit status {other}"),
    }
}

/// A container that would not stop at the end of its run, and what was done instead.
#[derive(Debug)]
#[non_exhaustive]
pub struct StopFailure {
    /// Container name.
    pub name: String,
    /// Tokens revoked.
    pub revoked_tokens: usize,
    /// Revocations that failed as well.
    pub cleanup_warnings: Vec<String>,
    /// The agent's work is only in the container: on a remote engine it is copied back when
    /// the run ends, which it did not.
    pub work_in_container: bool,
    /// Why podman could not stop it.
    pub source: terok_podman::PodmanError,
}

/// What became of a run whose container would not stop: its tokens, and what else failed.
fn after_stop_failed(failure: &StopFailure) -> String {
    let tokens = match (failure.revoked_tokens, failure.cleanup_warnings.as_slice()) {
        (0, []) => "it held no tokens".to_owned(),
        (n, []) => format!("its {n} token(s) were revoked, so it reaches nothing through terok"),
        (n, warnings) => format!("{n} token(s) revoked, but {}", warnings.join("; ")),
    };
    let work = if failure.work_in_container {
        "; the agent's work was not copied back and is only in the container"
    } else {
        ""
    };
    format!("{tokens}; the container and its task are left as they are{work}")
}

// Boxed: these two are the largest, and every result of the session carries the error's size.
impl From<terok_roster::RosterError> for ExecutorError {
    fn from(err: terok_roster::RosterError) -> Self {
        Self::Roster(Box::new(err))
    }
}

impl From<terok_image_build::ImageBuildError> for ExecutorError {
    fn from(err: terok_image_build::ImageBuildError) -> Self {
        Self::Images(Box::new(err))
    }
}

impl ExecutorError {
    /// An I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// The provider called `name` (or a roster v3 alias of one), or the error listing them.
pub(crate) fn provider_named<'r>(
    roster: &'r terok_roster::Roster,
    name: &str,
) -> Result<&'r terok_roster::Provider, ExecutorError> {
    roster
        .provider(name)
        .ok_or_else(|| ExecutorError::UnknownProvider {
            name: name.to_owned(),
            known: roster.providers().map(|p| p.name.clone()).collect(),
        })
}

/// Why `services.mode: tcp` cannot serve a launch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TcpRefusal {
    /// An offline task has no network.
    #[error("an offline task has no network to reach a TCP listener")]
    Offline,
    /// The container's network has no gateway to listen on.
    #[error("the network `{0}` has no gateway on this host to listen on")]
    NoGateway(String),
    /// Rootless, a podman network's gateway is inside podman's own namespace.
    #[error("a rootless podman network's gateway is not an address of this host")]
    RootlessNetwork,
    /// Rootless, the listener is on the host's loopback, which an unfiltered task would reach
    /// whole.
    #[error(
        "rootless, the listener is on this host's loopback, and an unfiltered task would reach \
         every service there"
    )]
    RootlessOpen,
}

/// Why a task cannot be written as a Kubernetes Pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KubeRefusal {
    /// Only a headless run ends by itself, which a Pod of its own needs.
    #[error("only a headless run (`-p PROMPT`) becomes a Pod; this is {0}")]
    Mode(&'static str),
    /// A directory of this host is nowhere in a cluster.
    #[error("the workspace is this host's directory {}, which a cluster's node cannot see", .0.display())]
    LocalWorkspace(std::path::PathBuf),
    /// A KVM guest needs this host's runtime.
    #[error("a krun microVM runs on this host's KVM")]
    Krun,
    /// A given image tag names no base for the vault's image.
    #[error(
        "the image is given as the tag `{0}`; the vault sidecar's image is built on the base of a build request"
    )]
    ImageTag(String),
    /// A route whose upstream is the Pod itself: whatever listens there gets the credential.
    #[error(
        "the upstream of `{provider}` is {url}, which in a Pod is the Pod itself: the agent's \
         container could listen there and be handed the real credential"
    )]
    LocalUpstream {
        /// The provider.
        provider: String,
        /// The upstream.
        url: String,
    },
    /// A repository URL with a password, which the Pod's YAML would show.
    #[error("the repository URL carries a password, which the Pod's objects would show")]
    PasswordInUrl,
    /// No program to put into the vault image.
    #[error("the session has no vault program to put into the sidecar's image")]
    NoVaultProgram,
}

/// Why a remote engine cannot run a launch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteRefusal {
    /// The vault and gate listen on this host's Unix sockets, which the engine cannot see.
    #[error("it cannot see this host's sockets, where the vault and the gate listen")]
    Sockets,
    /// No address of this host to tell the engine's containers.
    #[error("no address of this host is configured for its containers to reach the listeners")]
    NoAddress,
    /// The firewall's hook runs on the engine's host, which terok cannot give it.
    #[error(
        "the egress firewall is loaded by a hook on the engine's host, which terok does not manage"
    )]
    Firewall,
    /// The mode publishes a port or runs a VM on the engine's host.
    #[error("{0} is not served from a remote engine")]
    Mode(&'static str),
}
