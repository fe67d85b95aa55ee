//! The crate layering rules and their check: which workspace crate may depend on which.
//!
//! Architecture Invariant: this table is the single source of the allowed dependency DAG.
//! docs/architecture.md shows it (a tidy test fails when the two differ) and deny.toml repeats
//! the most important edges as `bans` with `wrappers`.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use cargo_metadata::{DependencyKind, Metadata, MetadataCommand};

/// Short crate name → the short names it may depend on through normal or build dependencies.
/// Dev-dependencies are free, except that nothing may reach terok-testkit otherwise.
pub const ALLOWED: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("roster", &["core"]),
    ("podman", &["core"]),
    ("image-build", &["core", "roster", "podman"]),
    ("credentials", &["core", "roster"]),
    ("vault", &["core", "credentials"]),
    ("container-env", &["core", "roster", "credentials"]),
    ("gate", &["core"]),
    ("shield", &["core", "podman"]),
    ("acp", &["core", "roster", "podman"]),
    ("krun", &["core", "credentials", "podman"]),
    // Kubernetes objects from plain data: it needs nothing of ours.
    ("kube", &[]),
    (
        "executor",
        &[
            "core",
            "roster",
            "podman",
            "image-build",
            "credentials",
            "vault",
            "container-env",
            "gate",
            "shield",
            "acp",
            "krun",
            "kube",
        ],
    ),
    // The CLI parses, calls the executor and prints: every operation lives in the library.
    ("cli", &["core", "executor"]),
    ("testkit", &["core"]),
    (
        "xtask",
        &[
            "core",
            "roster",
            "podman",
            "image-build",
            "credentials",
            "vault",
            "container-env",
            "gate",
            "shield",
            "acp",
            "krun",
            "kube",
            "executor",
            "cli",
            "testkit",
        ],
    ),
];

/// Crates that are never shipped: test support and tooling.
const UNSHIPPED: &[&str] = &["testkit", "xtask"];

/// The cargo package name of a short crate name.
pub fn package_name(short: &str) -> String {
    match short {
        "cli" => "terok-executor-cli".to_owned(),
        "executor" => "terok-executor".to_owned(),
        "xtask" => "xtask".to_owned(),
        other => format!("terok-{other}"),
    }
}

fn short_name(package: &str) -> Option<&'static str> {
    ALLOWED
        .iter()
        .map(|(short, _)| *short)
        .find(|short| package_name(short) == package)
}

fn allowed_for(short: &str) -> &'static [&'static str] {
    ALLOWED
        .iter()
        .find(|(s, _)| *s == short)
        .map(|(_, deps)| *deps)
        .unwrap_or(&[])
}

/// Every violation of the table in `metadata`, as one human-readable line each.
pub fn violations(metadata: &Metadata) -> Vec<String> {
    let members: BTreeSet<&str> = metadata
        .workspace_packages()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let mut found = Vec::new();
    for package in metadata.workspace_packages() {
        let Some(short) = short_name(&package.name) else {
            found.push(format!(
                "workspace crate `{}` is missing from the layers table (xtask/src/layers.rs)",
                package.name
            ));
            continue;
        };
        let allowed = allowed_for(short);
        for dep in &package.dependencies {
            if !members.contains(dep.name.as_str()) || dep.kind == DependencyKind::Development {
                continue;
            }
            let kind = match dep.kind {
                DependencyKind::Build => "build dependency",
                _ => "dependency",
            };
            let target = short_name(&dep.name);
            if target == Some("testkit") && !UNSHIPPED.contains(&short) {
                found.push(format!(
                    "{} -> terok-testkit ({kind}): terok-testkit is test support; a shipped crate \
                     may list it only under [dev-dependencies]",
                    package.name
                ));
                continue;
            }
            if !target.is_some_and(|t| allowed.contains(&t)) {
                let allowed_list = if allowed.is_empty() {
                    "nothing".to_owned()
                } else {
                    allowed
                        .iter()
                        .map(|s| package_name(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                found.push(format!(
                    "{} -> {} ({kind}) is not allowed; {} may depend on: {allowed_list}",
                    package.name, dep.name, package.name
                ));
            }
        }
    }
    found
}

/// The table as the markdown docs/architecture.md shows between its layers markers.
pub fn markdown_table() -> String {
    let mut out = String::from("| crate | may depend on |\n|---|---|\n");
    for (short, deps) in ALLOWED {
        let deps = if deps.is_empty() {
            "—".to_owned()
        } else {
            deps.join(", ")
        };
        out.push_str(&format!("| {short} | {deps} |\n"));
    }
    out
}

/// `cargo xtask layers`.
pub fn run() -> anyhow::Result<()> {
    let metadata = MetadataCommand::new()
        .current_dir(crate::util::workspace_root())
        .no_deps()
        .exec()
        .context("cargo metadata failed")?;
    let found = violations(&metadata);
    if found.is_empty() {
        println!(
            "layers: ok ({} workspace crates checked against the allowed table)",
            metadata.workspace_packages().len()
        );
        return Ok(());
    }
    for line in &found {
        eprintln!("layers: {line}");
    }
    bail!("{} layering violation(s)", found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Metadata {
        let path = crate::util::workspace_root()
            .join("xtask/fixtures")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn the_real_workspace_follows_the_table() {
        let metadata = MetadataCommand::new()
            .current_dir(crate::util::workspace_root())
            .no_deps()
            .exec()
            .unwrap();
        assert_eq!(violations(&metadata), Vec::<String>::new());
    }

    #[test]
    fn a_forbidden_edge_is_reported_with_the_allowed_set() {
        // terok-core gained a normal dependency on terok-executor-cli.
        let found = violations(&fixture("metadata-forbidden-edge.json"));
        assert_eq!(
            found,
            [
                "terok-core -> terok-executor-cli (dependency) is not allowed; terok-core may depend on: nothing"
            ]
        );
    }

    #[test]
    fn testkit_as_a_normal_dependency_is_reported() {
        let found = violations(&fixture("metadata-testkit-edge.json"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(
            "terok-core -> terok-testkit (dependency): terok-testkit is test support"
        ));
    }

    #[test]
    fn a_crate_missing_from_the_table_is_reported() {
        let found = violations(&fixture("metadata-unknown-crate.json"));
        assert_eq!(
            found,
            [
                "workspace crate `terok-mystery` is missing from the layers table (xtask/src/layers.rs)"
            ]
        );
    }

    #[test]
    fn every_row_names_only_known_crates() {
        let known: BTreeSet<&str> = ALLOWED.iter().map(|(s, _)| *s).collect();
        for (short, deps) in ALLOWED {
            for dep in *deps {
                assert!(known.contains(dep), "{short} lists unknown crate {dep}");
                assert_ne!(dep, short, "{short} lists itself");
            }
        }
    }
}
