//! Facts about the host a launch may use: the GPU vendors it has CDI specifications for, and
//! the human's own git identity.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use terok_podman::GpuRequest;

use crate::error::ExecutorError;

/// Where CDI device specifications live.
const CDI_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];
/// How long `git config` may take before the identity counts as unknown.
const GIT_LIMIT: Duration = Duration::from_secs(5);

/// The GPU vendors (`nvidia`, `amd`, `intel`) this host has CDI specifications for.
pub fn cdi_gpu_vendors() -> Vec<String> {
    cdi_vendors_in(&CDI_DIRS.map(Path::new))
}

fn cdi_vendors_in(dirs: &[&Path]) -> Vec<String> {
    let mut vendors = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            for vendor in ["nvidia", "amd", "intel"] {
                if name.contains(vendor) && !vendors.iter().any(|v| v == vendor) {
                    vendors.push(vendor.to_owned());
                }
            }
        }
    }
    vendors
}

/// Parses a `--gpus` value (`all`, `nvidia`, `amd:1,intel`) against this host's CDI vendors.
pub fn gpu_request(spec: &str) -> Result<GpuRequest, ExecutorError> {
    Ok(GpuRequest::parse(spec, &cdi_gpu_vendors())?)
}

/// A person's name and email for git.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GitIdentity {
    /// `user.name`.
    pub name: String,
    /// `user.email`.
    pub email: String,
}

impl GitIdentity {
    /// `name <email>`.
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            email: email.into(),
        }
    }
}

/// The human's `git config --global user.name / user.email` (the email defaults to
/// `nobody@localhost`); `None` when git has no name or does not answer within five seconds.
pub fn host_git_identity() -> Option<GitIdentity> {
    let name = git_config("user.name")?;
    let email = git_config("user.email").unwrap_or_else(|| "nobody@localhost".to_owned());
    Some(GitIdentity { name, email })
}

fn git_config(key: &str) -> Option<String> {
    let mut git = Command::new("git");
    for var in terok_core::env::SECRET_VARS {
        git.env_remove(var);
    }
    let mut child = git
        .args(["config", "--global", key])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + GIT_LIMIT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut()?, &mut text).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_come_from_cdi_file_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nvidia.yaml"), "").unwrap();
        std::fs::write(dir.path().join("AMD-gpus.json"), "").unwrap();
        std::fs::write(dir.path().join("nvidia-more.yaml"), "").unwrap();
        let mut found = cdi_vendors_in(&[dir.path(), Path::new("/nonexistent")]);
        found.sort();
        assert_eq!(found, ["amd", "nvidia"]);
    }
}
