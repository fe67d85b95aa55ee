//! `cargo xtask`: the project's own automation, in Rust so it runs wherever cargo does.
//!
//! - `layers`: checks the crate dependency DAG against the allowed table;
//! - `host-setup`: provisions a Debian/Ubuntu host (podman, runc, debootstrap, cargo-deny …);
//! - `base-image`: makes `localhost/debian:bookworm` with debootstrap + `podman import`;
//! - `ci`: everything CI checks, in order;
//! - `docs`: regenerates the generated parts of docs/;
//! - `bench`: measures speed figures against their goals;
//! - `fuzz [--seconds N] [--only T,…]`: runs the fuzz targets of `fuzz/` (nightly, cargo-fuzz);
//! - `demo [--agent NAME]`: a real agent (Claude Code by default) fixes a failing test in a
//!   terok container (scripted model).

// A tool, not shipped: it writes its files (fixtures, configs) directly.
#![allow(clippy::disallowed_methods)]
// xtask is a terminal tool: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod base_image;
mod bench;
mod ci;
mod demo;
mod docs;
mod fuzz;
mod host_setup;
mod images;
mod layers;
mod rootless;
mod util;

#[cfg(test)]
mod module_graph;
#[cfg(test)]
mod tidy;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "terok-executor project automation")]
struct Xtask {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Fail on any dependency between workspace crates that the layers table does not allow.
    Layers {
        /// Print the table as the markdown docs/architecture.md embeds, instead of checking.
        #[arg(long)]
        table: bool,
    },
    /// Install and configure what building and testing need (podman, runc, cargo-deny …); idempotent.
    HostSetup,
    /// Create the local Debian base images (`localhost/debian:<suite>`), unless they exist;
    /// tests and the demo use bookworm.
    BaseImage {
        /// Debian suites, comma-separated: bookworm, trixie, sid.
        #[arg(long, value_delimiter = ',', default_value = "bookworm")]
        suite: Vec<String>,
    },
    /// Run every CI check: fmt, clippy, layers, cargo-deny, then the tests (in CI, as root,
    /// the podman-backed ones again as an unprivileged account).
    Ci,
    /// As root: run the rootless tests as the unprivileged CI account (host-setup with
    /// CI=true creates it), as `ci` does in CI.
    RootlessTests,
    /// Regenerate generated documentation (docs/roster.schema.json, the layers table).
    Docs,
    /// Set up this machine and watch a real agent fix a failing test in a terok container
    /// (against a scripted model server; no API key needed).
    Demo {
        /// The agent: claude, codex, openrouter, vibe or pi.
        #[arg(long, default_value = "claude")]
        agent: String,
    },
    /// Build every installable roster entry (and sidecar tool) into an image of its own on
    /// each base, run its smoke check as `dev`, and print the table agent × base.
    Images {
        /// Debian suites (local bases, made when missing), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "bookworm,trixie,sid")]
        bases: Vec<String>,
        /// Roster entries, comma-separated (default: every installable entry and tool).
        #[arg(long, value_delimiter = ',')]
        agents: Vec<String>,
        /// Print the matrix as JSON.
        #[arg(long)]
        json: bool,
        /// Also write the table into docs/images.md.
        #[arg(long)]
        write_docs: bool,
        /// Exit non-zero unless every entry works on every base (the CI slice).
        #[arg(long)]
        strict: bool,
    },
    /// Measure speed against goals (release build); prints one table, fails only if a
    /// measurement cannot be made.
    Bench {
        /// Runs per figure (the median is reported).
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Only this group of figures: agents, build, launch, scale, vault, gate; or first-run (minutes,
        /// as root: the first `run` rootless versus rootful), acp (an editor's wait for the
        /// first answer over ACP versus headless, on a sid image) or web (`run --web` to the
        /// UI's first 200 versus a bare `podman run` of Toad, on a sid image); those three are
        /// never part of the default set.
        #[arg(long, value_name = "GROUP")]
        only: Option<String>,
    },
    /// Build the fuzz targets (fuzz/, cargo-fuzz on the nightly toolchain) and run each from
    /// its seeds; fails if any finds a crash, a hang or runaway memory.
    Fuzz {
        /// Seconds per target (CI: 30; before a release: 600 or more).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only these targets, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    let args = Xtask::parse();
    let result = match args.command {
        Task::Layers { table: true } => {
            print!("{}", layers::markdown_table());
            Ok(())
        }
        Task::Layers { table: false } => layers::run(),
        Task::HostSetup => host_setup::run(),
        Task::BaseImage { suite } => base_image::run(&suite),
        Task::Ci => ci::run(),
        Task::RootlessTests => ci::rootless_tests(),
        Task::Docs => docs::run(),
        Task::Demo { agent } => demo::run(&agent),
        Task::Images {
            bases,
            agents,
            json,
            write_docs,
            strict,
        } => images::run(images::ImagesArgs {
            bases,
            agents,
            json,
            write_docs,
            strict,
        }),
        Task::Bench { runs, only } => bench::run(runs, only.as_deref()),
        Task::Fuzz { seconds, only } => fuzz::run(fuzz::FuzzArgs { seconds, only }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
