//! A user-owned container behind terok's sandbox (`sandbox prepare | run | cleanup`, the
//! Python terok-executor 0.5.0's verbs): the user brings the image and the command; terok
//! gives it the hardening of a task, phantom tokens and a vault socket for the credentials
//! asked for, and the egress firewall — and takes them back at cleanup.
//!
//! The image is the user's, so nothing of terok's in-container contract is assumed: no bridge
//! serves the vault on loopback, so only providers whose clients take the vault's socket
//! (`socket_env`, Claude's `ANTHROPIC_UNIX_SOCKET`) are offered; and no shell guards the
//! command. The firewall's start permit stops a second start without the hook; the first start
//! is shielded only when it is podman's `run` with the printed `--hooks-dir` (a `podman create`
//! then `start` without it is not) — `sandbox run` always is.
//!
//! A sandbox never touches a task: its name may not be a task's, a container's that exists, or
//! one the vault serves already, and cleanup acts only on a prepared sandbox or a container
//! labelled as one.

use std::path::{Path, PathBuf};

use serde::Serialize;
use terok_core::secure_fs;
use terok_podman::{ContainerRuntime, RunSpec, Sharing, VolumeSpec};

use crate::error::ExecutorError;
use crate::launch::options::Egress;
use crate::session::Executor;

/// The label every sandboxed user container carries.
pub const LABEL_SANDBOX: &str = "ai.terok.sandbox";
/// The env file holding the phantom tokens, in the sandbox's directory.
const ENV_FILE: &str = "vault.env";

/// What to prepare.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SandboxRequest {
    /// The container's name.
    pub name: String,
    /// Providers whose phantom tokens it gets (names or roster v3 aliases).
    pub credentials: Vec<String>,
    /// Its egress (`None`: config.yml's default, as for `run`).
    pub egress: Option<Egress>,
}

impl SandboxRequest {
    /// A request for a container named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A prepared sandbox: the podman arguments that put a container in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PreparedSandbox {
    /// The container's name.
    pub name: String,
    /// podman's global options (before `run`).
    pub global_args: Vec<String>,
    /// The options of `podman run` (before the image).
    pub run_args: Vec<String>,
    /// The providers it has tokens for.
    pub providers: Vec<String>,
    /// The egress it gets.
    pub egress: &'static str,
    /// Its directory (the env file with the phantom tokens, the firewall's state).
    pub dir: PathBuf,
}

/// What `cleanup_sandbox` took back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SandboxCleanup {
    /// Tokens revoked.
    pub revoked: usize,
    /// Whether a prepared sandbox directory was removed.
    pub removed_dir: bool,
}

