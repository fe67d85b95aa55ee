//! The mirrors: one bare repository per source (a remote URL or a local repository) under the
//! gate's directory, made with `git clone --mirror` and refreshed by fetching the source's
//! branches and tags. Nothing is ever lost: a tip that a refresh or a push would drop (a branch
//! deleted, or moved to a commit that does not contain it) is first kept under
//! [`BACKUP_PREFIX`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use terok_core::secure_fs;

use crate::error::GateError;
use crate::git;

/// Where dropped tips are kept: `refs/terok/backup/<ref without refs/>/<unix time>-<short id>`.
pub const BACKUP_PREFIX: &str = "refs/terok/backup/";

/// The mirrors under one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorStore {
    root: PathBuf,
}

/// The name a source's mirror has: its last path component (without `.git`), made safe for a
/// URL path, and 8 hex digits of a hash of the whole source, so two sources never share one.
pub fn repo_name(source: &str) -> String {
    let trimmed = source.trim_end_matches('/');
    let last = trimmed
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(trimmed)
        .trim_end_matches(".git");
    let mut stem: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    if stem.is_empty() || stem.starts_with('-') {
        stem.insert_str(0, "repo");
    }
    let hash = hex::encode(Sha256::digest(source.as_bytes()));
    format!("{stem}-{}", &hash[..8])
}

impl MirrorStore {
    /// The mirrors under `root` (`<state>/sandbox/gate`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory the mirrors are in (what `git http-backend` serves).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The bare repository of mirror `name`.
    pub fn repo_dir(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.git"))
    }

    /// Whether mirror `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.repo_dir(name).join("HEAD").is_file()
    }

    /// Mirror `name` of `source` (a URL or a local repository), made or refreshed; its
    /// directory.
    pub async fn sync(&self, name: &str, source: &str) -> Result<PathBuf, GateError> {
        let dir = self.repo_dir(name);
        if self.exists(name) {
            self.refresh(&dir, source).await?;
            return Ok(dir);
        }
        secure_fs::ensure_private_dir(&self.root).map_err(|e| GateError::State {
            path: self.root.clone(),
            detail: e.to_string(),
        })?;
        // Cloned beside and renamed: a clone that fails half-way leaves no mirror behind.
        let partial = self.root.join(format!(".{name}.partial"));
        let _ = fs_err::remove_dir_all(&partial);
        let cloned = git::run(
            None,
            &[
                "clone",
                "--mirror",
                "--quiet",
                "--",
                source,
                &partial.to_string_lossy(),
            ],
        )
        .await;
        if let Err(err) = cloned {
            let _ = fs_err::remove_dir_all(&partial);
            return Err(err);
        }
        // Pushes are the agent's: make the mirror take them, and never answer with a hook.
        for (key, value) in [
            ("http.receivepack", "true"),
            ("receive.denyDeletes", "false"),
            ("receive.denyNonFastForwards", "false"),
            ("core.hooksPath", "/dev/null"),
        ] {
            git::run(Some(&partial), &["config", key, value]).await?;
        }
        fs_err::rename(&partial, &dir).map_err(|e| GateError::State {
            path: dir.clone(),
            detail: e.to_string(),
        })?;
        Ok(dir)
    }

    /// Fetches the source's branches and tags into the mirror (an agent's branch of another
    /// name stays); tips the fetch drops are backed up first.
    async fn refresh(&self, dir: &Path, source: &str) -> Result<(), GateError> {
        let before = git::refs(dir).await?;
        git::run(
            Some(dir),
            &[
                "fetch",
                "--quiet",
                "--",
                source,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
        )
        .await?;
        back_up_dropped(dir, &before).await
    }
}

/// Keeps under [`BACKUP_PREFIX`] every tip of `before` that the repository at `dir` no longer
/// contains at the same ref (deleted, or moved to a commit that does not contain it).
pub(crate) async fn back_up_dropped(
    dir: &Path,
    before: &[(String, String)],
) -> Result<(), GateError> {
    let after: BTreeMap<String, String> = git::refs(dir).await?.into_iter().collect();
    let now = terok_core::time::unix_now();
    for (name, old) in before {
        if name.starts_with(BACKUP_PREFIX) {
            continue;
        }
        let kept = match after.get(name) {
            Some(new) if new == old => true,
            Some(new) => git::is_ancestor(dir, old, new).await,
            None => false,
        };
        if !kept {
            let short = &old[..old.len().min(12)];
            let backup = format!(
                "{BACKUP_PREFIX}{}/{now}-{short}",
                name.trim_start_matches("refs/")
            );
            git::run(Some(dir), &["update-ref", &backup, old]).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_safe_and_distinct_per_source() {
        let a = repo_name("https://example.org/acme/widget.git");
        assert!(
            a.starts_with("widget-") && a.len() == "widget-".len() + 8,
            "{a}"
        );
        assert_ne!(a, repo_name("https://example.org/other/widget.git"));
        assert!(repo_name("git@example.org:acme/my.repo.git").starts_with("my-repo-"));
        assert!(repo_name("/home/me/src/pro ject/").starts_with("pro-ject-"));
        assert!(repo_name("..").starts_with("repo-"));
        for name in [a, repo_name("/x/y/../..")] {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')),
                "{name}"
            );
        }
    }
}
