//! The vault key cached in the kernel's key-retention service (`vault unlock`): the user
//! keyring holds the unwrapped key for a while, so a passphrase-protected key file asks for its
//! passphrase once, not at every command.
//!
//! The entry is named after the vault directory (two state roots never share one), lives in
//! the invoking user's keyring (`@u`) until `vault lock`, its expiry or a reboot, and grants
//! everything to its *possessor* only: a process of the user that reaches it through its own
//! keyrings. A container's processes live in another user namespace, whose user keyring is
//! another one, and podman's default seccomp profile refuses the keyctl calls besides.

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

/// The description of the entry for `vault_dir`: a prefix and a digest of the path.
pub fn description(vault_dir: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(vault_dir.as_os_str().as_encoded_bytes());
    format!("terok-vault-key:{}", &hex::encode(digest)[..24])
}

fn user_keyring(action: &'static str) -> Result<KeyRing, KeyCacheError> {
    KeyRing::from_special_id(KeyRingIdentifier::User, true)
        .map_err(|e| KeyCacheError::new(action, e))
}

/// Caches `key` for `vault_dir`, replacing an earlier copy; it expires after `lifetime`
/// (`None`: at `vault lock` or reboot).
pub fn store(
    vault_dir: &Path,
    key: &DataKey,
    lifetime: Option<Duration>,
) -> Result<(), KeyCacheError> {
    const ACTION: &str = "store the vault key";
    let ring = user_keyring(ACTION)?;
    let entry = ring
        .add_key(&description(vault_dir), key.expose())
        .map_err(|e| KeyCacheError::new(ACTION, e))?;
    let perms = KeyPermissionsBuilder::builder()
        .posessor(Permission::ALL)
        .user(Permission::VIEW)
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

/// The cached key of `vault_dir`, if there is one this process may read.
pub fn load(vault_dir: &Path) -> Option<DataKey> {
    let ring = KeyRing::from_special_id(KeyRingIdentifier::User, false).ok()?;
    let entry = ring.search(&description(vault_dir)).ok()?;
    let mut buf = [0u8; KEY_LEN + 1];
    let len = entry.read(&mut buf).ok()?;
    let raw: [u8; KEY_LEN] = buf.get(..len)?.try_into().ok()?;
    buf.fill(0);
    Some(DataKey::from_bytes(raw))
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
        assert!(!is_cached(dir.path()));
        store(dir.path(), &key, Some(Duration::from_secs(60))).unwrap();
        assert!(is_cached(dir.path()));
        assert_eq!(load(dir.path()).unwrap().expose(), key.expose());
        // /proc/keys: possessor everything (3f), user view only (01), group and others none.
        let listing = std::fs::read_to_string("/proc/keys").unwrap();
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!("{}: 32", description(dir.path()))))
            .unwrap_or_else(|| panic!("no entry in {listing}"));
        assert!(line.contains(" 3f010000 "), "{line}");
        // Another vault directory has its own entry.
        let other = tempfile::tempdir().unwrap();
        assert!(load(other.path()).is_none());
        assert!(forget(dir.path()).unwrap());
        assert!(!forget(dir.path()).unwrap());
        assert!(load(dir.path()).is_none());
    }
}
