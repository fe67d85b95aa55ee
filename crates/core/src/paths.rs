//! Where terok keeps its state, config, runtime sockets and container-shared mounts on the host
//! (docs/compatibility.md#2), with the environment overrides and XDG/root fallbacks of the
//! Python terok-executor.

use std::path::{Path, PathBuf};

use crate::env::HostEnv;

/// Environment variables that override path resolution, in the order they are consulted.
pub mod vars {
    /// Overrides the whole state namespace root.
    pub const ROOT: &str = "TEROK_ROOT";
    /// Overrides only the executor's state directory.
    pub const EXECUTOR_STATE_DIR: &str = "TEROK_EXECUTOR_STATE_DIR";
    /// Overrides only the sandbox's state directory (gate mirrors, clone cache).
    pub const SANDBOX_STATE_DIR: &str = "TEROK_SANDBOX_STATE_DIR";
    /// Overrides the directory whose `mounts/` subdirectory is shared with containers.
    pub const SANDBOX_LIVE_DIR: &str = "TEROK_SANDBOX_LIVE_DIR";
    /// Overrides the runtime directory (sockets, pidfiles).
    pub const SANDBOX_RUNTIME_DIR: &str = "TEROK_SANDBOX_RUNTIME_DIR";
    /// Overrides the vault directory (credential DB, routes.json, audit log).
    pub const VAULT_DIR: &str = "TEROK_VAULT_DIR";
    /// Overrides the system-wide config directory (`/etc/terok`); meant for tests and packagers.
    pub const SYSTEM_CONFIG_DIR: &str = "TEROK_SYSTEM_CONFIG_DIR";
    /// Overrides where the host's id files are read and reserved (`/etc`: `passwd`, `group`,
    /// `subuid`, `subgid`); meant for tests and image builders.
    pub const HOST_IDS_DIR: &str = "TEROK_HOST_IDS_DIR";
    /// Replaces the layered config lookup with this one file.
    pub const CONFIG_FILE: &str = "TEROK_CONFIG_FILE";
}

/// Why paths could not be resolved.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PathsError {
    /// Neither the relevant override nor `$HOME` is set, so there is nowhere to put user files.
    #[error("cannot resolve {what}: $HOME is not set and neither is {override_var}")]
    #[diagnostic(help("set HOME, or set {override_var} to choose the directory explicitly"))]
    NoHome {
        /// Which directory was being resolved.
        what: &'static str,
        /// The variable that would have avoided the need for `$HOME`.
        override_var: &'static str,
    },
}

/// Every host directory terok uses, resolved once per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerokPaths {
    /// The state namespace root (`TEROK_ROOT`, `paths.root`, `/var/lib/terok`, XDG data).
    pub state_root: PathBuf,
    /// The executor's own state: task directories live under it.
    pub executor_state_dir: PathBuf,
    /// The sandbox's state: gate mirrors, clone cache, sidecar files.
    pub sandbox_state_dir: PathBuf,
    /// Container-writable shared mounts (agent config dirs such as `_claude-config`).
    pub mounts_dir: PathBuf,
    /// The vault's directory: credential DB, routes.json, audit log.
    pub vault_dir: PathBuf,
    /// Sockets and pidfiles.
    pub runtime_dir: PathBuf,
    /// The user's config directory (`~/.config/terok`).
    pub user_config_dir: PathBuf,
    /// The system-wide config directory (`/etc/terok`).
    pub system_config_dir: PathBuf,
    /// Where the host's account and subordinate-id files are (`/etc`).
    pub host_ids_dir: PathBuf,
}

impl TerokPaths {
    /// Resolves every path for `env`. `configured_root` is `paths.root` from config.yml, which
    /// ranks below `TEROK_ROOT` and above the built-in defaults.
    pub fn resolve(env: &HostEnv, configured_root: Option<&Path>) -> Result<Self, PathsError> {
        let state_root = match env.path_var(vars::ROOT) {
            Some(root) => root,
            None => match configured_root {
                Some(root) => expand_tilde(root, env),
                None if env.is_root() => PathBuf::from("/var/lib/terok"),
                None => xdg_dir(env, "XDG_DATA_HOME", ".local/share", vars::ROOT)?.join("terok"),
            },
        };
        let executor_state_dir = env
            .path_var(vars::EXECUTOR_STATE_DIR)
            .unwrap_or_else(|| state_root.join("executor"));
        let sandbox_state_dir = env
            .path_var(vars::SANDBOX_STATE_DIR)
            .unwrap_or_else(|| state_root.join("sandbox"));
        let mounts_dir = env
            .path_var(vars::SANDBOX_LIVE_DIR)
            .unwrap_or_else(|| state_root.join("sandbox-live"))
            .join("mounts");
        let vault_dir = env
            .path_var(vars::VAULT_DIR)
            .unwrap_or_else(|| state_root.join("vault"));
        let runtime_dir = resolve_runtime_dir(env)?;
        let (system_config_dir, user_config_dir) = config_dirs(env)?;
        let host_ids_dir = env
            .path_var(vars::HOST_IDS_DIR)
            .unwrap_or_else(|| PathBuf::from("/etc"));
        Ok(Self {
            state_root,
            executor_state_dir,
            sandbox_state_dir,
            mounts_dir,
            vault_dir,
            runtime_dir,
            user_config_dir,
            system_config_dir,
            host_ids_dir,
        })
    }

