//! Phantom tokens: what containers get instead of real credentials. `terok-p-` followed by 128
//! random bits from the OS RNG as 32 hex digits. Only a SHA-256 of each token is stored.

use sha2::{Digest, Sha256};

/// Prefix of every phantom token.
pub const TOKEN_PREFIX: &str = "terok-p-";

/// A fresh phantom token.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// The stored form of a token: its SHA-256, hex. The vault computes one per request, so the
/// digits come from a table rather than through `hex::encode`'s character iterator (a tenth
/// of the cost).
pub fn token_hash(token: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Whether `text` has the shape of a phantom token.
pub fn is_phantom_token(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX)
        .is_some_and(|hex| hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape_and_differ() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(is_phantom_token(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(!is_phantom_token("terok-p-xyz"));
        assert!(!is_phantom_token("sk-ant-api03-abc"));
    }

    #[test]
    fn the_stored_form_is_the_lowercase_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let token = new_token().unwrap();
        assert_eq!(
            token_hash(&token),
            hex::encode(Sha256::digest(token.as_bytes()))
        );
    }
}
