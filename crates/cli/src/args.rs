//! The clap argument types: only the shape of the command line, no behaviour.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run AI coding agents in hardened Podman containers; real credentials stay on the host.
#[derive(Debug, Parser)]
#[command(
    name = "terok-executor",
    version,
    long_about = "Run AI coding agents (Claude Code, Codex, Vibe, Copilot, OpenCode, Pi) in hardened \
                  Podman containers.\n\nContainers only ever see phantom tokens; the host-side vault \
                  swaps them for the real credential on the way out.",
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Options that apply to every verb.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The verb to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options accepted before or after any verb.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Read only this config file instead of the layered /etc/terok and ~/.config/terok files.
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "raw")]
    pub config: Option<PathBuf>,
    /// Ignore every config.yml (built-in defaults only).
    #[arg(long, global = true)]
    pub raw: bool,
    /// Log more (-v debug, -vv trace) to stderr; with -v, builds stream podman's output.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Use this podman system connection (a remote engine) instead of the local one;
    /// `CONTAINER_HOST` in the environment works too.
    #[arg(long, global = true, value_name = "NAME")]
    pub connection: Option<String>,
}

/// The verbs of `terok-executor`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent in a new container on a directory or a git URL.
    Run(Box<RunArgs>),
    /// Run a sidecar tool (e.g. coderabbit) once on a directory or a git URL, with its real
    /// credential, in a container of its own.
    RunTool(Box<RunToolArgs>),
    /// List tasks: containers terok started (and task directories whose container is gone).
    List(ListArgs),
    /// Start a stopped task again (with fresh phantom tokens).
    Start(TaskNameArgs),
    /// Stop a running task; it stays for a later `start` (its tokens are revoked).
    Stop(TaskNameArgs),
    /// Remove tasks: container, task directory and tokens.
    Rm(RmArgs),
    /// List, inspect and select the agents of the roster.
    Agents(AgentsArgs),
    /// Store a credential for an agent: an API key, or an OAuth login in an auth container.
    Auth(AuthArgs),
    /// Build the container images (L0 base layer, L1 agent layer; reused when current).
    Build(BuildArgs),
    /// Prepare this host: vault routes, the vault daemon, the container images (idempotent).
    Setup(SetupArgs),
    /// Remove what setup and build created: every image terok built.
    Uninstall(UninstallArgs),
    /// Print the effective configuration: every config.yml layer merged, defaults filled in.
    ShowConfig(ShowConfigArgs),
    /// Check this host and its tasks: podman, the vault, its routes, refused credentials.
    Doctor(DoctorArgs),
    /// Show how much disk terok uses: each task, each shared config directory, each image.
    Storage(StorageArgs),
    /// The token broker that keeps real credentials on the host.
    Vault(VaultArgs),
    /// The egress firewall of a task: status, live allow and deny.
    Shield(ShieldArgs),
    /// The git gate: review what agents pushed to the host's mirrors, promote it, sync.
    Gate(GateArgs),
    /// SSH keys the vault holds for tasks: git and ssh in a task sign with them through its
    /// SSH signer; the private keys never enter a container.
    Ssh(SshArgs),
    /// Serve a running task's agents to an editor (Zed, Toad) over ACP, the Agent Client Protocol.
    #[command(long_about = ACP_ABOUT)]
    Acp(AcpArgs),
    /// The Python terok-executor 0.5.0's `sandbox` verbs, kept for its scripts: the same
    /// commands as `setup`, `uninstall`, `vault`, `gate`, `shield`, `ssh` and `doctor`, and
    /// `prepare | run | cleanup` for a container of your own.
    #[command(hide = true)]
    Sandbox(SandboxArgs),
}

impl Command {
    /// The command a `sandbox …` alias stands for (any other command is itself).
    pub fn without_sandbox_alias(self) -> Self {
        match self {
            Self::Sandbox(SandboxArgs { command }) => match command.into_command() {
                Ok(command) => command,
                Err(command) => Self::Sandbox(SandboxArgs { command }),
            },
            other => other,
        }
    }
}

/// Arguments of `sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SandboxCommand,
}

