//! The ACP proxy of a task (docs/acp.md): where its socket is, the daemon served in this
//! process ([`Executor::open_acp`], then [`AcpDaemon::run`]), and for clients that spawn a
//! command and speak ACP on its stdio, a connection to the task's daemon, started in the
//! background with the session's [`ServeCommand`] when none runs ([`Executor::connect_acp`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use terok_acp::{Daemon, DaemonSettings, answers};
use terok_podman::ContainerRuntime;
use tokio::net::UnixStream;

pub use terok_acp::{AcpError, Daemon as AcpDaemon, Opened as AcpOpened, Stopped as AcpStopped};

use crate::error::ExecutorError;
use crate::session::Executor;

/// The environment variable that sets the probe limit in seconds.
pub const PROBE_TIMEOUT_VAR: &str = "TEROK_ACP_PROBE_TIMEOUT_SECS";
/// How long a probe may take unless configured: Vibe's server needs about ten seconds to
/// answer `initialize` and `session/new` on these machines.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon started in the background may take to open its socket.
const START_LIMIT: Duration = Duration::from_secs(15);

/// How a task's ACP proxy runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AcpOptions {
    /// The socket (default: [`Executor::acp_socket`]).
    pub socket: Option<PathBuf>,
    /// The limit of one agent probe (default: `TEROK_ACP_PROBE_TIMEOUT_SECS`, else 30 s).
    pub probe_timeout: Option<Duration>,
    /// Whether the proxy keeps one agent's server started ahead of the next session
    /// (default: yes).
    pub keep_warm: bool,
}

impl Default for AcpOptions {
    fn default() -> Self {
        Self {
            socket: None,
            probe_timeout: None,
            keep_warm: true,
        }
    }
}

impl AcpOptions {
    /// Whether to keep an agent's server warm.
    pub fn keep_warm(mut self, keep: bool) -> Self {
        self.keep_warm = keep;
        self
    }

    /// The socket at `socket`.
    pub fn socket(mut self, socket: Option<PathBuf>) -> Self {
        self.socket = socket;
        self
    }

    /// This probe limit.
    pub fn probe_timeout(mut self, limit: Option<Duration>) -> Self {
        self.probe_timeout = limit;
        self
    }
}

impl<R: ContainerRuntime> Executor<R> {
    /// Where the ACP proxy of `container` listens by default.
    pub fn acp_socket(&self, container: &str) -> PathBuf {
        self.paths
            .runtime_dir
            .join("acp")
            .join(format!("{container}.sock"))
    }

    fn acp_log(&self, container: &str) -> PathBuf {
        self.paths
            .runtime_dir
            .join("acp")
            .join(format!("{container}.log"))
    }

    /// The probe limit: the option, else `TEROK_ACP_PROBE_TIMEOUT_SECS`, else 30 s.
    pub fn acp_probe_timeout(&self, options: &AcpOptions) -> Result<Duration, ExecutorError> {
        if let Some(limit) = options.probe_timeout {
            return Ok(limit);
        }
        match self.env.var_str(PROBE_TIMEOUT_VAR).map(str::trim) {
            None | Some("") => Ok(DEFAULT_PROBE_TIMEOUT),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|secs| secs.is_finite() && *secs > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| ExecutorError::InvalidProbeTimeout(text.to_owned())),
        }
    }

    /// Opens the ACP proxy of task `task` (which must run): binds its socket, or finds that a
    /// proxy answers there already. Run the daemon with [`AcpDaemon::run`].
    pub async fn open_acp(
        &self,
        task: &str,
        options: &AcpOptions,
    ) -> Result<AcpOpened<R>, ExecutorError> {
        let container = self.our_container(task).await?;
        let socket = options
            .socket
            .clone()
            .unwrap_or_else(|| self.acp_socket(&container));
        let mut settings = DaemonSettings::new(socket)
            .probe_timeout(self.acp_probe_timeout(options)?)
            .auth_methods(self.acp_auth_methods()?)
            .keep_warm(options.keep_warm);
        // A krun guest is not reached with `podman exec`: its agents' servers start over SSH.
        if let Some(record) = self.task_store().find(&container)
            && let Some(guest) = self.guest_shell(&record)?
        {
            settings = settings.transport(std::sync::Arc::new(crate::krun::GuestExec(guest)));
        }
        Ok(Daemon::open(std::sync::Arc::clone(&self.runtime), &container, settings).await?)
    }

    /// The ACP `authenticate` method of each agent that needs one.
    fn acp_auth_methods(&self) -> Result<BTreeMap<String, String>, ExecutorError> {
        Ok(self
            .roster()?
            .agents()
            .filter_map(|agent| {
                let method = agent.acp.as_ref()?.auth_method.clone()?;
                Some((agent.name.clone(), method))
            })
            .collect())
    }

    /// A connection to task `task`'s ACP proxy, started in the background (with the
    /// session's ACP launcher) when none answers; it serves until the task stops.
    pub async fn connect_acp(
        &self,
        task: &str,
        options: &AcpOptions,
    ) -> Result<UnixStream, ExecutorError> {
        let container = self.our_container(task).await?;
        let socket = options
            .socket
            .clone()
            .unwrap_or_else(|| self.acp_socket(&container));
        if !answers(&socket).await {
            let running = self
                .runtime
                .inspect(&container)
                .await?
                .is_some_and(|info| info.state.running);
            if !running {
                return Err(AcpError::NotRunning(container).into());
            }
            self.start_acp_daemon(&container, &socket, options).await?;
        }
        UnixStream::connect(&socket)
            .await
            .map_err(ExecutorError::io(format!(
                "cannot connect to the ACP proxy at {}",
                socket.display()
            )))
    }

    /// Starts `container`'s ACP daemon in the background and waits until its socket answers.
    async fn start_acp_daemon(
        &self,
        container: &str,
        socket: &std::path::Path,
        options: &AcpOptions,
    ) -> Result<(), ExecutorError> {
        use std::os::unix::process::CommandExt;
        let launcher = self
            .acp_launcher
            .as_ref()
            .ok_or(ExecutorError::NoAcpLauncher)?;
        let log_path = self.acp_log(container);
        if let Some(parent) = log_path.parent() {
            terok_core::secure_fs::ensure_private_dir(parent)?;
        }
        let log = terok_core::secure_fs::open_append(&log_path)?;
        let log_err = log.try_clone().map_err(ExecutorError::io(format!(
            "cannot open {}",
            log_path.display()
        )))?;
        let mut command = std::process::Command::new(launcher.program());
        command
            .args(launcher.args())
            .arg(container)
            .arg("--socket")
            .arg(socket)
            .arg("--probe-timeout")
            .arg(self.acp_probe_timeout(options)?.as_secs_f64().to_string())
            .args((!options.keep_warm).then_some("--no-warm"))
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: it serves other clients after this one has gone.
            .process_group(0);
        for var in terok_core::env::SECRET_VARS {
            command.env_remove(var);
        }
        let mut child = command.spawn().map_err(|source| ExecutorError::AcpSpawn {
            program: launcher.program().to_path_buf(),
            source,
        })?;
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        while tokio::time::Instant::now() < deadline {
            if answers(socket).await {
                // Reaped in the background: the daemon outlives this call.
                std::thread::spawn(move || child.wait());
                return Ok(());
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(ExecutorError::AcpDidNotStart {
            tail: crate::vault_service::log_tail(&log_path, 10),
            log: log_path,
        })
    }
}
