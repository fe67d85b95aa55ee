//! `agents list | show | set | schema`: the roster as users see it.

use miette::IntoDiagnostic;
use terok_roster::Agent;

use crate::Status;
use crate::args::{AgentsArgs, AgentsCommand, AgentsListArgs};
use crate::context::Context;

pub fn run(ctx: &Context, args: AgentsArgs) -> miette::Result<Status> {
    match args.command {
        None => list(ctx, &args.list),
        Some(AgentsCommand::List(list_args)) => list(ctx, &list_args),
        Some(AgentsCommand::Show(show)) => show_entry(ctx, &show.name),
        Some(AgentsCommand::Set(set)) => set_selection(ctx, set.selection.as_deref()),
        Some(AgentsCommand::Schema) => {
            let schema =
                serde_json::to_string_pretty(&terok_roster::json_schema()).into_diagnostic()?;
            println!("{schema}");
            Ok(Status::Ok)
        }
    }
}

fn list(ctx: &Context, args: &AgentsListArgs) -> miette::Result<Status> {
    let roster = ctx.roster()?;
    let entries: Vec<&Agent> = roster.listed(args.all).collect();
    if args.json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|a| serde_json::json!({"name": a.name, "label": a.label, "type": a.kind.as_str()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).into_diagnostic()?);
        return Ok(Status::Ok);
    }
    if entries.is_empty() {
        eprintln!("No agents registered.");
        return Ok(Status::Ok);
    }
    let rows: Vec<[&str; 3]> = entries
        .iter()
        .map(|a| [a.name.as_str(), a.label.as_str(), a.kind.as_str()])
        .collect();
    print!("{}", table(["NAME", "LABEL", "TYPE"], &rows));
    Ok(Status::Ok)
}

/// Left-aligned columns, each as wide as its widest cell, separated by two spaces.
fn table<const N: usize>(header: [&str; N], rows: &[[&str; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn show_entry(ctx: &Context, name: &str) -> miette::Result<Status> {
    let roster = ctx.roster()?;
    roster.entry(name)?;
    let document = roster
        .document(name)
        .ok_or_else(|| miette::miette!("no document for `{name}`"))?;
    println!("# {name}: merged from");
    for origin in roster.origins(name) {
        println!("#   {origin}");
    }
    print!(
        "{}",
        terok_core::yaml::to_yaml_string(&document).into_diagnostic()?
    );
    Ok(Status::Ok)
}

fn set_selection(ctx: &Context, selection: Option<&str>) -> miette::Result<Status> {
    let roster = ctx.roster()?;
    let Some(selection) = selection else {
        let current = ctx.config()?.config.image.agents.clone();
        let shown = current.as_deref().unwrap_or("all");
        let resolved = roster.resolve_selection(shown)?;
        println!(
            "image.agents: {shown}{}",
            if current.is_none() { " (default)" } else { "" }
        );
        println!("L1 images contain: {}", resolved.join(", "));
        println!("Change it with: terok-executor agents set <all | name,name | all,-name>");
        return Ok(Status::Ok);
    };
    let resolved = roster.resolve_selection(selection)?;
    let normalized = selection
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    let normalized = if normalized.is_empty() {
        "all".to_owned()
    } else {
        normalized
    };
    let path = ctx.writable_config_file()?;
    terok_core::config::edit::set_image_agents(&path, &normalized)?;
    println!(
        "image.agents = {normalized} (written to {})",
        path.display()
    );
    println!("L1 images will contain: {}", resolved.join(", "));
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_align_without_trailing_spaces() {
        let out = table(
            ["NAME", "LABEL", "TYPE"],
            &[["claude", "Claude", "native"], ["gh", "GitHub CLI", "tool"]],
        );
        assert_eq!(
            out,
            "NAME    LABEL       TYPE\nclaude  Claude      native\ngh      GitHub CLI  tool\n"
        );
    }
}
