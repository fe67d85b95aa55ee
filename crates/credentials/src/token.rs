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

/// The stored form of a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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
}
