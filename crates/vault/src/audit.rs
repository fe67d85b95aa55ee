//! The audit log: one JSON line per request (docs/compatibility.md#13.2), in a 0600 file. Lines
//! are handed to a writer task that writes whatever has queued up in one system call, so the
//! request path never waits on the disk and concurrent lines never interleave. It never holds a
//! token, a key or a query string, and it is bounded: the file rotates at a size limit, and the
//! queue drops (and counts) lines rather than grow without end.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// The TLS handshake with the upstream failed (an untrusted certificate, a port that does
    /// not speak TLS).
    UpstreamTlsFailed,
    /// The upstream closed the response early.
    UpstreamDisconnected,
    /// The client went away before the response was complete.
    ClientDisconnected,
    /// The request body was over the size limit.
    BodyTooLarge,
    /// The request body did not arrive within the deadline.
    BodyTimeout,
    /// TRACE or CONNECT: never forwarded.
    MethodNotAllowed,
    /// A `deny` rule of the route (an endpoint that mints or reveals credentials).
    Denied,
    /// The budget for bodies held in memory was spent; the client may retry.
    Busy,
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

/// How large the audit log may grow: one file of up to `max_bytes`, and the one before it
/// (`<name>.1`); a queue of up to `queue_lines` lines waiting for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditLimits {
    /// Size at which the file is rotated.
    pub max_bytes: u64,
    /// Lines waiting to be written; more are counted and dropped.
    pub queue_lines: usize,
}

impl Default for AuditLimits {
    fn default() -> Self {
        Self {
            max_bytes: 32 * 1024 * 1024,
            queue_lines: 10_000,
        }
    }
}

/// The file lines go to, moved to `<name>.1` when it reaches its size limit.
struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
}

impl RotatingFile {
    fn open(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        let file = open_file(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
        })
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_bytes {
            self.rotate();
        }
        match self.file.write_all(bytes) {
            Ok(()) => self.size += bytes.len() as u64,
            Err(err) => tracing::warn!("cannot write the audit log: {err}"),
        }
    }

    /// Moves the file to `<name>.1` (replacing the one there) and starts a new one.
    fn rotate(&mut self) {
        let mut older = self.path.clone().into_os_string();
        older.push(".1");
        let rotated = terok_core::secure_fs::rename(&self.path, Path::new(&older))
            .map_err(std::io::Error::other)
            .and_then(|()| open_file(&self.path));
        match rotated {
            Ok(file) => {
                self.file = file;
                self.size = 0;
            }
            Err(err) => tracing::warn!("cannot rotate the audit log: {err}"),
        }
    }
}

enum Sink {
    Disabled,
    /// Lines go to the writer task; lines that find the queue full are counted.
    Queue {
        tx: mpsc::Sender<Vec<u8>>,
        dropped: Arc<AtomicU64>,
    },
    /// No async runtime to host a writer: write directly.
    Direct(Mutex<RotatingFile>),
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
    if let Some(dir) = path.parent() {
        terok_core::secure_fs::ensure_private_dir(dir).map_err(std::io::Error::other)?;
    }
    terok_core::secure_fs::open_append(path).map_err(std::io::Error::other)
}

/// The line that says how many lines found the queue full.
fn dropped_line(count: u64) -> Vec<u8> {
    let mut line = serde_json::json!({"ts": now_ts(), "dropped_lines": count})
        .to_string()
        .into_bytes();
    line.push(b'\n');
    line
}

impl AuditLog {
    /// Opens (appending, creating with mode 0600) the log at `path` with the default
    /// [`AuditLimits`].
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Self::open_with(path, AuditLimits::default())
    }

    /// Opens the log at `path` within `limits`. Inside a tokio runtime the writes happen on a
    /// writer task, which writes whatever has queued up in one system call.
    pub fn open_with(path: &Path, limits: AuditLimits) -> std::io::Result<Self> {
        let mut file = RotatingFile::open(path, limits.max_bytes)?;
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Ok(Self {
                sink: Sink::Direct(Mutex::new(file)),
            });
        };
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(limits.queue_lines.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&dropped);
        handle.spawn(async move {
            let mut batch = Vec::new();
            while let Some(line) = rx.recv().await {
                batch.clear();
                batch.extend_from_slice(&line);
                while let Ok(more) = rx.try_recv() {
                    batch.extend_from_slice(&more);
                }
                let lost = counted.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    batch.extend_from_slice(&dropped_line(lost));
                }
                file.write(&batch);
            }
        });
        Ok(Self {
            sink: Sink::Queue { tx, dropped },
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
            Sink::Queue { tx, dropped } => {
                // A full queue (a disk slower than a flood of requests) costs lines, not memory.
                if tx.try_send(line).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Sink::Direct(file) => {
                if let Ok(mut f) = file.lock() {
                    f.write(&line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> AuditEntry {
        AuditEntry {
            ts: 0.0,
            scope: None,
            subject: None,
            credential_set: None,
            provider: None,
            method: "GET".into(),
            path: path.into(),
            status: 200,
            outcome: Outcome::Ok,
            duration_ms: 0.0,
        }
    }

    #[test]
    fn the_log_rotates_at_its_size_limit_and_keeps_one_older_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let limits = AuditLimits {
            max_bytes: 1000,
            queue_lines: 10,
        };
        let log = AuditLog::open_with(&path, limits).unwrap();
        for _ in 0..100 {
            log.write(&entry("/v1/messages"));
        }
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        let older = dir.path().join("audit.jsonl.1");
        assert!(size(&path) <= 1000 && size(&older) <= 1000);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 2, "one older file only");
    }

    /// A flood the disk cannot keep up with costs lines — counted in the log — not memory.
    #[test]
    fn a_full_queue_drops_and_counts_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let limits = AuditLimits {
                max_bytes: 1 << 20,
                queue_lines: 5,
            };
            let log = AuditLog::open_with(&path, limits).unwrap();
            // The writer task cannot run until this task yields: the queue fills.
            for _ in 0..50 {
                log.write(&entry("/x"));
            }
            tokio::task::yield_now().await;
            log.write(&entry("/after"));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let written = lines.iter().filter(|l| l["path"].is_string()).count();
        let dropped: u64 = lines
            .iter()
            .filter_map(|l| l["dropped_lines"].as_u64())
            .sum();
        assert_eq!(written as u64 + dropped, 51, "{text}");
        assert!(dropped >= 45, "{text}");
    }
}