/// The verbs of `sandbox` (each the command of the same name).
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Prepare this host's services (same as `terok-executor setup`).
    Setup(SetupArgs),
    /// Remove what setup made (same as `terok-executor uninstall`).
    Uninstall(UninstallArgs),
    /// The token broker (same as `terok-executor vault`).
    Vault(VaultArgs),
    /// The git gate (same as `terok-executor gate`).
    Gate(GateArgs),
    /// A task's egress firewall (same as `terok-executor shield`).
    Shield(ShieldArgs),
    /// SSH keys in the vault (same as `terok-executor ssh`).
    Ssh(SshArgs),
    /// Stored credentials, never their values (same as `terok-executor vault list`).
    Credentials(VaultListArgs),
    /// Check this host and its tasks (same as `terok-executor doctor`).
    Doctor(DoctorArgs),
    /// Sandbox a container of your own: tokens and a vault socket for the credentials asked,
    /// the hardening of a task and the egress firewall; prints the podman command line to run
    /// your image with.
    Prepare(SandboxPrepareArgs),
    /// Run an image of your own in the sandbox (prepared, attached to this terminal, and
    /// cleaned up when it exits); exits with the container's status.
    Run(SandboxRunArgs),
    /// Take a sandbox back: revoke its tokens, close its vault socket, drop the firewall's
    /// state (the container itself is yours and stays).
    Cleanup(SandboxCleanupArgs),
}

/// What a user-owned container's sandbox gives it.
#[derive(Debug, Args)]
pub struct SandboxOptions {
    /// A provider whose phantom token (and vault socket) the container gets; repeatable (`claude`,
    /// or a roster v3 name such as `anthropic`).
    #[arg(long = "credential", value_name = "PROVIDER")]
    pub credentials: Vec<String>,
    /// Its egress: `offline`, `allowlist` (the shield profiles) or `open` (default: as
    /// config.yml says for tasks).
    #[arg(long, value_enum, value_name = "MODE")]
    pub shield: Option<ShieldMode>,
}

/// Arguments of `sandbox prepare`.
#[derive(Debug, Args)]
pub struct SandboxPrepareArgs {
    /// The name the container will have (`podman run --name`).
    pub name: String,
    /// What it gets.
    #[command(flatten)]
    pub sandbox: SandboxOptions,
    /// Print the podman arguments as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sandbox run`.
#[derive(Debug, Args)]
pub struct SandboxRunArgs {
    /// The container's name (default: `terok-sandbox-` and a random suffix).
    #[arg(long)]
    pub name: Option<String>,
    /// What it gets.
    #[command(flatten)]
    pub sandbox: SandboxOptions,
    /// The image to run.
    pub image: String,
    /// Its command and arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Arguments of `sandbox cleanup`.
#[derive(Debug, Args)]
pub struct SandboxCleanupArgs {
    /// The container's name.
    pub name: String,
}

impl SandboxCommand {
    /// The top-level command this verb is; the verbs of a user-owned container are their own.
    fn into_command(self) -> Result<Command, Self> {
        Ok(match self {
            Self::Setup(args) => Command::Setup(args),
            Self::Uninstall(args) => Command::Uninstall(args),
            Self::Vault(args) => Command::Vault(args),
            Self::Gate(args) => Command::Gate(args),
            Self::Shield(args) => Command::Shield(args),
            Self::Ssh(args) => Command::Ssh(args),
            Self::Credentials(args) => Command::Vault(VaultArgs {
                command: VaultCommand::List(args),
            }),
            Self::Doctor(args) => Command::Doctor(args),
            own @ (Self::Prepare(_) | Self::Run(_) | Self::Cleanup(_)) => return Err(own),
        })
    }
}

const ACP_ABOUT: &str = "\
Serve a running task's agents to an editor (Zed, Toad) over ACP, the Agent Client Protocol.

The editor sees one agent whose models are every agent of the task as `agent:model`; picking
one starts that agent's ACP server inside the task container, behind the task's vault, shield
and gate. Without --stdio, this runs the task's proxy on a Unix socket (its path is printed)
until the task stops or Ctrl-C. With --stdio, it speaks ACP on stdin/stdout — the command an
editor starts — and runs the task's proxy in the background when none runs. The task must be
running: `terok-executor run AGENT --interactive`, or `terok-executor start NAME`.";

/// Arguments of `acp`.
#[derive(Debug, Args)]
pub struct AcpArgs {
    /// The task: its container name or task id (see `terok-executor list`).
    pub task: String,
    /// The socket, as the Python terok-executor took it (same as --socket).
    #[arg(value_name = "SOCKET", conflicts_with_all = ["socket", "stdio"])]
    pub socket_path: Option<PathBuf>,
    /// The socket (default: acp/<container>.sock under the runtime directory).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Speak ACP on stdin/stdout (an editor's agent command, e.g. a Zed custom agent server).
    #[arg(long)]
    pub stdio: bool,
    /// Seconds an agent may take to list its models (default: TEROK_ACP_PROBE_TIMEOUT_SECS, else 30).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub probe_timeout: Option<f64>,
    /// Do not keep an agent's ACP server started ahead of the next session: saves that
    /// server's memory in the container; each session then waits for its agent to start.
    #[arg(long)]
    pub no_warm: bool,
}

/// A positive number of seconds.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => Ok(secs),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

/// Arguments of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Only this task (container name or task id); default: every running task.
    pub task: Option<String>,
    /// Repair what can be repaired inside the tasks (bridges that stopped), then check again.
    #[arg(long)]
    pub fix: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `show-config`.
#[derive(Debug, Args)]
pub struct ShowConfigArgs {
    /// Print JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `agents`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentsArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub command: Option<AgentsCommand>,
    /// Options of the default `list` (so `agents --all` works as it does in the Python
    /// terok-executor).
    #[command(flatten)]
    pub list: AgentsListArgs,
}

/// The verbs of `agents`.
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// List the agents (NAME, LABEL, TYPE), sorted by name.
    List(AgentsListArgs),
    /// Print one entry as merged from the bundled roster and your override files.
    Show(AgentsShowArgs),
    /// Choose the agents baked into the L1 image (writes image.agents to config.yml).
    Set(AgentsSetArgs),
    /// Print the JSON Schema of a roster file (for editors and yaml-language-server).
    Schema(AgentsSchemaArgs),
}

/// Arguments of `agents schema`.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentsSchemaArgs {
    /// The schema of a roster v3 provider file (providers/<name>.yaml) instead of an agent
    /// file (agents/<name>.yaml, roster v1 or v3).
    #[arg(long)]
    pub provider: bool,
}

