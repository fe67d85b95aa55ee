//! The executor's side of the vault: opening a container's listener (which mints its phantom
//! tokens) before the container exists, and closing it (which revokes them) when it is done.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use terok_container_env::{VaultTransport, VaultWiring};
use terok_vault::control::{
    ControlError, ControlRequest, ControlResponse, DaemonStatus, Opened, ServedRoutes, call,
};
use terok_vault::paths::{CONTAINER_SOCKET_DIR, LOOPBACK_PORT, SOCKET_NAME};
use terok_vault::rejections::Rejection;

use crate::listen::TcpListen;

/// Token scope of standalone launches.
pub const STANDALONE_SCOPE: &str = "standalone";

/// A container's listener as the daemon opened it: what the container is wired with, and the
/// fingerprint of the routes the daemon serves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenListener {
    /// Socket directory and phantom tokens.
    pub wiring: VaultWiring,
    /// The fingerprint of the served route table.
    pub routes_hash: String,
}

/// Talks to the vault daemon over its control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultClient {
    control: PathBuf,
}

impl VaultClient {
    /// A client for the daemon listening on `control` (`VaultPaths::control_socket`).
    pub fn new(control: impl Into<PathBuf>) -> Self {
        Self {
            control: control.into(),
        }
    }

    /// The control socket this client talks to.
    pub fn control_socket(&self) -> &std::path::Path {
        &self.control
    }

    /// Whether the daemon answers.
    pub async fn is_running(&self) -> bool {
        self.status().await.is_some()
    }

    /// The daemon's state, or `None` when it does not answer.
    pub async fn status(&self) -> Option<DaemonStatus> {
        match call(&self.control, &ControlRequest::Status).await {
            Ok(ControlResponse::Status(status)) => Some(status),
            _ => None,
        }
    }

