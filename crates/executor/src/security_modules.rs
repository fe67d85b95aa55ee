//! `setup selinux | apparmor [--show]`: what a Linux security module needs for terok's
//! containers to reach their sockets, shown before anything privileged runs.
//!
//! Enforcing SELinux stops a container (`container_t`) from connecting to a socket a host
//! process made. The socket files are fine — terok mounts their directories relabelled for the
//! container (`:Z`) — but connecting to the vault, which runs unconfined, needs `connectto`:
//! terok's policy module allows exactly that. It allows it for every container of the host to
//! every unconfined process's stream socket the container can reach (by a mounted path, or an
//! abstract name on the host's network); `setup selinux` says so before anything runs.
//! AppArmor needs nothing: podman's default container profile lets a container use the sockets
//! mounted into it.

use std::path::{Path, PathBuf};

use std::process::Command;

use serde::Serialize;
use terok_core::secure_fs;
use terok_podman::ContainerRuntime;

use crate::error::ExecutorError;
use crate::session::Executor;

/// A Linux security module `setup` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityModule {
    /// SELinux.
    Selinux,
    /// AppArmor.
    Apparmor,
}

/// What setting a module up takes on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ModulePlan {
    /// The module.
    pub module: SecurityModule,
    /// Whether the kernel enforces it here.
    pub enabled: bool,
    /// What it means for terok, in a sentence or two.
    pub explanation: String,
    /// Files written first: path and text.
    pub files: Vec<(PathBuf, String)>,
    /// The privileged commands, in order.
    pub commands: Vec<Vec<String>>,
}

/// The policy module: containers may connect to the unconfined vault's sockets.
const SELINUX_CIL: &str = "\
; terok_socket: a container may connect to a Unix socket of an unconfined process (the vault,
; the gate, the SSH signer) that it can reach; terok mounts only its own sockets into tasks.
(allow container_t unconfined_t (unix_stream_socket (connectto)))
(allow container_t unconfined_service_t (unix_stream_socket (connectto)))
";

/// Where the module is written for `semodule`: a directory only root can write (not one a
/// `TEROK_*` variable names, which a user could swap the file in).
const SELINUX_DIR: &str = "/run/terok-selinux";

impl<R: ContainerRuntime> Executor<R> {
    /// What `module` takes on this host (nothing runs).
    pub fn security_module_plan(&self, module: SecurityModule) -> ModulePlan {
        match module {
            SecurityModule::Selinux => self.selinux_plan(),
            SecurityModule::Apparmor => ModulePlan {
                module,
                enabled: apparmor_enabled(Path::new("/sys/module/apparmor/parameters/enabled")),
                explanation: "podman's default container profile (containers-default) lets a \
                              container use the Unix sockets terok mounts into it: terok \
                              installs no AppArmor profile."
                    .to_owned(),
                files: Vec::new(),
                commands: Vec::new(),
            },
        }
    }

    fn selinux_plan(&self) -> ModulePlan {
        let cil = PathBuf::from(SELINUX_DIR).join("terok_socket.cil");
        let mode = std::fs::read_to_string("/sys/fs/selinux/enforce").ok();
        ModulePlan {
            module: SecurityModule::Selinux,
            enabled: mode.as_deref().map(str::trim) == Some("1"),
            explanation:
                "a container (container_t) may not connect to a socket of a host process; \
                          the vault, gate and SSH signer run unconfined, so the policy module \
                          terok_socket lets containers connect to unconfined processes' sockets. \
                          That is every container of this host, and every such socket a \
                          container can reach: terok mounts only its own into tasks"
                    .to_owned(),
            commands: vec![vec![
                "semodule".into(),
                "-i".into(),
                cil.display().to_string(),
            ]],
            files: vec![(cil, SELINUX_CIL.to_owned())],
        }
    }

    /// Writes the plan's files and runs its commands (as root), stopping at the first that
    /// fails.
    pub fn apply_security_module(&self, plan: &ModulePlan) -> Result<(), ExecutorError> {
        if plan.commands.is_empty() {
            return Ok(());
        }
        if !self.env.is_root() {
            return Err(ExecutorError::NeedsRoot {
                what: "installing a security policy".to_owned(),
            });
        }
        for (path, text) in &plan.files {
            if let Some(dir) = path.parent() {
                // Root's own, made fresh: nobody else can put another module in its place.
                let _ = std::fs::remove_dir_all(dir);
                secure_fs::create_dir_if_missing(dir, 0o700)?;
            }
            secure_fs::write_atomic(path, text.as_bytes(), 0o600)?;
        }
        for argv in &plan.commands {
            let Some((program, args)) = argv.split_first() else {
                continue;
            };
            let mut command = Command::new(program);
            for var in terok_core::env::SECRET_VARS {
                command.env_remove(var);
            }
            let out = command
                .args(args)
                .output()
                .map_err(|e| ExecutorError::PolicyCommand {
                    command: argv.join(" "),
                    detail: e.to_string(),
                })?;
            if !out.status.success() {
                return Err(ExecutorError::PolicyCommand {
                    command: argv.join(" "),
                    detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                });
            }
        }
        Ok(())
    }
}

fn apparmor_enabled(flag: &Path) -> bool {
    std::fs::read_to_string(flag).is_ok_and(|t| t.trim() == "Y")
}
