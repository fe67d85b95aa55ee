//! A vault sidecar's bundle: one task's routes, real credentials and token hashes, as the
//! executor writes them into the task's Kubernetes Secret and the sidecar reads them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use terok_credentials::Credential;
use terok_credentials::routes::RouteTable;

/// The one version of the bundle's shape this vault reads.
pub const BUNDLE_VERSION: u32 = 1;

/// What a sidecar serves: one task's routes, credentials and tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarBundle {
    /// [`BUNDLE_VERSION`].
    pub version: u32,
    /// The task's container: every token is bound to it.
    pub container: String,
    /// The routes of the task's providers.
    pub routes: RouteTable,
    /// The real credential of each provider that has one.
    pub credentials: BTreeMap<String, Credential>,
    /// SHA-256 (hex) of the phantom token of each provider (the tokens are the agent's).
    pub token_hashes: BTreeMap<String, String>,
}

/// Why a bundle is unusable.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BundleError {
    /// The file could not be read.
    #[error("cannot read the vault bundle {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a bundle.
    #[error("{} is not a vault bundle: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads a bundle. Podman before 4.4 writes a Secret's values into its volume still base64
/// encoded; such a file is decoded once (a real bundle is JSON and never valid base64).
pub fn read_bundle(path: &Path) -> Result<SidecarBundle, BundleError> {
    let bytes = fs_err::read(path).map_err(|source| BundleError::Read {
        path: path.to_owned(),
        source: std::io::Error::new(source.kind(), "cannot read"),
    })?;
    let invalid = |reason: String| BundleError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let json = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(_) => bytes,
        Err(_) => base64::engine::general_purpose::STANDARD
            .decode(bytes.trim_ascii())
            .map_err(|_| invalid("neither JSON nor base64-encoded JSON".to_owned()))?,
    };
    // Only the field and position: a bundle holds real credentials, never echoed.
    let bundle: SidecarBundle = serde_json::from_slice(&json).map_err(|e| {
        invalid(format!(
            "line {} column {}: {}",
            e.line(),
            e.column(),
            match e.classify() {
                serde_json::error::Category::Data =>
                    "a field is missing, unknown or of the wrong type",
                _ => "malformed JSON",
            }
        ))
    })?;
    if bundle.version != BUNDLE_VERSION {
        return Err(invalid(format!(
            "version {} (this vault reads version {BUNDLE_VERSION})",
            bundle.version
        )));
    }
    Ok(bundle)
}
