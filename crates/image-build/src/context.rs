//! Build contexts: one directory per layer holding its Dockerfile and exactly the files it
//! copies, so the layer's content hash covers everything that feeds it and nothing else.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::ImageBuildError;

/// Container-side scripts (resources/scripts), embedded: `(file name, contents)`.
pub const SCRIPTS: &[(&str, &str)] = &[
    (
        "Caddyfile",
        include_str!("../../../resources/scripts/Caddyfile"),
    ),
    (
        "ensure-bridges.sh",
        include_str!("../../../resources/scripts/ensure-bridges.sh"),
    ),
    ("hilfe", include_str!("../../../resources/scripts/hilfe")),
    (
        "init-ssh-and-repo.sh",
        include_str!("../../../resources/scripts/init-ssh-and-repo.sh"),
    ),
    (
        "install-glab-release.sh",
        include_str!("../../../resources/scripts/install-glab-release.sh"),
    ),
    (
        "opencode-provider",
        include_str!("../../../resources/scripts/opencode-provider"),
    ),
    (
        "opencode-session-plugin.mjs",
        include_str!("../../../resources/scripts/opencode-session-plugin.mjs"),
    ),
    (
        "setup-codex-auth.sh",
        include_str!("../../../resources/scripts/setup-codex-auth.sh"),
    ),
    (
        "setup-dev-user.sh",
        include_str!("../../../resources/scripts/setup-dev-user.sh"),
    ),
    (
        "ssh-agent-bridge.sh",
        include_str!("../../../resources/scripts/ssh-agent-bridge.sh"),
    ),
    (
        "terok-acp-run",
        include_str!("../../../resources/scripts/terok-acp-run"),
    ),
    (
        "terok-bash-banner.sh",
        include_str!("../../../resources/scripts/terok-bash-banner.sh"),
    ),
    (
        "terok-claude-for-acp",
        include_str!("../../../resources/scripts/terok-claude-for-acp"),
    ),
    (
        "terok-env-git-identity.sh",
        include_str!("../../../resources/scripts/terok-env-git-identity.sh"),
    ),
    (
        "terok-env.sh",
        include_str!("../../../resources/scripts/terok-env.sh"),
    ),
    (
        "terok-krun-guest",
        include_str!("../../../resources/scripts/terok-krun-guest"),
    ),
    (
        "terok-pi-vault",
        include_str!("../../../resources/scripts/terok-pi-vault"),
    ),
    (
        "terok-toad-agents",
        include_str!("../../../resources/scripts/terok-toad-agents"),
    ),
    (
        "terok-toad-entry",
        include_str!("../../../resources/scripts/terok-toad-entry"),
    ),
];

/// Scripts L0 copies (the rest are L1's).
pub const L0_SCRIPTS: &[&str] = &[
    "ensure-bridges.sh",
    "init-ssh-and-repo.sh",
    "setup-dev-user.sh",
    "ssh-agent-bridge.sh",
    "terok-krun-guest",
];

const TMUX_CONF: &str = include_str!("../../../resources/tmux/container-tmux.conf");

/// Where extra CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// None: images trust only their distribution's CA bundle.
    None,
    /// `*.crt` files, and directories searched for them recursively.
    Paths(Vec<PathBuf>),
}

impl Default for CaSource {
    /// The host's extra certificates: `/usr/local/share/ca-certificates`.
    fn default() -> Self {
        Self::Paths(vec![PathBuf::from("/usr/local/share/ca-certificates")])
    }
}

/// The `*.crt` files of `paths` as `(unique name, contents)`, sorted; missing paths are skipped.
pub fn collect_ca_certificates(
    source: &CaSource,
) -> Result<Vec<(String, Vec<u8>)>, ImageBuildError> {
    let CaSource::Paths(paths) = source else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for path in paths {
        collect_crt(path, &mut files)?;
    }
    files.sort();
    files.dedup();
    let mut out = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let contents = std::fs::read(file).map_err(|e| {
            ImageBuildError::Context(format!(
                "cannot read CA certificate {}: {e}",
                file.display()
            ))
        })?;
        let name = file
            .file_name()
            .map_or_else(|| "cert.crt".into(), |n| n.to_string_lossy().into_owned());
        out.push((format!("{i:03}-{name}"), contents));
    }
    Ok(out)
}