/// Arguments of `agents list`.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentsListArgs {
    /// Include every kind of entry: tools (gh, glab, coderabbit, sonar), the frontend (toad)
    /// and infrastructure (caddy) as well as agents.
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `agents show`.
#[derive(Debug, Args)]
pub struct AgentsShowArgs {
    /// The entry to show (an agent, tool or runtime component).
    pub name: String,
}

/// Arguments of `agents set`.
#[derive(Debug, Args)]
pub struct AgentsSetArgs {
    /// `all`, or a comma list of names; `-name` excludes (e.g. `all,-vibe`). Without it, the
    /// current selection is shown.
    pub selection: Option<String>,
}

/// Where images come from: shared by build and setup.
#[derive(Debug, Clone, Default, Args)]
pub struct ImageArgs {
    /// Base image of L0 (default: image.base_image in config.yml, else ubuntu:24.04).
    #[arg(long, value_name = "IMAGE")]
    pub base: Option<String>,
    /// Package family of the base image, when its name does not say.
    #[arg(long, value_enum)]
    pub family: Option<FamilyArg>,
}

/// `--family` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FamilyArg {
    /// Debian, Ubuntu and derivatives.
    Deb,
    /// Fedora, RHEL, UBI and derivatives.
    Rpm,
}

/// Arguments of `build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Base image and family.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Agents to install: `all`, a comma list, `-name` excludes (default: image.agents, else all).
    #[arg(long, value_name = "SELECTION")]
    pub agents: Option<String>,
    /// Rebuild the agent layer even when it is current (fresh agent versions).
    #[arg(long)]
    pub rebuild: bool,
    /// Rebuild everything without podman's layer cache (and pull the base image again).
    #[arg(long, conflicts_with = "rebuild")]
    pub full_rebuild: bool,
    /// Also build the sidecar tool image (for `run-tool`); optionally name the tool.
    #[arg(long, value_name = "TOOL", num_args = 0..=1, default_missing_value = "")]
    pub sidecar: Option<String>,
}

/// Arguments of `setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Set up only this Linux security module for terok's sockets (`selinux`: a policy
    /// module; `apparmor`: nothing is needed): shows what runs, then runs it as root.
    #[arg(
        value_enum,
        value_name = "COMPONENT",
        conflicts_with_all = ["root", "check", "no_sandbox", "no_images", "passphrase_tier"]
    )]
    pub component: Option<SetupComponent>,
    /// With a component: only show the rules and the privileged commands.
    #[arg(long, requires = "component")]
    pub show: bool,
    /// Also install the shield's OCI hook for every podman of this host
    /// (/etc/containers/oci/hooks.d; root only).
    #[arg(long)]
    pub root: bool,
    /// Only report what is missing (exit 1 if anything is).
    #[arg(long)]
    pub check: bool,
    /// Leave host services alone (vault routes and daemon): only images.
    #[arg(long)]
    pub no_sandbox: bool,
    /// Do not build images.
    #[arg(long)]
    pub no_images: bool,
    /// Where the vault key is kept: `kernel-keyring` protects the key file with a passphrase
    /// and caches the key for your session (`vault unlock`); `systemd-creds` seals it to this
    /// machine; `keyring` moves it into your desktop's keyring (Secret Service).
    #[arg(long, value_enum, value_name = "TIER")]
    pub passphrase_tier: Option<PassphraseTier>,
    /// Base image and family.
    #[command(flatten)]
    pub image: ImageArgs,
}

