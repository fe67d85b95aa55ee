//! Sealing secrets at rest: XChaCha20-Poly1305 with a random 192-bit nonce per value and the
//! value's identity (table, row, column) as associated data, so a sealed value copied into
//! another row or column no longer opens.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Length of the data key in bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const VERSION: u8 = 1;

/// The 256-bit key that seals secret columns. Not `Debug`, not `Clone`: it is only ever held.
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A new random key from the OS RNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The raw bytes (for storing the key itself).
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Seals `plaintext` bound to `aad`: `version || nonce || ciphertext+tag`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Rng)?;
        let ciphertext = self
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealError::Crypto)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a value sealed with [`Self::seal`] and the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..=NONCE_LEN]);
        self.cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad,
                },
            )
            .map_err(|_| SealError::Crypto)
    }
}

/// A value could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The OS random number generator failed.
    #[error("the OS random number generator failed")]
    Rng,
    /// Authentication failed: wrong key, wrong associated data, or tampered value.
    #[error("decryption failed (wrong key or tampered data)")]
    Crypto,
    /// Not a sealed value of a version this build understands.
    #[error("not a sealed value")]
    Malformed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = DataKey::generate().unwrap();
        let sealed = key
            .seal(b"secret", b"credentials:default:claude:data")
            .unwrap();
        assert_eq!(
            key.open(&sealed, b"credentials:default:claude:data")
                .unwrap(),
            b"secret"
        );
        assert_eq!(
            key.open(&sealed, b"credentials:default:codex:data"),
            Err(SealError::Crypto)
        );
        let other = DataKey::generate().unwrap();
        assert_eq!(
            other.open(&sealed, b"credentials:default:claude:data"),
            Err(SealError::Crypto)
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            key.open(&tampered, b"credentials:default:claude:data"),
            Err(SealError::Crypto)
        );
        assert_eq!(key.open(b"short", b""), Err(SealError::Malformed));
        assert_ne!(
            key.seal(b"secret", b"a").unwrap(),
            key.seal(b"secret", b"a").unwrap(),
            "nonces differ"
        );
    }
}
