//! `list`, `start`, `stop`, `rm`: the tasks terok started, selected by label.

use terok_executor::lifecycle::{list_tasks, remove_task, start_task, stop_task};
use terok_executor::{TaskStore, VaultClient};

use crate::Status;
use crate::args::{ListArgs, RmArgs, TaskNameArgs};
use crate::commands::vault::ensure_vault_running;
use crate::context::Context;

fn store(ctx: &Context) -> miette::Result<TaskStore> {
    Ok(TaskStore::new(ctx.paths()?.tasks_dir()))
}

fn vault(ctx: &Context) -> miette::Result<VaultClient> {
    Ok(VaultClient::new(ctx.vault_paths()?.control_socket()))
}

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
    let podman = ctx.podman();
    let tasks = ctx.block_on(list_tasks(&podman, &store(ctx)?))??;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&tasks).map_err(|e| miette::miette!("{e}"))?
        );
        return Ok(Status::Ok);
    }
    if tasks.is_empty() {
        eprintln!("No tasks.");
        return Ok(Status::Ok);
    }
    let rows: Vec<[String; 4]> = tasks
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                t.agent.clone(),
                t.state.clone(),
                human_age(t.age_secs),
            ]
        })
        .collect();
    let header = ["NAME", "AGENT", "STATE", "AGE"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 4]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == 3 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out
    };
    println!("{}", line(header));
    for row in &rows {
        println!("{}", line([&row[0], &row[1], &row[2], &row[3]]));
    }
    Ok(Status::Ok)
}

pub fn start(ctx: &Context, args: &TaskNameArgs) -> miette::Result<Status> {
    if let Some(pid) = ensure_vault_running(ctx)? {
        eprintln!("Vault started (pid {pid}).");
    }
    let podman = ctx.podman();
    let client = vault(ctx)?;
    let name = ctx.block_on(start_task(
        &podman,
        ctx.roster()?,
        ctx.paths()?,
        Some(&client),
        &args.name,
    ))??;
    println!("Started: {name}");
    Ok(Status::Ok)
}

pub fn stop(ctx: &Context, args: &TaskNameArgs) -> miette::Result<Status> {
    let podman = ctx.podman();
    let client = vault(ctx)?;
    let name = ctx.block_on(stop_task(&podman, &store(ctx)?, Some(&client), &args.name))??;
    println!("Stopped: {name}");
    Ok(Status::Ok)
}

pub fn rm(ctx: &Context, args: &RmArgs) -> miette::Result<Status> {
    let podman = ctx.podman();
    let client = vault(ctx)?;
    let store = store(ctx)?;
    let mut status = Status::Ok;
    for name in &args.names {
        match ctx.block_on(remove_task(&podman, &store, Some(&client), name))? {
            Ok(removed) => {
                if removed.revoked.is_none() {
                    // The vault does not run: revoke in the database directly.
                    let container = store.find(name).map_or_else(|| name.clone(), |r| r.name);
                    if let Some(db) = ctx.open_existing_db()? {
                        db.revoke_subject(&container)?;
                        db.revoke_subject(name)?;
                    }
                }
                println!("Removed: {name}");
            }
            Err(err) => {
                crate::output::report_error(&miette::Report::new(err));
                status = Status::Failure;
            }
        }
    }
    Ok(status)
}