/// `setup`'s optional component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SetupComponent {
    /// SELinux: the terok_socket policy module.
    Selinux,
    /// AppArmor: podman's default profile suffices.
    Apparmor,
}

/// Where `setup --passphrase-tier` keeps the vault key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PassphraseTier {
    /// Sealed with systemd-creds to this machine (TPM2, or the host key only root reads).
    SystemdCreds,
    /// The desktop's keyring (Secret Service over D-Bus).
    Keyring,
    /// A passphrase-protected key file, cached in the kernel keyring by `vault unlock`.
    KernelKeyring,
}

/// Arguments of `uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Keep the container images.
    #[arg(long)]
    pub keep_images: bool,
    /// Leave host services alone: the vault keeps running and setup stays recorded.
    #[arg(long)]
    pub no_sandbox: bool,
    /// Remove only the images built on this base (default: every image terok built).
    #[arg(long, value_name = "IMAGE")]
    pub base: Option<String>,
    /// Also remove the shield's system-wide OCI hook (`setup --root`; root only).
    #[arg(long)]
    pub root: bool,
}

/// Arguments of `auth`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// The agent or tool to authenticate (see `agents list --all`).
    pub agent: String,
    /// Store this API key instead of logging in; `-` reads it from stdin (preferred: a key on
    /// the command line shows in the process list and the shell history).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Base image of the auth container (OAuth logins; default: image.base_image).
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,
}

/// Arguments of `vault`.
#[derive(Debug, Args)]
pub struct VaultArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: VaultCommand,
}

/// Arguments of `vault serve`.
#[derive(Debug, Args)]
pub struct VaultServeArgs {
    /// Serve one task as the vault sidecar of its Kubernetes Pod (`run --emit kube` writes
    /// these arguments): its credentials and tokens from --bundle, on --socket only.
    #[arg(long, requires_all = ["bundle", "socket", "state"])]
    pub sidecar: bool,
    /// The sidecar's bundle (the Pod's Secret, mounted into the sidecar only).
    #[arg(long, value_name = "FILE", requires = "sidecar")]
    pub bundle: Option<PathBuf>,
    /// The socket to serve, in the directory the agent's container shares.
    #[arg(long, value_name = "PATH", requires = "sidecar")]
    pub socket: Option<PathBuf>,
    /// A private directory for the sidecar's sealed database and audit log.
    #[arg(long, value_name = "DIR", requires = "sidecar")]
    pub state: Option<PathBuf>,
    /// Stop once this file exists (the agent's container writes it when it ends).
    #[arg(long, value_name = "FILE", requires = "sidecar")]
    pub until: Option<PathBuf>,
}

/// The verbs of `vault`.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Run the vault daemon in the foreground (for systemd and debugging); with --sidecar, a
    /// Pod's vault for one task.
    Serve(VaultServeArgs),
    /// Start the vault daemon in the background.
    Start,
    /// Stop the vault daemon.
    Stop,
    /// Show the vault's state: daemon, database, routes, credentials, listeners, leaks.
    Status,
    /// Regenerate routes.json from the roster, reload a running daemon, and show what it
    /// serves.
    Routes(VaultRoutesArgs),
    /// List stored credentials (never their values); with --tokens, live tokens by container.
    List(VaultListArgs),
    /// Remove leaked credential files and revoke the tokens of containers that no longer run.
    Clean(VaultCleanArgs),
    /// Run the vault as a systemd user service (terok-vault.service): it starts with your
    /// login session and outlives this shell.
    Install(VaultInstallArgs),
    /// Stop and remove the vault's systemd user service.
    Uninstall,
    /// Where the vault's key (and its passphrase) comes from: each source in the order they
    /// are asked, and which one answers.
    Passphrase,
    /// Cache the vault key in the kernel keyring, so a passphrase-protected key asks for its
    /// passphrase once and not at every command.
    Unlock(VaultUnlockArgs),
    /// Forget the cached vault key: the next command that opens the vault asks for the
    /// passphrase again.
    Lock(VaultLockArgs),
}