fn collect_crt(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), ImageBuildError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(ImageBuildError::Context(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| ImageBuildError::Context(format!("cannot read {}: {e}", path.display())))?;
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect_crt(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "crt") {
            out.push(p);
        }
    }
    Ok(())
}

/// Decodes the escapes the Python terok-executor allows in help labels (`\033`, `\x1b`, `\u00e9`,
/// `\n`, `\t`, `\e`, `\\`); anything else, including non-ASCII text, is kept as written.
pub fn decode_help_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let take = |chars: &mut std::iter::Peekable<std::str::Chars>, n: usize, radix: u32| {
            let mut digits = String::new();
            while digits.len() < n {
                match chars.peek() {
                    Some(d) if d.is_digit(radix) => {
                        digits.push(*d);
                        chars.next();
                    }
                    _ => break,
                }
            }
            (
                digits.clone(),
                u32::from_str_radix(&digits, radix)
                    .ok()
                    .and_then(char::from_u32),
            )
        };
        match chars.peek().copied() {
            Some('n') => {
                chars.next();
                out.push('\n');
            }
            Some('t') => {
                chars.next();
                out.push('\t');
            }
            Some('e') => {
                chars.next();
                out.push('\u{1b}');
            }
            Some('\\') => {
                chars.next();
                out.push('\\');
            }
            Some('x') => {
                chars.next();
                match take(&mut chars, 2, 16) {
                    (_, Some(ch)) => out.push(ch),
                    (digits, None) => {
                        out.push_str("\\x");
                        out.push_str(&digits);
                    }
                }
            }
            Some('u') => {
                chars.next();
                match take(&mut chars, 4, 16) {
                    (_, Some(ch)) => out.push(ch),
                    (digits, None) => {
                        out.push_str("\\u");
                        out.push_str(&digits);
                    }
                }
            }
            Some(d) if d.is_digit(8) => match take(&mut chars, 3, 8) {
                (_, Some(ch)) => out.push(ch),
                (digits, None) => {
                    out.push('\\');
                    out.push_str(&digits);
                }
            },
            _ => out.push('\\'),
        }
    }
    out
}

/// A staged build context (deleted when dropped).
#[derive(Debug)]
pub struct Staged {
    dir: tempfile::TempDir,
}

impl Staged {
    /// The context directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The Dockerfile inside it.
    pub fn dockerfile(&self) -> PathBuf {
        self.dir.path().join("Dockerfile")
    }
}

/// Files of one context: `(relative path, contents, executable)`.
pub(crate) struct ContextFiles(pub(crate) Vec<(String, Vec<u8>, bool)>);

impl ContextFiles {
    pub(crate) fn new(dockerfile: String) -> Self {
        Self(vec![(
            "Dockerfile".to_owned(),
            dockerfile.into_bytes(),
            false,
        )])
    }

    pub(crate) fn add(
        &mut self,
        path: impl Into<String>,
        contents: impl Into<Vec<u8>>,
        executable: bool,
    ) {
        self.0.push((path.into(), contents.into(), executable));
    }

    pub(crate) fn add_scripts(&mut self, names: Option<&[&str]>) {
        for (name, text) in SCRIPTS {
            if names.is_none_or(|n| n.contains(name)) {
                let executable =
                    !name.ends_with(".mjs") && *name != "Caddyfile" && *name != "ensure-bridges.sh";
                self.add(format!("scripts/{name}"), text.as_bytes(), executable);
            }
        }
    }

