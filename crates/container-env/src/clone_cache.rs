//! The clone cache (executor.md §4.7): a task that works on a git URL starts from a copy of the
//! repository's last known `.git` instead of a fresh clone; the container then only fetches.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::ContainerEnvError;

/// Marks a seeded workspace as a new task: the init script resets it to the latest upstream
/// state (upstream never writes it, so a seeded workspace was treated as a restarted task).
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

/// Copies `from` into `to` recursively, keeping symbolic links as links and file modes.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
            let mode = entry.metadata()?.permissions().mode();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
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
    if workspace.join(".git").exists() || !cache.join(".git").is_dir() {
        return Ok(false);
    }
    let result = copy_tree(&cache.join(".git"), &workspace.join(".git"))
        .map_err(|e| cache_err(&cache, e))
        .and_then(|()| {
            std::fs::write(workspace.join(NEW_TASK_MARKER), b"")
                .map_err(|e| cache_err(workspace, e))
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
    if cache.join(".git").is_dir() || !workspace.join(".git").is_dir() {
        return Ok(false);
    }
    let staging = cache.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    copy_tree(&workspace.join(".git"), &staging.join(".git"))
        .map_err(|e| cache_err(&staging, e))?;
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::rename(&staging, &cache).map_err(|e| cache_err(&cache, e))?;
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
        assert!(second.join(".git/link").is_symlink());
        assert!(second.join(NEW_TASK_MARKER).exists());
        assert!(
            !seed_workspace(&cache_root, url, &second).unwrap(),
            "already seeded"
        );
    }
}
