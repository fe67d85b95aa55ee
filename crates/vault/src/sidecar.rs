//! The vault as a sidecar of one task's Pod (`vault serve --sidecar`): it takes the task's
//! routes, real credentials and token hashes from one bundle file (a Kubernetes Secret mounted
//! into the sidecar only), keeps them in a database of its own under a key it makes at start
//! and never writes down, and serves one Unix socket — the one the agent container shares
//! through an `emptyDir` — with the same proxy as the daemon's per-container listeners.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use terok_credentials::seal::DataKey;
use terok_credentials::{CredentialDb, DEFAULT_SET};
use tokio::net::UnixListener;
use tokio::sync::oneshot;

use crate::audit::AuditLog;
use crate::bundle::{SidecarBundle, read_bundle};
use crate::daemon::{VaultError, listener_app};
use crate::listener::ListenerLimits;
use crate::paths::VaultPaths;
use crate::state::Shared;

/// How to run a sidecar.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// The bundle file.
    pub bundle: PathBuf,
    /// The socket to serve (its directory is shared with the agent's container).
    pub socket: PathBuf,
    /// A private directory for the database and the audit log.
    pub state_dir: PathBuf,
    /// Stop once this file exists (the agent's container writes it when its command ends, so
    /// the Pod can complete).
    pub until: Option<PathBuf>,
    /// What the listener may use.
    pub limits: ListenerLimits,
}

impl SidecarOptions {
    /// A sidecar of `bundle` on `socket`, keeping its state in `state_dir`, with the default
    /// limits.
    pub fn new(
        bundle: impl Into<PathBuf>,
        socket: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        until: Option<PathBuf>,
    ) -> Self {
        Self {
            bundle: bundle.into(),
            socket: socket.into(),
            state_dir: state_dir.into(),
            until,
            limits: ListenerLimits::default(),
        }
    }
}

/// Opens the sidecar's own database and state from `bundle`: a fresh key, the credentials
/// sealed under it, the tokens adopted by hash.
fn open_state(bundle: &SidecarBundle, state_dir: &Path) -> Result<Arc<Shared>, VaultError> {
    // A directory of its own inside the mounted one, which a cluster makes root's.
    let state_dir = &state_dir.join("sidecar");
    terok_core::secure_fs::ensure_private_dir(state_dir).map_err(|e| VaultError::Io {
        context: format!("cannot create {}", state_dir.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    let paths = VaultPaths {
        vault_dir: state_dir.to_owned(),
        runtime_dir: state_dir.join("run"),
        db_override: None,
    };
    let key = DataKey::generate().map_err(|e| VaultError::Io {
        context: "cannot make the sidecar's key".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let db = CredentialDb::open(&paths.db(), key, "sidecar")?;
    for (provider, credential) in &bundle.credentials {
        db.store_credential(DEFAULT_SET, provider, credential)?;
    }
    for (provider, hash) in &bundle.token_hashes {
        db.adopt_token_hash(hash, &bundle.container, DEFAULT_SET, provider)?;
    }
    let client = crate::tls::upstream_client().map_err(|e| VaultError::Tls(e.to_string()))?;
    let audit = AuditLog::open(&paths.audit_log()).map_err(|source| VaultError::Io {
        context: format!("cannot open {}", paths.audit_log().display()),
        source,
    })?;
    Ok(Arc::new(Shared::new(
        db,
        bundle.routes.clone(),
        client,
        audit,
        paths,
        "sidecar".to_owned(),
    )))
}

/// Runs the sidecar until SIGTERM, SIGINT or the `until` file.
pub async fn serve_sidecar(options: SidecarOptions) -> Result<(), VaultError> {
    let bundle = read_bundle(&options.bundle)?;
    let shared = open_state(&bundle, &options.state_dir)?;
    let _ = std::fs::remove_file(&options.socket);
    let listener = UnixListener::bind(&options.socket).map_err(|source| VaultError::Io {
        context: format!("cannot listen on {}", options.socket.display()),
        source,
    })?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let refreshing = Arc::clone(&shared);
    tokio::spawn(async move {
        loop {
            for (provider, result) in crate::refresh::refresh_due(&refreshing).await {
                tracing::info!(provider, ?result, "OAuth refresh");
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
    let app = listener_app(shared, Some(&bundle.container));
    let serving = tokio::spawn(crate::listener::serve(
        listener,
        app,
        options.limits,
        stop_rx,
    ));
    tracing::info!("vault sidecar serving {}", options.socket.display());
    wait_for_end(options.until.as_deref()).await?;
    let _ = stop_tx.send(());
    let _ = serving.await;
    let _ = std::fs::remove_file(&options.socket);
    tracing::info!("vault sidecar stopped");
    Ok(())
}

/// Waits for SIGTERM, SIGINT or the `until` file, whichever comes first.
async fn wait_for_end(until: Option<&Path>) -> Result<(), VaultError> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| VaultError::Io {
            context: "cannot watch SIGTERM".into(),
            source,
        })?;
    let appeared = async {
        match until {
            Some(file) => {
                while !file.exists() {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = sigterm.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
        () = appeared => {},
    }
    Ok(())
}