    pub(crate) fn add_tmux(&mut self) {
        self.add("tmux/container-tmux.conf", TMUX_CONF.as_bytes(), false);
    }

    /// How many filesystem layers its Dockerfile adds.
    pub(crate) fn layer_steps(&self) -> usize {
        self.0
            .iter()
            .find(|(path, _, _)| path == "Dockerfile")
            .map_or(0, |(_, text, _)| {
                terok_podman::layer_steps(&String::from_utf8_lossy(text))
            })
    }

    /// The content hash: every file (path, mode, bytes) in path order, then `extra` inputs.
    pub(crate) fn hash(&self, extra: &[&str]) -> String {
        let mut files: Vec<&(String, Vec<u8>, bool)> = self.0.iter().collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hasher = Sha256::new();
        hasher.update(b"terok-image-context-v1\0");
        for (path, contents, executable) in files {
            hasher.update(path.as_bytes());
            hasher.update([0, u8::from(*executable)]);
            hasher.update((contents.len() as u64).to_le_bytes());
            hasher.update(contents);
        }
        for item in extra {
            hasher.update(b"\0extra\0");
            hasher.update(item.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// Writes the files into a fresh temporary directory.
    pub(crate) fn stage(&self) -> Result<Staged, ImageBuildError> {
        let dir = tempfile::Builder::new()
            .prefix("terok-executor-build-")
            .tempdir()
            .map_err(|e| {
                ImageBuildError::Context(format!("cannot create a temporary directory: {e}"))
            })?;
        for (path, contents, executable) in &self.0 {
            let target = dir.path().join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| ImageBuildError::Context(format!("{}: {e}", parent.display())))?;
            }
            let mode = if *executable { 0o755 } else { 0o644 };
            terok_core::secure_fs::write_atomic(&target, contents, mode)
                .map_err(|e| ImageBuildError::Context(e.to_string()))?;
        }
        Ok(Staged { dir })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_escapes_decode() {
        assert_eq!(
            decode_help_escapes(r"\033[1mclaude\033[0m"),
            "\u{1b}[1mclaude\u{1b}[0m"
        );
        assert_eq!(
            decode_help_escapes(r"\x1b[0m a\nb \u00e9 ü \\"),
            "\u{1b}[0m a\nb é ü \\"
        );
        assert_eq!(decode_help_escapes(r"trailing \"), "trailing \\");
        assert_eq!(decode_help_escapes(r"\q"), "\\q");
    }

    #[test]
    fn the_script_list_matches_resources_scripts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../resources/scripts");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = SCRIPTS.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            listed, on_disk,
            "update SCRIPTS in crates/image-build/src/context.rs"
        );
    }

    #[test]
    fn hashes_change_with_any_input() {
        let mut a = ContextFiles::new("FROM x".into());
        a.add("f", "1", false);
        let mut b = ContextFiles::new("FROM x".into());
        b.add("f", "2", false);
        let mut c = ContextFiles::new("FROM x".into());
        c.add("f", "1", true);
        assert_ne!(a.hash(&[]), b.hash(&[]));
        assert_ne!(a.hash(&[]), c.hash(&[]));
        assert_ne!(a.hash(&["base=1"]), a.hash(&["base=2"]));
        assert_eq!(a.hash(&["x"]), a.hash(&["x"]));
    }

    #[test]
    fn ca_certificates_are_collected_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.crt"), "A").unwrap();
        std::fs::write(dir.path().join("sub/b.crt"), "B").unwrap();
        std::fs::write(dir.path().join("readme.txt"), "x").unwrap();
        let certs = collect_ca_certificates(&CaSource::Paths(vec![
            dir.path().to_path_buf(),
            dir.path().join("missing"),
        ]))
        .unwrap();
        let names: Vec<&str> = certs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["000-a.crt", "001-b.crt"]);
        assert!(collect_ca_certificates(&CaSource::None).unwrap().is_empty());
    }
}
