//! What can go wrong in the ACP proxy, as typed conditions (the CLI says what to do about them).

use std::path::PathBuf;

use terok_podman::PodmanError;

/// An error of the proxy daemon or of one of its agents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcpError {
    /// podman failed.
    #[error(transparent)]
    Podman(#[from] PodmanError),
    /// The container does not exist.
    #[error("container {0} does not exist")]
    NoContainer(String),
    /// The container exists but does not run.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The container's image is gone, so its agents cannot be known.
    #[error("the image {image} of container {container} is gone")]
    NoImage {
        /// The container.
        container: String,
        /// Its image reference.
        image: String,
    },
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A private directory could not be made.
    #[error(transparent)]
    SecureFs(#[from] terok_core::secure_fs::SecureFsError),
    /// Another file than a socket is where the socket should be.
    #[error("{0} exists and is not a socket")]
    NotASocket(PathBuf),
    /// Starting or talking to an agent's ACP server failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

impl AcpError {
    /// An `Io` error with its context, for `map_err`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// An agent's ACP server did not start or did not answer as the protocol says (a failed probe
/// or bind).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The server could not be started.
    #[error("cannot start {agent}'s ACP server: {reason}")]
    Spawn {
        /// The agent.
        agent: String,
        /// Why.
        reason: String,
    },
    /// The server ended (closed its output) before answering.
    #[error("{agent}'s ACP server ended before it answered {method}")]
    Ended {
        /// The agent.
        agent: String,
        /// The request it did not answer.
        method: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("{agent}'s ACP server refused {method}: {message} (code {code})")]
    Refused {
        /// The agent.
        agent: String,
        /// The request.
        method: String,
        /// The JSON-RPC error code.
        code: i64,
        /// The error message.
        message: String,
    },
    /// The server did not answer in time.
    #[error("{agent}'s ACP server did not answer {method} within {secs} s")]
    Timeout {
        /// The agent.
        agent: String,
        /// The request.
        method: String,
        /// The limit.
        secs: u64,
    },
    /// The server's answer lacks what the protocol requires.
    #[error("{agent}'s ACP server answered {method} without {missing}")]
    Malformed {
        /// The agent.
        agent: String,
        /// The request.
        method: String,
        /// What was missing.
        missing: String,
    },
}
