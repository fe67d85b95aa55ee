//! terok-vault: the token broker (docs/compatibility.md#13; docs/decisions.md#3.3).
//!
//! Containers hold phantom tokens. The vault daemon gives each container its own Unix socket,
//! accepts on it only tokens minted for that container, swaps the token for the real credential
//! of the token's provider, and forwards the request to the provider's upstream — streaming the
//! answer back, relaying WebSockets, refreshing OAuth tokens on the host, and writing one audit
//! line per request. Real credentials never leave the host process.
//!
//! [`serve`] runs the daemon; [`control::call`] is how the executor talks to it.

// Test code writes its fixtures directly; shipped code writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod audit;
pub mod bundle;
pub mod control;
mod daemon;
pub mod listener;
mod memory;
pub mod paths;
pub mod policy;
pub mod proxy;
pub mod refresh;
pub mod rejections;
pub mod request;
pub mod sidecar;
mod signer;
pub mod ssh_agent;
mod state;
pub mod tls;
mod ws;

pub use bundle::{BUNDLE_VERSION, SidecarBundle};
pub use daemon::{
    LiveContainers, LiveContainersFuture, SWEEP_GRACE_SECS, VaultConfig, VaultError, listener_app,
    open_shared, serve,
};
pub use paths::VaultPaths;
pub use sidecar::{SidecarOptions, serve_sidecar};
pub use state::Shared;
