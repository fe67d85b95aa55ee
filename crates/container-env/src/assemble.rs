//! `assemble_container_env` (executor.md §4.3–4.5): the environment and the mounts of a task
//! container, in upstream's order, with the per-task phantom credential files and the shared
//! config patches written on the way.

use terok_core::secure_fs;
use terok_credentials::patch::{self, VaultAddress};
use terok_credentials::vendor::phantom_file_for_kind;
use terok_roster::Roster;

use crate::error::ContainerEnvError;
use crate::spec::{
    AGENT_CONFIG_MOUNT, CONTAINER_PROTOCOL, ContainerEnv, ContainerEnvSpec, Relabel, TaskLayout,
    VaultWiring, Volume, WORKSPACE, Workspace,
};

/// Mode of the shared mount directories: the container's `dev` is the invoking user (rootless
/// keep-id) or host root (rootful mapping), so owner-only is enough.
const SHARED_DIR_MODE: u32 = 0o700;

/// Environment entries in order; setting a key again replaces its value in place.
#[derive(Debug, Default)]
struct EnvList(Vec<(String, String)>);

impl EnvList {
    fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }
}

/// The vault variables for `wiring` (executor.md §4.5, socket transport): per provider with a
/// token, its phantom env (the OAuth variables when the stored credential is OAuth), the socket
/// and base-URL variables, the OpenCode base URL, then `TEROK_VAULT_LOOPBACK_PORT`.
pub fn vault_env(roster: &Roster, wiring: &VaultWiring) -> Vec<(String, String)> {
    let mut env = EnvList::default();
    for (name, token) in &wiring.tokens {
        let Some(provider) = roster.provider(name) else {
            continue;
        };
        let kind = wiring.kinds.get(name).map_or("api_key", String::as_str);
        let vars = if kind == "oauth" && !provider.oauth_phantom_env.is_empty() {
            &provider.oauth_phantom_env
        } else {
            &provider.phantom_env
        };
        for var in vars {
            env.set(var.clone(), token.clone());
        }
        if let Some(var) = &provider.socket_env {
            env.set(var.clone(), wiring.container_socket());
        }
        if let Some(var) = &provider.base_url_env {
            env.set(var.clone(), wiring.url());
        }
        if roster.get(name).is_some_and(|a| a.opencode.is_some()) {
            env.set(
                format!(
                    "TEROK_OC_{}_BASE_URL",
                    name.to_ascii_uppercase().replace('-', "_")
                ),
                format!("{}/v1", wiring.url()),
            );
        }
        // glab reads its API endpoint from these two (upstream does the same by name).
        if name == "glab" {
            env.set("API_PROTOCOL", "http");
            env.set(
                "GITLAB_API_HOST",
                format!("localhost:{}", wiring.loopback_port),
            );
        }
    }
    if !wiring.tokens.is_empty() {
        env.set(
            "TEROK_VAULT_LOOPBACK_PORT",
            wiring.loopback_port.to_string(),
        );
    }
    env.0
}

/// The text of `vault.env`: `KEY='value'` lines a shell can source.
pub fn vault_env_file(vault_env: &[(String, String)]) -> String {
    let mut out = String::from(
        "# Phantom tokens of the current run of this task (rewritten when it starts again).\n",
    );
    for (key, value) in vault_env {
        out.push_str(key);
        out.push('=');
        out.push_str(&terok_roster::shell_quote(value));
        out.push('\n');
    }
    out
}

