//! The clone cache (docs/compatibility.md#9.5): a task that works on a git URL starts from a copy
//! of the repository's last known `.git` instead of a fresh clone; the container then only fetches.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::ContainerEnvError;

/// Marks a seeded workspace as a new task: the init script resets it to the latest upstream
/// state (the Python terok-executor never writes it, so a seeded workspace was treated as a
/// restarted task; docs/decisions.md#3.15).
pub const NEW_TASK_MARKER: &str = ".new-task-marker";

/// `<repo basename without .git>-<first 12 hex of sha256(url)>`.
pub fn clone_cache_scope(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let base = trimmed
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git");
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = if base.is_empty() || base.starts_with('.') {
        format!("repo{base}")
    } else {
        base
    };
    let digest = hex::encode(Sha256::digest(url.as_bytes()));
    format!("{base}-{}", &digest[..12])
}

/// The cache directory of `url` under `cache_root`.
pub fn clone_cache_path(cache_root: &Path, url: &str) -> PathBuf {
    cache_root.join(clone_cache_scope(url))
}

fn cache_err(path: &Path, detail: impl std::fmt::Display) -> ContainerEnvError {
    ContainerEnvError::CloneCache {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// What a container may have left in its `.git` (`path`, relative to it) that must not reach
/// the next task: hooks run by git; config, whose settings (`core.fsmonitor`,
/// `core.hooksPath`, filters, aliases) run commands; submodules' and worktrees' git
/// directories, which hold their own; alternates, which make git read objects from elsewhere;
/// and grafts and replace refs, which make git show other history than the objects hold.
fn never_carried(path: &Path) -> bool {
    const NEVER: [&str; 9] = [
        "hooks",
        "config",
        "config.worktree",
        "modules",
        "worktrees",
        "objects/info/alternates",
        "objects/info/http-alternates",
        "info/grafts",
        "refs/replace",
    ];
    NEVER.iter().any(|never| path == Path::new(never))
}

/// Copies the `.git` directory `from` into `to`: directories and regular files, read without
/// following links; links (which could point anywhere on the host), hooks and config are left
/// out. Returns how many links were left out.
fn copy_git_dir(from: &Path, to: &Path) -> std::io::Result<usize> {
    crate::copy::copy_tree_nofollow(from, to, &never_carried, &|_| false).map(|s| s.links)
}

/// The config a fresh clone of `url` has: the seeded `.git` gets this one, never the config a
/// container wrote.
fn fresh_config(url: &str) -> String {
    let quoted = url.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\t\
         logallrefupdates = true\n[remote \"origin\"]\n\turl = \"{quoted}\"\n\t\
         fetch = +refs/heads/*:refs/remotes/origin/*\n"
    )
}

/// Whether `path` is a real directory (not a link to one).
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Empties `dir` (keeps the directory itself).
fn wipe(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Seeds an empty `workspace` from the cache of `url`. Returns whether it did: nothing happens
/// when the workspace already has a `.git` or the cache has none. On any failure the workspace
/// is emptied again, so the container falls back to a fresh clone.
pub fn seed_workspace(
    cache_root: &Path,
    url: &str,
    workspace: &Path,
) -> Result<bool, ContainerEnvError> {
    let cache = clone_cache_path(cache_root, url);
    let git = workspace.join(".git");
    if std::fs::symlink_metadata(&git).is_ok()
        || !is_real_dir(&cache.join(".git"))
        || url.chars().any(char::is_control)
    {
        return Ok(false);
    }
    let result = copy_git_dir(&cache.join(".git"), &git)
        .map_err(|e| cache_err(&cache, e))
        .and_then(|_| {
            terok_core::secure_fs::write_atomic(
                &git.join("config"),
                fresh_config(url).as_bytes(),
                0o644,
            )
            .map_err(|e| cache_err(&git, e))
        })
        .and_then(|()| {
            terok_core::secure_fs::write_atomic(&workspace.join(NEW_TASK_MARKER), b"", 0o600)
                .map_err(|e| cache_err(workspace, std::io::Error::other(e)))
        });
    if let Err(err) = result {
        wipe(workspace);
        return Err(err);
    }
    Ok(true)
}

/// Stores the `.git` of a finished task's workspace as the cache of `url`, if there is none
/// yet. Returns whether it did.
pub fn remember_clone(
    cache_root: &Path,
    url: &str,
    workspace: &Path,
) -> Result<bool, ContainerEnvError> {
    let cache = clone_cache_path(cache_root, url);
    let git = workspace.join(".git");
    if is_real_dir(&cache.join(".git")) {
        return Ok(false);
    }
    match std::fs::symlink_metadata(&git) {
        Err(_) => return Ok(false),
        Ok(meta) if !meta.is_dir() => {
            // A container replaced its .git with a link (to the vault, to ~/.ssh …): following
            // it would copy host files into the next task's workspace.
            return Err(cache_err(
                &git,
                "is not a directory (a symbolic link?); the task's clone is not cached",
            ));
        }
        Ok(_) => {}
    }
    let staging = cache.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    let links = copy_git_dir(&git, &staging.join(".git")).map_err(|e| cache_err(&staging, e))?;
    if links > 0 {
        tracing::warn!(
            "{links} symbolic link(s) in {} were not cached",
            git.display()
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
    terok_core::secure_fs::rename(&staging, &cache)
        .map_err(|e| cache_err(&cache, std::io::Error::other(e)))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let a = clone_cache_scope("https://example.com/org/tool.git");
        assert!(
            a.starts_with("tool-") && a.len() == "tool-".len() + 12,
            "{a}"
        );
        assert_ne!(a, clone_cache_scope("https://example.com/other/tool.git"));
        assert!(clone_cache_scope("git@example.com:org/x.git").starts_with("x-"));
        assert!(clone_cache_scope("https://h/../..").starts_with("repo"));
    }

    #[test]
    fn seed_and_remember() {
        let root = tempfile::tempdir().unwrap();
        let cache_root = root.path().join("cache");
        let url = "https://example.com/org/tool.git";
        let first = root.path().join("ws1");
        std::fs::create_dir_all(first.join(".git/refs")).unwrap();
        std::fs::write(first.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::os::unix::fs::symlink("HEAD", first.join(".git/link")).unwrap();

        let second = root.path().join("ws2");
        std::fs::create_dir_all(&second).unwrap();
        assert!(
            !seed_workspace(&cache_root, url, &second).unwrap(),
            "empty cache"
        );
        assert!(remember_clone(&cache_root, url, &first).unwrap());
        assert!(
            !remember_clone(&cache_root, url, &first).unwrap(),
            "kept once"
        );
        assert!(seed_workspace(&cache_root, url, &second).unwrap());
        assert_eq!(
            std::fs::read_to_string(second.join(".git/HEAD")).unwrap(),
            "ref: refs/heads/main\n"
        );
        assert!(
            std::fs::symlink_metadata(second.join(".git/link")).is_err(),
            "links are not carried"
        );
        assert!(second.join(NEW_TASK_MARKER).exists());
        assert!(
            !seed_workspace(&cache_root, url, &second).unwrap(),
            "already seeded"
        );
    }

    #[test]
    fn a_git_link_is_refused_and_hooks_and_config_stay_behind() {
        let root = tempfile::tempdir().unwrap();
        let cache_root = root.path().join("cache");
        let url = "https://example.com/org/tool.git";
        // The container swapped its .git for a link to a host directory with a secret in it.
        let secret = root.path().join("host-secret");
        std::fs::create_dir_all(&secret).unwrap();
        std::fs::write(secret.join("marker"), "host secret").unwrap();
        let evil = root.path().join("evil");
        std::fs::create_dir_all(&evil).unwrap();
        std::os::unix::fs::symlink(&secret, evil.join(".git")).unwrap();
        let err = remember_clone(&cache_root, url, &evil).unwrap_err();
        assert!(err.to_string().contains("not cached"), "{err}");
        assert!(
            !clone_cache_path(&cache_root, url).exists(),
            "nothing was copied"
        );

        // A real .git with a planted hook, config and a link inside.
        let ws = root.path().join("ws");
        std::fs::create_dir_all(ws.join(".git/hooks")).unwrap();
        std::fs::write(ws.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(
            ws.join(".git/hooks/post-checkout"),
            "#!/bin/sh\ntouch /tmp/pwned\n",
        )
        .unwrap();
        std::fs::write(
            ws.join(".git/config"),
            "[core]\n\tfsmonitor = touch /tmp/pwned\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(&secret, ws.join(".git/objects")).unwrap();
        // What else changes what git runs or shows: a submodule's own config and hooks,
        // alternates, grafts and a replace ref — and a branch named `config`, which stays.
        for (planted, text) in [
            (
                "modules/sub/config",
                "[core]\n\tfsmonitor = touch /tmp/pwned\n",
            ),
            ("worktrees/w/config.worktree", "[core]\n"),
            ("info/grafts", "0000000000000000000000000000000000000000\n"),
            (
                "refs/replace/0000000000000000000000000000000000000000",
                "1\n",
            ),
            (
                "refs/heads/config",
                "1111111111111111111111111111111111111111\n",
            ),
            ("packed-refs", "# pack-refs with: peeled\n"),
        ] {
            let path = ws.join(".git").join(planted);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        assert!(remember_clone(&cache_root, url, &ws).unwrap());
        let cached = clone_cache_path(&cache_root, url).join(".git");
        assert!(cached.join("HEAD").is_file());
        assert!(cached.join("refs/heads/config").is_file(), "a branch stays");
        assert!(cached.join("packed-refs").is_file());
        for gone in [
            "hooks",
            "config",
            "objects",
            "modules",
            "worktrees",
            "info/grafts",
            "refs/replace",
        ] {
            assert!(
                std::fs::symlink_metadata(cached.join(gone)).is_err(),
                "{gone}"
            );
        }
        let next = root.path().join("next");
        std::fs::create_dir_all(&next).unwrap();
        assert!(seed_workspace(&cache_root, url, &next).unwrap());
        let config = std::fs::read_to_string(next.join(".git/config")).unwrap();
        assert!(
            config.contains("url = \"https://example.com/org/tool.git\""),
            "{config}"
        );
        assert!(!config.contains("fsmonitor"), "{config}");
        assert!(!next.join(".git/hooks").exists());
    }
}
