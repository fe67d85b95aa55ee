//! The control protocol between the executor and the vault daemon: one JSON request and one
//! JSON response per line over the 0600 control socket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
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
    },
    /// Like `Open`, but a TCP listener on 127.0.0.1 (TCP mode and benchmarks).
    OpenTcp {
        /// Container name.
        container: String,
        /// Providers.
        providers: Vec<String>,
        /// Token scope.
        scope: String,
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
    /// Provider → phantom token.
    pub tokens: BTreeMap<String, String>,
    /// Provider → kind of the stored credential (`api_key`, `oauth`, …) for every token minted
    /// against a stored credential; decides which env variables and file formats the container
    /// gets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, String>,
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
    #[diagnostic(help("start it with `terok-executor vault start`"))]
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

/// Sends `request` to the daemon listening on `socket` and returns its response.
pub async fn call(
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