/// Arguments of `vault unlock`.
#[derive(Debug, Args)]
pub struct VaultUnlockArgs {
    /// How long the key stays cached: `90s`, `30m`, `8h`, `2d`, or `0` for until `vault lock`
    /// or a reboot.
    #[arg(long = "for", value_name = "DURATION", default_value = "8h", value_parser = parse_lifetime)]
    pub lifetime: Lifetime,
    /// Read the passphrase from standard input (its first line) instead of the terminal.
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// How long something stays: a duration, or until it is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime(pub Option<std::time::Duration>);

/// `90s`, `30m`, `8h`, `2d`, a number of seconds, or `0` (no expiry).
fn parse_lifetime(text: &str) -> Result<Lifetime, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Lifetime(None));
    }
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{text}` is not a duration like 90s, 30m, 8h or 2d"
            ));
        }
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{text}` is not a duration like 90s, 30m, 8h or 2d"
        ));
    }
    let too_long = || format!("`{text}` is longer than the kernel keeps a key (136 years)");
    let number: u64 = number.parse().map_err(|_| too_long())?;
    let seconds = number
        .checked_mul(seconds_per)
        .filter(|s| *s <= u64::from(u32::MAX))
        .ok_or_else(too_long)?;
    if seconds == 0 {
        return Err(format!(
            "`{text}` is no time at all; `0` alone means until `vault lock` or a reboot"
        ));
    }
    Ok(Lifetime(Some(std::time::Duration::from_secs(seconds))))
}

/// Arguments of `vault lock`.
#[derive(Debug, Args)]
pub struct VaultLockArgs {
    /// Also stop the running vault daemon (it keeps the key in memory while it runs).
    #[arg(long)]
    pub stop: bool,
}

/// Arguments of `vault install`.
#[derive(Debug, Args)]
pub struct VaultInstallArgs {
    /// Only print the unit (for a system without a user session, or to review it).
    #[arg(long)]
    pub print: bool,
}

