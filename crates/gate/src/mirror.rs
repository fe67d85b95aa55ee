//! The mirrors: one bare repository per source (a remote URL or a local repository) under the
//! gate's directory, made and refreshed by fetching the source's branches and tags (nothing
//! else of the source's reaches it). Nothing is ever lost: a tip that a refresh or a push would drop (a branch
//! deleted, or moved to a commit that does not contain it) is first kept under
//! [`BACKUP_PREFIX`]. Pushes and syncs of one mirror take its lock, so none changes refs while
//! another is taking stock of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use terok_core::secure_fs;

use crate::error::GateError;
use crate::git;

/// Where dropped tips are kept: `refs/terok/backup/<unix time>-<random>/<n>`, the ref each
/// was at in the mirror's backup log ([`MirrorStore::backups`]).
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

    /// Mirror `name` of `source` (a URL or a local repository), made or refreshed.
    pub async fn sync(&self, name: &str, source: &str) -> Result<Synced, GateError> {
        let dir = self.repo_dir(name);
        if self.exists(name) {
            let blocked = self.refresh(&dir, source).await?;
            return Ok(Synced { dir, blocked });
        }
        self.create(name, Some(source)).await?;
        Ok(Synced {
            dir,
            blocked: Vec::new(),
        })
    }

    /// Repository `name` for work without a remote (an orchestrator's project that has none
    /// yet): an empty bare repository agents push to, made unless it exists; its directory.
    /// With no source, no branch of it is the source's: the first push makes `main`.
    pub async fn create_remoteless(&self, name: &str) -> Result<PathBuf, GateError> {
        if !self.exists(name) {
            self.create(name, None).await?;
        }
        Ok(self.repo_dir(name))
    }

    /// Makes mirror `name`: a mirror clone of `source`, or an empty bare repository. Made
    /// beside and renamed, so one that fails half-way leaves no mirror behind.
    async fn create(&self, name: &str, source: Option<&str>) -> Result<(), GateError> {
        secure_fs::ensure_private_dir(&self.root).map_err(|e| GateError::State {
            path: self.root.clone(),
            detail: e.to_string(),
        })?;
        let partial = self.root.join(format!(".{name}.partial"));
        let _ = fs_err::remove_dir_all(&partial);
        let target = partial.to_string_lossy();
        let args = [
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            &target,
        ];
        let made = match (git::run(None, &args).await, source) {
            (Ok(_), Some(source)) => self.first_fetch(&partial, source).await,
            (Ok(_), None) => Ok(()),
            (Err(err), _) => Err(err),
        };
        let configured = match made {
            Ok(()) => configure(&partial).await,
            Err(err) => Err(err),
        };
        if let Err(err) = configured {
            let _ = fs_err::remove_dir_all(&partial);
            return Err(err);
        }
        let dir = self.repo_dir(name);
        fs_err::rename(&partial, &dir).map_err(|e| GateError::State {
            path: dir,
            detail: e.to_string(),
        })
    }

    /// Fills the new, empty mirror at `dir` from `source`: its branches and tags only (not a
    /// `clone --mirror`, which would bring a local repository's stash, remote-tracking refs
    /// and notes, and their objects, into what agents fetch from), and its default branch.
    async fn first_fetch(&self, dir: &Path, source: &str) -> Result<(), GateError> {
        git::run(Some(dir), &["config", "remote.origin.url", source]).await?;
        let fetch = [
            "fetch",
            "--quiet",
            "--no-write-fetch-head",
            "--",
            source,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
        ];
        git::run_as_user(Some(dir), &fetch, &self.user_env).await?;
        let head = ["ls-remote", "--symref", "--", source, "HEAD"];
        let listed = git::run_as_user(Some(dir), &head, &self.user_env).await?;
        let default = listed
            .lines()
            .find_map(|line| line.strip_prefix("ref: ")?.strip_suffix("\tHEAD"));
        if let Some(branch) = default.filter(|b| b.starts_with("refs/heads/")) {
            git::run(Some(dir), &["symbolic-ref", "HEAD", branch]).await?;
        }
        Ok(())
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
        read_log(&self.repo_dir(name).join(PUSH_LOG))
    }

    /// The tips kept under [`BACKUP_PREFIX`] in mirror `name`, oldest first.
    pub fn backups(&self, name: &str) -> Vec<Backup> {
        read_log(&self.repo_dir(name).join(BACKUP_LOG))
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
    /// name stays), under the mirror's lock; tips that drops are backed up first, even when
    /// the fetch failed half-way. The source's branches whose names a pushed branch is in the
    /// way of are left as they were and returned.
    async fn refresh(&self, dir: &Path, source: &str) -> Result<Vec<String>, GateError> {
        let _lock = lock_mirror(dir, LOCK_WAIT).await?;
        let before = git::refs(dir).await?;
        // Into the gate's own namespace first: nothing an agent pushed can conflict there.
        // Pruned there (and among tags, which only the source sets), never among branches,
        // whatever the user's `fetch.prune` says.
        let fetched = git::run_as_user(
            Some(dir),
            &[
                "fetch",
                "--quiet",
                "--prune",
                "--no-write-fetch-head",
                "--",
                source,
                &format!("+refs/heads/*:{SOURCE_PREFIX}*"),
                "+refs/tags/*:refs/tags/*",
            ],
            &self.user_env,
        )
        .await;
        let moved = match fetched {
            Ok(_) => move_branches_to_source(dir).await,
            Err(err) => Err(err),
        };
        back_up_dropped(dir, &before).await?;
        moved
    }
}

