//! Writes to the user's config.yml that keep the file as the user wrote it: comments, key order
//! and formatting survive (yaml-edit's lossless tree), and the file is replaced atomically.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use yaml_edit::Document;

use crate::secure_fs::{self, SecureFsError};

/// Why config.yml could not be updated.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ConfigEditError {
    /// The existing file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The existing file is not YAML that can be edited.
    #[error("cannot edit {}: {message}", path.display())]
    Unparseable {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The top level or the section is not a mapping.
    #[error("cannot edit {}: `{section}` is not a mapping", path.display())]
    NotAMapping {
        /// The file.
        path: PathBuf,
        /// The section that should be a mapping (`(top level)` for the document).
        section: String,
    },
    /// The editor's output would not read back as the old settings with only the one key
    /// changed (a layout it does not reproduce faithfully).
    #[error(
        "cannot edit {} safely: the edited file would not read back as the same settings with \
         only `{section}.{key}` changed; nothing was written",
        path.display()
    )]
    #[diagnostic(help(
        "the file's layout is one the editor cannot keep; set `{section}.{key}` in it by hand"
    ))]
    Unfaithful {
        /// The file.
        path: PathBuf,
        /// The section edited.
        section: String,
        /// The key edited.
        key: String,
    },
    /// Writing the new file failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Write(#[from] SecureFsError),
}

/// Sets `image.agents` to `selection` in the config file at `path` (created if missing),
/// keeping everything else in the file as it was.
pub fn set_image_agents(path: &Path, selection: &str) -> Result<(), ConfigEditError> {
    set_section_value(path, "image", "agents", selection)
}

/// Sets `section.key` to the string `value` in the YAML file at `path`.
pub fn set_section_value(
    path: &Path,
    section: &str,
    key: &str,
    value: &str,
) -> Result<(), ConfigEditError> {
    let existing = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => {
            return Err(ConfigEditError::Read {
                path: path.to_path_buf(),
                source: err,
            });
        }
    };
    let updated = edit_text(&existing, section, key, value).map_err(|err| match err {
        EditFailure::Parse(message) => ConfigEditError::Unparseable {
            path: path.to_path_buf(),
            message,
        },
        EditFailure::NotAMapping(section) => ConfigEditError::NotAMapping {
            path: path.to_path_buf(),
            section,
        },
        EditFailure::Unfaithful => ConfigEditError::Unfaithful {
            path: path.to_path_buf(),
            section: section.to_owned(),
            key: key.to_owned(),
        },
    })?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ConfigEditError::Read {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let mode = std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(0o644);
    secure_fs::write_atomic(path, updated.as_bytes(), mode)?;
    Ok(())
}

enum EditFailure {
    Parse(String),
    NotAMapping(String),
    Unfaithful,
}

/// `existing` with `section.key` set to `value`, checked to mean exactly that.
fn edit_text(existing: &str, section: &str, key: &str, value: &str) -> Result<String, EditFailure> {
    let updated = apply_edit(existing, section, key, value)?;
    check_only_the_key_changed(existing, &updated, section, key, value)?;
    Ok(updated)
}

/// The lossless editor keeps comments and layout, but on unusual layouts it can produce text
/// that reads differently, or not at all (found by fuzzing). So the result is read back:
/// it must be the old settings with `section.key` set to `value`, and nothing else changed.
fn check_only_the_key_changed(
    existing: &str,
    updated: &str,
    section: &str,
    key: &str,
    value: &str,
) -> Result<(), EditFailure> {
    use serde_json::{Map, Value};
    let read = |text: &str| {
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        crate::yaml::parse_value(text, Path::new("config.yml"))
    };
    let mut expected = match read(existing) {
        Ok(Value::Object(map)) => map,
        Ok(_) => Map::new(),
        Err(err) => return Err(EditFailure::Parse(err.message.clone())),
    };
    let entry = expected.entry(section).or_insert(Value::Null);
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(inner) = entry {
        inner.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    match read(updated) {
        Ok(Value::Object(after)) if after == expected && crate::yaml::keys_are_unique(updated) => {
            Ok(())
        }
        _ => Err(EditFailure::Unfaithful),
    }
}

fn apply_edit(
    existing: &str,
    section: &str,
    key: &str,
    value: &str,
) -> Result<String, EditFailure> {
    // Reject what the strict reader would reject, so we never rewrite a file we misread.
    if !existing.trim().is_empty() {
        crate::yaml::parse_value(existing, Path::new("config.yml"))
            .map_err(|e| EditFailure::Parse(e.message.clone()))?;
    }
    if is_only_comments(existing) {
        // Nothing to merge into: keep the comments and append the section.
        return Ok(format!(
            "{}{section}:\n  {key}: {}\n",
            ensure_newline(existing),
            quote_if_needed(value)
        ));
    }
    let doc = Document::from_str(existing).map_err(|e| EditFailure::Parse(e.to_string()))?;
    let top = doc
        .as_mapping()
        .ok_or_else(|| EditFailure::NotAMapping("(top level)".to_owned()))?;
    match top.get_mapping(section) {
        Some(mapping) => {
            mapping.set(key, value);
        }
        None => {
            if top.contains_key(section) && !is_null_value(existing, section) {
                return Err(EditFailure::NotAMapping(section.to_owned()));
            }
            let fresh = Document::from_str(&format!("{key}: {}\n", quote_if_needed(value)))
                .map_err(|e| EditFailure::Parse(e.to_string()))?;
            let mapping = fresh
                .as_mapping()
                .ok_or_else(|| EditFailure::NotAMapping(section.to_owned()))?;
            doc.set(section, mapping);
        }
    }
    Ok(ensure_newline(&doc.to_string()))
}

fn is_only_comments(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}

fn is_null_value(text: &str, section: &str) -> bool {
    matches!(
        crate::yaml::parse_value(text, Path::new("config.yml")),
        Ok(serde_json::Value::Object(map)) if map.get(section).is_some_and(|v| v.is_null())
    )
}

/// `value` as a YAML string: bare when it reads back as that string (`claude,codex`), quoted
/// when it would read as something else (`true`, `null`, `123`) or needs quoting anyway.
fn quote_if_needed(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ',' | '-' | '_' | '.'))
        && !value.is_empty();
    let reads_as_itself = || {
        matches!(
            crate::yaml::parse_value(value, Path::new("value")),
            Ok(serde_json::Value::String(read)) if read == value
        )
    };
    if plain && reads_as_itself() {
        value.to_owned()
    } else {
        serde_json::Value::String(value.to_owned()).to_string()
    }
}

