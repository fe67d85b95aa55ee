//! The vault as a service of the session: its routes, its daemon (started in the background
//! with an injected program, or served in this process), its state, its stored credentials,
//! and its housekeeping.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use terok_core::env::HostEnv;
use terok_credentials::leak;
use terok_credentials::routes::{
    RouteChange, RouteTable, read_routes, route_changes, routes_from_roster, routes_hash,
    write_routes,
};
use terok_credentials::{CredentialDb, CredentialSummary, DEFAULT_SET, KeyOptions, TokenRecord};
use terok_podman::{ContainerRuntime, LABEL_EXECUTOR, PodmanError};
use terok_vault::SidecarOptions;
use terok_vault::control::{ControlError, DaemonStatus, ServedRoutes};
use terok_vault::{LiveContainers, VaultConfig};

use crate::error::ExecutorError;
use crate::session::Executor;

/// How long a freshly started daemon may take to answer: generous, as a loaded host can take
/// seconds to start a process, and a daemon that exits instead ends the wait at once.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long a stopping daemon may take to remove its control socket.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// How often the two waits above look.
const POLL: Duration = Duration::from_millis(25);

/// What [`Executor::ensure_vault`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultStart {
    /// A daemon answered already.
    AlreadyRunning {
        /// Its process id.
        pid: u32,
    },
    /// A daemon was started and answers.
    Started {
        /// Its process id.
        pid: u32,
    },
}

/// routes.json was written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutesWritten {
    /// The file.
    pub path: PathBuf,
    /// How many routes it holds.
    pub routes: usize,
    /// A running daemon reread it.
    pub reloaded: bool,
    /// What the daemon serves now (`None` when it does not run).
    pub served: Option<ServedRoutes>,
}

/// A real credential found in a shared mount, where every container of that agent can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeakedFile {
    /// The provider whose credential it is.
    pub provider: String,
    /// The file.
    pub path: PathBuf,
}

/// The vault's state, for `vault status`.
#[derive(Debug)]
#[non_exhaustive]
pub struct VaultReport {
    /// The control socket.
    pub control: PathBuf,
    /// The daemon, when it answers.
    pub daemon: Option<DaemonStatus>,
    /// The credential database.
    pub db: PathBuf,
    /// How the served routes differ from the roster's (`None` when the daemon does not run).
    pub route_changes: Option<Vec<RouteChange>>,
    /// routes.json.
    pub routes_file: PathBuf,
    /// How many routes routes.json holds; `None` when it is missing or unreadable.
    pub routes: Option<usize>,
    /// Stored credentials: `Ok(None)` when there is no database yet.
    pub credentials: Result<Option<Vec<CredentialSummary>>, ExecutorError>,
    /// Real credentials left in shared mounts.
    pub leaks: Vec<LeakedFile>,
}

/// What [`Executor::clean_vault`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CleanReport {
    /// Leaked credential files removed.
    pub removed: Vec<LeakedFile>,
    /// Leaked credential files that could not be removed, with why.
    pub not_removed: Vec<(LeakedFile, String)>,
    /// Containers whose tokens were revoked.
    pub revoked: Vec<String>,
}

/// Names whose tokens live (a token lives while its container runs): the running containers
/// of terok's tasks and of sandboxed user containers, and every prepared sandbox (`sandbox
/// prepare` made it; its container may not run yet) until `sandbox cleanup`.
pub async fn running_containers<R: ContainerRuntime>(
    runtime: &R,
    sandboxes_dir: &std::path::Path,
) -> Result<BTreeSet<String>, PodmanError> {
    let mut live = BTreeSet::new();
    for label in [LABEL_EXECUTOR, crate::sandbox::LABEL_SANDBOX] {
        live.extend(
            runtime
                .list(label)
                .await?
                .into_iter()
                .filter(|c| c.state == "running")
                .map(|c| c.name),
        );
    }
    live.extend(crate::sandbox::prepared_sandboxes(sandboxes_dir));
    Ok(live)
}

impl<R: ContainerRuntime> Executor<R> {
    /// Where the credential key comes from.
    pub fn key_options(&self) -> KeyOptions {
        let mut options = KeyOptions::new(self.vault_paths.vault_dir.clone(), self.env.clone());
        options.passphrase_command = self.config.config.credentials.passphrase_command.clone();
        options
    }