/// Writes the phantom credential files of the task (one per shared mount with a credential
/// file): the vendor format carrying this task's token, or empty when there is no token.
/// Returns the read-only overlays to mount. Also makes sure the vendor file exists in the
/// shared directory, so podman has a mount point.
pub fn write_phantom_files(
    roster: &Roster,
    spec: &ContainerEnvSpec,
) -> Result<Vec<Volume>, ContainerEnvError> {
    let layout = TaskLayout::new(&spec.task_dir);
    let mut overlays = Vec::new();
    for mount in roster.shared_mounts() {
        let (Some(file), Some(provider)) = (&mount.credential_file, &mount.provider) else {
            continue;
        };
        if !spec.is_installed(&mount.owner) {
            continue;
        }
        if spec.expose_credential_providers.contains(provider) {
            continue;
        }
        let shared = spec.mounts_dir.join(&mount.host_dir);
        secure_fs::ensure_dir_with_mode(&shared, SHARED_DIR_MODE)?;
        let vendor_file = shared.join(file);
        if std::fs::symlink_metadata(&vendor_file).is_err() {
            secure_fs::write_sensitive(&vendor_file, b"")?;
        }
        let token = spec.vault.as_ref().and_then(|w| w.tokens.get(provider));
        let contents = match token {
            Some(token) => {
                let kind = spec
                    .vault
                    .as_ref()
                    .and_then(|w| w.kinds.get(provider))
                    .map_or("api_key", String::as_str);
                phantom_file_for_kind(provider, file, kind, token).unwrap_or_default()
            }
            None => Vec::new(),
        };
        let phantom = layout.phantom_file(&mount.host_dir, file);
        if let Some(parent) = phantom.parent() {
            secure_fs::ensure_private_dir(parent)?;
        }
        secure_fs::write_sensitive(&phantom, &contents)?;
        overlays.push(Volume {
            host: phantom,
            container: format!("{}/{file}", mount.container_path.trim_end_matches('/')),
            relabel: Relabel::Private,
            read_only: true,
        });
    }
    Ok(overlays)
}

/// Points the agents' own config files at the vault for providers with a token, and removes
/// what terok wrote for the others (executor.md §4.4 step 3). A failure aborts the launch.
fn apply_config_patches(roster: &Roster, spec: &ContainerEnvSpec) -> Result<(), ContainerEnvError> {
    for provider in roster.providers() {
        let Some(config_patch) = &provider.shared_config_patch else {
            continue;
        };
        let Ok(auth) = roster.auth_provider(&provider.name) else {
            continue;
        };
        let shared = spec.mounts_dir.join(&auth.spec.host_dir);
        match spec
            .vault
            .as_ref()
            .filter(|w| w.tokens.contains_key(&provider.name))
        {
            Some(wiring) => {
                secure_fs::ensure_dir_with_mode(&shared, SHARED_DIR_MODE)?;
                let address = VaultAddress {
                    url: wiring.url(),
                    socket: wiring.container_socket(),
                };
                patch::apply(&shared, &provider.name, config_patch, &address, true)?;
            }
            None if shared.is_dir() => patch::remove(&shared, &provider.name)?,
            None => {}
        }
    }
    Ok(())
}

fn check_shared(spec: &ContainerEnvSpec) -> Result<(), ContainerEnvError> {
    let mount = &spec.shared_mount;
    if !mount.starts_with('/') || mount.contains(':') {
        return Err(ContainerEnvError::SharedMount(mount.clone()));
    }
    if let Some(dir) = &spec.shared_dir
        && dir.is_file()
    {
        return Err(ContainerEnvError::SharedDirIsFile(dir.clone()));
    }
    Ok(())
}