    /// Per-task host directories (workspace, agent config) live here.
    pub fn tasks_dir(&self) -> PathBuf {
        self.executor_state_dir.join("tasks")
    }

    /// Lock files that serialize image builds of the same base across processes.
    pub fn image_locks_dir(&self) -> PathBuf {
        self.state_root.join("locks")
    }

    /// Records of recent image checks, so a launch right after a build or another launch does
    /// not ask podman about images again.
    pub fn image_stamps_dir(&self) -> PathBuf {
        self.state_root.join("images")
    }

    /// The setup stamp: JSON of component → version, written by `setup`.
    pub fn setup_stamp(&self) -> PathBuf {
        self.state_root.join("setup.stamp")
    }

    /// Seed clones that speed up repeated launches of the same repository.
    pub fn clone_cache_dir(&self) -> PathBuf {
        self.sandbox_state_dir.join("clone-cache")
    }

    /// Bare mirrors served by the git gate.
    pub fn gate_dir(&self) -> PathBuf {
        self.sandbox_state_dir.join("gate")
    }

    /// The user's `config.yml`, which is also where `agents set` writes.
    pub fn user_config_file(&self) -> PathBuf {
        self.user_config_dir.join("config.yml")
    }

    /// The system-wide `config.yml`, read before the user's.
    pub fn system_config_file(&self) -> PathBuf {
        self.system_config_dir.join("config.yml")
    }

    /// Roster override files, in the order they are layered over the bundled roster.
    pub fn roster_override_dirs(&self) -> [PathBuf; 2] {
        [
            self.system_config_dir.join("agent").join("agents"),
            self.user_config_dir.join("agent").join("agents"),
        ]
    }

    /// Roster v3 provider files, in layering order (beside the agent files).
    pub fn provider_override_dirs(&self) -> [PathBuf; 2] {
        [
            self.system_config_dir.join("agent").join("providers"),
            self.user_config_dir.join("agent").join("providers"),
        ]
    }
}

/// The system-wide and the per-user config directories, in layering order.
pub fn config_dirs(env: &HostEnv) -> Result<(PathBuf, PathBuf), PathsError> {
    let system = env
        .path_var(vars::SYSTEM_CONFIG_DIR)
        .unwrap_or_else(|| PathBuf::from("/etc/terok"));
    let user = xdg_dir(env, "XDG_CONFIG_HOME", ".config", "XDG_CONFIG_HOME")?.join("terok");
    Ok((system, user))
}

fn resolve_runtime_dir(env: &HostEnv) -> Result<PathBuf, PathsError> {
    if let Some(dir) = env.path_var(vars::SANDBOX_RUNTIME_DIR) {
        return Ok(dir);
    }
    if env.is_root() {
        return Ok(PathBuf::from("/run/terok"));
    }
    if let Some(dir) = env.path_var("XDG_RUNTIME_DIR") {
        return Ok(dir.join("terok"));
    }
    Ok(xdg_dir(
        env,
        "XDG_STATE_HOME",
        ".local/state",
        vars::SANDBOX_RUNTIME_DIR,
    )?
    .join("terok"))
}

/// `$<xdg_var>` if set, else `$HOME/<fallback>`.
fn xdg_dir(
    env: &HostEnv,
    xdg_var: &str,
    fallback: &str,
    override_var: &'static str,
) -> Result<PathBuf, PathsError> {
    if let Some(dir) = env.path_var(xdg_var) {
        return Ok(dir);
    }
    env.home()
        .map(|home| home.join(fallback))
        .ok_or(PathsError::NoHome {
            what: "a per-user directory",
            override_var,
        })
}

