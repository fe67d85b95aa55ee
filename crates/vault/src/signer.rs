//! A container's SSH signer socket (`ssh-agent.sock` beside its vault socket): the keys come
//! from the credential database — those assigned to the container's SSH scope (its agent) or
//! to every scope — and connections must present the container's `ssh` token. Signatures and
//! refusals go to the audit log — at most [`AUDIT_LINES_PER_WINDOW`] lines per container per
//! [`WARN_EVERY`], the rest counted — and refused connections are warned about in the vault's
//! log at most once per [`WARN_EVERY`] per container.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use terok_credentials::ssh::fingerprint;
use terok_credentials::ssh_store::SshKeyRecord;
use tokio::net::UnixListener;
use tokio::task::{AbortHandle, JoinSet};

use crate::audit::{AuditEntry, Outcome, now_ts};
use crate::ssh_agent::{Refused, SignerEvent, SignerKeys, serve};
use crate::state::Shared;

/// The provider name of signer tokens.
pub const SSH_PROVIDER: &str = "ssh";
/// The signer socket's file name in a container's socket directory.
pub const SIGNER_SOCKET: &str = "ssh-agent.sock";
/// Connections one container's signer serves at once; more are closed on accept, so a
/// container that opens thousands starves neither the daemon nor the others.
pub const MAX_SIGNER_CONNECTIONS: usize = 32;
/// How often the vault's log may warn about one container's refused connections: a container
/// that knocks in a loop cannot flood it.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Audit lines one container's signer may write per [`WARN_EVERY`]; the rest are counted into
/// the next line, so a container signing or knocking in a loop cannot rotate away the audit
/// log's earlier lines (its own, and other tasks').
pub const AUDIT_LINES_PER_WINDOW: u32 = 20;
/// The longest login name written to the audit log.
const MAX_LOGGED_USER: usize = 64;

/// One container's keys, read from the database at each request (a key removed is gone at
/// once).
struct DbKeys {
    shared: Arc<Shared>,
    container: String,
    scope: String,
    warnings: Mutex<Warnings>,
    budget: Mutex<AuditBudget>,
}

/// Refused connections since the last warning.
struct Warnings {
    last: Option<Instant>,
    unwarned: u64,
}

/// Audit lines written in the current window, and those left out.
struct AuditBudget {
    window: Instant,
    written: u32,
    left_out: u64,
}

impl AuditBudget {
    /// Whether a line may be written now; when it may, how many were left out before it.
    fn take(&mut self) -> Option<u64> {
        if self.window.elapsed() >= WARN_EVERY {
            self.window = Instant::now();
            self.written = 0;
        }
        if self.written >= AUDIT_LINES_PER_WINDOW {
            self.left_out += 1;
            return None;
        }
        self.written += 1;
        Some(std::mem::take(&mut self.left_out))
    }
}

impl DbKeys {
    fn keys(&self) -> Vec<SshKeyRecord> {
        self.shared
            .with_db(|db| db.ssh_keys_for(&self.scope))
            .unwrap_or_default()
    }

    /// One audit line of the signer, within its budget (the count of lines left out before it
    /// is added to its path).
    fn audit(&self, path: String, outcome: Outcome) {
        let Some(left_out) = self.budget.lock().ok().and_then(|mut b| b.take()) else {
            return;
        };
        let path = match left_out {
            0 => path,
            n => format!("{path} ({n} earlier signer lines left out)")
                .trim()
                .to_owned(),
        };
        self.shared.audit.write(&AuditEntry {
            ts: now_ts(),
            scope: Some(self.scope.clone()),
            subject: Some(self.container.clone()),
            credential_set: None,
            provider: Some(SSH_PROVIDER.to_owned()),
            method: "SSH-SIGN".to_owned(),
            path,
            status: 0,
            outcome,
            duration_ms: 0.0,
        });
    }

    /// Warns about a refused connection unless one was warned about within [`WARN_EVERY`].
    fn warn_refused(&self, refused: Refused) {
        let Ok(mut warnings) = self.warnings.lock() else {
            return;
        };
        warnings.unwarned += 1;
        if warnings.last.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return;
        }
        tracing::warn!(
            "ssh signer of {}: {} connection(s) refused (last: {refused:?})",
            self.container,
            warnings.unwarned
        );
        warnings.last = Some(Instant::now());
        warnings.unwarned = 0;
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

    fn record(&self, event: SignerEvent<'_>) {
        match event {
            SignerEvent::Signed { user, blob } => {
                let user: String = terok_core::text::printable(user)
                    .chars()
                    .take(MAX_LOGGED_USER)
                    .collect();
                self.audit(
                    format!("login {user} with {}", fingerprint(blob)),
                    Outcome::Ok,
                );
            }
            SignerEvent::SignRefused => self.audit(String::new(), Outcome::Denied),
            SignerEvent::Refused(refused) => {
                let outcome = match refused {
                    Refused::BadToken => Outcome::InvalidToken,
                    Refused::Truncated | Refused::BadLength => Outcome::MissingToken,
                };
                self.audit(String::new(), outcome);
                self.warn_refused(refused);
            }
        }
    }
}

/// Serves `listener` (bound at the container's signer socket) for `container`, whose tasks may
/// use the keys of `scope`; the handle stops it, and every connection it accepted with it.
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
        warnings: Mutex::new(Warnings {
            last: None,
            unwarned: 0,
        }),
        budget: Mutex::new(AuditBudget {
            window: Instant::now(),
            written: 0,
            left_out: 0,
        }),
    });
    tokio::spawn(async move {
        // Owned by this task: aborting it drops the set, which aborts every connection.
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            while connections.try_join_next().is_some() {}
            if connections.len() >= MAX_SIGNER_CONNECTIONS {
                drop(stream);
                continue;
            }
            let keys = keys.clone();
            connections.spawn(async move {
                // Refusals are recorded (audit log, rate-limited warning) by `serve` itself.
                let _ = serve(stream, keys.as_ref()).await;
            });
        }
    })
    .abort_handle()
}

/// Whether the signer socket of a container directory exists.
pub fn signer_socket(dir: &Path) -> std::path::PathBuf {
    dir.join(SIGNER_SOCKET)
}
