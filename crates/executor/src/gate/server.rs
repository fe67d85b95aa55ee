//! A task's gate server: a process of its own per task, started by the launch (and by
//! `start`), serving the gate on the task's Unix socket (or, with `services.mode: tcp`, a TCP
//! port whose number it writes beside it) to that task's tokens only. It ends
//! when the task's token is revoked (stop, rm, the end of a `--rm` run) or when its
//! container has stopped running, and then removes its socket.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use terok_container_env::{GateTransport, GateWiring};
use terok_podman::ContainerRuntime;
use tokio::net::UnixListener;

use crate::error::ExecutorError;
use crate::listen::TcpListen;
use crate::session::Executor;

/// Seconds a token (and its server) is spared while its container does not run yet: the
/// gate opens before podman creates the container.
pub(crate) const SWEEP_GRACE_SECS: i64 = 60;
/// How often the server asks whether its task's token is still live.
const TOKEN_POLL: Duration = Duration::from_secs(1);
/// How many token polls between two questions to podman whether the container runs.
const CONTAINER_POLL_EVERY: u32 = 5;
/// How long a starting server waits for an ending one to let go of the task's socket, and
/// the launch for the socket to answer.
const START_LIMIT: Duration = Duration::from_secs(5);
/// The lock a task's server holds while it serves, beside the socket directory.
const LOCK_SUFFIX: &str = ".lock";
/// The file in the socket directory that says which port a TCP server took.
const PORT_FILE: &str = "port";

