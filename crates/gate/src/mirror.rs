//! The mirrors: one bare repository per source (a remote URL or a local repository) under the
//! gate's directory, made with `git clone --mirror` and refreshed by fetching the source's
//! branches and tags. Nothing is ever lost: a tip that a refresh or a push would drop (a branch
//! deleted, or moved to a commit that does not contain it) is first kept under
//! [`BACKUP_PREFIX`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use terok_core::secure_fs;

use crate::error::GateError;
use crate::git;

/// Where dropped tips are kept: `refs/terok/backup/<ref without refs/>/<unix time>-<short id>`.
pub const BACKUP_PREFIX: &str = "refs/terok/backup/";
/// Where the mirror keeps the source's branches as the last sync saw them: hidden from
/// clients, and the branches pushes may not move.
pub(crate) const SOURCE_PREFIX: &str = "refs/terok/source/heads/";
/// The gate's own refs: never backed up or logged as an agent's.
const OWN_PREFIX: &str = "refs/terok/";

/// The mirrors under one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorStore {
    root: PathBuf,
    user_env: git::UserEnv,
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
        Self {
            root: root.into(),
            user_env: None,
        }
    }

    /// The same store, talking to real remotes with git run in `env` (the user's `HOME`,
    /// `SSH_AUTH_SOCK`, … as the caller knows them) instead of this process's environment.
    pub fn with_user_env(mut self, env: Vec<(std::ffi::OsString, std::ffi::OsString)>) -> Self {
        self.user_env = Some(env);
        self
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
        let cloned = git::run_as_user(
            None,
            &[
                "clone",
                "--mirror",
                "--quiet",
                "--",
                source,
                &partial.to_string_lossy(),
            ],
            &self.user_env,
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
            ("transfer.hideRefs", git::HIDDEN_REFS),
        ] {
            git::run(Some(&partial), &["config", key, value]).await?;
        }
        record_source_branches(&partial).await?;
        fs_err::rename(&partial, &dir).map_err(|e| GateError::State {
            path: dir.clone(),
            detail: e.to_string(),
        })?;
        Ok(dir)
    }

    /// Every mirror, with its source, branches and what agents pushed.
    pub async fn list(&self) -> Result<Vec<Mirror>, GateError> {
        let mut mirrors = Vec::new();
        let Ok(entries) = fs_err::read_dir(&self.root) else {
            return Ok(mirrors);
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".git")
                    .map(str::to_owned)
            })
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        for name in names {
            let dir = self.repo_dir(&name);
            let source = git::run(Some(&dir), &["config", "--get", "remote.origin.url"])
                .await
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            let branches = git::refs(&dir)
                .await?
                .into_iter()
                .filter_map(|(r, id)| Some((r.strip_prefix("refs/heads/")?.to_owned(), id)))
                .collect();
            let pushes = self.pushes(&name);
            mirrors.push(Mirror {
                name,
                source,
                branches,
                pushes,
            });
        }
        Ok(mirrors)
    }

    /// What agents pushed to mirror `name`, oldest first.
    pub fn pushes(&self, name: &str) -> Vec<Push> {
        secure_fs::read_nofollow(&self.repo_dir(name).join(PUSH_LOG))
            .map(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter_map(|line| serde_json::from_str(line).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What branch `branch` of mirror `name` changes against the mirror's default branch: the
    /// commits and the patch (`git log` and `git diff` of `HEAD...branch`).
    pub async fn diff(&self, name: &str, branch: &str) -> Result<String, GateError> {
        if !self.exists(name) {
            return Err(GateError::UnknownRepo(name.to_owned()));
        }
        let dir = self.repo_dir(name);
        let range = format!("HEAD...refs/heads/{branch}");
        let log = git::run(Some(&dir), &["log", "--oneline", &range, "--"]).await?;
        let patch = git::run(Some(&dir), &["diff", "--stat", "--patch", &range, "--"]).await?;
        Ok(format!("{log}\n{patch}"))
    }

    /// Pushes branch `branch` of mirror `name` to the mirror's source as `to` (default: the
    /// same name), with the user's own git configuration and credentials — the one way what an
    /// agent pushed reaches the remote. Refuses a push that is not a fast-forward there.
    pub async fn promote(
        &self,
        name: &str,
        branch: &str,
        to: Option<&str>,
    ) -> Result<String, GateError> {
        if !self.exists(name) {
            return Err(GateError::UnknownRepo(name.to_owned()));
        }
        let dir = self.repo_dir(name);
        let source = git::run(Some(&dir), &["config", "--get", "remote.origin.url"])
            .await?
            .trim()
            .to_owned();
        let refspec = format!("refs/heads/{branch}:refs/heads/{}", to.unwrap_or(branch));
        git::run_as_user(
            Some(&dir),
            // Only the branch: no tag an agent left, no submodule, whatever the user's config.
            &[
                "push",
                "--no-follow-tags",
                "--no-recurse-submodules",
                "--porcelain",
                "--",
                &source,
                &refspec,
            ],
            &self.user_env,
        )
        .await
    }

    /// Fetches the source's branches and tags into the mirror (an agent's branch of another
    /// name stays); tips the fetch drops are backed up first.
    async fn refresh(&self, dir: &Path, source: &str) -> Result<(), GateError> {
        let before = git::refs(dir).await?;
        git::run_as_user(
            Some(dir),
            &[
                "fetch",
                "--quiet",
                "--",
                source,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
                &format!("+refs/heads/*:{SOURCE_PREFIX}*"),
            ],
            &self.user_env,
        )
        .await?;
        back_up_dropped(dir, &before).await
    }
}

/// The log of what agents pushed, in each mirror: one JSON line per changed ref.
const PUSH_LOG: &str = "terok-pushes.jsonl";

/// One ref an agent's push changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// The task (container) whose token pushed.
    pub task: String,
    /// The ref (`refs/heads/agent/fix`).
    pub reference: String,
    /// Its tip before (`None`: new).
    pub old: Option<String>,
    /// Its tip after (`None`: deleted).
    pub new: Option<String>,
    /// When, seconds since the epoch.
    pub unix: i64,
}

/// A mirror as `gate list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Its name.
    pub name: String,
    /// Where it mirrors from.
    pub source: String,
    /// Its branches with their tips.
    pub branches: Vec<(String, String)>,
    /// What agents pushed to it, oldest first.
    pub pushes: Vec<Push>,
}