    /// Where the vault's key comes from, source by source (nothing is opened or run).
    pub fn key_chain(&self) -> Vec<terok_credentials::key::KeyLink> {
        terok_credentials::key::key_chain(&self.key_options())
    }

    /// Caches the vault key in the kernel keyring for `lifetime` (`None`: until `vault lock` or
    /// a reboot), unwrapping the key file with `passphrase` (`None`: the configured one). A
    /// key that needs no passphrase is left alone and its source returned.
    pub fn unlock_vault(
        &self,
        passphrase: Option<&str>,
        lifetime: Option<std::time::Duration>,
    ) -> Result<terok_credentials::key::Unlocked, ExecutorError> {
        Ok(terok_credentials::key::unlock(
            &self.key_options(),
            passphrase,
            lifetime,
        )?)
    }

    /// Forgets the key `unlock_vault` cached; `true` when there was one.
    pub fn lock_vault(&self) -> Result<bool, ExecutorError> {
        Ok(terok_credentials::key::lock(&self.key_options())?)
    }

    /// Whether the key file wants a passphrase (`None`: there is no key file yet).
    pub fn vault_key_is_protected(&self) -> Result<Option<bool>, ExecutorError> {
        Ok(terok_credentials::key::key_file_is_protected(
            &self.key_options(),
        )?)
    }

    /// Protects the key file with `passphrase` (wrapping a plain one in place; making a wrapped
    /// one when there is none yet).
    pub fn protect_vault_key(&self, passphrase: &str) -> Result<(), ExecutorError> {
        Ok(terok_credentials::key::protect_with_passphrase(
            &self.key_options(),
            &self.vault_paths.db(),
            passphrase,
        )?)
    }

    /// Seals the vault key with systemd-creds (`vault.key.cred`); the key file it replaces goes
    /// once the sealed one opens.
    pub fn seal_vault_key(&self) -> Result<terok_credentials::key::Sealed, ExecutorError> {
        Ok(terok_credentials::key::seal_with_systemd_creds(
            &self.key_options(),
            &self.vault_paths.db(),
        )?)
    }

    /// Moves the vault key into the OS keyring (Secret Service); returns the key file removed.
    pub fn move_vault_key_to_os_keyring(&self) -> Result<Option<PathBuf>, ExecutorError> {
        Ok(terok_credentials::key::move_to_os_keyring(
            &self.key_options(),
            &self.vault_paths.db(),
        )?)
    }

    /// The passphrase config gives (`TEROK_VAULT_PASSPHRASE`, `credentials.passphrase_command`).
    pub fn configured_vault_passphrase(&self) -> Result<Option<String>, ExecutorError> {
        Ok(terok_credentials::key::configured_passphrase(
            &self.key_options(),
        )?)
    }

    /// Opens the credential database, creating it and its key on first use.
    pub fn open_db(&self) -> Result<CredentialDb, ExecutorError> {
        let db = self.vault_paths.db();
        let (key, source) = terok_credentials::resolve_key(&self.key_options(), &db)?;
        Ok(CredentialDb::open(&db, key, &source.to_string())?)
    }

    /// Opens the credential database if it exists (read-only questions must not create it).
    pub fn open_existing_db(&self) -> Result<Option<CredentialDb>, ExecutorError> {
        if !self.vault_paths.db().exists() {
            return Ok(None);
        }
        self.open_db().map(Some)
    }

    /// The credentials stored in the default set; `None` when there is no database yet.
    pub fn stored_credentials(&self) -> Result<Option<Vec<CredentialSummary>>, ExecutorError> {
        match self.open_existing_db()? {
            Some(db) => Ok(Some(db.list_credentials(DEFAULT_SET)?)),
            None => Ok(None),
        }
    }

    /// Live phantom tokens (their hashes and containers; tokens themselves are never stored).
    pub fn live_tokens(&self) -> Result<Vec<TokenRecord>, ExecutorError> {
        match self.open_existing_db()? {
            Some(db) => Ok(db.list_tokens()?),
            None => Ok(Vec::new()),
        }
    }

