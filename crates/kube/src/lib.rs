//! terok-kube: a task as Kubernetes objects (`run --emit kube`).
//!
//! [`TaskPod`] says what a task is — the agent's image, command and environment, its vault
//! sidecar and the bundle that sidecar serves, the files and directories the agent expects,
//! the repository to clone and where its traffic may go — and [`Manifests::of`] turns it into
//! the Pod, the ConfigMap of its files, the Secret of the sidecar's bundle and the egress
//! NetworkPolicy, as `k8s-openapi` types (so the YAML has the API's shape by construction).
//!
//! What the Pod is, and why (docs/scale.md §4):
//! - an init container (the agent's image) copies the task's files out of the ConfigMap and
//!   clones the repository into the `workspace` emptyDir;
//! - the agent's container runs as the image's unprivileged `dev`, with no privilege
//!   escalation, every capability dropped, the runtime's seccomp profile, and no service
//!   account token; it reaches the vault through a socket in the `vault` emptyDir and writes
//!   its end file into `pod` when its command ends;
//! - the vault sidecar alone mounts the Secret; its root file system is read-only, its state
//!   is in a memory-backed emptyDir, and it stops when the end file appears, so the Pod
//!   completes.

mod pod;
mod policy;
mod render;

use std::collections::BTreeMap;

pub use k8s_openapi;
pub use pod::{
    AGENT_CONTAINER, BUNDLE_DIR, BUNDLE_FILE, CLONE_CONTAINER, END_FILE, FILES_DIR, POD_DIR,
    VAULT_CONTAINER, VAULT_SOCKET_DIR, VAULT_STATE_DIR,
};
pub use policy::{Destination, Egress, NAMES_ANNOTATION};
pub use render::{KubeError, Manifests};

/// The label every object of a task carries with the Pod's name; the NetworkPolicy selects
/// the Pod by it alone, so it never selects another Pod of the namespace.
pub const POD_LABEL: &str = "terok.dev/pod";

/// The uid and gid of the images' `dev` (what every container of the Pod runs as).
pub const DEV_ID: i64 = 1000;

/// One task, as the Pod needs it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskPod {
    /// The Pod's name (and the prefix of its other objects' names).
    pub name: String,
    /// Labels of every object (the Pod's also select it in the NetworkPolicy).
    pub labels: BTreeMap<String, String>,
    /// The agent's container.
    pub agent: AgentContainer,
    /// The vault sidecar.
    pub vault: VaultSidecar,
    /// What the init container clones into `/workspace` (none: it stays empty).
    pub clone: Option<CloneSource>,
    /// Files the agent expects, copied into place by the init container.
    pub files: Vec<TaskFile>,
    /// Writable directories the agent expects (its config directories): empty at start.
    pub scratch_dirs: Vec<String>,
    /// Where the Pod's traffic may go.
    pub egress: Egress,
    /// Seconds after which the cluster ends the Pod.
    pub deadline_secs: Option<i64>,
}

/// The agent's container.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentContainer {
    /// The L1 image.
    pub image: String,
    /// What it runs (through `bash -lc`).
    pub shell_command: String,
    /// Its environment, in order (phantom tokens only: never a real credential).
    pub env: Vec<(String, String)>,
}

/// The vault sidecar.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct VaultSidecar {
    /// An image with the executor's binary.
    pub image: String,
    /// The program and arguments before `--bundle …` (`terok-executor vault serve --sidecar`).
    pub command: Vec<String>,
    /// The bundle the Secret holds (the real credentials): JSON.
    pub bundle: Vec<u8>,
}

/// A repository the init container clones.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloneSource {
    /// The URL.
    pub url: String,
    /// The branch, when not the default.
    pub branch: Option<String>,
}

/// A file the agent expects at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskFile {
    /// Where, in the agent's container (inside one of the scratch directories).
    pub path: String,
    /// What it holds.
    pub content: Vec<u8>,
    /// Its permission bits.
    pub mode: u32,
}

impl TaskPod {
    /// A task named `name` with nothing but its two containers.
    pub fn new(name: &str, agent: AgentContainer, vault: VaultSidecar) -> Self {
        Self {
            name: name.to_owned(),
            labels: BTreeMap::new(),
            agent,
            vault,
            clone: None,
            files: Vec::new(),
            scratch_dirs: Vec::new(),
            egress: Egress::default(),
            deadline_secs: None,
        }
    }
}

impl AgentContainer {
    /// The agent's container from its image, command and environment.
    pub fn new(image: &str, shell_command: &str, env: Vec<(String, String)>) -> Self {
        Self {
            image: image.to_owned(),
            shell_command: shell_command.to_owned(),
            env,
        }
    }
}

impl std::fmt::Debug for VaultSidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSidecar")
            .field("image", &self.image)
            .field("command", &self.command)
            .field(
                "bundle",
                &format_args!("<{} bytes, redacted>", self.bundle.len()),
            )
            .finish()
    }
}

impl VaultSidecar {
    /// The sidecar from its image, command and bundle.
    pub fn new(image: &str, command: Vec<String>, bundle: Vec<u8>) -> Self {
        Self {
            image: image.to_owned(),
            command,
            bundle,
        }
    }
}

impl CloneSource {
    /// `url` at `branch` (the default branch when `None`).
    pub fn new(url: &str, branch: Option<&str>) -> Self {
        Self {
            url: url.to_owned(),
            branch: branch.map(str::to_owned),
        }
    }
}

impl TaskFile {
    /// `content` at `path` with `mode`.
    pub fn new(path: &str, content: Vec<u8>, mode: u32) -> Self {
        Self {
            path: path.to_owned(),
            content,
            mode,
        }
    }
}