/// Assembles the container environment for `spec` (executor.md §4): env in order, volumes in
/// order. Writes the task's phantom credential files, creates the shared directories, and
/// applies the shared config patches.
pub fn assemble_container_env(
    roster: &Roster,
    spec: &ContainerEnvSpec,
) -> Result<ContainerEnv, ContainerEnvError> {
    check_shared(spec)?;
    let agent = roster.agent(&spec.agent)?;
    let layout = TaskLayout::new(&spec.task_dir);
    let mut env = EnvList::default();

    // 1. Task basics.
    env.set("TASK_ID", spec.task_id.clone());
    env.set("REPO_ROOT", WORKSPACE);
    env.set("GIT_RESET_MODE", "none");
    env.set("TEROK_CONTAINER_PROTOCOL", CONTAINER_PROTOCOL);
    env.set("CLAUDE_CONFIG_DIR", "/home/dev/.claude");
    // 2. Time zone.
    if let Some(tz) = &spec.timezone {
        env.set("TZ", tz.clone());
    }
    // 3. OpenCode providers, described to the in-container `opencode-provider`.
    for (key, value) in roster.opencode_env() {
        env.set(key, value);
    }
    // 4. Git identity: explicit values, else the agent's; the committer defaults to the author.
    let author_name = spec
        .git
        .author_name
        .clone()
        .unwrap_or_else(|| agent.git_identity.name.clone());
    let author_email = spec
        .git
        .author_email
        .clone()
        .unwrap_or_else(|| agent.git_identity.email.clone());
    env.set("GIT_AUTHOR_NAME", author_name.clone());
    env.set("GIT_AUTHOR_EMAIL", author_email.clone());
    env.set(
        "GIT_COMMITTER_NAME",
        spec.git.committer_name.clone().unwrap_or(author_name),
    );
    env.set(
        "GIT_COMMITTER_EMAIL",
        spec.git.committer_email.clone().unwrap_or(author_email),
    );
    // 5. Authorship and the human.
    env.set("TEROK_GIT_AUTHORSHIP", spec.authorship.clone());
    env.set("HUMAN_GIT_NAME", spec.human_name.clone());
    env.set("HUMAN_GIT_EMAIL", spec.human_email.clone());
    // 6. Repository.
    if let Some(branch) = &spec.branch {
        env.set("GIT_BRANCH", branch.clone());
    }
    if let Some(repo) = &spec.code_repo {
        env.set("CODE_REPO", repo.clone());
    }
    if let Some(from) = &spec.clone_from {
        env.set("CLONE_FROM", from.clone());
    }
    // 7. Vault.
    let vault_env = spec
        .vault
        .as_ref()
        .map(|w| vault_env(roster, w))
        .unwrap_or_default();
    for (key, value) in &vault_env {
        env.set(key.clone(), value.clone());
    }
    // 8. Unrestricted: every agent's auto-approve settings (they share one container).
    if spec.unrestricted {
        env.set("TEROK_UNRESTRICTED", "1");
        for (key, value) in roster.all_auto_approve_env() {
            env.set(key, value);
        }
    }
    // 9. Shared directory.
    if let Some(dir) = &spec.shared_dir {
        secure_fs::ensure_dir_with_mode(dir, SHARED_DIR_MODE)?;
        env.set("TEROK_SHARED_DIR", spec.shared_mount.clone());
    }

    let mut volumes = Vec::new();
    // 1. Workspace.
    volumes.push(match &spec.workspace {
        Workspace::Host(dir) => Volume {
            host: dir.clone(),
            container: WORKSPACE.to_owned(),
            relabel: Relabel::None,
            read_only: false,
        },
        Workspace::Task => {
            let dir = layout.workspace();
            secure_fs::ensure_dir_with_mode(&dir, SHARED_DIR_MODE)?;
            Volume {
                host: dir,
                container: WORKSPACE.to_owned(),
                relabel: Relabel::Private,
                read_only: false,
            }
        }
    });
    // 2. Shared config mounts, then the phantom credential overlays.
    for mount in roster.shared_mounts() {
        if !spec.is_installed(&mount.owner) {
            continue;
        }
        let host = spec.mounts_dir.join(&mount.host_dir);
        secure_fs::ensure_dir_with_mode(&host, SHARED_DIR_MODE)?;
        volumes.push(Volume {
            host,
            container: mount.container_path.clone(),
            relabel: Relabel::Shared,
            read_only: false,
        });
    }
    volumes.extend(write_phantom_files(roster, spec)?);
    // 3. Shared config patches.
    apply_config_patches(roster, spec)?;
    // 4. Agent config.
    volumes.push(Volume {
        host: layout.agent_config(),
        container: AGENT_CONFIG_MOUNT.to_owned(),
        relabel: Relabel::Private,
        read_only: false,
    });
    // 5. Shared directory.
    if let Some(dir) = &spec.shared_dir {
        volumes.push(Volume {
            host: dir.clone(),
            container: spec.shared_mount.clone(),
            relabel: Relabel::Shared,
            read_only: false,
        });
    }
    // The vault's per-container socket directory, read-only (decisions.md §3 item 3).
    if let Some(wiring) = &spec.vault {
        volumes.push(Volume {
            host: wiring.host_socket_dir.clone(),
            container: wiring.container_socket_dir.clone(),
            relabel: Relabel::Private,
            read_only: true,
        });
    }
    // 6. Extra volumes, verbatim.
    volumes.extend(spec.extra_volumes.iter().cloned());

    Ok(ContainerEnv {
        env: env.0,
        vault_env,
        volumes,
    })
}
