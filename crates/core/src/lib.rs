//! terok-core: the facts every terok crate shares — where things live on the host, what the
//! layered `config.yml` says, how sensitive files are written, and which timezone the host uses.
//!
//! Nothing here talks to podman, the network or the terminal. Everything that reads the process
//! environment goes through [`HostEnv`], so callers (and tests) can resolve paths for an
//! environment that is not the current process's.

// Test code writes its fixtures directly; shipped code writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod config;
pub mod env;
pub mod limits;
pub mod merge;
pub mod paths;
pub mod secure_fs;
pub mod setup_stamp;
pub mod subids;
pub mod text;
pub mod time;
pub mod timezone;
pub mod yaml;

pub use config::{ConfigSource, LoadedConfig, TerokConfig};
pub use env::HostEnv;
pub use paths::TerokPaths;
