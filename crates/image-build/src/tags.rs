//! Image tag names, exactly as the Python terok-executor makes them (docs/compatibility.md
//! §6.2), so images built by either implementation are found by the other.

use sha1::{Digest, Sha1};

const DEFAULT_FRAGMENT: &str = "ubuntu-24.04";
const MAX_TAG: usize = 120;

/// The base image as a tag fragment: runs of characters outside `[A-Za-z0-9_.-]` become `-`,
/// leading and trailing `-`/`.` are stripped, lowercased; longer than 120 characters → the first
/// 111, `-`, and 8 hex digits of the SHA-1 of the raw reference.
pub fn base_fragment(base: &str) -> String {
    let mut out = String::with_capacity(base.len());
    let mut in_run = false;
    for c in base.trim().chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '.').to_owned();
    if trimmed.is_empty() {
        return DEFAULT_FRAGMENT.to_owned();
    }
    if trimmed.len() > MAX_TAG {
        let digest = hex::encode(Sha1::digest(base.trim().as_bytes()));
        return format!("{}-{}", &trimmed[..111], &digest[..8]);
    }
    trimmed
}

fn sanitize_name(name: &str) -> String {
    let fragment = base_fragment(name);
    if name.trim().is_empty() {
        String::new()
    } else {
        fragment
    }
}

/// The tags of one base image and selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSet {
    /// `terok-l0:<fragment>`.
    pub l0: String,
    /// `terok-l1-cli:<fragment>-<agents…>` for this selection.
    pub l1: String,
    /// `terok-l1-cli:<fragment>`: the most recently built L1 of this base.
    pub l1_alias: String,
    /// `terok-l1-sidecar:<fragment>`: what the tag of each tool's sidecar begins with.
    pub sidecar: String,
}

impl TagSet {
    /// Tags for `base` and the (sorted) `selection`.
    pub fn new(base: &str, selection: &[String]) -> Self {
        let fragment = base_fragment(base);
        let mut names: Vec<String> = selection.iter().map(|s| sanitize_name(s)).collect();
        names.sort();
        let suffix = if names.is_empty() {
            "empty".to_owned()
        } else {
            names.join("-")
        };
        let mut l1_tag = format!("{fragment}-{suffix}");
        if l1_tag.len() > MAX_TAG {
            let mut sorted: Vec<&str> = selection.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            let digest = hex::encode(Sha1::digest(sorted.join(",").as_bytes()));
            let frag = if fragment.len() > 107 {
                &fragment[..107]
            } else {
                &fragment
            };
            l1_tag = format!("{frag}-{}", &digest[..12]);
        }
        Self {
            l0: format!("terok-l0:{fragment}"),
            l1: format!("terok-l1-cli:{l1_tag}"),
            l1_alias: format!("terok-l1-cli:{fragment}"),
            sidecar: format!("terok-l1-sidecar:{fragment}"),
        }
    }
}

impl TagSet {
    /// `terok-l1-sidecar:<fragment>-<tool>`: one image per tool, so building one tool's
    /// sidecar never replaces another's.
    pub fn sidecar_for(&self, tool: &str) -> String {
        format!("{}-{}", self.sidecar, sanitize_name(tool))
    }
}

/// The fully qualified local reference of one of our tags (what `FROM` and podman see).
pub fn local(tag: &str) -> String {
    format!("localhost/{tag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments() {
        assert_eq!(base_fragment("ubuntu:24.04"), "ubuntu-24.04");
        assert_eq!(
            base_fragment("localhost/debian:bookworm"),
            "localhost-debian-bookworm"
        );
        assert_eq!(base_fragment("  "), "ubuntu-24.04");
        assert_eq!(
            base_fragment("Registry.Example:5000/Team/Img:Tag"),
            "registry.example-5000-team-img-tag"
        );
        assert_eq!(base_fragment("--x--"), "x");
    }
}
