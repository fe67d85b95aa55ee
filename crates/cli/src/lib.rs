//! The `terok-executor` command line: the clap tree ([`command`]) and the dispatcher
//! ([`run_matches`]), kept apart so an orchestrator can mount the whole tree under its own CLI.
//! A mounted tree tells the dispatcher where it sits ([`run_matches_under`]), so the vault
//! daemon it starts in the background is `<this binary> executor vault serve`:
//!
//! ```no_run
//! let cli = clap::Command::new("terok")
//!     .subcommand(terok_executor_cli::command().name("executor"));
//! let matches = cli.get_matches();
//! if let Some(("executor", sub)) = matches.subcommand() {
//!     std::process::exit(terok_executor_cli::run_matches_under(sub, &["executor"]).into());
//! }
//! ```
//!
//! Every operation lives in the `terok-executor` library; this crate parses, calls it, prints,
//! and decides the exit code — the only crate that does either.

// Test code writes its fixtures directly; shipped code writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods))]
// The CLI is where output to the terminal belongs.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod commands;
mod context;
mod output;
mod progress;
mod prompt;
mod remedy;
mod signals;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

pub use args::{Cli, Command};

/// The full clap command tree of `terok-executor`.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the command described by `matches` (from [`command`], as the `terok-executor`
/// binary) and returns the exit status.
pub fn run_matches(matches: &clap::ArgMatches) -> Status {
    run_matches_under(matches, &[])
}

/// Runs the command described by `matches` in a binary that mounts [`command`] under the
/// subcommands `mount_path` (`&["executor"]` for `terok executor …`).
pub fn run_matches_under(matches: &clap::ArgMatches, mount_path: &[&str]) -> Status {
    match Cli::from_arg_matches(matches) {
        Ok(cli) => run(cli, mount_path),
        Err(err) => {
            let _ = err.print();
            Status::Usage
        }
    }
}

/// A closed stdout (`terok-executor list | head -1`) ends the program quietly with the status a
/// shell reports for SIGPIPE, instead of a panic message: Rust ignores SIGPIPE, so `println!`
/// panics on a broken pipe.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Parses the process arguments, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    exit_quietly_on_broken_pipe();
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(err) => {
            let _ = err.print();
            // --help and --version are "errors" to clap but successes to the user.
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => Status::Usage.into(),
            };
        }
    };
    run_matches(&matches).into()
}

/// How a command ended, as the process sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok,
    /// The command failed; a message was printed.
    Failure,
    /// The command line was wrong.
    Usage,
    /// Any other code (an agent's own exit code, 3 for "setup needed", 124 for a timeout).
    Code(u8),
}

impl From<Status> for u8 {
    fn from(status: Status) -> u8 {
        match status {
            Status::Ok => 0,
            Status::Failure => 1,
            Status::Usage => 2,
            Status::Code(code) => code,
        }
    }
}

impl From<Status> for i32 {
    fn from(status: Status) -> i32 {
        i32::from(u8::from(status))
    }
}

/// `-v`'s count; `TEROK_ACP_DEBUG` (non-empty) makes `acp` trace every frame.
fn log_verbosity(cli: &Cli) -> u8 {
    let acp_debug = matches!(cli.command, Some(args::Command::Acp(_)))
        && std::env::var_os("TEROK_ACP_DEBUG").is_some_and(|v| !v.is_empty());
    if acp_debug {
        cli.global.verbose.max(2)
    } else {
        cli.global.verbose
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(u8::from(status))
    }
}

fn run(cli: Cli, mount_path: &[&str]) -> Status {
    output::init(log_verbosity(&cli));
    let Some(command) = cli.command else {
        // The Python terok-executor prints the help and exits 1 when no verb is given.
        let _ = command().print_help();
        println!();
        return Status::Failure;
    };
    let command = command.without_sandbox_alias();
    let ctx = context::Context::new(cli.global, mount_path, &command);
    match commands::dispatch(&ctx, command) {
        Ok(status) => status,
        Err(report) => {
            output::report_error(report);
            Status::Failure
        }
    }
}
