//! Why a launch or a lifecycle operation failed.

use std::path::PathBuf;

/// A launch or lifecycle operation failed. Nothing is left half-done: a failed launch removes
/// its task directory and revokes its tokens.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExecutorError {
    /// The repository argument is neither an existing directory nor a git URL.
    #[error("Local path not found: {0}")]
    #[diagnostic(help(
        "give an existing directory, or a git URL such as https://host/org/repo.git"
    ))]
    LocalPathNotFound(String),
    /// `--workspace` names something that is not a directory.
    #[error("--workspace {} is not a directory", .0.display())]
    WorkspaceNotADirectory(PathBuf),
    /// The agent is not in the selected images.
    #[error("{agent} is not installed in the image (the image selection is: {selection})")]
    #[diagnostic(help(
        "add it: `terok-executor agents set all` or `terok-executor build --agents {agent}`"
    ))]
    AgentNotInImage {
        /// The agent.
        agent: String,
        /// The selection the image was built with.
        selection: String,
    },
    /// The flags contradict each other.
    #[error("{0}")]
    InvalidOptions(String),
    /// The vault is needed but does not run.
    #[error("the vault is not running, and this launch requires it")]
    #[diagnostic(help("start it with `terok-executor vault start`"))]
    VaultRequired,
    /// The vault refused or broke.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Vault(#[from] terok_vault::control::ControlError),
    /// No such task or container.
    #[error("Container not found: {0}")]
    #[diagnostic(help("`terok-executor list` shows the tasks"))]
    TaskNotFound(String),
    /// The container runs already (for `start`).
    #[error("{0} is already running")]
    AlreadyRunning(String),
    /// The roster has no such agent.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Roster(#[from] terok_roster::RosterError),
    /// Images could not be built.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Images(#[from] terok_image_build::ImageBuildError),
    /// The container environment could not be assembled.
    #[error(transparent)]
    #[diagnostic(transparent)]
    ContainerEnv(#[from] terok_container_env::ContainerEnvError),
    /// Podman failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Podman(#[from] terok_podman::PodmanError),
    /// A host file operation failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Fs(#[from] terok_core::secure_fs::SecureFsError),
    /// A task record could not be read or written.
    #[error("task record {}: {detail}", path.display())]
    TaskRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// podman could not create or start the container (its messages were in the output).
    #[error("podman could not start {name} (exit status {code}); see podman's message above")]
    LaunchFailed {
        /// Container name.
        name: String,
        /// podman's exit status.
        code: i32,
    },
    /// The OS random number generator failed.
    #[error("cannot draw a random task id")]
    Rng,
}
