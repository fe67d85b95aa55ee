//! `agents list | show | set | schema`: the roster as users see it.

use miette::IntoDiagnostic;

use crate::Status;
use crate::args::{AgentsArgs, AgentsCommand, AgentsListArgs};
use crate::context::Context;
use crate::output::table;

pub fn run(ctx: &Context, args: AgentsArgs) -> miette::Result<Status> {
    match args.command {
        None => list(ctx, &args.list),
        Some(AgentsCommand::List(list_args)) => list(ctx, &list_args),
        Some(AgentsCommand::Show(show)) => show_entry(ctx, &show.name),
        Some(AgentsCommand::Set(set)) => set_selection(ctx, set.selection.as_deref()),
        Some(AgentsCommand::Schema(schema)) => {
            let document = if schema.provider {
                terok_executor::roster_provider_schema()
            } else {
                terok_executor::roster_schema()
            };
            let schema = serde_json::to_string_pretty(&document).into_diagnostic()?;
            println!("{schema}");
            Ok(Status::Ok)
        }
    }
}

fn list(ctx: &Context, args: &AgentsListArgs) -> miette::Result<Status> {
    let entries = ctx.executor()?.agent_summaries(args.all)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).into_diagnostic()?
        );
        return Ok(Status::Ok);
    }
    if entries.is_empty() {
        eprintln!("No agents registered.");
        return Ok(Status::Ok);
    }
    let rows: Vec<[&str; 3]> = entries
        .iter()
        .map(|a| [a.name.as_str(), a.label.as_str(), a.kind])
        .collect();
    print!("{}", table(["NAME", "LABEL", "TYPE"], &rows));
    Ok(Status::Ok)
}

fn show_entry(ctx: &Context, name: &str) -> miette::Result<Status> {
    let entry = ctx.executor()?.agent_document(name)?;
    println!("# {name}: merged from");
    for origin in &entry.origins {
        println!("#   {origin}");
    }
    print!(
        "{}",
        terok_core::yaml::to_yaml_string(&entry.document).into_diagnostic()?
    );
    Ok(Status::Ok)
}

fn set_selection(ctx: &Context, selection: Option<&str>) -> miette::Result<Status> {
    let executor = ctx.executor()?;
    let Some(selection) = selection else {
        let current = executor.image_selection()?;
        println!(
            "image.agents: {}{}",
            current.configured.as_deref().unwrap_or("all"),
            if current.configured.is_none() {
                " (default)"
            } else {
                ""
            }
        );
        println!("L1 images contain: {}", current.resolved.join(", "));
        println!("Change it with: terok-executor agents set <all | name,name | all,-name>");
        return Ok(Status::Ok);
    };
    let written = executor.set_image_selection(selection)?;
    println!(
        "image.agents = {} (written to {})",
        written.selection,
        written.path.display()
    );
    println!("L1 images will contain: {}", written.resolved.join(", "));
    Ok(Status::Ok)
}