/// Arguments of `vault routes`.
#[derive(Debug, Args)]
pub struct VaultRoutesArgs {
    /// Print the served routes as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `vault list`.
#[derive(Debug, Args)]
pub struct VaultListArgs {
    /// Also list live phantom tokens (by container; the tokens themselves are never stored).
    #[arg(long)]
    pub tokens: bool,
}

/// Arguments of `vault clean`.
#[derive(Debug, Args)]
pub struct VaultCleanArgs {
    /// Spare tokens minted in the last SECONDS: they may belong to a container that is being
    /// created or restarted right now.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub grace: u32,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: the agent's own (124 when --timeout fired, 130 on Ctrl-C, 77 when \
                  the model API kept refusing the stored credential), 1 when the launch failed, \
                  3 when setup is needed, 4 when setup last ran with a newer version."
)]
pub struct RunArgs {
    /// The agent (see `terok-executor agents`).
    pub agent: String,
    /// A directory (mounted at /workspace) or a git URL (cloned inside the container).
    #[arg(default_value = ".")]
    pub repo: String,
    /// Run headless on this prompt and stream the agent's output.
    #[arg(short, long, value_name = "PROMPT", conflicts_with = "interactive")]
    pub prompt: Option<String>,
    /// Start a container to log into (`podman exec -it NAME bash -l`) instead.
    #[arg(long)]
    pub interactive: bool,
    /// Serve Toad in the browser instead: every agent of the image through its ACP server;
    /// the link (with the task's access token) is printed once the UI answers.
    #[arg(long, conflicts_with_all = ["prompt", "interactive"])]
    pub web: bool,
    /// Port on 127.0.0.1 for --web (default: a free one).
    #[arg(long, value_name = "PORT", requires = "web")]
    pub port: Option<u16>,
    /// The address the browser uses for --web, when a proxy or tunnel is in front of the port.
    #[arg(long, value_name = "URL", requires = "web")]
    pub public_url: Option<String>,
    /// Model, for agents that can choose one.
    #[arg(short, long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Turn limit (agents without a flag for it are asked in the prompt).
    #[arg(long, value_name = "N")]
    pub max_turns: Option<u32>,
    /// Seconds before the agent is stopped (exit status 124); enforced on the host too.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub timeout: u64,
    /// Container name (default terok-executor-<task id>).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Branch to clone or create (git URLs).
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// Host directory a git URL is cloned into (default: inside the task directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Remove the container, its task directory and its tokens when the run ends.
    #[arg(long)]
    pub rm: bool,
    /// No auto-approve and no sudo inside (no-new-privileges).
    #[arg(long)]
    pub restricted: bool,
    /// GPUs through CDI: all, nvidia, amd, intel, or vendor:index lists (amd:1,intel).
    #[arg(long, value_name = "SPEC")]
    pub gpus: Option<String>,
    /// Same as --gpus all (deprecated in the Python terok-executor).
    #[arg(long, hide = true, conflicts_with = "gpus")]
    pub gpu: bool,
    /// Memory limit, e.g. 4g.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit, e.g. 2.0.
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Commit as the agent with your `git config --global` identity as the human.
    #[arg(long)]
    pub git_identity_from_host: bool,
    /// A host directory to share with the task.
    #[arg(long, value_name = "PATH")]
    pub shared_dir: Option<PathBuf>,
    /// Where --shared-dir is mounted.
    #[arg(long, value_name = "PATH", default_value = "/shared")]
    pub shared_mount: String,
    /// Time zone of the container (default: the host's).
    #[arg(long, value_name = "IANA")]
    pub timezone: Option<String>,
    /// Base image and family.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Answer yes to preflight questions (build missing images).
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Skip the setup-stamp gate and the preflight checks (missing images are still built).
    #[arg(long)]
    pub no_preflight: bool,
    /// How to print Claude's stream-json: `text` renders readable lines, `raw` passes every
    /// line through; `auto` renders on a terminal only.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Auto)]
    pub output: OutputFormat,
    /// Same as --output raw.
    #[arg(long, hide = true, conflicts_with = "output")]
    pub raw_output: bool,
    /// Also give the task a phantom token for PROVIDER (e.g. `gh` for a task that opens pull
    /// requests); repeatable. Only the agent's own provider gets one otherwise.
    #[arg(long = "credential", value_name = "PROVIDER")]
    pub credentials: Vec<String>,
    /// Keep waiting for the agent when the model API refuses the stored credential (by
    /// default the run stops after three refusals in a row, exit status 77).
    #[arg(long)]
    pub no_fail_fast: bool,
    /// What the container may reach (default: `allowlist`, or `open` when config.yml sets
    /// `shield.bypass_firewall_no_protection`).
    #[arg(long, value_enum, value_name = "MODE")]
    pub shield: Option<ShieldMode>,
    /// The podman network the container joins (default: podman's own; not with `--shield
    /// offline`).
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// Put the repository behind the git gate: the default for a git URL; for a directory,
    /// the container gets a clone through the gate instead of the directory itself.
    #[arg(long, overrides_with = "no_gate")]
    pub gate: bool,
    /// Clone a git URL directly from its remote, without the gate (the shield permitting).
    #[arg(long, overrides_with = "gate")]
    pub no_gate: bool,
    /// What the container's `origin` is with the gate: `gatekeeping` (the gate; pushes wait
    /// for `gate promote`) or `online` (the real remote; the gate only seeds the clone).
    #[arg(long, value_enum, value_name = "MODE", default_value = "gatekeeping")]
    pub gate_mode: GateModeArg,
    /// What the task runs in: `podman` (a container) or `krun` (a KVM microVM, reached over
    /// SSH; headless and interactive only). Default: config.yml's `container.runtime`, else
    /// podman.
    #[arg(long, value_enum, value_name = "RUNTIME")]
    pub runtime: Option<RuntimeArg>,
    /// Write the task instead of running it: `kube` prints a ConfigMap, a NetworkPolicy and a
    /// Pod (the agent with its vault as a sidecar) for `kubectl apply` or `podman kube
    /// play`; headless runs of a git URL only. Needs --kube-secret.
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        requires = "kube_secret",
        requires = "prompt"
    )]
    pub emit: Option<EmitFormat>,
    /// Where `--emit kube` writes the Secret with the real credentials the Pod's vault
    /// serves: a new file, readable by you only (an existing file is refused).
    #[arg(long, value_name = "FILE", requires = "emit")]
    pub kube_secret: Option<PathBuf>,
}

/// `run --emit` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmitFormat {
    /// Kubernetes objects (YAML).
    Kube,
}

/// `run --runtime` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeArg {
    /// A container, with podman's configured OCI runtime.
    Podman,
    /// A KVM microVM with podman's krun runtime (needs libkrun and /dev/kvm).
    Krun,
}

