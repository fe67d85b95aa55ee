//! terok-gate: a host-side git mirror between the agent and the real remote. The container's
//! `origin` is the gate; what the agent pushes lands in the mirror, for a human to review and
//! promote, and never reaches the remote by itself.
//!
//! - [`MirrorStore`]: the mirrors under the state directory (the source's branches and tags
//!   fetched into a bare repository, or an empty one for a project without a remote), with
//!   every tip a fetch or a push would drop kept under `refs/terok/backup/`.
//! - [`TokenStore`]: per-task tokens (`terok-g-` and 128 random bits), each bound to one
//!   repository, revoked when the task ends.
//! - [`front`]: the HTTP front to `git http-backend`: only the smart-protocol routes of a
//!   repository, HTTP Basic with the token as user name, repository hooks never run, request
//!   bodies bounded in size and time, pushes to the agent's own branches only.

// Test code writes its fixtures directly; shipped code writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods, clippy::unwrap_used))]

mod error;
mod git;
mod mirror;
mod server;
mod spool;
mod tokens;

pub use error::GateError;
pub use git::request_limits_available;
pub use mirror::{BACKUP_PREFIX, Backup, Mirror, MirrorStore, Push, Synced, repo_name};
pub use server::{
    GateFront, GateLimits, MAX_BRANCHES_PER_TASK, MAX_GIT_RUNS, PushesInFlight, REALM, front,
    router,
};
pub use spool::{MAX_BODY_BYTES, MAX_REFS_PER_PUSH};
pub use tokens::{TOKEN_PREFIX, TokenGrant, TokenStore, is_gate_token};
