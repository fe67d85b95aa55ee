//! One module per verb; [`dispatch`] routes a parsed [`Command`] to its handler.

mod agents;
mod auth;
mod build;
mod run;
mod setup;
mod show_config;
mod tasks;
mod vault;

use crate::Status;
use crate::args::Command;
use crate::context::Context;

/// Runs one verb.
pub fn dispatch(ctx: &Context, command: Command) -> miette::Result<Status> {
    match command {
        Command::Run(args) => run::run(ctx, &args),
        Command::List(args) => tasks::list(ctx, &args),
        Command::Start(args) => tasks::start(ctx, &args),
        Command::Stop(args) => tasks::stop(ctx, &args),
        Command::Rm(args) => tasks::rm(ctx, &args),
        Command::Agents(args) => agents::run(ctx, args),
        Command::Auth(args) => auth::run(ctx, &args),
        Command::Vault(args) => vault::run(ctx, &args),
        Command::Build(args) => build::run(ctx, &args),
        Command::Setup(args) => setup::run(ctx, &args),
        Command::Uninstall(args) => setup::uninstall(ctx, &args),
        Command::ShowConfig(args) => show_config::run(ctx, &args),
    }
}