    /// The route table the roster (bundled, system and user files) gives now.
    pub fn roster_routes(&self) -> Result<RouteTable, ExecutorError> {
        Ok(routes_from_roster(self.roster()?))
    }

    /// Writes routes.json from the roster as it is now; returns its path and size.
    pub fn write_routes(&self) -> Result<(PathBuf, usize), ExecutorError> {
        let table = self.roster_routes()?;
        let path = self.vault_paths.routes();
        write_routes(&path, &table)?;
        Ok((path, table.len()))
    }

    /// Writes routes.json and has a running daemon reread it.
    pub async fn update_routes(&self) -> Result<RoutesWritten, ExecutorError> {
        let (path, routes) = self.write_routes()?;
        let reloaded = self.vault.reload().await?;
        Ok(RoutesWritten {
            path,
            routes,
            reloaded,
            served: self.vault.served_routes().await?,
        })
    }

    /// How the routes the daemon serves differ from the roster's; `None` when it does not run.
    pub async fn route_changes(&self) -> Result<Option<Vec<RouteChange>>, ExecutorError> {
        let Some(served) = self.vault.served_routes().await? else {
            return Ok(None);
        };
        Ok(Some(route_changes(&served.routes, &self.roster_routes()?)))
    }

    /// Makes sure the daemon, which reported serving the table fingerprinted `served_hash`,
    /// serves the roster's routes: when they differ, routes.json is rewritten and the daemon
    /// rereads it. Returns what changed (nothing, and no I/O, when the fingerprints match).
    pub async fn sync_routes(&self, served_hash: &str) -> Result<Vec<RouteChange>, ExecutorError> {
        let wanted = self.roster_routes()?;
        if routes_hash(&wanted) == served_hash {
            return Ok(Vec::new());
        }
        let served = self.vault.served_routes().await?.map(|s| s.routes);
        write_routes(&self.vault_paths.routes(), &wanted)?;
        self.vault.reload().await?;
        Ok(route_changes(&served.unwrap_or_default(), &wanted))
    }

    /// Makes sure the daemon runs: writes the routes and starts it in the background with the
    /// session's [`VaultLauncher`] when it does not answer.
    pub async fn ensure_vault(&self) -> Result<VaultStart, ExecutorError> {
        if let Some(status) = self.vault.status().await {
            return Ok(VaultStart::AlreadyRunning { pid: status.pid });
        }
        self.write_routes()?;
        let pid = self.spawn_vault().await?;
        Ok(VaultStart::Started { pid })
    }

    /// Starts the daemon again when it died without stopping — its control socket is still
    /// there but nothing answers (SIGKILL, the OOM killer) — while terok containers run that
    /// may need it; the restarted daemon reopens their listeners with the tokens they hold.
    /// Returns the new daemon's pid when it started one. A daemon stopped on purpose
    /// (`stop_vault` removes its socket) stays stopped.
    pub async fn revive_vault(&self) -> Result<Option<u32>, ExecutorError> {
        if !self.vault_died() || self.vault.status().await.is_some() {
            return Ok(None);
        }
        let live = running_containers(&*self.runtime, &self.sandboxes_dir()).await?;
        if live.is_empty() {
            return Ok(None);
        }
        match self.ensure_vault().await? {
            VaultStart::Started { pid } => Ok(Some(pid)),
            VaultStart::AlreadyRunning { .. } => Ok(None),
        }
    }

    /// Whether a daemon died without stopping: its control socket is there, but no process
    /// holds its pidfile's lock (a live daemon that is merely slow to answer holds it).
    fn vault_died(&self) -> bool {
        let socket = self.vault_paths.control_socket();
        if std::fs::symlink_metadata(&socket).is_err() {
            return false;
        }
        terok_core::secure_fs::open_lock_file(&self.vault_paths.pidfile())
            .is_ok_and(|pidfile| pidfile.try_lock().is_ok())
    }

