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
    /// Log more (-v debug, -vv trace) to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The verbs of `terok-executor`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, inspect and select the agents of the roster.
    Agents(AgentsArgs),
    /// Print the effective configuration: every config.yml layer merged, defaults filled in.
    ShowConfig(ShowConfigArgs),
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
