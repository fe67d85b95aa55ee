//! `list`, `start`, `stop`, `rm`: the tasks terok started.

use miette::IntoDiagnostic;
use terok_executor::{Executor, VaultStart};

use crate::Status;
use crate::args::{ListArgs, RmArgs, TaskNameArgs};
use crate::context::Context;
use crate::output::table;

/// `3d`, `5h`, `12m`, `40s`.
fn human_age(secs: i64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

pub fn list(ctx: &Context, args: &ListArgs) -> miette::Result<Status> {
    let ListArgs { json } = args;
    let executor = ctx.executor()?;
    revive_vault(ctx, executor)?;
    let tasks = ctx.block_on(executor.list_tasks())??;
    if *json {
        println!(
            "{}",
            serde_json::to_string_pretty(&tasks).into_diagnostic()?
        );
        return Ok(Status::Ok);
    }
    if tasks.is_empty() {
        eprintln!("No tasks.");
        return Ok(Status::Ok);
    }
    let ages: Vec<String> = tasks.iter().map(|t| human_age(t.age_secs)).collect();
    let rows: Vec<[&str; 4]> = tasks
        .iter()
        .zip(&ages)
        .map(|(t, age)| {
            [
                t.name.as_str(),
                t.agent.as_str(),
                t.state.as_str(),
                age.as_str(),
            ]
        })
        .collect();
    print!("{}", table(["NAME", "AGENT", "STATE", "AGE"], &rows));
    Ok(Status::Ok)
}

/// Starts a vault that died under running tasks again, and says so; a failure to is a
/// warning, not a reason to list nothing.
fn revive_vault(ctx: &Context, executor: &Executor) -> miette::Result<()> {
    match ctx.block_on(executor.revive_vault())? {
        Ok(Some(pid)) => eprintln!(
            "The vault had died while tasks were running; started it again (pid {pid}) with their listeners."
        ),
        Ok(None) => {}
        Err(err) => eprintln!(
            "warning: the vault died while tasks were running and could not be started again: {err}\n\
             Run `terok-executor vault start` to see why."
        ),
    }
    Ok(())
}

/// Says so when the vault had to be started for this command.
pub fn report_vault_start(start: VaultStart) {
    if let VaultStart::Started { pid } = start {
        eprintln!("Vault started (pid {pid}).");
    }
}

pub fn start(ctx: &Context, args: &TaskNameArgs) -> miette::Result<Status> {
    let TaskNameArgs { name } = args;
    let executor = ctx.executor()?;
    let started = ctx.block_on(async {
        report_vault_start(executor.ensure_vault().await?);
        executor.start_task(name).await
    })??;
    println!("Started: {started}");
    // A web task has a new access token: the old link no longer opens it.
    if matches!(executor.web_access(&started), Ok(Some(_))) {
        let access = ctx
            .block_on(executor.wait_web_ui(&started, super::web::WEB_READY_LIMIT))?
            .map_err(|err| {
                miette::Report::from(err).wrap_err(format!("see `podman logs {started}`"))
            })?;
        super::web::print_web_access(&started, &access);
    }
    Ok(Status::Ok)
}

pub fn stop(ctx: &Context, args: &TaskNameArgs) -> miette::Result<Status> {
    let TaskNameArgs { name } = args;
    let stopped = ctx.block_on(ctx.executor()?.stop_task(name))??;
    println!("Stopped: {stopped}");
    Ok(Status::Ok)
}

pub fn rm(ctx: &Context, args: &RmArgs) -> miette::Result<Status> {
    let RmArgs { names } = args;
    let executor = ctx.executor()?;
    let mut status = Status::Ok;
    for name in names {
        match ctx.block_on(executor.remove_task(name))? {
            Ok(_) => println!("Removed: {name}"),
            Err(err) => {
                crate::output::report_error(err.into());
                status = Status::Failure;
            }
        }
    }
    Ok(status)
}
