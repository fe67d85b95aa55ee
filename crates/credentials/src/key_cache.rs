//! The vault key cached in the kernel's key-retention service (`vault unlock`): the user
//! keyring holds the unwrapped key for a while, so a passphrase-protected key file asks for its
//! passphrase once, not at every command.
//!
//! The entry is named after the vault directory (its absolute, resolved path: two state roots
//! never share one) and holds the key with a digest of the key file it was unwrapped from: a
//! cached key is used only while that very file is there, so it never outlives its file, never
//! opens another vault that later takes the path, and never becomes the key of a new database.
//! It lives in the invoking user's keyring (`@u`) until `vault lock`, its expiry or a reboot,
//! and grants everything to its *possessor* and nothing to anyone else — which is any process
//! of the user whose keyrings reach `@u` (as the user's files are the user's). Containers do
//! not: each gets a new session keyring, and podman's default seccomp profile refuses the
//! keyctl calls.

use std::path::Path;
use std::time::Duration;

use linux_keyutils::{KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};

use crate::seal::{DataKey, KEY_LEN};

/// Why the kernel keyring could not be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("the kernel keyring refused to {action}: {detail}")]
pub struct KeyCacheError {
    /// What was being done (`store the vault key`).
    pub action: &'static str,
    /// What the kernel said.
    pub detail: String,
}

impl KeyCacheError {
    fn new(action: &'static str, err: linux_keyutils::KeyError) -> Self {
        Self {
            action,
            detail: format!("{err:?}"),
        }
    }
}

/// The description of the entry for `vault_dir`: a prefix and a digest of its absolute,
/// resolved path (a relative `TEROK_ROOT` in two directories is two vaults).
pub fn description(vault_dir: &Path) -> String {
    use sha2::Digest;
    let absolute = std::path::absolute(vault_dir).unwrap_or_else(|_| vault_dir.to_path_buf());
    let resolved = absolute.canonicalize().unwrap_or(absolute);
    let digest = sha2::Sha256::digest(resolved.as_os_str().as_encoded_bytes());
    format!("terok-vault-key:{}", &hex::encode(digest)[..24])
}

/// The digest that ties a cached key to the key file it came from.
pub fn file_digest(key_file_text: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(key_file_text).into()
}

fn user_keyring(action: &'static str) -> Result<KeyRing, KeyCacheError> {
    KeyRing::from_special_id(KeyRingIdentifier::User, true)
        .map_err(|e| KeyCacheError::new(action, e))
}

/// Caches `key`, unwrapped from the key file whose digest is `file`, for `vault_dir`,
/// replacing an earlier copy; it expires after `lifetime` (`None`: at `vault lock` or
/// reboot).
pub fn store(
    vault_dir: &Path,
    key: &DataKey,
    file: &[u8; 32],
    lifetime: Option<Duration>,
) -> Result<(), KeyCacheError> {
    const ACTION: &str = "store the vault key";
    // An entry updated in place would keep its old rights until they are set again.
    forget(vault_dir)?;
    let ring = user_keyring(ACTION)?;
    let mut payload = [0u8; KEY_LEN + 32];
    payload[..KEY_LEN].copy_from_slice(key.expose());
    payload[KEY_LEN..].copy_from_slice(file);
    let added = ring.add_key(&description(vault_dir), &payload);
    payload.fill(0);
    let entry = added.map_err(|e| KeyCacheError::new(ACTION, e))?;
    let perms = KeyPermissionsBuilder::builder()
        .posessor(Permission::ALL)
        .build();
    let limited = entry.set_perms(perms).and_then(|()| match lifetime {
        Some(lifetime) => {
            entry.set_timeout(lifetime.as_secs().clamp(1, u64::from(u32::MAX)) as usize)
        }
        None => Ok(()),
    });
    if let Err(err) = limited {
        // A copy with wider rights or no expiry must not stay behind.
        let _ = entry.invalidate();
        return Err(KeyCacheError::new(ACTION, err));
    }
    Ok(())
}

/// The cached key of `vault_dir`, if there is one this process may read and it came from the
/// key file whose digest is `file`.
pub fn load(vault_dir: &Path, file: &[u8; 32]) -> Option<DataKey> {
    let ring = KeyRing::from_special_id(KeyRingIdentifier::User, false).ok()?;
    let entry = ring.search(&description(vault_dir)).ok()?;
    let mut buf = [0u8; KEY_LEN + 33];
    let len = entry.read(&mut buf).ok();
    let key = match len {
        Some(len) if len == KEY_LEN + 32 && buf[KEY_LEN..len] == file[..] => {
            let mut raw = [0u8; KEY_LEN];
            raw.copy_from_slice(&buf[..KEY_LEN]);
            Some(DataKey::from_bytes(raw))
        }
        _ => None,
    };
    buf.fill(0);
    key
}

/// Whether a cached key for `vault_dir` exists (without reading it).
pub fn is_cached(vault_dir: &Path) -> bool {
    KeyRing::from_special_id(KeyRingIdentifier::User, false)
        .and_then(|ring| ring.search(&description(vault_dir)))
        .is_ok()
}

/// Removes the cached key of `vault_dir`; `true` when there was one.
pub fn forget(vault_dir: &Path) -> Result<bool, KeyCacheError> {
    const ACTION: &str = "remove the cached vault key";
    let Ok(ring) = KeyRing::from_special_id(KeyRingIdentifier::User, false) else {
        return Ok(false);
    };
    let mut removed = false;
    // `add_key` replaces in place, so there is one entry; a loop also clears a copy another
    // keyring linked in.
    while let Ok(entry) = ring.search(&description(vault_dir)) {
        entry
            .invalidate()
            .map_err(|e| KeyCacheError::new(ACTION, e))?;
        removed = true;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_key_is_read_back_and_forgotten_and_grants_only_its_possessor() {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::from_bytes([7; KEY_LEN]);
        let file = file_digest(b"the key file");
        assert!(!is_cached(dir.path()));
        store(dir.path(), &key, &file, Some(Duration::from_secs(60))).unwrap();
        assert!(is_cached(dir.path()));
        assert_eq!(load(dir.path(), &file).unwrap().expose(), key.expose());
        // Another key file (replaced, or another vault at the path): not this key.
        assert!(load(dir.path(), &file_digest(b"another key file")).is_none());
        // /proc/keys: possessor everything (3f), nothing for the user, group or others.
        let listing = std::fs::read_to_string("/proc/keys").unwrap();
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!("{}: 64", description(dir.path()))))
            .unwrap_or_else(|| panic!("no entry in {listing}"));
        assert!(line.contains(" 3f000000 "), "{line}");
        // Another vault directory has its own entry.
        let other = tempfile::tempdir().unwrap();
        assert!(load(other.path(), &file).is_none());
        assert!(forget(dir.path()).unwrap());
        assert!(!forget(dir.path()).unwrap());
        assert!(load(dir.path(), &file).is_none());
    }
}
