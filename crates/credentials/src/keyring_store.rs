//! The OS keyring as a key provider. Used only when a Secret Service session exists (a desktop
//! login); on headless hosts the key file is used instead.

use std::path::Path;

use terok_core::env::HostEnv;

use crate::seal::DataKey;

/// Whether a D-Bus session (and so possibly a Secret Service) is there to ask.
fn session_available(env: &HostEnv) -> bool {
    env.var("DBUS_SESSION_BUS_ADDRESS").is_some()
}

/// The key stored for `vault_dir`, if the keyring has one.
pub fn load(env: &HostEnv, vault_dir: &Path) -> Option<DataKey> {
    if !session_available(env) {
        return None;
    }
    imp::load(vault_dir)
}

/// Stores `key` for `vault_dir`; `false` when the keyring is not usable.
pub fn store(env: &HostEnv, vault_dir: &Path, key: &DataKey) -> bool {
    session_available(env) && imp::store(vault_dir, key)
}

#[cfg(not(feature = "os-keyring"))]
mod imp {
    use super::*;

    pub fn load(_vault_dir: &Path) -> Option<DataKey> {
        None
    }

    pub fn store(_vault_dir: &Path, _key: &DataKey) -> bool {
        false
    }
}

#[cfg(feature = "os-keyring")]
mod imp {
    use std::path::Path;
    use std::sync::OnceLock;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use crate::seal::{DataKey, KEY_LEN};

    const SERVICE: &str = "terok";

    /// The keyring calls block and start their own runtime, which must not happen on a tokio
    /// worker; every call therefore runs on a short-lived thread of its own.
    fn on_own_thread<T: Send + 'static>(
        f: impl FnOnce() -> Option<T> + Send + 'static,
    ) -> Option<T> {
        std::thread::spawn(f).join().ok().flatten()
    }

    fn store_ready() -> bool {
        static READY: OnceLock<bool> = OnceLock::new();
        *READY.get_or_init(|| match zbus_secret_service_keyring_store::Store::new() {
            Ok(store) => {
                keyring_core::set_default_store(store);
                true
            }
            Err(err) => {
                tracing::debug!("no Secret Service keyring: {err}");
                false
            }
        })
    }

    fn user(vault_dir: &Path) -> String {
        format!("vault-key:{}", vault_dir.display())
    }

    pub fn load(vault_dir: &Path) -> Option<DataKey> {
        let user = user(vault_dir);
        on_own_thread(move || {
            if !store_ready() {
                return None;
            }
            let entry = keyring_core::Entry::new(SERVICE, &user).ok()?;
            let secret = entry.get_password().ok()?;
            let bytes = STANDARD.decode(secret.trim()).ok()?;
            let raw: [u8; KEY_LEN] = bytes.try_into().ok()?;
            Some(DataKey::from_bytes(raw))
        })
    }

    pub fn store(vault_dir: &Path, key: &DataKey) -> bool {
        let user = user(vault_dir);
        let encoded = STANDARD.encode(key.expose());
        on_own_thread(move || {
            if !store_ready() {
                return None;
            }
            let entry = keyring_core::Entry::new(SERVICE, &user).ok()?;
            entry.set_password(&encoded).ok()
        })
        .is_some()
    }
}