/// A mirror made or refreshed by [`MirrorStore::sync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// Its bare repository.
    pub dir: PathBuf,
    /// The source's branches the refresh left as they were, because a branch an agent pushed
    /// is in the way of the name (`a` against the source's `a/b`, or the reverse).
    pub blocked: Vec<String>,
}

/// The mirror's lock file, shared by every process that pushes to it or syncs it.
const LOCK_FILE: &str = "terok-push.lock";
/// How long a sync waits for a push (or another sync) of the same mirror.
const LOCK_WAIT: Duration = Duration::from_secs(5 * 60);

/// Takes the lock of the mirror at `dir`, waiting at most `wait` for whoever holds it.
pub(crate) async fn lock_mirror(dir: &Path, wait: Duration) -> Result<std::fs::File, GateError> {
    let path = dir.join(LOCK_FILE);
    let file = secure_fs::open_lock_file(&path).map_err(|e| GateError::State {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(GateError::State {
                    path,
                    detail: e.to_string(),
                });
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(GateError::Busy(dir.to_path_buf()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sets each branch of the mirror to the source's tip (as just fetched under
/// [`SOURCE_PREFIX`]), but for those a pushed branch is in the way of; their names.
async fn move_branches_to_source(dir: &Path) -> Result<Vec<String>, GateError> {
    let refs = git::refs(dir).await?;
    let names: BTreeSet<&str> = refs.iter().map(|(name, _)| name.as_str()).collect();
    let tips: BTreeMap<&str, &str> = refs
        .iter()
        .map(|(name, id)| (name.as_str(), id.as_str()))
        .collect();
    let mut updates = String::new();
    let mut blocked = Vec::new();
    for (name, id) in &refs {
        let Some(branch) = name.strip_prefix(SOURCE_PREFIX) else {
            continue;
        };
        let target = format!("refs/heads/{branch}");
        if tips.get(target.as_str()) == Some(&id.as_str()) {
            continue;
        }
        if name_is_taken(&names, &target) {
            blocked.push(branch.to_owned());
        } else {
            updates.push_str(&format!("update {target} {id}\n"));
        }
    }
    if !updates.is_empty() {
        git::run_with_input(dir, &["update-ref", "--stdin"], updates.as_bytes()).await?;
    }
    Ok(blocked)
}

/// Whether a ref in `names` stands in the way of creating `target`: one below it
/// (`target/…`), or one that is a leading part of it.
fn name_is_taken(names: &BTreeSet<&str>, target: &str) -> bool {
    let below = format!("{target}/");
    let has_below = names
        .range(below.as_str()..)
        .next()
        .is_some_and(|name| name.starts_with(&below));
    let has_above = target
        .match_indices('/')
        .skip(2)
        .any(|(at, _)| names.contains(&target[..at]));
    has_below || has_above
}

/// The log of what agents pushed, in each mirror: one JSON line per changed ref.
const PUSH_LOG: &str = "terok-pushes.jsonl";
/// The log of the backups, in each mirror: one JSON line per tip kept.
const BACKUP_LOG: &str = "terok-backups.jsonl";

/// The JSON lines of the log at `path` (none when it does not exist yet).
fn read_log<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    secure_fs::read_nofollow(path)
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Appends `lines` (JSON lines) to the log at `path`.
fn append_log(path: &Path, lines: &str) -> Result<(), GateError> {
    use std::io::Write;
    if lines.is_empty() {
        return Ok(());
    }
    let state = |detail: String| GateError::State {
        path: path.to_path_buf(),
        detail,
    };
    let mut file = secure_fs::open_append(path).map_err(|e| state(e.to_string()))?;
    file.write_all(lines.as_bytes())
        .map_err(|e| state(e.to_string()))
}

/// The task that last pushed each ref of the mirror at `dir`, by its push log.
pub(crate) fn last_pushers(dir: &Path) -> BTreeMap<String, String> {
    read_log::<Push>(&dir.join(PUSH_LOG))
        .into_iter()
        .map(|push| (push.reference, push.task))
        .collect()
}

/// A tip kept under [`BACKUP_PREFIX`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// The backup ref (`refs/terok/backup/1764900000-9f3a01c2/0`).
    pub backup: String,
    /// The ref the tip was at (`refs/heads/agent/fix`).
    pub reference: String,
    /// The tip.
    pub id: String,
    /// When it was dropped, seconds since the epoch.
    pub unix: i64,
}

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
    let after: BTreeMap<String, String> = git::refs(dir).await?.into_iter().collect();
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
        if !name.starts_with(OWN_PREFIX) && !after.contains_key(*name) {
            push(name, Some(old), None);
        }
    }
    append_log(&dir.join(PUSH_LOG), &lines)
}

/// Makes the new mirror at `dir` take the agents' pushes, never answer with a hook, and know
/// the source's branches.
async fn configure(dir: &Path) -> Result<(), GateError> {
    for (key, value) in [
        ("http.receivepack", "true"),
        ("receive.denyDeletes", "false"),
        ("receive.denyNonFastForwards", "false"),
        ("core.hooksPath", "/dev/null"),
        ("transfer.hideRefs", git::HIDDEN_REFS),
    ] {
        git::run(Some(dir), &["config", key, value]).await?;
    }
    record_source_branches(dir).await
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

/// How many moved refs a backup asks git about (is the old tip in the new one?); the tips
/// of any more are kept without asking, so a push of many refs cannot make the gate run git
/// once for each.
const MAX_ANCESTRY_CHECKS: usize = 64;

/// Keeps under [`BACKUP_PREFIX`] every tip of `before` that the repository at `dir` no longer
/// contains at the same ref (deleted, or moved to a commit that does not contain it), as
/// `refs/terok/backup/<unix time>-<random>/<n>` with the ref it was at in the backup log:
/// short names of the gate's own, so no ref an agent makes (of any name or length) can stand
/// in a backup's way.
pub(crate) async fn back_up_dropped(
    dir: &Path,
    before: &[(String, String)],
) -> Result<(), GateError> {
    let after: BTreeMap<String, String> = git::refs(dir).await?.into_iter().collect();
    let mut dropped = Vec::new();
    let mut checks = 0;
    for (name, old) in before {
        if name.starts_with(OWN_PREFIX) {
            continue;
        }
        let kept = match after.get(name) {
            Some(new) if new == old => true,
            Some(new) if checks < MAX_ANCESTRY_CHECKS => {
                checks += 1;
                git::is_ancestor(dir, old, new).await
            }
            Some(_) | None => false,
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
    let now = terok_core::time::unix_now();
    let run = format!("{BACKUP_PREFIX}{now}-{}", hex::encode(nonce));
    let backups: Vec<Backup> = dropped
        .iter()
        .enumerate()
        .map(|(n, (name, old))| Backup {
            backup: format!("{run}/{n}"),
            reference: (*name).clone(),
            id: (*old).clone(),
            unix: now,
        })
        .collect();
    let updates: String = backups
        .iter()
        .map(|b| format!("create {} {}\n", b.backup, b.id))
        .collect();
    git::run_with_input(dir, &["update-ref", "--stdin"], updates.as_bytes()).await?;
    let lines: String = backups
        .iter()
        .map(|b| serde_json::to_string(b).unwrap_or_default() + "\n")
        .collect();
    append_log(&dir.join(BACKUP_LOG), &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_taken_by_a_ref_below_or_above_it() {
        let names: BTreeSet<&str> = ["refs/heads/agent/fix", "refs/heads/a", "refs/heads/ab"]
            .into_iter()
            .collect();
        assert!(name_is_taken(&names, "refs/heads/agent"));
        assert!(name_is_taken(&names, "refs/heads/a/b"));
        assert!(!name_is_taken(&names, "refs/heads/ag"));
        assert!(!name_is_taken(&names, "refs/heads/abc"));
        assert!(!name_is_taken(&names, "refs/heads/agent/fix"));
    }

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
