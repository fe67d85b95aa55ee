//! A snapshot of the process environment (variables and effective uid), so path and config
//! resolution are pure functions of an explicit input rather than of global state.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// The variable that may hold the vault's key itself.
pub const VAULT_KEY_VAR: &str = "TEROK_VAULT_KEY";
/// The variable that may hold the passphrase unwrapping the vault's key.
pub const VAULT_PASSPHRASE_VAR: &str = "TEROK_VAULT_PASSPHRASE";
/// Variables that hold secrets: no child process terok starts inherits them (podman, git,
/// the vault daemon — which gets them through a pipe instead).
pub const SECRET_VARS: [&str; 2] = [VAULT_KEY_VAR, VAULT_PASSPHRASE_VAR];

/// The environment that path and config resolution read from.
///
/// [`HostEnv::from_process`] captures the real one; tests build their own with
/// [`HostEnv::from_vars`] instead of mutating the process environment (which is `unsafe` in
/// edition 2024 and races with other threads).
#[derive(Debug, Clone, Default)]
pub struct HostEnv {
    vars: BTreeMap<OsString, OsString>,
    euid: u32,
}

impl HostEnv {
    /// Captures the current process's variables and effective uid.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os().collect(),
            euid: rustix::process::geteuid().as_raw(),
        }
    }

    /// Builds an environment from explicit variables, as if running with effective uid `euid`.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>, euid: u32) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            euid,
        }
    }

    /// The value of `name`, treating an empty value as unset (as the XDG spec does).
    pub fn var(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(OsStr::new(name))
            .map(OsString::as_os_str)
            .filter(|v| !v.is_empty())
    }

    /// The value of `name` as UTF-8 text, if set, non-empty and valid UTF-8.
    pub fn var_str(&self, name: &str) -> Option<&str> {
        self.var(name).and_then(OsStr::to_str)
    }

    /// The value of `name` as a path, if set and non-empty.
    pub fn path_var(&self, name: &str) -> Option<PathBuf> {
        self.var(name).map(PathBuf::from)
    }

    /// Whether the effective uid is 0.
    pub fn is_root(&self) -> bool {
        self.euid == 0
    }

    /// The effective uid this environment runs as.
    pub fn euid(&self) -> u32 {
        self.euid
    }

    /// `$HOME`, if set.
    pub fn home(&self) -> Option<PathBuf> {
        self.path_var("HOME")
    }

    /// Whether this looks like a CI run (`CI` set to anything but `false`/`0`).
    pub fn is_ci(&self) -> bool {
        self.var_str("CI")
            .is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "no"))
    }

    /// Sets `name` to `value` (a value handed over another way than the process environment).
    pub fn set_var(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Every variable, for handing the same environment to a child process.
    pub fn vars(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_unset() {
        let env = HostEnv::from_vars([("A", ""), ("B", "x")], 1000);
        assert_eq!(env.var("A"), None);
        assert_eq!(env.var_str("B"), Some("x"));
        assert!(!env.is_root());
    }

    #[test]
    fn ci_detection_ignores_false_values() {
        assert!(HostEnv::from_vars([("CI", "true")], 0).is_ci());
        assert!(HostEnv::from_vars([("CI", "1")], 0).is_ci());
        assert!(!HostEnv::from_vars([("CI", "false")], 0).is_ci());
        assert!(!HostEnv::from_vars([("X", "1")], 0).is_ci());
    }
}
