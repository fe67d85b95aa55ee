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
