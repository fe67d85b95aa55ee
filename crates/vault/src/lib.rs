//! terok-vault: the token broker (sandbox.md §2.2, §3; decisions.md §3 item 3).
//!
//! Containers hold phantom tokens. The vault daemon gives each container its own Unix socket,
//! accepts on it only tokens minted for that container, swaps the token for the real credential
//! of the token's provider, and forwards the request to the provider's upstream — streaming the
//! answer back, relaying WebSockets, refreshing OAuth tokens on the host, and writing one audit
//! line per request. Real credentials never leave the host process.
//!
//! [`serve`] runs the daemon; [`control::call`] is how the executor talks to it.

pub mod audit;
pub mod control;
mod daemon;
pub mod paths;
pub mod proxy;
pub mod refresh;
mod state;
pub mod tls;
mod ws;

pub use daemon::{
    LiveContainers, SWEEP_GRACE_SECS, VaultConfig, VaultError, open_shared, router, serve,
};
pub use paths::VaultPaths;
pub use state::Shared;
