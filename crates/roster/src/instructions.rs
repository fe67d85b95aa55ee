//! Instructions given to an agent (executor.md §6.2): the bundled default, or configured text
//! (a string, a list with `_inherit` standing for the default, or per-provider values), followed
//! by the project's own `instructions.md`.

use std::path::Path;

use serde_json::Value;
use terok_core::merge::INHERIT;

use crate::bundled::DEFAULT_INSTRUCTIONS;
use crate::provider_config::resolve_config_value;

/// The instructions for `provider`. `config` is the configured `instructions` value, if any;
/// `project_root` is the repository whose `instructions.md` is appended.
pub fn resolve_instructions(
    config: Option<&Value>,
    provider: &str,
    project_root: Option<&Path>,
) -> String {
    let configured = match config {
        Some(Value::Object(_)) => resolve_config_value(config, provider),
        other => other,
    };
    let mut text = match configured {
        None | Some(Value::Null) => DEFAULT_INSTRUCTIONS.trim_end().to_owned(),
        Some(Value::String(s)) if s == INHERIT => DEFAULT_INSTRUCTIONS.trim_end().to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if s == INHERIT => DEFAULT_INSTRUCTIONS.trim_end().to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n\n"),
        Some(other) => other.to_string(),
    };
    if let Some(root) = project_root {
        let path = root.join("instructions.md");
        match std::fs::read_to_string(&path) {
            Ok(project) if !project.trim().is_empty() => {
                text.push_str("\n\n");
                text.push_str(project.trim());
            }
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!("cannot read {}: {err}; not appending it", path.display()),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_when_nothing_is_configured() {
        let text = resolve_instructions(None, "claude", None);
        assert!(text.starts_with("# Working in this container"));
        assert!(text.contains("/home/dev/.terok/work-status.yml"));
    }

    #[test]
    fn lists_splice_the_default() {
        let cfg = json!(["Be brief.", "_inherit"]);
        let text = resolve_instructions(Some(&cfg), "claude", None);
        assert!(
            text.starts_with("Be brief.\n\n# Working in this container"),
            "{text}"
        );
    }

    #[test]
    fn per_provider_values_and_project_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("instructions.md"), "\n Use tabs.\n").unwrap();
        let cfg = json!({"codex": "Codex rules.", "_default": "Everyone."});
        assert_eq!(
            resolve_instructions(Some(&cfg), "codex", Some(dir.path())),
            "Codex rules.\n\nUse tabs."
        );
        assert_eq!(resolve_instructions(Some(&cfg), "vibe", None), "Everyone.");
    }
}
