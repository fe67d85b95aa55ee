//! The egress firewall: allow-list profiles ([`profile`]), the policy a task gets from them
//! ([`Policy`]), the nftables ruleset that enforces it in a container's network namespace
//! ([`ruleset`]), the task's shield directory ([`ShieldDir`]), the OCI hook that loads the
//! ruleset before the container's first process runs and fails closed ([`hook`]), the podman
//! arguments a launch adds ([`container_args`]), and live changes and reads ([`live`]).

// Unit tests write their fixtures directly; the library writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods, clippy::unwrap_used))]

pub mod error;
pub mod forwarder;
pub mod hook;
mod launch;
pub mod live;
pub mod profile;
mod ruleset;
mod state;
pub mod tools;

pub use error::ShieldError;
pub use launch::{ContainerArgs, Settings, container_args, state_from_profiles};
pub use profile::{Destination, Network, Profile};
pub use ruleset::{
    BLOCKED_V4, BLOCKED_V6, DENIAL_MEMORY_SECS, Policy, TABLE, add_resolvers, is_blocked, ruleset,
    verify_listing,
};
pub use state::{ShieldDir, ShieldState};
