//! What can go wrong when talking to podman.

/// A podman operation that failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PodmanError {
    /// The podman binary is not installed (or not on PATH).
    #[error("podman is not installed (cannot run `{program}`)")]
    #[diagnostic(help(
        "install it: `apt-get install podman runc` (Debian/Ubuntu), `dnf install podman` (Fedora); \
         see https://podman.io/docs/installation"
    ))]
    NotInstalled {
        /// The program that was looked for.
        program: String,
    },
    /// podman ran and reported a failure.
    #[error("`podman {command}` failed ({status}): {stderr}")]
    Failed {
        /// The podman subcommand and its arguments (never environment values).
        command: String,
        /// Exit status.
        status: String,
        /// What podman printed on stderr.
        stderr: String,
    },
    /// podman's output could not be understood.
    #[error("cannot understand the output of `podman {command}`: {detail}")]
    Output {
        /// The subcommand.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// The container is not running (so it has no network namespace to enter).
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The operation needs the container's host (its network namespace), which a remote
    /// connection does not give.
    #[error("{0} needs podman on this host, not a remote connection")]
    NeedsLocal(String),
    /// A spec was rejected before podman ran.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// Local I/O failed (env file, pipes).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}