    /// Starts the daemon in the background and waits until it answers.
    async fn spawn_vault(&self) -> Result<u32, ExecutorError> {
        use std::os::unix::process::CommandExt;
        let launcher = self
            .launcher
            .as_ref()
            .ok_or(ExecutorError::NoVaultLauncher)?;
        terok_core::secure_fs::ensure_private_dir(&self.vault_paths.vault_dir)?;
        let log_path = self.vault_paths.log_file();
        let log = terok_core::secure_fs::open_append(&log_path)?;
        let log_err = log.try_clone().map_err(ExecutorError::io(format!(
            "cannot open {}",
            log_path.display()
        )))?;
        let mut command = std::process::Command::new(launcher.program());
        command
            .args(launcher.args())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: closing the terminal does not take the daemon with it.
            .process_group(0);
        let handed = handed_secrets(&self.env);
        hand_over_by_pipe(&mut command, &handed);
        let mut child = command
            .spawn()
            .map_err(|source| ExecutorError::VaultSpawn {
                program: launcher.program().to_path_buf(),
                source,
            })?;
        if let Some(mut pipe) = child.stdin.take() {
            // A daemon that died at once closes the pipe: the wait below reports it.
            let _ = std::io::Write::write_all(&mut pipe, handed.as_bytes());
        }
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.vault.status().await {
                return Ok(status.pid);
            }
            if child.try_wait().is_ok_and(|exit| exit.is_some()) {
                // Ended: its log says why — unless another command's daemon won the start.
                if let Some(status) = self.vault.status().await {
                    return Ok(status.pid);
                }
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        Err(ExecutorError::VaultDidNotStart {
            pid: child.id(),
            tail: log_tail(&log_path, 10),
            log: log_path,
        })
    }

    /// Stops the daemon and waits until its control socket is gone; `false` when none ran.
    pub async fn stop_vault(&self) -> Result<bool, ExecutorError> {
        if self.vault.status().await.is_none() {
            // A daemon that died left its socket: removing it records that the vault is
            // stopped on purpose now, so nothing starts it again unasked.
            if self.vault_died() {
                let _ = std::fs::remove_file(self.vault_paths.control_socket());
            }
            return Ok(false);
        }
        self.vault.stop().await?;
        let socket = self.vault_paths.control_socket();
        let deadline = tokio::time::Instant::now() + STOP_LIMIT;
        while socket.exists() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        Ok(true)
    }

    /// How the daemon is configured when this session serves it: the session's paths and key,
    /// sweeps that ask the session's runtime which containers run.
    pub fn vault_config(&self) -> VaultConfig {
        let runtime = Arc::clone(&self.runtime);
        let sandboxes = self.sandboxes_dir();
        let live: LiveContainers = Arc::new(move || {
            let runtime = Arc::clone(&runtime);
            let sandboxes = sandboxes.clone();
            Box::pin(async move {
                running_containers(&*runtime, &sandboxes)
                    .await
                    .map_err(|e| e.to_string())
            })
        });
        VaultConfig {
            paths: self.vault_paths.clone(),
            key: self.key_options(),
            live_containers: Some(live),
            refresh_interval: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(60),
            limits: terok_vault::listener::ListenerLimits::default(),
        }
    }

    /// Serves the vault in this process until it is stopped (a control `stop`, SIGTERM or
    /// Ctrl-C).
    pub async fn serve_vault(&self) -> Result<(), ExecutorError> {
        serve_vault(self.vault_config()).await
    }

    /// Real credentials left in shared mounts.
    pub fn leaked_credentials(&self) -> Result<Vec<LeakedFile>, ExecutorError> {
        Ok(leak::scan(self.roster()?, &self.paths.mounts_dir)
            .into_iter()
            .map(|l| LeakedFile {
                provider: l.provider,
                path: l.path,
            })
            .collect())
    }

    /// The vault's state: daemon, database, routes, credentials, leaks.
    pub async fn vault_report(&self) -> Result<VaultReport, ExecutorError> {
        let routes_file = self.vault_paths.routes();
        Ok(VaultReport {
            control: self.vault_paths.control_socket(),
            daemon: self.vault.status().await,
            db: self.vault_paths.db(),
            route_changes: self.route_changes().await?,
            routes: read_routes(&routes_file).ok().map(|t| t.len()),
            routes_file,
            credentials: self.stored_credentials(),
            leaks: self.leaked_credentials()?,
        })
    }

    /// Removes leaked credential files and revokes the tokens of containers that no longer
    /// run, sparing tokens minted in the last `grace_secs` (a container may be starting).
    pub async fn clean_vault(&self, grace_secs: u32) -> Result<CleanReport, ExecutorError> {
        let mut report = CleanReport::default();
        let leaks = leak::scan(self.roster()?, &self.paths.mounts_dir);
        for (found, result) in leaks.iter().zip(leak::clean(&leaks)) {
            let file = LeakedFile {
                provider: found.provider.clone(),
                path: found.path.clone(),
            };
            match result {
                Ok(_) => report.removed.push(file),
                Err((_, err)) => report.not_removed.push((file, err.to_string())),
            }
        }
        let live = running_containers(&*self.runtime, &self.sandboxes_dir()).await?;
        report.revoked = match self
            .vault
            .sweep(live.iter().cloned().collect(), i64::from(grace_secs))
            .await
        {
            Ok(containers) => containers,
            Err(ControlError::NotRunning { .. }) => match self.open_existing_db()? {
                Some(db) => db.sweep(&live, i64::from(grace_secs))?,
                None => Vec::new(),
            },
            Err(err) => return Err(err.into()),
        };
        Ok(report)
    }
}

/// Serves the vault configured by `config` (from [`Executor::vault_config`]) until it is
/// stopped; owned, so it can run in a spawned task next to the session.
pub async fn serve_vault(config: VaultConfig) -> Result<(), ExecutorError> {
    terok_vault::serve(config).await?;
    Ok(())
}

/// Serves one task's vault as the sidecar of its Pod, until the agent's end file appears or
/// a signal arrives. Needs no session: the sidecar has no user configuration.
pub async fn serve_vault_sidecar(options: SidecarOptions) -> Result<(), ExecutorError> {
    terok_vault::serve_sidecar(options).await?;
    Ok(())
}

/// The last `lines` lines of the file at `path` (empty when it cannot be read).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Set in the environment of a daemon this session starts when its key variables come on
/// stdin, as one JSON object, instead of in its environment.
pub const SECRETS_ON_STDIN_VAR: &str = "TEROK_VAULT_SECRETS_ON_STDIN";

/// The secret variables of `env` (the key, the passphrase) as the one JSON line the daemon
/// reads; empty when none is set.
fn handed_secrets(env: &HostEnv) -> String {
    let secrets: serde_json::Map<String, serde_json::Value> = terok_core::env::SECRET_VARS
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), env.var_str(name)?.to_owned().into())))
        .collect();
    if secrets.is_empty() {
        String::new()
    } else {
        format!("{}\n", serde_json::Value::Object(secrets))
    }
}

