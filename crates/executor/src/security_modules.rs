//! `setup selinux | apparmor [--show]`: what a Linux security module needs for terok's
//! containers to reach their sockets, shown before anything privileged runs.
//!
//! Enforcing SELinux stops a container (`container_t`) from connecting to a socket a host
//! process made: terok's policy module gives the sockets under its runtime directory a type of
//! their own, `terok_socket_t`, that containers may write to and connect through, and nothing
//! else. AppArmor needs nothing: podman's default container profile lets a container use the
//! sockets mounted into it.

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

/// The policy module: sockets of their own type that containers may connect through.
const SELINUX_CIL: &str = "\
; terok: containers may connect to the sockets terok mounts into them, and to nothing else
; that a host process made.
(type terok_socket_t)
(roletype object_r terok_socket_t)
(typeattributeset file_type (terok_socket_t))
(allow container_t terok_socket_t (sock_file (write getattr open)))
(allow container_t terok_socket_t (dir (search getattr)))
(allow container_t unconfined_t (unix_stream_socket (connectto)))
(allow container_t unconfined_service_t (unix_stream_socket (connectto)))
";

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
        let cil = self
            .paths
            .executor_state_dir
            .join("selinux")
            .join("terok_socket.cil");
        let runtime = self.paths.runtime_dir.display().to_string();
        ModulePlan {
            module: SecurityModule::Selinux,
            enabled: Path::new("/sys/fs/selinux/enforce").exists(),
            explanation: format!(
                "containers (container_t) may not connect to sockets a host process made; the \
                 policy module terok_socket gives the sockets under {runtime} the type \
                 terok_socket_t, which containers may write to and connect through"
            ),
            commands: vec![
                vec!["semodule".into(), "-i".into(), cil.display().to_string()],
                vec![
                    "semanage".into(),
                    "fcontext".into(),
                    "-a".into(),
                    "-t".into(),
                    "terok_socket_t".into(),
                    format!("{runtime}(/.*)?"),
                ],
                vec!["restorecon".into(), "-RF".into(), runtime],
            ],
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
                secure_fs::ensure_private_dir(dir)?;
            }
            secure_fs::write_atomic(path, text.as_bytes(), 0o644)?;
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