/// Arguments of `run-tool`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: the tool's own (124 when --timeout fired, 130 on Ctrl-C), 1 when \
                  the launch failed, 3 when setup is needed, 4 when setup last ran with a newer \
                  version.\n\
                  Example: terok-executor run-tool coderabbit . -- review --plain"
)]
pub struct RunToolArgs {
    /// The tool: a roster entry with a `sidecar:` section (see `terok-executor agents --all`).
    pub tool: String,
    /// A directory (mounted at /workspace) or a git URL (cloned inside the container).
    #[arg(default_value = ".")]
    pub repo: String,
    /// Arguments for the tool, after `--`.
    #[arg(last = true, value_name = "TOOL_ARGS")]
    pub args: Vec<String>,
    /// Seconds before the tool is stopped (exit status 124); enforced on the host too.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,
    /// Container name (default terok-executor-<task id>).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Branch to clone or create (git URLs).
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// Time zone of the container (default: the host's).
    #[arg(long, value_name = "IANA")]
    pub timezone: Option<String>,
    /// Base image and family.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Answer yes to preflight questions (build missing images).
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Skip the setup-stamp gate and the preflight checks (missing images are still built).
    #[arg(long)]
    pub no_preflight: bool,
    /// What the container may reach (default: `allowlist`, or `open` when config.yml sets
    /// `shield.bypass_firewall_no_protection`); the tool's API must be allowed.
    #[arg(long, value_enum, value_name = "MODE")]
    pub shield: Option<ShieldMode>,
    /// The podman network the container joins (default: podman's own).
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// Put the repository behind the git gate: the default for a git URL.
    #[arg(long, overrides_with = "no_gate")]
    pub gate: bool,
    /// Clone a git URL directly from its remote, without the gate.
    #[arg(long, overrides_with = "gate")]
    pub no_gate: bool,
}

/// `--gate-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GateModeArg {
    /// `origin` is the gate: pushes land in the host's mirror for review.
    Gatekeeping,
    /// `origin` is the real remote; the gate only seeds the clone.
    Online,
}

/// Arguments of `storage`.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Print JSON instead of tables (sizes in bytes).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A task named by its container name or task id.
#[derive(Debug, Args)]
pub struct TaskNameArgs {
    /// Container name or task id (see `terok-executor list`).
    pub name: String,
}

/// Arguments of `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Container names or task ids (see `terok-executor list`).
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `run --shield` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShieldMode {
    /// No network but loopback; the agent reaches its model API through the vault's socket.
    Offline,
    /// Only the destinations of the shield profiles; private and metadata addresses refused.
    Allowlist,
    /// Unfiltered egress (a loud warning at every launch).
    Open,
}

impl ShieldMode {
    /// The library's egress of this flag value.
    pub fn egress(self) -> terok_executor::Egress {
        match self {
            Self::Offline => terok_executor::Egress::Offline,
            Self::Allowlist => terok_executor::Egress::Allowlist,
            Self::Open => terok_executor::Egress::Open,
        }
    }
}

/// `--gate` / `--no-gate` as the library takes them (clap keeps only the last of the two):
/// `None` is the default (a git URL is gated, a directory is not).
pub fn gate_choice(gate: bool, no_gate: bool) -> Option<bool> {
    match (gate, no_gate) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

/// Arguments of `shield`.
#[derive(Debug, Args)]
pub struct ShieldArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ShieldCommand,
}

/// The verbs of `shield`.
#[derive(Debug, Subcommand)]
pub enum ShieldCommand {
    /// A task's firewall: mode, profiles, allowed and denied addresses, recent denials.
    Status(ShieldStatusArgs),
    /// Let a running task reach a domain, an address or an address/prefix, at once.
    Allow(ShieldTargetArgs),
    /// Refuse a domain, an address or an address/prefix to a task, even where a profile allows it.
    Deny(ShieldTargetArgs),
    /// The OCI hook podman runs before a shielded container starts (reads its state on stdin).
    #[command(hide = true)]
    Hook,
}

/// Arguments of `shield status`.
#[derive(Debug, Args)]
pub struct ShieldStatusArgs {
    /// Container name or task id (see `terok-executor list`).
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `shield allow` and `shield deny`.
#[derive(Debug, Args)]
pub struct ShieldTargetArgs {
    /// Container name or task id (see `terok-executor list`).
    pub name: String,
    /// A domain (resolved on this host now), an address, or an address/prefix.
    pub target: String,
}

/// Arguments of `gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: GateCommand,
}

/// Arguments of `ssh`.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SshCommand,
}

/// The verbs of `ssh`.
#[derive(Debug, Subcommand)]
pub enum SshCommand {
    /// Make a new Ed25519 key in the vault and print its public key (to add to your forge).
    Keygen(SshKeygenArgs),
    /// Import a private key file (Ed25519 in OpenSSH's format or PEM; RSA in PEM).
    Import(SshImportArgs),
    /// Let more agents' tasks use a key.
    Assign(SshAssignArgs),
    /// The stored keys: name, type, fingerprint, who may use them (never private keys).
    List(SshListArgs),
    /// Print a key's public line (`ssh-ed25519 AAAA… comment`).
    Pubkey(SshNameArgs),
    /// Remove a key.
    Rm(SshNameArgs),
}

