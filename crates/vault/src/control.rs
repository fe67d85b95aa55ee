//! The control protocol between the executor and the vault daemon: one JSON request and one
//! JSON response per line over the 0600 control socket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use terok_credentials::routes::RouteTable;

use crate::rejections::Rejection;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Opens `container`'s socket listener and mints a token per provider bound to it.
    Open {
        /// Container name (the token's subject).
        container: String,
        /// Providers to mint tokens for.
        providers: Vec<String>,
        /// Token scope.
        scope: String,
        /// Uid that must be able to connect to the socket (the container's `dev` on the host).
        uid: Option<u32>,
        /// Mint tokens only for providers that have a stored credential (the runner asks for
        /// every routed provider and learns which ones are usable).
        #[serde(default)]
        stored_only: bool,
        /// The scope whose SSH keys the container may use (its agent's name): with keys
        /// stored for it, the container gets an SSH signer socket and an `ssh` token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ssh_scope: Option<String>,
    },
    /// Like `Open`, but a TCP listener (TCP mode, other engines, benchmarks): on `bind`
    /// (default 127.0.0.1), on a port of `ports` (default: any free one). Its tokens are bound
    /// to it as a socket's are.
    OpenTcp {
        /// Container name.
        container: String,
        /// Providers.
        providers: Vec<String>,
        /// Token scope.
        scope: String,
        /// The address to listen on: one the engine's containers reach.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bind: Option<std::net::IpAddr>,
        /// The ports to choose from, first to last (`network.port_range_*`, `vault.port`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ports: Option<PortRange>,
    },
    /// Closes `container`'s listener and revokes its tokens.
    Close {
        /// Container name.
        container: String,
    },
    /// Revokes the tokens (and closes the listeners) of containers not in `live`.
    Sweep {
        /// Containers that run.
        live: Vec<String>,
        /// Spare tokens younger than this many seconds (default
        /// [`crate::SWEEP_GRACE_SECS`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_secs: Option<i64>,
    },
    /// Rereads routes.json.
    Reload,
    /// Reports the route table the daemon serves.
    Routes,
    /// Reports upstreams refusing stored credentials: the current runs of refusals of
    /// `container`, or of every container.
    Rejections {
        /// The container, or `None` for all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
    },
    /// Reports the daemon's state.
    Status,
    /// Stops the daemon.
    Stop,
}

/// What an `Open` produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    /// The directory to mount at `/run/terok/vault` (socket listeners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_dir: Option<PathBuf>,
    /// The TCP port (TCP listeners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The address the TCP listener is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<std::net::IpAddr>,
    /// Provider → phantom token.
    pub tokens: BTreeMap<String, String>,
    /// Provider → kind of the stored credential (`api_key`, `oauth`, …) for every token minted
    /// against a stored credential; decides which env variables and file formats the container
    /// gets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, String>,
    /// The fingerprint of the route table the daemon serves (`routes_hash`), so the opener
    /// knows whether the roster's routes are the served ones.
    #[serde(default)]
    pub routes_hash: String,
}

/// Ports to listen on, `start` to `end` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// The first port tried.
    pub start: u16,
    /// The last port tried.
    pub end: u16,
}

/// The route table a daemon serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedRoutes {
    /// Its fingerprint.
    pub hash: String,
    /// The routes, by provider.
    pub routes: RouteTable,
}

/// The daemon's state as `Status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// Daemon process id.
    pub pid: u32,
    /// Containers with an open listener.
    pub listeners: Vec<String>,
    /// Number of routes loaded.
    pub routes: usize,
    /// The fingerprint of the served route table.
    #[serde(default)]
    pub routes_hash: String,
    /// The last refusal of each provider's credential by its upstream.
    #[serde(default)]
    pub rejected: Vec<Rejection>,
    /// The database path.
    pub db: PathBuf,
    /// Where the data key came from.
    pub key_source: String,
}