/// Expands a leading `~` or `~/` against `$HOME`; other paths are returned unchanged.
pub fn expand_tilde(path: &Path, env: &HostEnv) -> PathBuf {
    let Some(home) = env.home() else {
        return path.to_path_buf();
    };
    match path.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_env(extra: &[(&str, &str)]) -> HostEnv {
        let mut vars = vec![("HOME", "/home/u")];
        vars.extend_from_slice(extra);
        HostEnv::from_vars(vars, 1000)
    }

    #[test]
    fn user_defaults_follow_xdg_fallbacks() {
        let p = TerokPaths::resolve(&user_env(&[]), None).unwrap();
        assert_eq!(p.state_root, PathBuf::from("/home/u/.local/share/terok"));
        assert_eq!(
            p.executor_state_dir,
            PathBuf::from("/home/u/.local/share/terok/executor")
        );
        assert_eq!(
            p.sandbox_state_dir,
            PathBuf::from("/home/u/.local/share/terok/sandbox")
        );
        assert_eq!(
            p.mounts_dir,
            PathBuf::from("/home/u/.local/share/terok/sandbox-live/mounts")
        );
        assert_eq!(
            p.vault_dir,
            PathBuf::from("/home/u/.local/share/terok/vault")
        );
        assert_eq!(p.runtime_dir, PathBuf::from("/home/u/.local/state/terok"));
        assert_eq!(
            p.user_config_file(),
            PathBuf::from("/home/u/.config/terok/config.yml")
        );
        assert_eq!(
            p.system_config_file(),
            PathBuf::from("/etc/terok/config.yml")
        );
        assert_eq!(
            p.setup_stamp(),
            PathBuf::from("/home/u/.local/share/terok/setup.stamp")
        );
    }

    #[test]
    fn xdg_variables_are_honoured() {
        let env = user_env(&[
            ("XDG_DATA_HOME", "/d"),
            ("XDG_CONFIG_HOME", "/c"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ]);
        let p = TerokPaths::resolve(&env, None).unwrap();
        assert_eq!(p.state_root, PathBuf::from("/d/terok"));
        assert_eq!(p.user_config_dir, PathBuf::from("/c/terok"));
        assert_eq!(p.runtime_dir, PathBuf::from("/run/user/1000/terok"));
    }

    #[test]
    fn xdg_state_home_is_the_runtime_fallback() {
        let env = user_env(&[("XDG_STATE_HOME", "/s")]);
        let p = TerokPaths::resolve(&env, None).unwrap();
        assert_eq!(p.runtime_dir, PathBuf::from("/s/terok"));
    }

    #[test]
    fn root_uses_system_locations() {
        let env = HostEnv::from_vars([("HOME", "/root")], 0);
        let p = TerokPaths::resolve(&env, None).unwrap();
        assert_eq!(p.state_root, PathBuf::from("/var/lib/terok"));
        assert_eq!(p.runtime_dir, PathBuf::from("/run/terok"));
    }

    #[test]
    fn env_overrides_win_over_config_and_defaults() {
        let env = user_env(&[
            ("TEROK_ROOT", "/r"),
            ("TEROK_EXECUTOR_STATE_DIR", "/e"),
            ("TEROK_SANDBOX_LIVE_DIR", "/live"),
            ("TEROK_SANDBOX_RUNTIME_DIR", "/rt"),
            ("TEROK_VAULT_DIR", "/v"),
            ("TEROK_SYSTEM_CONFIG_DIR", "/sys"),
        ]);
        let p = TerokPaths::resolve(&env, Some(Path::new("/from-config"))).unwrap();
        assert_eq!(p.state_root, PathBuf::from("/r"));
        assert_eq!(p.executor_state_dir, PathBuf::from("/e"));
        assert_eq!(p.sandbox_state_dir, PathBuf::from("/r/sandbox"));
        assert_eq!(p.mounts_dir, PathBuf::from("/live/mounts"));
        assert_eq!(p.runtime_dir, PathBuf::from("/rt"));
        assert_eq!(p.vault_dir, PathBuf::from("/v"));
        assert_eq!(p.system_config_dir, PathBuf::from("/sys"));
    }

    #[test]
    fn configured_root_ranks_between_env_and_defaults() {
        let p = TerokPaths::resolve(&user_env(&[]), Some(Path::new("~/terok-data"))).unwrap();
        assert_eq!(p.state_root, PathBuf::from("/home/u/terok-data"));
        let root = HostEnv::from_vars([("HOME", "/root")], 0);
        let p = TerokPaths::resolve(&root, Some(Path::new("/srv/terok"))).unwrap();
        assert_eq!(p.state_root, PathBuf::from("/srv/terok"));
    }

    #[test]
    fn missing_home_is_a_clear_error() {
        let err =
            TerokPaths::resolve(&HostEnv::from_vars::<&str, &str>([], 1000), None).unwrap_err();
        assert!(err.to_string().contains("$HOME is not set"), "{err}");
    }
}