/// The names of the prepared sandboxes under `dir` (their tokens live until cleanup).
pub(crate) fn prepared_sandboxes(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl<R: ContainerRuntime> Executor<R> {
    /// Where prepared sandboxes keep their state.
    pub(crate) fn sandboxes_dir(&self) -> PathBuf {
        self.paths.executor_state_dir.join("sandboxes")
    }

    /// The directory of the sandbox `name`.
    fn sandbox_dir(&self, name: &str) -> PathBuf {
        self.sandboxes_dir().join(name)
    }

    /// Prepares the sandbox of a container called `request.name`: tokens and a vault listener
    /// for the credentials asked, the firewall's state for `allowlist`, and the podman
    /// arguments. Nothing is left behind when a step fails.
    pub async fn prepare_sandbox(
        &self,
        request: &SandboxRequest,
    ) -> Result<PreparedSandbox, ExecutorError> {
        let spec = self
            // The image is the user's to add: a stand-in lets the rest be checked.
            .sandbox_spec(request, "image".to_owned(), Vec::new())
            .await?;
        let env_file = self.sandbox_dir(&request.name).join(ENV_FILE);
        let mut run_args = spec.0.option_args(&env_file);
        run_args.retain(|a| !a.is_empty());
        Ok(PreparedSandbox {
            name: request.name.clone(),
            global_args: spec.0.global_args(),
            run_args,
            providers: spec.1,
            egress: egress_name(spec.2),
            dir: self.sandbox_dir(&request.name),
        })
    }

    /// Prepares the sandbox, runs `image` with `command` in it attached to this terminal, and
    /// cleans up after it exits; its exit code.
    pub async fn run_sandbox(
        &self,
        request: &SandboxRequest,
        image: &str,
        command: &[String],
        tty: bool,
    ) -> Result<i32, ExecutorError> {
        let (mut spec, _, _) = self
            .sandbox_spec(request, image.to_owned(), command.to_vec())
            .await?;
        spec.tty = tty;
        spec.remove_on_exit = true;
        // A tiny init forwards the terminal's signals to the command and reaps it.
        spec.init = true;
        let dir = self.sandbox_dir(&request.name);
        let result = self.runtime.run_attached(&spec, &dir).await;
        self.cleanup_sandbox(&request.name).await?;
        Ok(result?)
    }

    /// Revokes the tokens of the container `name`, closes its vault listener and removes its
    /// sandbox directory (the firewall's state). The container itself is the user's: it
    /// stays.
    pub async fn cleanup_sandbox(&self, name: &str) -> Result<SandboxCleanup, ExecutorError> {
        check_container_name(name)?;
        let dir = self.sandbox_dir(name);
        let prepared = dir.symlink_metadata().is_ok();
        let labelled = self
            .runtime
            .inspect(name)
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c.labels.contains_key(LABEL_SANDBOX));
        // Never a task's (or anything else's): only what is a sandbox.
        if !prepared && !labelled {
            return Ok(SandboxCleanup {
                revoked: 0,
                removed_dir: false,
            });
        }
        let revoked = self.revoke_sandbox_tokens(name).await?;
        if prepared {
            fs_err::remove_dir_all(&dir)
                .map_err(ExecutorError::io("cannot remove the sandbox's directory"))?;
        }
        Ok(SandboxCleanup {
            revoked,
            removed_dir: prepared,
        })
    }

    /// The sandbox's tokens revoked and its listener closed — in the database itself when the
    /// daemon does not run.
    async fn revoke_sandbox_tokens(&self, name: &str) -> Result<usize, ExecutorError> {
        if self.vault.status().await.is_some() {
            return Ok(self.vault.close(name).await?);
        }
        Ok(match self.open_existing_db()? {
            Some(db) => db.revoke_subject(name)?,
            None => 0,
        })
    }

    /// A sandbox's name may not be anyone else's: a task's, a container's that exists, or one
    /// the vault serves.
    async fn check_name_is_free(&self, name: &str) -> Result<(), ExecutorError> {
        let taken = name.starts_with(crate::task::CONTAINER_PREFIX)
            || self.task_store().list().iter().any(|t| t.name == name)
            || self.runtime.inspect(name).await.ok().flatten().is_some()
            || self
                .vault
                .status()
                .await
                .is_some_and(|s| s.listeners.iter().any(|l| l == name));
        if taken {
            return Err(ExecutorError::NameTaken {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// The container's spec, with its sandbox made: `(spec, providers, egress)`.
    async fn sandbox_spec(
        &self,
        request: &SandboxRequest,
        image: String,
        command: Vec<String>,
    ) -> Result<(RunSpec, Vec<String>, Egress), ExecutorError> {
        check_container_name(&request.name)?;
        let providers = self.sandbox_providers(&request.credentials)?;
        let egress = self.egress_for(request.egress);
        let profiles = match egress {
            Egress::Allowlist => {
                self.check_shield_ready()?;
                self.shield_profiles()?
            }
            Egress::Open | Egress::Offline => Vec::new(),
        };
        let dir = self.sandbox_dir(&request.name);
        if dir.symlink_metadata().is_ok() {
            return Err(ExecutorError::SandboxExists {
                name: request.name.clone(),
            });
        }
        self.check_name_is_free(&request.name).await?;
        secure_fs::ensure_private_dir(&self.sandboxes_dir())?;
        // Made here, or refused: two `prepare`s of one name cannot both go on.
        if let Err(err) = std::fs::create_dir(&dir) {
            return Err(if err.kind() == std::io::ErrorKind::AlreadyExists {
                ExecutorError::SandboxExists {
                    name: request.name.clone(),
                }
            } else {
                ExecutorError::io("cannot make the sandbox's directory")(err)
            });
        }
        let plan = SandboxPlan {
            name: &request.name,
            dir: &dir,
            providers: &providers,
            egress,
            profiles: &profiles,
        };
        match self.make_sandbox(&plan, image, command).await {
            Ok(spec) => Ok((spec, providers, egress)),
            Err(err) => {
                // The name was free, so what it has now is this sandbox's.
                let _ = self.revoke_sandbox_tokens(&request.name).await;
                let _ = fs_err::remove_dir_all(&dir);
                Err(err)
            }
        }
    }

    /// Steps that leave something behind: the listener and tokens, the env file, the
    /// firewall's state.
    async fn make_sandbox(
        &self,
        plan: &SandboxPlan<'_>,
        image: String,
        command: Vec<String>,
    ) -> Result<RunSpec, ExecutorError> {
        let SandboxPlan {
            name,
            dir,
            providers,
            egress,
            profiles,
        } = *plan;
        let user = self.container_user(None)?;
        let mut spec = RunSpec {
            name: name.to_owned(),
            image,
            command,
            labels: vec![(LABEL_SANDBOX.to_owned(), "1".to_owned())],
            restricted: true,
            user_mapping: user.mapping,
            keep_image_workdir: true,
            network: (egress == Egress::Offline).then(|| "none".to_owned()),
            ..RunSpec::default()
        };
        if !providers.is_empty() {
            self.ensure_vault().await?;
            let listener = self
                .vault
                .open(name, providers.to_vec(), user.socket_uid(), None)
                .await?;
            let Some(listener) = listener else {
                return Err(ExecutorError::VaultRequired);
            };
            {
                let wiring = listener.wiring;
                if let Some(missing) = providers.iter().find(|p| !wiring.tokens.contains_key(*p)) {
                    return Err(ExecutorError::NoStoredCredential {
                        provider: missing.clone(),
                    });
                }
                let roster = self.roster()?;
                // No bridge in the user's image: the socket, never a loopback URL.
                let url = wiring.url();
                let env: Vec<(String, String)> = terok_container_env::vault_env(roster, &wiring)
                    .into_iter()
                    .filter(|(k, v)| !v.starts_with(&url) && k != "TEROK_VAULT_LOOPBACK_PORT")
                    .collect();
                write_env_file(&dir.join(ENV_FILE), &env)?;
                spec.env = env;
                if let Some((host, container)) = wiring.socket_mount() {
                    spec.volumes.push(VolumeSpec {
                        host: host.to_path_buf(),
                        container: container.to_owned(),
                        sharing: Sharing::Private,
                        read_only: true,
                    });
                }
            }
        }
        if !dir.join(ENV_FILE).exists() {
            write_env_file(&dir.join(ENV_FILE), &[])?;
        }
        if egress == Egress::Allowlist {
            let shield = self.prepare_shield(dir, profiles, &[], &[])?;
            // The start permit, not the shell guard: the image may have no bash.
            spec.annotations.extend(shield.annotations.iter().cloned());
            spec.volumes.extend(shield.volumes.iter().cloned());
            spec.dns.extend(shield.dns.iter().cloned());
            spec.hooks_dirs.push(shield.hooks_dir.clone());
        }
        spec.validate()?;
        Ok(spec)
    }

    /// The providers asked for, by their canonical names; each must exist.
    fn sandbox_providers(&self, asked: &[String]) -> Result<Vec<String>, ExecutorError> {
        let roster = self.roster()?;
        let mut providers = Vec::new();
        for name in asked {
            let provider = crate::error::provider_named(roster, name)?;
            // Without terok's bridge in the image, only a socket reaches the vault.
            if provider.socket_env.is_none() {
                return Err(ExecutorError::NoSocketClient {
                    provider: provider.name.clone(),
                    usable: roster
                        .providers()
                        .filter(|p| p.socket_env.is_some())
                        .map(|p| p.name.clone())
                        .collect(),
                });
            }
            if !providers.contains(&provider.name) {
                providers.push(provider.name.clone());
            }
        }
        Ok(providers)
    }
}

/// What a sandbox is made of, decided before anything is written.
struct SandboxPlan<'a> {
    name: &'a str,
    dir: &'a Path,
    providers: &'a [String],
    egress: Egress,
    profiles: &'a [terok_shield::Profile],
}

/// The env file podman reads (`KEY=value` lines, 0600); phantom tokens only.
fn write_env_file(path: &Path, env: &[(String, String)]) -> Result<(), ExecutorError> {
    let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    secure_fs::write_sensitive(path, text.as_bytes())?;
    Ok(())
}

/// A name podman accepts and a path segment terok can use: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
fn check_container_name(name: &str) -> Result<(), ExecutorError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 128;
    if valid {
        Ok(())
    } else {
        Err(ExecutorError::BadContainerName {
            name: name.to_owned(),
        })
    }
}

fn egress_name(egress: Egress) -> &'static str {
    match egress {
        Egress::Allowlist => "allowlist",
        Egress::Open => "open",
        Egress::Offline => "offline",
    }
}