    /// Asks the daemon to reread routes.json; `Ok(false)` when it does not run.
    pub async fn reload(&self) -> Result<bool, ControlError> {
        match call(&self.control, &ControlRequest::Reload).await {
            Ok(_) => Ok(true),
            Err(ControlError::NotRunning { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The current runs of upstream refusals of stored credentials, of `container` or of every
    /// container; empty when the daemon does not run.
    pub async fn rejections(
        &self,
        container: Option<&str>,
    ) -> Result<Vec<Rejection>, ControlError> {
        let request = ControlRequest::Rejections {
            container: container.map(str::to_owned),
        };
        match call(&self.control, &request).await {
            Ok(ControlResponse::Rejections { rejections }) => Ok(rejections),
            Ok(other) => Err(self.unexpected("rejections", &other)),
            Err(ControlError::NotRunning { .. }) => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    /// Asks the daemon to stop (it answers before it goes).
    pub async fn stop(&self) -> Result<(), ControlError> {
        call(&self.control, &ControlRequest::Stop).await.map(|_| ())
    }

    /// Revokes the tokens of containers not in `live` (sparing those minted in the last
    /// `grace_secs`); returns the containers affected.
    pub async fn sweep(
        &self,
        live: Vec<String>,
        grace_secs: i64,
    ) -> Result<Vec<String>, ControlError> {
        let request = ControlRequest::Sweep {
            live,
            grace_secs: Some(grace_secs),
        };
        match call(&self.control, &request).await? {
            ControlResponse::Revoked { containers, .. } => Ok(containers),
            other => Err(self.unexpected("sweep", &other)),
        }
    }

    fn unexpected(&self, what: &str, answer: &ControlResponse) -> ControlError {
        ControlError::Protocol {
            path: self.control.clone(),
            detail: format!("unexpected answer to {what}: {answer:?}"),
        }
    }

    /// The route table the daemon serves; `Ok(None)` when it does not run.
    pub async fn served_routes(&self) -> Result<Option<ServedRoutes>, ControlError> {
        match call(&self.control, &ControlRequest::Routes).await {
            Ok(ControlResponse::Routes(served)) => Ok(Some(served)),
            Ok(other) => Err(self.unexpected("routes", &other)),
            Err(ControlError::NotRunning { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Opens `container`'s socket listener and mints a token for every provider in `providers`
    /// that has a stored credential. `Ok(None)` when the daemon does not run.
    /// `socket_uid` is the host uid of the container's `dev` when it is not the daemon's own
    /// user (rootful), so the socket can be handed to it.
    /// With `ssh_scope` (the task's agent) and SSH keys stored for it, the container also
    /// gets an SSH signer socket and its token (as provider `ssh`).
    pub async fn open(
        &self,
        container: &str,
        providers: Vec<String>,
        socket_uid: Option<u32>,
        ssh_scope: Option<&str>,
    ) -> Result<Option<OpenListener>, ControlError> {
        let request = ControlRequest::Open {
            container: container.to_owned(),
            providers,
            scope: STANDALONE_SCOPE.to_owned(),
            uid: socket_uid,
            stored_only: true,
            ssh_scope: ssh_scope.map(str::to_owned),
        };
        match call(&self.control, &request).await {
            Ok(ControlResponse::Opened(opened)) => {
                let host_socket_dir =
                    opened
                        .socket_dir
                        .clone()
                        .ok_or_else(|| ControlError::Protocol {
                            path: self.control.clone(),
                            detail: "the daemon opened no socket directory".to_owned(),
                        })?;
                let transport = VaultTransport::Socket {
                    host_socket_dir,
                    container_socket_dir: CONTAINER_SOCKET_DIR.to_owned(),
                    socket_name: SOCKET_NAME.to_owned(),
                    loopback_port: LOOPBACK_PORT,
                };
                Ok(Some(listener(transport, opened)))
            }
            Ok(other) => Err(self.unexpected("open", &other)),
            Err(ControlError::NotRunning { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Opens `container`'s TCP listener where `listen` says, and mints a token for
    /// every provider in `providers` that has a stored credential (`services.mode: tcp`).
    /// Returns the listener and the port it took; `Ok(None)` when the daemon does not run.
    pub async fn open_tcp(
        &self,
        container: &str,
        providers: Vec<String>,
        listen: TcpListen,
    ) -> Result<Option<(OpenListener, u16)>, ControlError> {
        let request = ControlRequest::OpenTcp {
            container: container.to_owned(),
            providers,
            scope: STANDALONE_SCOPE.to_owned(),
            bind: Some(listen.address),
            ports: Some(listen.ports()),
        };
        match call(&self.control, &request).await {
            Ok(ControlResponse::Opened(opened)) => {
                let port = opened.port.ok_or_else(|| ControlError::Protocol {
                    path: self.control.clone(),
                    detail: "the daemon opened no TCP port".to_owned(),
                })?;
                Ok(Some((listener(VaultTransport::Tcp { port }, opened), port)))
            }
            Ok(other) => Err(self.unexpected("open", &other)),
            Err(ControlError::NotRunning { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Closes `container`'s listener and revokes its tokens; returns how many were revoked
    /// (an error of kind [`ControlError::NotRunning`] when the daemon does not run).
    pub async fn close(&self, container: &str) -> Result<usize, ControlError> {
        match call(
            &self.control,
            &ControlRequest::Close {
                container: container.to_owned(),
            },
        )
        .await?
        {
            ControlResponse::Revoked { tokens, .. } => Ok(tokens),
            _ => Ok(0),
        }
    }
}

/// What the container is wired with, from what the daemon opened.
fn listener(transport: VaultTransport, opened: Opened) -> OpenListener {
    OpenListener {
        wiring: VaultWiring {
            transport,
            tokens: opened.tokens,
            kinds: opened.kinds,
        },
        routes_hash: opened.routes_hash,
    }
}

/// The program and arguments that serve one of the session's background services in the
/// foreground: for the `terok-executor` binary, `terok-executor [--config F] vault serve` (the
/// vault) or `terok-executor [--config F] gate serve-task` (a task's gate, the container name
/// appended); for a binary that mounts the command tree under a verb of its own, that binary
/// with its own path to the verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeCommand {
    program: PathBuf,
    args: Vec<OsString>,
}

/// The command that serves the vault.
pub type VaultLauncher = ServeCommand;

impl ServeCommand {
    /// `program` with `args`.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// The program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Its arguments.
    pub fn args(&self) -> &[OsString] {
        &self.args
    }
}
