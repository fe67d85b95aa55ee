//! Instructions given to an agent (docs/compatibility.md#11.3): the bundled default, or configured
//! text (a string, a list with `_inherit` standing for the default, or per-provider values),
//! followed by the project's own `instructions.md`.

use std::path::Path;

use terok_core::merge::INHERIT;

use crate::agent_settings::{InstructionsConfig, InstructionsText};
use crate::bundled::DEFAULT_INSTRUCTIONS;

/// The instructions for `agent`. `config` is the configured instructions, if any;
/// `project_root` is the repository whose `instructions.md` is appended.
pub fn resolve_instructions(
    config: Option<&InstructionsConfig>,
    agent: &str,
    project_root: Option<&Path>,
) -> String {
    let default = || DEFAULT_INSTRUCTIONS.trim_end().to_owned();
    let part = |text: &String| {
        if text == INHERIT {
            default()
        } else {
            text.clone()
        }
    };
    let mut text = match config.and_then(|c| c.for_agent(agent)) {
        None => default(),
        Some(InstructionsText::Text(text)) => part(text),
        Some(InstructionsText::Parts(parts)) => {
            parts.iter().map(part).collect::<Vec<_>>().join("\n\n")
        }
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
    use crate::agent_settings::PerAgent;

    fn config(value: serde_json::Value) -> InstructionsConfig {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn default_when_nothing_is_configured() {
        let text = resolve_instructions(None, "claude", None);
        assert!(text.starts_with("# Working in this container"));
        assert!(text.contains("/home/dev/.terok/work-status.yml"));
    }

    #[test]
    fn lists_splice_the_default() {
        let cfg = config(serde_json::json!(["Be brief.", "_inherit"]));
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
        let cfg = config(serde_json::json!({"codex": "Codex rules.", "_default": "Everyone."}));
        assert!(matches!(cfg, PerAgent::ByAgent(_)));
        assert_eq!(
            resolve_instructions(Some(&cfg), "codex", Some(dir.path())),
            "Codex rules.\n\nUse tabs."
        );
        assert_eq!(resolve_instructions(Some(&cfg), "vibe", None), "Everyone.");
    }
}