/// Keeps the secret variables out of the daemon's environment (which any process of the same
/// user can read in `/proc`, and its children would inherit); when there are some, the daemon
/// is told to read them from its stdin, a pipe.
fn hand_over_by_pipe(command: &mut std::process::Command, handed: &str) {
    for var in terok_core::env::SECRET_VARS {
        command.env_remove(var);
    }
    if handed.is_empty() {
        command.env_remove(SECRETS_ON_STDIN_VAR);
        command.stdin(std::process::Stdio::null());
    } else {
        command.env(SECRETS_ON_STDIN_VAR, "1");
        command.stdin(std::process::Stdio::piped());
    }
}

/// The environment a daemon started by [`ExecutorBuilder`]'s session runs with: `env` plus the
/// secret variables read from `input` when [`SECRETS_ON_STDIN_VAR`] says they come that way.
/// Only the secret variables are taken from the input.
///
/// [`ExecutorBuilder`]: crate::ExecutorBuilder
pub fn receive_handed_secrets(mut env: HostEnv, input: impl std::io::BufRead) -> HostEnv {
    if env.var_str(SECRETS_ON_STDIN_VAR) != Some("1") {
        return env;
    }
    let mut line = String::new();
    let mut input = input;
    if input.read_line(&mut line).is_err() {
        return env;
    }
    let Ok(serde_json::Value::Object(secrets)) = serde_json::from_str(&line) else {
        return env;
    };
    for name in terok_core::env::SECRET_VARS {
        if let Some(value) = secrets.get(name).and_then(serde_json::Value::as_str) {
            env.set_var(name, value);
        }
    }
    env
}
