//! Why a container environment could not be assembled.

use std::path::PathBuf;

/// A container environment could not be assembled; nothing is launched.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ContainerEnvError {
    /// The wrapper template did not render (a bug or a roster value the template cannot carry).
    #[error("cannot render the agent wrappers: {0}")]
    Template(String),
    /// A host file could not be written or read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fs(#[from] terok_core::secure_fs::SecureFsError),
    /// A shared config patch could not be applied (the launch must not go on with a config
    /// that points past the vault).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Patch(#[from] terok_credentials::patch::PatchError),
    /// The agent is not in the roster.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Roster(#[from] terok_roster::RosterError),
    /// `--shared-mount` is not a usable mount point.
    #[error("--shared-mount must be an absolute path without ':' (got `{0}`)")]
    SharedMount(String),
    /// `--shared-dir` names a file.
    #[error("--shared-dir {} is a file, not a directory", .0.display())]
    SharedDirIsFile(PathBuf),
    /// A sub-agent definition is broken.
    #[error("sub-agent `{name}`: {detail}")]
    SubAgent {
        /// The sub-agent.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// Seeding or refreshing the clone cache failed.
    #[error("clone cache {}: {detail}", path.display())]
    CloneCache {
        /// The directory involved.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}
