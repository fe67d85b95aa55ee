//! terok-container-env: what a task container gets (docs/compatibility.md#9, §10).
//!
//! - [`assemble_container_env`]: [`ContainerEnvSpec`] → [`ContainerEnv`] — the environment in the
//!   Python terok-executor's order, the mounts in order (workspace, shared config dirs, read-only
//!   phantom credential overlays, agent config, shared dir, the vault socket dir), the shared
//!   config patches applied.
//! - [`prepare_agent_config`]: the per-task `/home/dev/.terok` (wrapper functions for every
//!   agent, instructions, Claude sub-agents, prompt, vault variables) and the host-side edits
//!   (Claude's SessionStart hook, OpenCode's instructions list).
//! - [`clone_cache`]: seeding a git-URL task's workspace from the last clone.
//!
//! The vault is wired by value ([`VaultWiring`]: the socket directory or TCP port and the tokens
//! the daemon handed out), so this crate needs neither the daemon nor podman:
//!
//! ```
//! use terok_container_env::{ContainerEnvSpec, Workspace, assemble_container_env};
//! let roster = terok_roster::RosterLoader::bundled().load().unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! let mut spec = ContainerEnvSpec::new("0123456789ab", "claude", dir.path().join("task"), dir.path().join("mounts"));
//! spec.workspace = Workspace::Host(dir.path().to_path_buf());
//! let assembled = assemble_container_env(&roster, &spec).unwrap();
//! assert_eq!(assembled.env[0], ("TASK_ID".to_owned(), "0123456789ab".to_owned()));
//! assert_eq!(assembled.volumes[0].container, "/workspace");
//! ```

// Test code writes its fixtures directly; shipped code writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod agent_config;
mod assemble;
pub mod clone_cache;
pub mod copy;
mod error;
mod shared_configs;
mod spec;
mod wrappers;

pub use agent_config::{
    AgentConfigSpec, NEUTRAL_INSTRUCTIONS, PreparedAgentConfig, prepare_agent_config,
    subagents_json, write_vault_env,
};
pub use assemble::{
    assemble_container_env, assemble_tool_env, vault_env, vault_env_file, write_phantom_files,
    write_task_credentials,
};
pub use error::ContainerEnvError;
pub use shared_configs::{Edited, edit_shared_configs, ensure_opencode_config, merge_session_hook};
pub use spec::{
    AGENT_CONFIG_MOUNT, CONTAINER_PROTOCOL, ContainerEnv, ContainerEnvSpec, DEFAULT_SHARED_MOUNT,
    GateTransport, GateWiring, GitIdentityOverride, Relabel, TaskLayout, VAULT_TCP_HOST,
    VAULT_TCP_SOCKET, VaultTransport, VaultWiring, Volume, WORKSPACE, Workspace,
};
pub use wrappers::render_wrappers;