fn ensure_newline(text: &str) -> String {
    if text.ends_with('\n') || text.is_empty() {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edited(existing: &str) -> String {
        match edit_text(existing, "image", "agents", "claude,codex") {
            Ok(text) => text,
            Err(EditFailure::Parse(m)) => panic!("parse: {m}"),
            Err(EditFailure::NotAMapping(s)) => panic!("not a mapping: {s}"),
            Err(EditFailure::Unfaithful) => panic!("unfaithful edit of {existing:?}"),
        }
    }

    /// Found by fuzzing: a tagged line whose `image:` the editor did not see, so it added a
    /// second `image` section.
    #[test]
    fn an_edit_that_would_duplicate_a_section_is_refused() {
        let existing = "!agimaXXX6666eagOeauc*ld:ma#ima?eE+imama#i image:   #";
        assert!(matches!(
            edit_text(existing, "image", "agents", "claude,codex"),
            Err(EditFailure::Unfaithful)
        ));
    }

    #[test]
    fn values_that_would_read_as_another_type_are_quoted() {
        for value in ["true", "null", "123", "1.5"] {
            let text =
                edit_text("", "image", "agents", value).unwrap_or_else(|_| panic!("{value}"));
            assert_eq!(text, format!("image:\n  agents: \"{value}\"\n"));
        }
    }

    /// Found by fuzzing: a file that reads, which the lossless editor turned into one that
    /// does not (it indented the new section by the odd indentation of a line above).
    #[test]
    fn an_edit_that_would_change_the_meaning_is_refused() {
        let existing = ":I#mage:\n  !)gents:ault:\n !?\t:mage:mage:\n  bwmage:mage:\ng b ex i:\ni:\nl y: de b\n";
        assert!(crate::yaml::parse_value(existing, Path::new("config.yml")).is_ok());
        assert!(matches!(
            edit_text(existing, "image", "agents", "claude,codex"),
            Err(EditFailure::Unfaithful)
        ));
    }

    #[test]
    fn comments_order_and_other_sections_survive() {
        let before = "# top comment\nimage:\n  # which base\n  base_image: fedora:44   # trailing\n  agents: all\nvault:\n  port: 1\n";
        assert_eq!(
            edited(before),
            "# top comment\nimage:\n  # which base\n  base_image: fedora:44   # trailing\n  agents: claude,codex\nvault:\n  port: 1\n"
        );
    }

    #[test]
    fn a_missing_section_is_appended() {
        assert_eq!(
            edited("# mine\nvault:\n  port: 1 # c\n"),
            "# mine\nvault:\n  port: 1 # c\nimage:\n  agents: claude,codex\n"
        );
    }

    #[test]
    fn empty_and_comment_only_files_work() {
        assert_eq!(edited(""), "image:\n  agents: claude,codex\n");
        let out = edited("# just a comment\n");
        assert!(out.starts_with("# just a comment\n"), "{out}");
        assert!(out.contains("image:\n  agents: claude,codex\n"), "{out}");
    }

    #[test]
    fn an_empty_section_is_filled() {
        assert_eq!(edited("image:\n"), "image:\n  agents: claude,codex\n");
    }

    #[test]
    fn a_scalar_section_is_refused() {
        assert!(matches!(
            edit_text("image: 5\n", "image", "agents", "x"),
            Err(EditFailure::NotAMapping(_))
        ));
    }

    #[test]
    fn the_file_is_written_atomically_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.yml");
        set_image_agents(&path, "all,-vibe").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "image:\n  agents: all,-vibe\n"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        set_image_agents(&path, "claude").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}
