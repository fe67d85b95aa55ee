//! `show-config`: the effective merged configuration, with the files it came from.

use miette::IntoDiagnostic;

use crate::Status;
use crate::args::ShowConfigArgs;
use crate::context::Context;

pub fn run(ctx: &Context, args: &ShowConfigArgs) -> miette::Result<Status> {
    let loaded = ctx.executor()?.config();
    let effective = loaded.effective_document()?;
    if args.json {
        let text = serde_json::to_string_pretty(&effective).into_diagnostic()?;
        println!("{text}");
        return Ok(Status::Ok);
    }
    if loaded.layers.is_empty() {
        println!("# No config file read (--raw): built-in defaults.");
    } else {
        println!("# Effective configuration (defaults filled in), merged from:");
        for layer in &loaded.layers {
            let note = if layer.present { "" } else { " (absent)" };
            println!("#   {}{note}", layer.path.display());
        }
    }
    let text = terok_core::yaml::to_yaml_string(&effective).into_diagnostic()?;
    print!("{text}");
    Ok(Status::Ok)
}