/// Who may use a key.
#[derive(Debug, Args)]
pub struct SshUsersArgs {
    /// Tasks of this agent may use it (repeatable).
    #[arg(long = "for-agent", value_name = "AGENT", conflicts_with = "all")]
    pub for_agent: Vec<String>,
    /// Every task may use it.
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `ssh keygen`.
#[derive(Debug, Args)]
pub struct SshKeygenArgs {
    /// The key's name.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Its comment (shown in forges).
    #[arg(long, default_value = "terok")]
    pub comment: String,
    /// Who may use it (neither flag: every task).
    #[command(flatten)]
    pub users: SshUsersArgs,
}

/// Arguments of `ssh import`.
#[derive(Debug, Args)]
pub struct SshImportArgs {
    /// The private key file (`-` reads stdin).
    pub file: PathBuf,
    /// The key's name (default: the file's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Who may use it (neither flag: every task).
    #[command(flatten)]
    pub users: SshUsersArgs,
}

/// Arguments of `ssh assign`.
#[derive(Debug, Args)]
pub struct SshAssignArgs {
    /// The key.
    pub name: String,
    /// Who may use it as well.
    #[command(flatten)]
    pub users: SshUsersArgs,
}

/// Arguments of `ssh list`.
#[derive(Debug, Args)]
pub struct SshListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A key by name.
#[derive(Debug, Args)]
pub struct SshNameArgs {
    /// The key.
    pub name: String,
}

/// The verbs of `gate`.
#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// The mirrors: their source, branches, the tasks using them and what agents pushed.
    List(GateListArgs),
    /// What a branch an agent pushed changes against the mirror's default branch.
    Diff(GateDiffArgs),
    /// Push a branch of the mirror to the real remote, with your own git credentials.
    Promote(GatePromoteArgs),
    /// Fetch the real remote into the mirror (pushed branches and backups stay).
    Sync(GateSyncArgs),
    /// Serve one task's gate on its socket until the task ends (started by `run` and `start`).
    #[command(hide = true)]
    ServeTask(GateServeTaskArgs),
}

/// Arguments of `gate list`.
#[derive(Debug, Args)]
pub struct GateListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gate diff`.
#[derive(Debug, Args)]
pub struct GateDiffArgs {
    /// A task (container name or id) or a mirror's name (see `gate list`).
    pub target: String,
    /// The branch (default: the one branch the task pushed).
    pub branch: Option<String>,
}

/// Arguments of `gate promote`.
#[derive(Debug, Args)]
pub struct GatePromoteArgs {
    /// A task (container name or id) or a mirror's name (see `gate list`).
    pub target: String,
    /// The mirror's branch to push.
    pub branch: String,
    /// The remote branch to push it to (default: the same name).
    #[arg(long, value_name = "BRANCH")]
    pub to: Option<String>,
}

/// Arguments of `gate sync`.
#[derive(Debug, Args)]
pub struct GateSyncArgs {
    /// A task (container name or id) or a mirror's name (see `gate list`).
    pub target: String,
}

/// Arguments of `gate serve-task`.
#[derive(Debug, Args)]
pub struct GateServeTaskArgs {
    /// The task's container name.
    pub container: String,
    /// Hand the socket to this uid (the container's `dev`, rootful).
    #[arg(long)]
    pub uid: Option<u32>,
    /// Listen on TCP at this address of the host instead of the socket (`services.mode:
    /// tcp`); the port taken is written beside the socket.
    #[arg(long, requires = "ports")]
    pub listen: Option<std::net::IpAddr>,
    /// The ports `--listen` may take: `START-END` (the first free one).
    #[arg(long, value_parser = parse_port_range, requires = "listen")]
    pub ports: Option<(u16, u16)>,
}

/// `START-END` (or one port) as two ports.
fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let (start, end) = text.split_once('-').unwrap_or((text, text));
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port (1–65535)"))
    };
    let (start, end) = (port(start)?, port(end)?);
    if start == 0 || start > end {
        return Err(format!("`{text}` is not a range of ports, START-END"));
    }
    Ok((start, end))
}

/// `run --output` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Text on a terminal, raw otherwise.
    Auto,
    /// Readable lines.
    Text,
    /// Every line as the agent printed it.
    Raw,
}