impl<R: ContainerRuntime> Executor<R> {
    /// Starts `container`'s gate server in the background with the session's
    /// [`crate::ServeCommand`] and waits until it answers: on its socket (the directory is
    /// returned), or with `tcp` on a port of that range (the port is returned).
    pub(crate) async fn start_gate_server(
        &self,
        container: &str,
        socket_uid: Option<u32>,
        tcp: Option<TcpListen>,
    ) -> Result<GateTransport, ExecutorError> {
        let dir = self.gate_socket_dir(container);
        let log_path = self.gate_log(container);
        // A port file left by a server that died says nothing about the one starting now;
        // a live server's (a restart re-admitted its task before it saw the stop) stays.
        if !server_holds_lock(&dir) {
            let _ = fs_err::remove_file(dir.join(PORT_FILE));
        }
        let mut child = self.spawn_gate_server(container, socket_uid, tcp, &log_path)?;
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        while tokio::time::Instant::now() < deadline {
            if let Some(transport) = answering(&dir, tcp).await {
                // Reaped in the background: the server outlives this call.
                std::thread::spawn(move || child.wait());
                return Ok(transport);
            }
            if let Ok(Some(status)) = child.try_wait()
                && !status.success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(ExecutorError::GateDidNotStart {
            tail: crate::vault_service::log_tail(&log_path, 10),
            log: log_path,
        })
    }

    /// The gate server process, in its own process group, logging to `log_path`.
    fn spawn_gate_server(
        &self,
        container: &str,
        socket_uid: Option<u32>,
        tcp: Option<TcpListen>,
        log_path: &Path,
    ) -> Result<std::process::Child, ExecutorError> {
        use std::os::unix::process::CommandExt;
        let launcher = self
            .gate_launcher
            .as_ref()
            .ok_or(ExecutorError::NoGateLauncher)?;
        if let Some(parent) = log_path.parent() {
            terok_core::secure_fs::ensure_private_dir(parent)?;
        }
        let log = terok_core::secure_fs::open_append(log_path)?;
        let log_err = log.try_clone().map_err(ExecutorError::io(format!(
            "cannot open {}",
            log_path.display()
        )))?;
        let mut command = std::process::Command::new(launcher.program());
        command.args(launcher.args()).arg(container);
        if let Some(uid) = socket_uid {
            command.arg("--uid").arg(uid.to_string());
        }
        if let Some(tcp) = tcp {
            command
                .arg("--listen")
                .arg(tcp.address.to_string())
                .arg("--ports")
                .arg(format!("{}-{}", tcp.first_port, tcp.last_port));
        }
        command
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: the task outlives the terminal that launched it.
            .process_group(0);
        for var in terok_core::env::SECRET_VARS {
            command.env_remove(var);
        }
        command.spawn().map_err(|source| ExecutorError::GateSpawn {
            program: launcher.program().to_path_buf(),
            source,
        })
    }

    /// Serves `container`'s gate on its socket (with `tcp`, on a port of that range instead)
    /// until its token is revoked or its container stops running (the body of the server
    /// process). `socket_uid`: the uid to hand the socket to (rootful). Returns at once when
    /// another server serves the task already.
    pub async fn serve_task_gate(
        &self,
        container: &str,
        socket_uid: Option<u32>,
        tcp: Option<TcpListen>,
    ) -> Result<(), ExecutorError> {
        let dir = self.gate_socket_dir(container);
        let Some(_lock) = wait_for_lock(&dir).await? else {
            return Ok(());
        };
        let front = terok_gate::front(
            self.mirror_store(),
            self.gate_tokens(),
            Some(container),
            terok_gate::GateLimits::default(),
        );
        let limits = terok_vault::listener::ListenerLimits::default();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let socket = dir.join(GateWiring::SOCKET_NAME);
        let port_file = dir.join(PORT_FILE);
        let serving = match tcp {
            None => tokio::spawn(terok_vault::listener::serve(
                bind(&dir, &socket, socket_uid)?,
                front.router,
                limits,
                stopped,
            )),
            Some(tcp) => {
                let listener = bind_tcp(&dir, &port_file, tcp)?;
                tokio::spawn(terok_vault::listener::serve(
                    listener,
                    front.router,
                    limits,
                    stopped,
                ))
            }
        };
        self.watch_task(container).await;
        let _ = stop.send(());
        let _ = serving.await;
        // A push under way is backed up and logged before the process ends.
        front.pushes.finished().await;
        let _ = fs_err::remove_file(&socket);
        let _ = fs_err::remove_file(&port_file);
        let _ = fs_err::remove_dir(&dir);
        Ok(())
    }

    /// Returns when `container`'s token is gone, or its container has stopped running (then
    /// revoking the token: nothing else would while the task is stopped).
    async fn watch_task(&self, container: &str) {
        let tokens = self.gate_tokens();
        let started = terok_core::time::unix_now();
        let mut seen_running = false;
        let mut polls = 0u32;
        loop {
            tokio::time::sleep(TOKEN_POLL).await;
            if !tokens.task_is_admitted(container).unwrap_or(true) {
                return;
            }
            polls += 1;
            if !polls.is_multiple_of(CONTAINER_POLL_EVERY) {
                continue;
            }
            let running = match self.runtime.inspect(container).await {
                Ok(Some(info)) => info.state.running,
                Ok(None) => false,
                // podman did not answer: ask again later rather than end a live task's gate.
                Err(_) => continue,
            };
            seen_running |= running;
            let waited = terok_core::time::unix_now() - started;
            if !running && (seen_running || waited >= SWEEP_GRACE_SECS) {
                let _ = tokens.revoke_task(container);
                return;
            }
        }
    }
}

/// Whether a server holds the lock of the task whose socket directory is `dir`.
fn server_holds_lock(dir: &Path) -> bool {
    let path = PathBuf::from(format!("{}{LOCK_SUFFIX}", dir.display()));
    match terok_core::secure_fs::open_lock_file(&path) {
        Ok(file) => file.try_lock().is_err(),
        Err(_) => false,
    }
}

/// Takes the lock of the task's server, waiting for one that is ending; `None` when a live
/// server keeps it (the task is served already).
async fn wait_for_lock(dir: &Path) -> Result<Option<std::fs::File>, ExecutorError> {
    let path = PathBuf::from(format!("{}{LOCK_SUFFIX}", dir.display()));
    let file = terok_core::secure_fs::open_lock_file(&path)?;
    let deadline = tokio::time::Instant::now() + START_LIMIT;
    loop {
        if file.try_lock().is_ok() {
            return Ok(Some(file));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the server in `dir` serves: its socket answers, or (with `tcp`) it wrote the port
/// it listens on — only after listening (a dead server's file was removed before this one
/// started). No connection is made: a bridge's address may not be up yet.
async fn answering(dir: &Path, tcp: Option<TcpListen>) -> Option<GateTransport> {
    match tcp {
        None => tokio::net::UnixStream::connect(dir.join(GateWiring::SOCKET_NAME))
            .await
            .ok()
            .map(|_| GateTransport::Socket(dir.to_path_buf())),
        Some(_) => {
            let text = fs_err::read_to_string(dir.join(PORT_FILE)).ok()?;
            text.trim().parse().ok().map(GateTransport::Tcp)
        }
    }
}

/// A TCP listener on a port of `tcp`'s range, its number written to `port_file` once it
/// listens (the lock is held: a file left there is a dead server's).
fn bind_tcp(
    dir: &Path,
    port_file: &Path,
    tcp: TcpListen,
) -> Result<tokio::net::TcpListener, ExecutorError> {
    terok_core::secure_fs::ensure_private_dir(dir)?;
    let _ = fs_err::remove_file(port_file);
    let listener = terok_vault::listener::bind_tcp(tcp.address, Some(tcp.ports()))
        .map_err(|detail| ExecutorError::GateListen { detail })?;
    let port = listener
        .local_addr()
        .map_err(ExecutorError::io("cannot read the gate listener's port"))?
        .port();
    terok_core::secure_fs::write_atomic(port_file, port.to_string().as_bytes(), 0o600)?;
    Ok(listener)
}

/// The task's socket, owner-only (handed to the container's `dev` when that is another uid).
fn bind(dir: &Path, socket: &Path, socket_uid: Option<u32>) -> Result<UnixListener, ExecutorError> {
    terok_core::secure_fs::ensure_private_dir(dir)?;
    // The lock is held: a socket left here is a dead server's.
    let _ = fs_err::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(ExecutorError::io(format!(
        "cannot listen on {}",
        socket.display()
    )))?;
    fs_err::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(ExecutorError::io("cannot make the gate socket private"))?;
    if let Some(uid) = socket_uid.filter(|&uid| uid != 0 && rustix::process::geteuid().is_root()) {
        for path in [dir, socket] {
            rustix::fs::chown(path, Some(rustix::fs::Uid::from_raw(uid)), None).map_err(|e| {
                ExecutorError::io("cannot hand the gate socket to the container's user")(e.into())
            })?;
        }
    }
    Ok(listener)
}
