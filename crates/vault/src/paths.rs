//! Where the vault keeps its files: the database, routes and audit log in the vault directory;
//! the control socket, pidfile and per-container listener directories in the runtime directory.

use std::path::{Path, PathBuf};

use terok_core::paths::TerokPaths;

/// Every path the vault uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultPaths {
    /// The vault directory (0700): database, key file, routes.json, audit log, locks.
    pub vault_dir: PathBuf,
    /// The vault's runtime directory: control socket, pidfile, per-container directories.
    pub runtime_dir: PathBuf,
    /// The database, when config.yml's `credentials.db_path` moves it out of the vault directory.
    pub db_override: Option<PathBuf>,
}

impl VaultPaths {
    /// The vault paths of a terok installation.
    pub fn from_terok(paths: &TerokPaths) -> Self {
        Self {
            vault_dir: paths.vault_dir.clone(),
            runtime_dir: paths.runtime_dir.join("vault"),
            db_override: None,
        }
    }

    /// The credential database.
    pub fn db(&self) -> PathBuf {
        self.db_override
            .clone()
            .unwrap_or_else(|| self.vault_dir.join("credentials.db"))
    }

    /// routes.json.
    pub fn routes(&self) -> PathBuf {
        self.vault_dir.join("routes.json")
    }

    /// The JSONL audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.vault_dir.join("audit.jsonl")
    }

    /// Lock files (OAuth refresh).
    pub fn locks_dir(&self) -> PathBuf {
        self.vault_dir.join("locks")
    }

    /// The daemon's log file (when started with `vault start`).
    pub fn log_file(&self) -> PathBuf {
        self.vault_dir.join("vault.log")
    }

    /// The control socket (0600).
    pub fn control_socket(&self) -> PathBuf {
        self.runtime_dir.join("control.sock")
    }

    /// The pidfile, locked by the running daemon.
    pub fn pidfile(&self) -> PathBuf {
        self.runtime_dir.join("vault.pid")
    }

    /// The directory of `container`'s listener, mounted read-only at `/run/terok/vault`.
    pub fn container_dir(&self, container: &str) -> PathBuf {
        self.runtime_dir.join("c").join(container)
    }

    /// `container`'s socket on the host.
    pub fn container_socket(&self, container: &str) -> PathBuf {
        self.container_dir(container).join(SOCKET_NAME)
    }
}

/// File name of a container's vault socket.
pub const SOCKET_NAME: &str = "vault.sock";

/// Where the socket directory is mounted in containers.
pub const CONTAINER_SOCKET_DIR: &str = "/run/terok/vault";

/// The socket path inside containers.
pub const CONTAINER_SOCKET: &str = "/run/terok/vault/vault.sock";

/// The in-container loopback port of the socat bridge to the socket.
pub const LOOPBACK_PORT: u16 = 9419;

/// Whether `path` is a Unix socket (not following a symbolic link).
pub fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}
