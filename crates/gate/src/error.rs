//! What can go wrong in the gate.

use std::path::PathBuf;

/// An error of the git gate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// A git command failed.
    #[error("`git {command}` failed: {stderr}")]
    Git {
        /// The subcommand and its arguments (no credentials: URLs are shown without them).
        command: String,
        /// What git said.
        stderr: String,
    },
    /// git could not be run.
    #[error("cannot run git: {0}")]
    NoGit(std::io::Error),
    /// A file of the gate's state cannot be read or written.
    #[error("{}: {detail}", path.display())]
    State {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The OS random source failed.
    #[error("cannot draw a random token")]
    Rng,
    /// Another push or sync held the mirror's lock for longer than one waits.
    #[error("the mirror {} is busy with another push or sync", .0.display())]
    Busy(PathBuf),
    /// A repository name the gate does not serve.
    #[error("no gate repository `{0}`")]
    UnknownRepo(String),
}
