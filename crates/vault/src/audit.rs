//! The audit log: one JSON line per request (sandbox.md §2.2), in a 0600 file. Lines are handed
//! to a writer task that writes whatever has queued up in one system call, so the request path
//! never waits on the disk and concurrent lines never interleave. It never holds a token, a key
//! or a query string.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Forwarded and answered.
    Ok,
    /// No token in the request.
    MissingToken,
    /// The token is unknown, revoked, or belongs to another container.
    InvalidToken,
    /// No route for the token's provider.
    NoRoute,
    /// No credential stored for the provider.
    CredentialMissing,
    /// The stored credential has no usable value.
    CredentialMisconfigured,
    /// The upstream could not be reached or failed.
    UpstreamError,
    /// The upstream closed the response early.
    UpstreamDisconnected,
    /// The client went away before the response was complete.
    ClientDisconnected,
    /// The request body was over the size limit.
    BodyTooLarge,
}

/// One audit line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Seconds since the epoch.
    pub ts: f64,
    /// Token scope.
    pub scope: Option<String>,
    /// Container.
    pub subject: Option<String>,
    /// Credential set.
    pub credential_set: Option<String>,
    /// Provider.
    pub provider: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path, without the query string (queries can carry secrets).
    pub path: String,
    /// Status sent to the client (0 when none was sent).
    pub status: u16,
    /// Outcome.
    pub outcome: Outcome,
    /// Milliseconds from request to completion.
    pub duration_ms: f64,
}

/// Seconds since the epoch, as a float.
pub fn now_ts() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

enum Sink {
    Disabled,
    /// Lines go to the writer task.
    Queue(mpsc::UnboundedSender<Vec<u8>>),
    /// No async runtime to host a writer: write directly.
    Direct(Mutex<File>),
}

/// The open audit log.
pub struct AuditLog {
    sink: Sink,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

fn open_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        terok_core::secure_fs::ensure_private_dir(dir).map_err(std::io::Error::other)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

impl AuditLog {
    /// Opens (appending, creating with mode 0600) the log at `path`. Inside a tokio runtime the
    /// writes happen on a writer task.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = open_file(path)?;
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Ok(Self {
                sink: Sink::Direct(Mutex::new(file)),
            });
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        handle.spawn(async move {
            let mut batch = Vec::new();
            while let Some(line) = rx.recv().await {
                batch.clear();
                batch.extend_from_slice(&line);
                while let Ok(more) = rx.try_recv() {
                    batch.extend_from_slice(&more);
                }
                if let Err(err) = file.write_all(&batch) {
                    tracing::warn!("cannot write the audit log: {err}");
                }
            }
        });
        Ok(Self {
            sink: Sink::Queue(tx),
        })
    }

    /// A log that writes nothing.
    pub fn disabled() -> Self {
        Self {
            sink: Sink::Disabled,
        }
    }

    /// Appends one line.
    pub fn write(&self, entry: &AuditEntry) {
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        match &self.sink {
            Sink::Disabled => {}
            Sink::Queue(tx) => {
                let _ = tx.send(line);
            }
            Sink::Direct(file) => {
                if let Ok(mut f) = file.lock()
                    && let Err(err) = f.write_all(&line)
                {
                    tracing::warn!("cannot write the audit log: {err}");
                }
            }
        }
    }
}
