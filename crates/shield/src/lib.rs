//! The egress firewall's policy, as data and as an nftables ruleset: allow-list profiles
//! ([`profile`]), the policy a task gets from them ([`Policy`]), the ruleset that enforces it in
//! a container's network namespace ([`ruleset`]), and the check that what the kernel holds is
//! that ruleset ([`verify_listing`]). Loading it into a container comes with the launch.

// Unit tests write their fixtures directly; the library writes nothing.
#![cfg_attr(test, allow(clippy::disallowed_methods, clippy::unwrap_used))]

pub mod error;
pub mod profile;
mod ruleset;

pub use error::ShieldError;
pub use profile::{Destination, Network, Profile};
pub use ruleset::{BLOCKED_V4, BLOCKED_V6, Policy, TABLE, ruleset, verify_listing};
