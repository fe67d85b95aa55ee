//! terok-credentials: everything about real credentials on the host, and the phantom tokens that
//! stand in for them in containers.
//!
//! - [`CredentialDb`]: SQLite with secret columns sealed by XChaCha20-Poly1305 ([`seal`]), the
//!   data key from a provider chain ([`key`]); phantom-token hashes bound to their container.
//! - [`vendor`]: the vendors' own credential files (read after a login, written as phantoms).
//! - [`auth`]: `auth <agent>` — API keys and OAuth logins in an auth container.
//! - [`routes`]: routes.json for the vault, from the roster.
//! - [`patch`]: pointing agents' own config files at the vault, reversibly.
//! - [`leak`]: finding real credentials left in shared mounts.

// Test code writes its fixtures directly; shipped code writes through terok_core::secure_fs.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod auth;
pub mod credential;
pub mod db;
pub mod key;
pub mod key_cache;
mod keyring_store;
pub mod leak;
pub mod patch;
pub mod routes;
pub mod seal;
pub mod sealed_key;
pub mod ssh;
pub mod ssh_store;
pub mod token;
pub mod vendor;

pub use credential::{Credential, Secret};
pub use db::{CredentialDb, CredentialSummary, DbError, LOCK_WAIT, TokenRecord};
pub use key::{KeyOptions, KeySource, resolve_key};
pub use token::{TOKEN_PREFIX, is_phantom_token, new_token, token_hash};

/// The credential set used unless told otherwise.
pub const DEFAULT_SET: &str = "default";