/// Appends to the mirror's push log every ref that differs from `before`, as pushed by `task`.
pub(crate) async fn record_pushes(
    dir: &Path,
    task: &str,
    before: &[(String, String)],
) -> Result<(), GateError> {
    let before: BTreeMap<&str, &str> = before
        .iter()
        .map(|(name, id)| (name.as_str(), id.as_str()))
        .collect();
    let after = git::refs(dir).await?;
    let now = terok_core::time::unix_now();
    let mut lines = String::new();
    let mut push = |reference: &str, old: Option<&str>, new: Option<&str>| {
        let record = Push {
            task: task.to_owned(),
            reference: reference.to_owned(),
            old: old.map(str::to_owned),
            new: new.map(str::to_owned),
            unix: now,
        };
        lines.push_str(&serde_json::to_string(&record).unwrap_or_default());
        lines.push('\n');
    };
    for (name, new) in &after {
        let old = before.get(name.as_str()).copied();
        if !name.starts_with(OWN_PREFIX) && old != Some(new.as_str()) {
            push(name, old, Some(new));
        }
    }
    for (name, old) in &before {
        if !name.starts_with(OWN_PREFIX) && !after.iter().any(|(n, _)| n == name) {
            push(name, Some(old), None);
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    use std::io::Write;
    let log = dir.join(PUSH_LOG);
    let mut file = secure_fs::open_append(&log).map_err(|e| GateError::State {
        path: log.clone(),
        detail: e.to_string(),
    })?;
    file.write_all(lines.as_bytes())
        .map_err(|e| GateError::State {
            path: log,
            detail: e.to_string(),
        })
}

/// Records the mirror's branches, just cloned, as the source's (under [`SOURCE_PREFIX`]).
async fn record_source_branches(dir: &Path) -> Result<(), GateError> {
    let updates: String = git::refs(dir)
        .await?
        .into_iter()
        .filter_map(|(name, id)| {
            let branch = name.strip_prefix("refs/heads/")?;
            Some(format!("update {SOURCE_PREFIX}{branch} {id}\n"))
        })
        .collect();
    git::run_with_input(dir, &["update-ref", "--stdin"], updates.as_bytes()).await
}

/// Keeps under [`BACKUP_PREFIX`] every tip of `before` that the repository at `dir` no longer
/// contains at the same ref (deleted, or moved to a commit that does not contain it), as
/// `refs/terok/backup/<unix time>-<random>/<ref>`: a name of its own for each backup run, so
/// no ref an agent makes can stand in a backup's way.
pub(crate) async fn back_up_dropped(
    dir: &Path,
    before: &[(String, String)],
) -> Result<(), GateError> {
    let after: BTreeMap<String, String> = git::refs(dir).await?.into_iter().collect();
    let mut dropped = Vec::new();
    for (name, old) in before {
        if name.starts_with(OWN_PREFIX) {
            continue;
        }
        let kept = match after.get(name) {
            Some(new) if new == old => true,
            Some(new) => git::is_ancestor(dir, old, new).await,
            None => false,
        };
        if !kept {
            dropped.push((name, old));
        }
    }
    if dropped.is_empty() {
        return Ok(());
    }
    let mut nonce = [0u8; 4];
    getrandom::fill(&mut nonce).map_err(|_| GateError::Rng)?;
    let run = format!(
        "{BACKUP_PREFIX}{}-{}",
        terok_core::time::unix_now(),
        hex::encode(nonce)
    );
    let updates: String = dropped
        .iter()
        .map(|(name, old)| format!("create {run}/{name} {old}\n"))
        .collect();
    git::run_with_input(dir, &["update-ref", "--stdin"], updates.as_bytes()).await
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
