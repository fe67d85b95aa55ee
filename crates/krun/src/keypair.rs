//! The `%host` keypair: an Ed25519 key the vault keeps (made on first use) under the reserved
//! scope `%host` — no task's SSH signer serves it — written to `<runtime dir>/terok/` for `ssh
//! -i` (`krun_host.key`, 0600, OpenSSH's format) and the guest's sshd (`krun_host.key.pub`,
//! 0644). The directory must be this user's own and private: a key written where another user
//! can read, or through a link someone else planted, would hand them every microVM.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use terok_credentials::CredentialDb;
use terok_credentials::ssh::{SshPrivateKey, public_line};

/// The key's name in the vault.
pub const HOST_KEY_NAME: &str = "%host";
/// The scope it is assigned to (reserved: never an agent's).
pub const HOST_SCOPE: &str = "%host";
const PRIVATE_FILE: &str = "krun_host.key";
const PUBLIC_FILE: &str = "krun_host.key.pub";
const COMMENT: &str = "terok krun host";

/// Why the keypair cannot be provided.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum KrunError {
    /// No runtime directory.
    #[error("no runtime directory (XDG_RUNTIME_DIR is not set) to put the krun host key in")]
    NoRuntimeDir,
    /// The runtime directory is a link.
    #[error("{} is a symbolic link; the krun host key is not written through one", .0.display())]
    Symlink(PathBuf),
    /// Someone else's directory.
    #[error("{} belongs to uid {owner}, not to this user", path.display())]
    NotOwned {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// Others may read it.
    #[error("{} is open to its group or others (mode {mode:o}); it must be 0700", path.display())]
    TooOpen {
        /// The directory.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The vault's database.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Db(#[from] terok_credentials::DbError),
    /// Writing the files.
    #[error("cannot write the krun host key: {0}")]
    Write(String),
    /// ssh could not be run.
    #[error("{0}")]
    Ssh(String),
    /// The guest ended before it could be reached.
    #[error("the guest ended before its SSH server let the host in")]
    GuestEnded,
    /// The guest's SSH server did not let the host in in time.
    #[error("the guest's SSH server did not let the host in ({last})")]
    GuestUnreachable {
        /// What the last attempt said.
        last: String,
    },
}

/// The `%host` keypair on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KrunHostKeypair {
    /// The private key, OpenSSH's format, 0600 (for `ssh -i`).
    pub private_key: PathBuf,
    /// The public key line, 0644 (mounted into the guest).
    pub public_key: PathBuf,
    /// That line.
    pub public_line: String,
}

/// The `%host` keypair from `db` (made and stored on first use), written under
/// `runtime_dir/terok` after the checks above.
pub fn ensure_host_keypair(
    db: &CredentialDb,
    runtime_dir: Option<&Path>,
) -> Result<KrunHostKeypair, KrunError> {
    let runtime_dir = runtime_dir.ok_or(KrunError::NoRuntimeDir)?;
    check_private_dir(runtime_dir)?;
    let dir = runtime_dir.join("terok");
    terok_core::secure_fs::ensure_private_dir(&dir).map_err(|e| KrunError::Write(e.to_string()))?;
    check_private_dir(&dir)?;
    let key = host_key(db)?;
    let blob = key
        .public_blob()
        .map_err(terok_credentials::DbError::from)?;
    let line = public_line(&blob, COMMENT);
    let pem = key
        .to_openssh_pem(COMMENT)
        .map_err(terok_credentials::DbError::from)?;
    let private_key = dir.join(PRIVATE_FILE);
    let public_key = dir.join(PUBLIC_FILE);
    let write = |path: &Path, text: &str, mode: u32| {
        terok_core::secure_fs::write_atomic(path, text.as_bytes(), mode)
            .map_err(|e| KrunError::Write(e.to_string()))
    };
    write(&private_key, &pem, 0o600)?;
    write(&public_key, &format!("{line}\n"), 0o644)?;
    Ok(KrunHostKeypair {
        private_key,
        public_key,
        public_line: line,
    })
}

/// The stored `%host` key, made and stored when there is none.
fn host_key(db: &CredentialDb) -> Result<SshPrivateKey, KrunError> {
    if let Some(stored) = db.ssh_key(HOST_KEY_NAME)?
        && let Some(key) = db.ssh_private_key(&stored.fingerprint)?
    {
        return Ok(key);
    }
    let key = SshPrivateKey::generate_ed25519().map_err(terok_credentials::DbError::from)?;
    db.add_ssh_key(HOST_KEY_NAME, &key, COMMENT)?;
    db.assign_ssh_key(HOST_KEY_NAME, HOST_SCOPE)?;
    Ok(key)
}

/// `dir` is a real directory of this user's that only this user can enter.
fn check_private_dir(dir: &Path) -> Result<(), KrunError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| KrunError::Write(e.to_string()))?;
    if meta.file_type().is_symlink() {
        return Err(KrunError::Symlink(dir.to_path_buf()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(KrunError::NotOwned {
            path: dir.to_path_buf(),
            owner: meta.uid(),
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KrunError::TooOpen {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use terok_credentials::seal::DataKey;

    fn db(dir: &Path) -> CredentialDb {
        CredentialDb::open(&dir.join("c.db"), DataKey::generate().unwrap(), "test").unwrap()
    }

    fn private_runtime(dir: &Path) -> PathBuf {
        let run = dir.join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        run
    }

    #[test]
    fn the_keypair_is_made_once_and_written_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        let run = private_runtime(dir.path());
        let first = ensure_host_keypair(&db, Some(&run)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&first.private_key), 0o600);
        assert_eq!(mode(&first.public_key), 0o644);
        assert_eq!(mode(&run.join("terok")), 0o700);
        let pem = std::fs::read_to_string(&first.private_key).unwrap();
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let again = ensure_host_keypair(&db, Some(&run)).unwrap();
        assert_eq!(first.public_line, again.public_line, "the same key");
        // No task's signer serves it: it belongs to no agent and not to every task.
        assert!(db.ssh_keys_for("claude").unwrap().is_empty());
    }

    #[test]
    fn an_unsafe_runtime_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path());
        assert!(matches!(
            ensure_host_keypair(&db, None),
            Err(KrunError::NoRuntimeDir)
        ));
        let run = private_runtime(dir.path());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&run, &link).unwrap();
        assert!(matches!(
            ensure_host_keypair(&db, Some(&link)),
            Err(KrunError::Symlink(_))
        ));
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert!(matches!(
            ensure_host_keypair(&db, Some(&run)),
            Err(KrunError::TooOpen { mode: 0o750, .. })
        ));
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&run, Some(1234), None).unwrap();
            assert!(matches!(
                ensure_host_keypair(&db, Some(&run)),
                Err(KrunError::NotOwned { owner: 1234, .. })
            ));
        }
    }
}
