//! Embeds the bundled roster: every `resources/agents/*.yaml` as its text (for error messages
//! and `agents show`) and as JSON converted here, because parsing JSON at start-up is about ten
//! times cheaper than parsing YAML and the bundled files never change after the build.

// A build script writes into OUT_DIR, which only the compiler reads.
#![allow(clippy::disallowed_methods)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let agents_dir = manifest.join("../../resources/agents");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed={}", agents_dir.display());

    let mut names: Vec<(String, PathBuf)> = std::fs::read_dir(&agents_dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", agents_dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_suffix(".yaml")?.to_owned();
            Some((name, p))
        })
        .collect();
    names.sort();

    let mut generated = String::from(
        "/// `(name, YAML text, JSON of the same document)` of every bundled roster file, by name.\n",
    );
    generated.push_str("pub const BUNDLED: &[(&str, &str, &str)] = &[\n");
    for (name, path) in &names {
        println!("cargo:rerun-if-changed={}", path.display());
        let json_path = out_dir.join(format!("{name}.json"));
        std::fs::write(&json_path, to_json(path))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", json_path.display()));
        let _ = writeln!(
            generated,
            "    ({name:?}, include_str!({:?}), include_str!({:?})),",
            path.display().to_string(),
            json_path.display().to_string()
        );
    }
    generated.push_str("];\n");
    let target = out_dir.join("bundled_agents.rs");
    std::fs::write(&target, generated)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
}

fn to_json(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value: serde_json::Value = serde_saphyr::from_str::<Option<serde_json::Value>>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .unwrap_or(serde_json::Value::Null);
    value.to_string()
}
