//! The vault key sealed by systemd-creds (`setup --passphrase-tier systemd-creds`): the key
//! file `vault.key.cred` is encrypted with this machine's credential key (its TPM2 where there
//! is one, else the host secret only root reads), so a copy of the vault directory alone opens
//! nothing. Unsealing runs `systemd-creds decrypt`; on systemd before 256 that works for root
//! only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use terok_core::env::HostEnv;
use terok_core::secure_fs;

/// Why systemd-creds could not seal or unseal.
#[derive(Debug)]
pub enum SealedKeyError {
    /// The sealed file could not be read or written.
    Fs(secure_fs::SecureFsError),
    /// systemd-creds failed.
    SystemdCreds {
        /// What was being done.
        action: &'static str,
        /// What it said.
        detail: String,
    },
}

impl From<secure_fs::SecureFsError> for SealedKeyError {
    fn from(err: secure_fs::SecureFsError) -> Self {
        Self::Fs(err)
    }
}

/// File name of the sealed key in the vault directory.
pub const SEALED_KEY_FILE: &str = "vault.key.cred";
/// The name sealed into the credential (systemd checks it on decryption).
const CREDENTIAL_NAME: &str = "terok-vault-key";
/// Where systemd-creds keeps the host secret, when the environment names another place.
const HOST_SECRET_VAR: &str = "SYSTEMD_CREDENTIAL_SECRET";
/// The most a sealed key or systemd-creds' answer may be.
const LIMIT: u64 = 64 * 1024;

/// The sealed key file of `vault_dir`.
pub fn sealed_path(vault_dir: &Path) -> PathBuf {
    vault_dir.join(SEALED_KEY_FILE)
}

fn systemd_creds(env: &HostEnv, args: &[&str]) -> Command {
    let mut command = Command::new("systemd-creds");
    for var in terok_core::env::SECRET_VARS {
        command.env_remove(var);
    }
    // The host secret named by the caller's environment (a test's own), not the process's.
    match env.var(HOST_SECRET_VAR) {
        Some(path) => command.env(HOST_SECRET_VAR, path),
        None => command.env_remove(HOST_SECRET_VAR),
    };
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs systemd-creds with `input` on its stdin; its stdout, or the error it printed.
fn run(
    env: &HostEnv,
    args: &[&str],
    input: &[u8],
    action: &'static str,
) -> Result<Vec<u8>, SealedKeyError> {
    let failed = |detail: String| SealedKeyError::SystemdCreds { action, detail };
    let mut child = systemd_creds(env, args)
        .spawn()
        .map_err(|e| failed(format!("cannot run systemd-creds: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| failed(format!("cannot write to systemd-creds: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("systemd-creds did not finish: {e}")))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let last = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(failed(format!(
            "systemd-creds exited with {}: {last}",
            out.status
        )));
    }
    if out.stdout.len() as u64 > LIMIT {
        return Err(failed("systemd-creds answered too much".to_owned()));
    }
    Ok(out.stdout)
}

/// Unseals `path`: the plain text sealed in it.
pub fn unseal(env: &HostEnv, path: &Path) -> Result<Vec<u8>, SealedKeyError> {
    let sealed = secure_fs::read_nofollow_limited(path, LIMIT)?;
    let name = format!("--name={CREDENTIAL_NAME}");
    run(
        env,
        &["decrypt", &name, "-", "-"],
        &sealed,
        "unseal the vault key",
    )
}

/// Seals `plain` into the sealed key file of `vault_dir` (written atomically) and returns its
/// path.
pub fn seal(env: &HostEnv, vault_dir: &Path, plain: &[u8]) -> Result<PathBuf, SealedKeyError> {
    let name = format!("--name={CREDENTIAL_NAME}");
    let sealed = run(
        env,
        &["encrypt", &name, "-", "-"],
        plain,
        "seal the vault key",
    )?;
    let path = sealed_path(vault_dir);
    secure_fs::write_sensitive(&path, &sealed)?;
    Ok(path)
}