/// A response from the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ControlResponse {
    /// Done, nothing to report.
    Ok,
    /// A listener was opened.
    Opened(Opened),
    /// Tokens were revoked for these containers (`revoked` tokens in all).
    Revoked {
        /// Containers affected.
        containers: Vec<String>,
        /// Number of tokens revoked.
        tokens: usize,
    },
    /// The daemon's state.
    Status(DaemonStatus),
    /// The served routes.
    Routes(ServedRoutes),
    /// Runs of refusals.
    Rejections {
        /// One per (container, provider).
        rejections: Vec<Rejection>,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}

/// A control-socket call failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ControlError {
    /// Nothing listens on the control socket.
    #[error("the vault is not running (no answer on {})", path.display())]
    NotRunning {
        /// The control socket.
        path: PathBuf,
    },
    /// The daemon answered with an error.
    #[error("the vault refused: {0}")]
    Refused(String),
    /// The exchange broke.
    #[error("talking to the vault on {}: {detail}", path.display())]
    Protocol {
        /// The control socket.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// How long a control call may take before the daemon counts as not answering.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends `request` to the daemon listening on `socket` and returns its response; a daemon
/// that does not answer within [`CALL_TIMEOUT`] is an error, not a hang.
pub async fn call(
    socket: &Path,
    request: &ControlRequest,
) -> Result<ControlResponse, ControlError> {
    call_within(socket, request, CALL_TIMEOUT).await
}

/// [`call`] with a deadline of its own.
pub async fn call_within(
    socket: &Path,
    request: &ControlRequest,
    deadline: std::time::Duration,
) -> Result<ControlResponse, ControlError> {
    match tokio::time::timeout(deadline, exchange(socket, request)).await {
        Ok(answer) => answer,
        Err(_) => Err(ControlError::Protocol {
            path: socket.to_path_buf(),
            detail: format!("no answer within {} ms", deadline.as_millis()),
        }),
    }
}

async fn exchange(
    socket: &Path,
    request: &ControlRequest,
) -> Result<ControlResponse, ControlError> {
    let protocol = |detail: String| ControlError::Protocol {
        path: socket.to_path_buf(),
        detail,
    };
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|_| ControlError::NotRunning {
            path: socket.to_path_buf(),
        })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request).map_err(|e| protocol(e.to_string()))?;
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|e| protocol(e.to_string()))?;
    let mut reader = BufReader::new(read);
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .await
        .map_err(|e| protocol(e.to_string()))?;
    if answer.is_empty() {
        return Err(protocol("the daemon closed the connection".to_owned()));
    }
    let response: ControlResponse =
        serde_json::from_str(&answer).map_err(|e| protocol(e.to_string()))?;
    match response {
        ControlResponse::Error { message } => Err(ControlError::Refused(message)),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every answer survives the wire (an internally tagged enum cannot carry a bare sequence,
    /// and serde only says so at run time).
    #[test]
    fn every_response_round_trips() {
        let rejection = Rejection {
            container: "c".into(),
            provider: "claude".into(),
            status: 401,
            error_type: Some("authentication_error".into()),
            count: 2,
            first_unix: 1,
            last_unix: 2,
        };
        let responses = [
            ControlResponse::Ok,
            ControlResponse::Opened(Opened {
                socket_dir: Some("/run/x".into()),
                port: None,
                address: None,
                tokens: BTreeMap::from([("claude".into(), "terok-p-1".into())]),
                kinds: BTreeMap::new(),
                routes_hash: "abc".into(),
            }),
            ControlResponse::Revoked {
                containers: vec!["c".into()],
                tokens: 1,
            },
            ControlResponse::Status(DaemonStatus {
                pid: 1,
                listeners: vec!["c".into()],
                routes: 1,
                routes_hash: "abc".into(),
                rejected: vec![rejection.clone()],
                db: "/db".into(),
                key_source: "file".into(),
            }),
            ControlResponse::Routes(ServedRoutes {
                hash: "abc".into(),
                routes: RouteTable::new(),
            }),
            ControlResponse::Rejections {
                rejections: vec![rejection],
            },
            ControlResponse::Error {
                message: "no".into(),
            },
        ];
        for response in responses {
            let text = serde_json::to_string(&response).unwrap();
            assert_eq!(
                serde_json::from_str::<ControlResponse>(&text).unwrap(),
                response
            );
        }
    }
}
