//! Leaked credentials (docs/compatibility.md#12.6): real secrets sitting in a shared mount, where
//! every container of that agent could read them (a login done inside a container, a file copied by
//! hand). Phantom and empty files are fine; symbolic links and files outside the mounts directory
//! are never followed.

use std::path::{Path, PathBuf};

use terok_roster::Roster;

use crate::vendor::is_phantom_content;

/// A credential file holding something that is not a phantom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// The provider whose file it is.
    pub provider: String,
    /// The file.
    pub path: PathBuf,
}

/// Every leaked credential file under `mounts_dir`.
pub fn scan(roster: &Roster, mounts_dir: &Path) -> Vec<Leak> {
    let base = std::fs::canonicalize(mounts_dir).unwrap_or_else(|_| mounts_dir.to_path_buf());
    let mut leaks = Vec::new();
    for mount in roster.shared_mounts() {
        let (Some(file), Some(provider)) = (&mount.credential_file, &mount.provider) else {
            continue;
        };
        let path = mounts_dir.join(&mount.host_dir).join(file);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.file_type().is_file() || meta.len() == 0 {
            continue;
        }
        let inside = std::fs::canonicalize(&path).is_ok_and(|p| p.starts_with(&base));
        if !inside {
            continue;
        }
        match std::fs::read(&path) {
            Ok(bytes) if !is_phantom_content(&bytes) => leaks.push(Leak {
                provider: provider.clone(),
                path,
            }),
            _ => {}
        }
    }
    leaks
}

/// Deletes the leaked files; returns the ones removed.
pub fn clean(leaks: &[Leak]) -> Vec<Result<PathBuf, (PathBuf, std::io::Error)>> {
    leaks
        .iter()
        .map(|leak| match std::fs::remove_file(&leak.path) {
            Ok(()) => Ok(leak.path.clone()),
            Err(e) => Err((leak.path.clone(), e)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_secrets_are_found_and_phantoms_empty_files_and_links_are_not() {
        let roster = terok_roster::RosterLoader::bundled().load().unwrap();
        let mounts = tempfile::tempdir().unwrap();
        let m = mounts.path();
        for dir in [
            "_claude-config",
            "_codex-config",
            "_vibe-config",
            "_gh-config",
            "_kisski-config",
        ] {
            std::fs::create_dir_all(m.join(dir)).unwrap();
        }
        std::fs::write(
            m.join("_claude-config/.credentials.json"),
            r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-real"}}"#,
        )
        .unwrap();
        std::fs::write(
            m.join("_codex-config/auth.json"),
            crate::vendor::phantom_file(
                "codex",
                "auth.json",
                None,
                "terok-p-0123456789abcdef0123456789abcdef",
            )
            .unwrap(),
        )
        .unwrap();
        std::fs::write(m.join("_vibe-config/.env"), "").unwrap();
        std::fs::write(
            m.join("_gh-config/hosts.yml"),
            "github.com:\n  oauth_token: gho_realtoken\n",
        )
        .unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(
            outside.path().join("config.json"),
            r#"{"api_key": "sk-elsewhere"}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("config.json"),
            m.join("_kisski-config/config.json"),
        )
        .unwrap();
        let leaks = scan(&roster, m);
        let found: Vec<&str> = leaks.iter().map(|l| l.provider.as_str()).collect();
        assert_eq!(found, ["claude", "gh"]);
        let removed = clean(&leaks);
        assert!(removed.iter().all(Result::is_ok));
        assert!(scan(&roster, m).is_empty());
        assert!(
            outside.path().join("config.json").exists(),
            "links are never followed"
        );
    }
}
