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
    /// List, inspect and select the agents of the roster.
    Agents(AgentsArgs),
    /// Store a credential for an agent: an API key, or an OAuth login in an auth container.
    Auth(AuthArgs),
    /// Build the container images (L0 base layer, L1 agent layer; reused when current).
    Build(BuildArgs),
    /// Prepare this host: build the container images (reused when current).
    Setup(SetupArgs),
    /// Remove what setup and build created: every image terok built.
    Uninstall(UninstallArgs),
    /// Print the effective configuration: every config.yml layer merged, defaults filled in.
    ShowConfig(ShowConfigArgs),
    /// The token broker that keeps real credentials on the host.
    Vault(VaultArgs),
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
    /// Options of the default `list` (so `agents --all` works as it did upstream).
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
    Schema,
}

/// Arguments of `agents list`.
#[derive(Debug, Clone, Default, Args)]
pub struct AgentsListArgs {
    /// Include tools (gh, glab, coderabbit, sonar) as well as agents.
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
    /// Only report what is missing (exit 1 if anything is).
    #[arg(long)]
    pub check: bool,
    /// Leave host services alone (only images).
    #[arg(long)]
    pub no_sandbox: bool,
    /// Do not build images.
    #[arg(long)]
    pub no_images: bool,
    /// Base image and family.
    #[command(flatten)]
    pub image: ImageArgs,
}

/// Arguments of `uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Keep the container images.
    #[arg(long)]
    pub keep_images: bool,
    /// Leave host services alone.
    #[arg(long)]
    pub no_sandbox: bool,
}

/// Arguments of `auth`.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// The agent or tool to authenticate (see `agents list --all`).
    pub agent: String,
    /// Store this API key instead of logging in; `-` reads it from stdin.
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

/// The verbs of `vault`.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Run the vault daemon in the foreground (for systemd and debugging).
    Serve,
    /// Start the vault daemon in the background.
    Start,
    /// Stop the vault daemon.
    Stop,
    /// Show the vault's state: daemon, database, routes, credentials, listeners, leaks.
    Status,
    /// Regenerate routes.json from the roster (and reload a running daemon).
    Routes,
    /// List stored credentials (never their values); with --tokens, live tokens by container.
    List(VaultListArgs),
    /// Remove leaked credential files and revoke tokens of containers that no longer exist.
    Clean,
}

/// Arguments of `vault list`.
#[derive(Debug, Args)]
pub struct VaultListArgs {
    /// Also list live phantom tokens (by container; the tokens themselves are never stored).
    #[arg(long)]
    pub tokens: bool,
}
