//! A container's SSH signer socket (`ssh-agent.sock` beside its vault socket): the keys come
//! from the credential database — those assigned to the container's SSH scope (its agent) or
//! to every scope — and connections must present the container's `ssh` token.

use std::path::Path;
use std::sync::Arc;

use terok_credentials::ssh_store::SshKeyRecord;
use tokio::net::UnixListener;
use tokio::task::AbortHandle;

use crate::ssh_agent::{SignerKeys, serve};
use crate::state::Shared;

/// The provider name of signer tokens.
pub const SSH_PROVIDER: &str = "ssh";
/// The signer socket's file name in a container's socket directory.
pub const SIGNER_SOCKET: &str = "ssh-agent.sock";
/// Connections one container's signer serves at once; more are closed on accept, so a
/// container that opens thousands starves neither the daemon nor the others.
pub const MAX_SIGNER_CONNECTIONS: usize = 32;

/// One container's keys, read from the database at each request (a key removed is gone at
/// once).
struct DbKeys {
    shared: Arc<Shared>,
    container: String,
    scope: String,
}

impl DbKeys {
    fn keys(&self) -> Vec<SshKeyRecord> {
        self.shared
            .with_db(|db| db.ssh_keys_for(&self.scope))
            .unwrap_or_default()
    }
}

impl SignerKeys for DbKeys {
    fn authorize(&self, token: &str) -> bool {
        self.shared
            .lookup_token(token)
            .is_some_and(|t| t.subject == self.container && t.provider == SSH_PROVIDER)
    }

    fn identities(&self) -> Vec<(Vec<u8>, String)> {
        self.keys()
            .into_iter()
            .map(|k| (k.public_blob, k.comment))
            .collect()
    }

    fn sign(&self, blob: &[u8], data: &[u8], flags: u32) -> Option<Vec<u8>> {
        let key = self.keys().into_iter().find(|k| k.public_blob == blob)?;
        let private = self
            .shared
            .with_db(|db| db.ssh_private_key(&key.fingerprint))
            .ok()??;
        private.sign(data, flags).ok()
    }
}

/// Serves `listener` (bound at the container's signer socket) for `container`, whose tasks may
/// use the keys of `scope`; the handle stops it.
pub fn serve_signer(
    shared: Arc<Shared>,
    container: &str,
    scope: &str,
    listener: UnixListener,
) -> AbortHandle {
    let keys = Arc::new(DbKeys {
        shared,
        container: container.to_owned(),
        scope: scope.to_owned(),
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SIGNER_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let keys = keys.clone();
            tokio::spawn(async move {
                let _slot = slot;
                if let Err(refused) = serve(stream, keys.as_ref()).await {
                    tracing::warn!(
                        "ssh signer of {}: connection refused ({refused:?})",
                        keys.container
                    );
                }
            });
        }
    })
    .abort_handle()
}

/// Whether the signer socket of a container directory exists.
pub fn signer_socket(dir: &Path) -> std::path::PathBuf {
    dir.join(SIGNER_SOCKET)
}
