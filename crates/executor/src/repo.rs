//! Classifying the repository argument of `run` (executor.md §5.1): an existing directory is
//! mounted; anything that looks like a path but is not a directory is an error; the rest is a
//! git URL cloned inside the container.

use std::path::{Path, PathBuf};

use terok_core::env::HostEnv;

use crate::error::ExecutorError;

/// Where the agent's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoSource {
    /// A directory on the host (absolute, resolved).
    Local(PathBuf),
    /// A git URL, cloned inside the container.
    GitUrl(String),
}

/// Classifies `text`, resolving relative paths against `cwd`.
pub fn classify_repo(text: &str, env: &HostEnv, cwd: &Path) -> Result<RepoSource, ExecutorError> {
    let expanded = terok_core::paths::expand_tilde(Path::new(text), env);
    let candidate = if expanded.is_absolute() {
        expanded
    } else {
        cwd.join(expanded)
    };
    if candidate.is_dir() {
        let resolved = candidate.canonicalize().unwrap_or(candidate);
        return Ok(RepoSource::Local(resolved));
    }
    let looks_like_path = ["/", "./", "../", "~"].iter().any(|p| text.starts_with(p))
        || text == "."
        || text == ".."
        || (!text.starts_with("git@") && !text.contains("://") && !text.contains(':'));
    if looks_like_path {
        return Err(ExecutorError::LocalPathNotFound(text.to_owned()));
    }
    Ok(RepoSource::GitUrl(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("proj")).unwrap();
        let env = HostEnv::from_vars([("HOME", dir.path().to_str().unwrap())], 0);
        let resolved = dir.path().canonicalize().unwrap().join("proj");
        assert_eq!(
            classify_repo("proj", &env, dir.path()).unwrap(),
            RepoSource::Local(resolved.clone())
        );
        assert_eq!(
            classify_repo("~/proj", &env, Path::new("/")).unwrap(),
            RepoSource::Local(resolved)
        );
        for missing in ["./nope", "/nope/x", "~/nope", "nope", "../nope"] {
            let err = classify_repo(missing, &env, dir.path()).unwrap_err();
            assert_eq!(err.to_string(), format!("Local path not found: {missing}"));
        }
        for url in [
            "https://example.com/org/repo.git",
            "git@example.com:org/repo.git",
            "file:///srv/repo.git",
            "host:repo",
        ] {
            assert_eq!(
                classify_repo(url, &env, dir.path()).unwrap(),
                RepoSource::GitUrl(url.into())
            );
        }
    }
}
