//! What a task's record keeps of its gate, and the gate's modes (a file of its own: the task
//! store needs these, and the gate service needs the task store).

use serde::{Deserialize, Serialize};

/// What the container's `origin` is when its git goes through the gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum GateMode {
    /// `origin` is the gate: pushes land in the mirror for a human to review and promote;
    /// nothing the agent does reaches the real remote.
    #[default]
    Gatekeeping,
    /// `origin` is the real remote (the shield permitting); the gate only seeds the clone.
    Online,
}

impl GateMode {
    /// `gatekeeping` or `online`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gatekeeping => "gatekeeping",
            Self::Online => "online",
        }
    }
}

/// A task's gate, as its record keeps it (so `start` can admit the task again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskGate {
    /// The mirror's name.
    pub repo: String,
    /// What the mirror mirrors: the git URL or the local repository.
    pub source: String,
    /// How the container uses it.
    pub mode: GateMode,
    /// The task's token. The container's git remote carries it, and a podman container's
    /// environment cannot change, so a restarted task is admitted with the same token.
    pub token: String,
}
