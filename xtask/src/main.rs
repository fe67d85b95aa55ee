//! `cargo xtask`: the project's own automation, in Rust so it runs wherever cargo does.
//!
//! - `layers`: checks the crate dependency DAG against the allowed table;
//! - `host-setup`: provisions a Debian/Ubuntu host (podman, runc, debootstrap, cargo-deny …);
//! - `base-image`: makes `localhost/debian:bookworm` with debootstrap + `podman import`;
//! - `ci`: everything CI checks, in order.

// xtask is a terminal tool: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod base_image;
mod ci;
mod host_setup;
mod layers;
mod util;

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
    /// Create the local Debian base image used by tests and the demo, unless it exists.
    BaseImage,
    /// Run every CI check: fmt, clippy, layers, cargo-deny, then the tests.
    Ci,
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
        Task::BaseImage => base_image::run(),
        Task::Ci => ci::run(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
