//! API tokens: minted at random, shown once, stored only as a SHA-256 hash.
//!
//! A token carries 192 random bits, so a fast hash is enough: there is nothing to brute-force
//! that a slow password hash would protect.

use paas_store::{Store, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::Error;

const TOKEN_PREFIX: &str = "paas_";

pub(crate) fn generate_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

pub(crate) fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Resolves a token to its user; `None` for unknown tokens.
pub(crate) async fn authenticate(store: &Store, token: &str) -> Result<Option<User>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    Ok(store.user_by_token_hash(&hash_token(token)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 48);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), a);
        assert_eq!(hash_token(&a).len(), 64);
    }
}
