//! `assemble_container_env` (docs/compatibility.md#9): the environment and the mounts of a task
//! container, in the Python terok-executor's order, with the per-task phantom credential files and
//! the shared config patches written on the way.

use std::path::{Path, PathBuf};

use terok_core::secure_fs;
use terok_credentials::patch::{self, VaultAddress};
use terok_credentials::vendor::phantom_file_for_kind;
use terok_roster::Roster;

use crate::error::ContainerEnvError;
use crate::spec::{
    AGENT_CONFIG_MOUNT, CONTAINER_PROTOCOL, ContainerEnv, ContainerEnvSpec, GateWiring, Relabel,
    TaskLayout, VaultTransport, VaultWiring, Volume, WORKSPACE, Workspace,
};

/// The provider name of the SSH signer's token in a wiring.
pub const SSH_SIGNER_PROVIDER: &str = "ssh";
/// The signer socket's name in the container's vault socket directory.
const SSH_SIGNER_SOCKET: &str = "ssh-agent.sock";
/// The ssh-agent socket the in-container bridge listens on.
const SSH_AUTH_SOCK: &str = "/tmp/ssh-agent.sock";

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

/// The vault variables for `wiring` (docs/compatibility.md#9.3): per provider with a
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
            env.set(
                var.clone(),
                format!("{}{}", wiring.url(), provider.base_url_path),
            );
        }
        // Every OpenCode agent of this provider (an entry of its own name in roster v1; any
        // name bound to it in v3) goes through the vault.
        for agent in roster
            .entries()
            .filter(|a| a.opencode.is_some() && a.provider.as_deref() == Some(name.as_str()))
        {
            env.set(
                format!(
                    "TEROK_OC_{}_BASE_URL",
                    agent.name.to_ascii_uppercase().replace('-', "_")
                ),
                format!("{}/v1", wiring.url()),
            );
        }
        // glab reads its API endpoint from these two (the Python terok-executor does the same by
        // name).
        if name == "glab" {
            env.set("API_PROTOCOL", "http");
            env.set("GITLAB_API_HOST", wiring.authority());
        }
    }
    // The SSH signer: its token, its socket beside the vault's, and the agent socket the
    // in-container bridge serves (ssh and git use it as any ssh-agent). Its socket only
    // exists beside a socket listener.
    if let (Some(token), Some((_, dir))) = (
        wiring.tokens.get(SSH_SIGNER_PROVIDER),
        wiring.socket_mount(),
    ) {
        env.set("TEROK_SSH_SIGNER_TOKEN", token.clone());
        env.set(
            "TEROK_SSH_SIGNER_SOCKET",
            format!("{dir}/{SSH_SIGNER_SOCKET}"),
        );
        env.set("SSH_AUTH_SOCK", SSH_AUTH_SOCK);
    }
    if !wiring.tokens.is_empty() {
        match &wiring.transport {
            VaultTransport::Socket { loopback_port, .. } => {
                env.set("TEROK_VAULT_LOOPBACK_PORT", loopback_port.to_string());
            }
            VaultTransport::Tcp { port } => env.set("TEROK_TOKEN_BROKER_PORT", port.to_string()),
        }
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

/// Runs `edit` on a shared config file; when the file does not parse it is moved aside (and
/// said so in `warnings`) and the edit runs again on a fresh file.
fn patching(
    warnings: &mut Vec<String>,
    mut edit: impl FnMut() -> Result<(), patch::PatchError>,
) -> Result<(), ContainerEnvError> {
    match edit() {
        Err(patch::PatchError::Unparseable { path, detail, .. }) => {
            warnings.push(crate::copy::back_up_unparseable(&path, &detail)?);
            Ok(edit()?)
        }
        other => Ok(other?),
    }
}

/// Points the agents' own config files at the vault for providers with a token, and removes what
/// terok wrote for the others (docs/compatibility.md#9.4 step 3). Any other failure aborts the
/// launch.
fn apply_config_patches(
    roster: &Roster,
    spec: &ContainerEnvSpec,
    warnings: &mut Vec<String>,
) -> Result<(), ContainerEnvError> {
    for provider in roster.providers() {
        let Some(config_patch) = &provider.shared_config_patch else {
            continue;
        };
        // The shared directory of every entry using the provider (several in roster v3).
        let host_dirs: std::collections::BTreeSet<String> = roster
            .entries()
            .filter(|a| a.provider.as_deref() == Some(provider.name.as_str()))
            .filter_map(|a| roster.auth_provider(&a.name).ok())
            .map(|auth| auth.spec.host_dir)
            .collect();
        for host_dir in host_dirs {
            let shared = spec.mounts_dir.join(host_dir);
            patch_shared_dir(&shared, provider, config_patch, spec, warnings)?;
        }
    }
    Ok(())
}

/// Points one shared directory's config file at the vault when the task has a token for
/// `provider`, or removes what terok wrote there when it has none.
fn patch_shared_dir(
    shared: &Path,
    provider: &terok_roster::Provider,
    config_patch: &terok_roster::model::SharedConfigPatch,
    spec: &ContainerEnvSpec,
    warnings: &mut Vec<String>,
) -> Result<(), ContainerEnvError> {
    match spec
        .vault
        .as_ref()
        .filter(|w| w.tokens.contains_key(&provider.name))
    {
        Some(wiring) => {
            secure_fs::ensure_dir_with_mode(shared, SHARED_DIR_MODE)?;
            let address = VaultAddress {
                url: wiring.url(),
                socket: wiring.container_socket(),
            };
            patching(warnings, || {
                patch::apply(shared, &provider.name, config_patch, &address, true).map(|_| ())
            })?;
        }
        None if shared.is_dir() => {
            patching(warnings, || patch::remove(shared, &provider.name))?;
        }
        None => {}
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

/// Writes what carries a task's credentials on the host: the phantom credential files
/// (returned as the read-only overlays to mount) and the shared config patches pointing the
/// agents at the vault. A launch does this once; a restarted task again, with fresh tokens.
pub fn write_task_credentials(
    roster: &Roster,
    spec: &ContainerEnvSpec,
) -> Result<(Vec<Volume>, Vec<String>), ContainerEnvError> {
    let overlays = write_phantom_files(roster, spec)?;
    let mut warnings = Vec::new();
    apply_config_patches(roster, spec, &mut warnings)?;
    Ok((overlays, warnings))
}

/// Assembles the container environment for `spec` (docs/compatibility.md#9): env in order,
/// volumes in order. Writes the task's phantom credential files, creates the shared
/// directories, and applies the shared config patches.
pub fn assemble_container_env(
    roster: &Roster,
    spec: &ContainerEnvSpec,
) -> Result<ContainerEnv, ContainerEnvError> {
    check_shared(spec)?;
    let (env, vault_env) = environment(roster, spec)?;
    let (volumes, warnings) = volumes(roster, spec)?;
    Ok(ContainerEnv {
        env,
        vault_env,
        volumes,
        warnings,
    })
}

/// The environment and mounts of a sidecar tool container (`run-tool`): the task basics and
/// the repository's variables only — no agent settings, no vault wiring, no shared config
/// mounts, no agent-config directory. The tool's real credential is the caller's to add.
pub fn assemble_tool_env(spec: &ContainerEnvSpec) -> Result<ContainerEnv, ContainerEnvError> {
    let mut env = EnvList::default();
    env.set("TASK_ID", spec.task_id.clone());
    env.set("REPO_ROOT", WORKSPACE);
    env.set("GIT_RESET_MODE", "none");
    if let Some(tz) = &spec.timezone {
        env.set("TZ", tz.clone());
    }
    if let Some(branch) = &spec.branch {
        env.set("GIT_BRANCH", branch.clone());
    }
    // What the init script clones (a git URL, or the gate's mirror of it).
    if let Some(repo) = &spec.code_repo {
        env.set("CODE_REPO", repo.clone());
    }
    if let Some(from) = &spec.clone_from {
        env.set("CLONE_FROM", from.clone());
    }
    let layout = TaskLayout::new(&spec.task_dir);
    let mut volumes = vec![workspace_volume(spec, &layout)?];
    if let Workspace::Host(dir) = &spec.workspace {
        volumes.extend(git_guard_volumes(dir)?);
    }
    if let Some(gate) = &spec.gate {
        for (key, value) in gate.env() {
            env.set(key, value);
        }
        volumes.extend(gate.socket_mount());
    }
    Ok(ContainerEnv {
        env: env.0,
        vault_env: Vec::new(),
        volumes,
        warnings: Vec::new(),
    })
}

/// The environment in order, and its vault part.
type Environment = (Vec<(String, String)>, Vec<(String, String)>);

/// The environment, in the Python terok-executor's order.
fn environment(roster: &Roster, spec: &ContainerEnvSpec) -> Result<Environment, ContainerEnvError> {
    let agent = roster.agent(&spec.agent)?;
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
    // 4–5. Git identity, authorship and the human.
    git_identity_env(&mut env, spec, &agent.git_identity);
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
    // 7b. Gate: the bridge in the container serves the socket on localhost:9418.
    if let Some(gate) = &spec.gate {
        for (key, value) in gate.env() {
            env.set(key, value);
        }
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
        // The user's directory: created when missing, its mode left alone when not.
        secure_fs::create_dir_if_missing(dir, SHARED_DIR_MODE)?;
        env.set("TEROK_SHARED_DIR", spec.shared_mount.clone());
    }
    Ok((env.0, vault_env))
}

/// The git identity: explicit values, else the agent's; the committer defaults to the author.
fn git_identity_env(
    env: &mut EnvList,
    spec: &ContainerEnvSpec,
    agent: &terok_roster::model::GitIdentity,
) {
    let author_name = spec
        .git
        .author_name
        .clone()
        .unwrap_or_else(|| agent.name.clone());
    let author_email = spec
        .git
        .author_email
        .clone()
        .unwrap_or_else(|| agent.email.clone());
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
    env.set("TEROK_GIT_AUTHORSHIP", spec.authorship.clone());
    env.set("HUMAN_GIT_NAME", spec.human_name.clone());
    env.set("HUMAN_GIT_EMAIL", spec.human_email.clone());
}

/// The mounts, in order, and what the user should hear.
fn volumes(
    roster: &Roster,
    spec: &ContainerEnvSpec,
) -> Result<(Vec<Volume>, Vec<String>), ContainerEnvError> {
    let layout = TaskLayout::new(&spec.task_dir);
    // 1. Workspace, and read-only what git on the host would execute from its repository.
    let mut volumes = vec![workspace_volume(spec, &layout)?];
    if let Workspace::Host(dir) = &spec.workspace {
        volumes.extend(git_guard_volumes(dir)?);
    }
    // 2. The agents' config directories: the shared ones are brought up to date (phantom
    //    files, config patches, terok's own edits), then each task gets a copy of its own, so
    //    nothing a task writes there (a hook, an alias) runs in another; the phantom
    //    credential files are mounted read-only over them.
    let mounts: Vec<_> = roster
        .shared_mounts()
        .into_iter()
        .filter(|m| spec.is_installed(&m.owner))
        .collect();
    for mount in &mounts {
        secure_fs::ensure_dir_with_mode(&spec.mounts_dir.join(&mount.host_dir), SHARED_DIR_MODE)?;
    }
    let (overlays, mut warnings) = write_task_credentials(roster, spec)?;
    warnings.extend(crate::shared_configs::edit_shared_configs(
        roster,
        &spec.agent,
        &spec.mounts_dir,
    )?);
    for mount in &mounts {
        volumes.push(Volume {
            host: task_config_copy(spec, &layout, mount)?,
            container: mount.container_path.clone(),
            relabel: Relabel::Private,
            read_only: false,
        });
    }
    volumes.extend(overlays);
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
    // The vault's per-container socket directory, read-only (docs/decisions.md#3.3).
    if let Some((host, container)) = spec.vault.as_ref().and_then(VaultWiring::socket_mount) {
        volumes.push(Volume {
            host: host.to_path_buf(),
            container: container.to_owned(),
            relabel: Relabel::Private,
            read_only: true,
        });
    }
    // The gate's per-task socket directory, read-only likewise.
    volumes.extend(spec.gate.as_ref().and_then(GateWiring::socket_mount));
    // 6. Extra volumes, verbatim.
    volumes.extend(spec.extra_volumes.iter().cloned());
    Ok((volumes, warnings))
}

/// The task's copy of a shared config directory, made on its first launch: everything but
/// links (never followed), with the vendor's credential file as an empty mount point for the
/// phantom overlay.
fn task_config_copy(
    spec: &ContainerEnvSpec,
    layout: &TaskLayout,
    mount: &terok_roster::SharedMount,
) -> Result<PathBuf, ContainerEnvError> {
    let shared = spec.mounts_dir.join(&mount.host_dir);
    let copy = layout.config_copy(&mount.host_dir);
    if std::fs::symlink_metadata(&copy).is_ok() {
        return Ok(copy);
    }
    let credential = mount.credential_file.as_ref().map(|f| shared.join(f));
    let is_credential = |path: &Path| credential.as_deref() == Some(path);
    let unparseable = |path: &Path| {
        path.file_name()
            .is_some_and(|name| name.to_string_lossy().contains(".unparseable-"))
    };
    crate::copy::copy_tree_nofollow(&shared, &copy, &unparseable, &is_credential).map_err(|e| {
        ContainerEnvError::CloneCache {
            path: copy.clone(),
            detail: format!("cannot copy the shared config {}: {e}", shared.display()),
        }
    })?;
    secure_fs::ensure_dir_with_mode(&copy, SHARED_DIR_MODE)?;
    Ok(copy)
}

/// Mounts that keep the container from changing what git on the host executes in the user's
/// repository: read-only over `.git/config` (`core.fsmonitor`, `core.hooksPath`, filters,
/// aliases run commands), `.git/config.worktree` and `.git/hooks`, and the same in each
/// submodule's `.git/modules/<name>`. The directories holding them — `.git`, `.git/modules`
/// and each module's — are mounted onto themselves (writable), which makes them mount points
/// the container cannot rename away to put a repository of its own in their place. A missing
/// `config` or hooks directory is created first, so the container cannot create one. When
/// `.git` is a file (a worktree or a submodule checkout) it is mounted read-only, so it cannot
/// be pointed at a git directory the container wrote; so is each submodule's `.git` file.
fn git_guard_volumes(workspace: &Path) -> Result<Vec<Volume>, ContainerEnvError> {
    let git = workspace.join(".git");
    let container_git = format!("{WORKSPACE}/.git");
    let meta = std::fs::symlink_metadata(&git);
    if meta.as_ref().is_ok_and(|m| m.is_file()) {
        return Ok(vec![read_only(git, container_git)]);
    }
    if !meta.is_ok_and(|m| m.is_dir()) {
        return Ok(Vec::new());
    }
    let mut volumes = Vec::new();
    guard_gitdir(workspace, &git, &container_git, 0, &mut volumes)?;
    Ok(volumes)
}

/// How deep submodules (and the parts of their names: `vendor/lib`) are followed.
const MAX_MODULE_DEPTH: usize = 16;

/// Pins `gitdir`, mounts what git executes from it read-only, and does the same for the git
/// directories of its submodules under its `modules`; `depth` is 0 for the repository's own.
fn guard_gitdir(
    workspace: &Path,
    gitdir: &Path,
    container: &str,
    depth: usize,
    volumes: &mut Vec<Volume>,
) -> Result<(), ContainerEnvError> {
    volumes.push(pinned(gitdir.to_path_buf(), container.to_owned()));
    if depth > 0 {
        volumes.extend(submodule_gitlink(workspace, gitdir));
    }
    volumes.extend(executed_parts(gitdir, container)?);
    let modules = gitdir.join("modules");
    if is_real_dir(&modules) {
        let inner = format!("{container}/modules");
        guard_modules(workspace, &modules, &inner, depth + 1, volumes)?;
    }
    Ok(())
}

/// Pins `dir`, a directory under a `modules`, and guards each git directory below it; a
/// directory without `HEAD` is part of a submodule's name (`vendor` of `vendor/lib`) — pinned
/// too, as renaming it would move the git directories inside.
fn guard_modules(
    workspace: &Path,
    dir: &Path,
    container: &str,
    depth: usize,
    volumes: &mut Vec<Volume>,
) -> Result<(), ContainerEnvError> {
    if depth > MAX_MODULE_DEPTH {
        return Ok(());
    }
    volumes.push(pinned(dir.to_path_buf(), container.to_owned()));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut children: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    children.sort();
    for path in children {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !is_real_dir(&path) || name.contains(':') {
            continue;
        }
        let inner = format!("{container}/{name}");
        if std::fs::symlink_metadata(path.join("HEAD")).is_ok_and(|m| m.is_file()) {
            guard_gitdir(workspace, &path, &inner, depth, volumes)?;
        } else {
            guard_modules(workspace, &path, &inner, depth + 1, volumes)?;
        }
    }
    Ok(())
}

/// A git directory's `config`, `config.worktree` and `hooks`, read-only; a missing `config`
/// (empty) and `hooks` are created first.
fn executed_parts(gitdir: &Path, container: &str) -> Result<Vec<Volume>, ContainerEnvError> {
    let hooks = gitdir.join("hooks");
    if std::fs::symlink_metadata(&hooks).is_err() {
        secure_fs::ensure_dir_with_mode(&hooks, 0o755)?;
    }
    let config = gitdir.join("config");
    if std::fs::symlink_metadata(&config).is_err() {
        secure_fs::write_atomic(&config, b"", 0o644)?;
    }
    let mut volumes = Vec::new();
    for part in ["config", "config.worktree", "hooks"] {
        let path = gitdir.join(part);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() || m.is_dir()) {
            volumes.push(read_only(path, format!("{container}/{part}")));
        }
    }
    Ok(volumes)
}

/// The `.git` file of the submodule checkout whose git directory is `gitdir`, read-only —
/// found through the module's `core.worktree`, and only when it lies inside `workspace`.
fn submodule_gitlink(workspace: &Path, gitdir: &Path) -> Option<Volume> {
    let config = std::fs::read_to_string(gitdir.join("config")).ok()?;
    let worktree = config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "worktree").then(|| value.trim().to_owned())
    })?;
    let checkout = gitdir.join(worktree);
    let relative = lexically_inside(workspace, &checkout)?;
    if relative.to_string_lossy().contains(':') {
        return None;
    }
    // No link on the way: the mount must be the file the checkout holds, nothing elsewhere.
    let gitlink = workspace.join(&relative).join(".git");
    let canonical = std::fs::canonicalize(&gitlink).ok()?;
    (canonical == gitlink && canonical.is_file())
        .then(|| read_only(gitlink, format!("{WORKSPACE}/{}/.git", relative.display())))
}

/// `path` relative to `root` after resolving `.` and `..` by name (no link is read), when it
/// stays inside `root` and is not `root` itself.
fn lexically_inside(root: &Path, path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut resolved = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    let relative = resolved.strip_prefix(root).ok()?;
    (!relative.as_os_str().is_empty()).then(|| relative.to_path_buf())
}

/// A host path mounted read-only at `container`.
fn read_only(host: PathBuf, container: String) -> Volume {
    Volume {
        host,
        container,
        relabel: Relabel::None,
        read_only: true,
    }
}

/// A host directory mounted writable onto itself, so the container cannot rename it.
fn pinned(host: PathBuf, container: String) -> Volume {
    Volume {
        host,
        container,
        relabel: Relabel::None,
        read_only: false,
    }
}

fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// `/workspace`: the user's directory as it is, or the task's own (created here).
fn workspace_volume(
    spec: &ContainerEnvSpec,
    layout: &TaskLayout,
) -> Result<Volume, ContainerEnvError> {
    Ok(match &spec.workspace {
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
    })
}
