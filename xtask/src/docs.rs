//! `cargo xtask docs`: the generated parts of docs/ (the roster JSON Schema and the layers table
//! in architecture.md). Tidy tests fail when the committed files differ from what this writes.

use std::path::PathBuf;

use anyhow::Context;

use crate::util::workspace_root;

/// Path of the published roster schema.
pub fn roster_schema_path() -> PathBuf {
    workspace_root().join("docs/roster.schema.json")
}

/// The roster schema as committed: pretty JSON with a trailing newline.
pub fn roster_schema_text() -> String {
    schema_text(&terok_roster::json_schema())
}

/// Path of the published roster v3 provider-file schema.
pub fn provider_schema_path() -> PathBuf {
    workspace_root().join("docs/roster-provider.schema.json")
}

/// The provider-file schema as committed.
pub fn provider_schema_text() -> String {
    schema_text(&terok_roster::provider_json_schema())
}

fn schema_text(schema: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Begin marker of the generated layers table in docs/architecture.md.
pub const LAYERS_BEGIN: &str = "<!-- layers-table:begin (generated from xtask/src/layers.rs) -->\n";
/// End marker of that table.
pub const LAYERS_END: &str = "<!-- layers-table:end -->";

/// docs/architecture.md with the layers table regenerated.
pub fn architecture_with_table(doc: &str) -> anyhow::Result<String> {
    let start = doc
        .find(LAYERS_BEGIN)
        .context("begin marker missing in docs/architecture.md")?
        + LAYERS_BEGIN.len();
    let stop = doc[start..]
        .find(LAYERS_END)
        .context("end marker missing in docs/architecture.md")?
        + start;
    Ok(format!(
        "{}{}{}",
        &doc[..start],
        crate::layers::markdown_table(),
        &doc[stop..]
    ))
}

pub fn run() -> anyhow::Result<()> {
    for (schema, text) in [
        (roster_schema_path(), roster_schema_text()),
        (provider_schema_path(), provider_schema_text()),
    ] {
        std::fs::write(&schema, text).with_context(|| format!("write {}", schema.display()))?;
        println!("docs: wrote {}", schema.display());
    }
    let arch = workspace_root().join("docs/architecture.md");
    let doc = std::fs::read_to_string(&arch).with_context(|| format!("read {}", arch.display()))?;
    let updated = architecture_with_table(&doc)?;
    if updated != doc {
        std::fs::write(&arch, updated).with_context(|| format!("write {}", arch.display()))?;
        println!("docs: updated the layers table in {}", arch.display());
    }
    Ok(())
}
