//! One module per verb; [`dispatch`] routes a parsed [`Command`] to its handler. A handler
//! turns its arguments into the library's settings, calls the [`terok_executor::Executor`]
//! and prints what came back.

mod acp;
mod agents;
mod auth;
mod build;
mod doctor;
mod gate;
mod key_tier;
mod kube;
mod run;
mod run_events;
mod run_tool;
mod sandbox;
mod setup;
mod shield;
mod show_config;
mod ssh;
mod storage;
mod tasks;
mod vault;
mod web;

use crate::Status;
use crate::args::{AgentsCommand, Command, VaultCommand};
use crate::context::Context;

/// Runs one verb.
pub fn dispatch(ctx: &Context, command: Command) -> miette::Result<Status> {
    if needs_roster(&command) {
        ctx.load_roster()?;
    }
    match command {
        Command::Run(args) => run::run(ctx, *args),
        Command::RunTool(args) => run_tool::run(ctx, *args),
        Command::List(args) => tasks::list(ctx, &args),
        Command::Start(args) => tasks::start(ctx, &args),
        Command::Stop(args) => tasks::stop(ctx, &args),
        Command::Rm(args) => tasks::rm(ctx, &args),
        Command::Agents(args) => agents::run(ctx, args),
        Command::Auth(args) => auth::run(ctx, args),
        Command::Vault(args) => vault::run(ctx, &args),
        Command::Build(args) => build::run(ctx, args),
        Command::Setup(args) => setup::run(ctx, args),
        Command::Uninstall(args) => setup::uninstall(ctx, &args),
        Command::ShowConfig(args) => show_config::run(ctx, &args),
        Command::Doctor(args) => doctor::run(ctx, &args),
        Command::Storage(args) => storage::run(ctx, &args),
        Command::Shield(args) => shield::run(ctx, args),
        Command::Gate(args) => gate::run(ctx, args),
        Command::Ssh(args) => ssh::run(ctx, args),
        Command::Acp(args) => acp::run(ctx, args),
        Command::Sandbox(args) => sandbox::run(ctx, args),
    }
}

/// Whether the verb reads the roster (it is then loaded first, and its warnings printed
/// before anything else). Verbs that only handle existing tasks or the daemon work even
/// when a roster override is broken.
fn needs_roster(command: &Command) -> bool {
    match command {
        // The schema is what a user needs to fix a broken override.
        Command::Agents(agents) => !matches!(agents.command, Some(AgentsCommand::Schema(_))),
        Command::Run(_)
        | Command::RunTool(_)
        | Command::Start(_)
        | Command::Auth(_)
        | Command::Build(_)
        | Command::Setup(_)
        | Command::Doctor(_)
        | Command::Sandbox(_) => true,
        Command::Vault(vault) => matches!(
            vault.command,
            VaultCommand::Start
                | VaultCommand::Routes(_)
                | VaultCommand::Status
                | VaultCommand::Clean(_)
                | VaultCommand::Install(_)
        ),
        Command::List(_)
        | Command::Stop(_)
        | Command::Rm(_)
        | Command::Uninstall(_)
        | Command::Shield(_)
        | Command::Gate(_)
        | Command::Ssh(_)
        | Command::Acp(_)
        // Labels come from the roster when it loads; a broken override leaves the names.
        | Command::Storage(_)
        | Command::ShowConfig(_) => false,
    }
}
