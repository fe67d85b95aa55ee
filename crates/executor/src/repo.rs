//! Classifying the repository argument of `run`, as the Python terok-executor does: an existing
//! directory is mounted; anything that looks like a path but is not a directory is an error;
//! the rest is a git URL cloned inside the container.

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

/// Classifies `text`, resolving relative paths against `cwd` (without one, a relative path
/// that is not a URL is an error).
pub fn classify_repo(
    text: &str,
    env: &HostEnv,
    cwd: Option<&Path>,
) -> Result<RepoSource, ExecutorError> {
    let expanded = terok_core::paths::expand_tilde(Path::new(text), env);
    let candidate = if expanded.is_absolute() {
        Some(expanded)
    } else {
        cwd.map(|cwd| cwd.join(expanded))
    };
    if let Some(candidate) = candidate.filter(|c| c.is_dir()) {
        let resolved = candidate.canonicalize().unwrap_or(candidate);
        return Ok(RepoSource::Local(resolved));
    }
    let looks_like_path = ["/", "./", "../", "~"].iter().any(|p| text.starts_with(p))
        || text == "."
        || text == ".."
        || (!text.starts_with("git@") && !text.contains("://") && !text.contains(':'));
    if looks_like_path {
        if cwd.is_none() && !Path::new(text).is_absolute() && !text.starts_with('~') {
            return Err(ExecutorError::RelativeRepoWithoutCwd(text.to_owned()));
        }
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
            classify_repo("proj", &env, Some(dir.path())).unwrap(),
            RepoSource::Local(resolved.clone())
        );
        assert_eq!(
            classify_repo("~/proj", &env, None).unwrap(),
            RepoSource::Local(resolved)
        );
        for missing in ["./nope", "/nope/x", "~/nope", "nope", "../nope"] {
            let err = classify_repo(missing, &env, Some(dir.path())).unwrap_err();
            assert_eq!(err.to_string(), format!("Local path not found: {missing}"));
        }
        for url in [
            "https://example.com/org/repo.git",
            "git@example.com:org/repo.git",
            "file:///srv/repo.git",
            "host:repo",
        ] {
            assert_eq!(
                classify_repo(url, &env, None).unwrap(),
                RepoSource::GitUrl(url.into())
            );
        }
        assert!(matches!(
            classify_repo("proj", &env, None),
            Err(ExecutorError::RelativeRepoWithoutCwd(_))
        ));
    }
}
