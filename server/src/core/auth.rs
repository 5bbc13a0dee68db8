//! Secrets: API tokens and invitations minted at random, shown once and stored only as a
//! SHA-256 hash; passwords hashed with argon2id.
//!
//! A token carries 192 random bits, so a fast hash is enough: there is nothing to brute-force
//! that a slow password hash would protect. Passwords are chosen by people, so they get the
//! slow one.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::Error;

const TOKEN_PREFIX: &str = "paas_";
const INVITATION_PREFIX: &str = "paas_inv_";

fn random_with(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

pub(crate) fn generate_token() -> String {
    random_with(TOKEN_PREFIX)
}

pub(crate) fn generate_invitation() -> String {
    random_with(INVITATION_PREFIX)
}

/// A random secret for a front end's own use (a CSRF token, say).
pub fn random_secret() -> String {
    generate_token()
}

/// What is stored for a token or an invitation.
pub(crate) fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An argon2id hash (with the crate's default cost: 19 MiB, 2 passes) as a PHC string. Slow
/// on purpose, so it runs off the async threads.
pub(crate) async fn hash_password(password: &str) -> Result<String, Error> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

/// Whether `password` matches `hash`. With no hash (no such user, or no password set) a
/// dummy is checked, so the answer takes as long either way and does not tell which.
pub(crate) async fn verify_password(password: &str, hash: Option<&str>) -> bool {
    static DUMMY: LazyLock<String> = LazyLock::new(|| {
        let salt = SaltString::encode_b64(b"paas-dummy-salt!").ok();
        salt.and_then(|salt| {
            let hash = Argon2::default().hash_password(generate_token().as_bytes(), &salt);
            hash.ok().map(|hash| hash.to_string())
        })
        .unwrap_or_default()
    });
    let password = password.to_string();
    let hash = hash.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY.clone());
        let matches = PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
        });
        matches && real
    })
    .await
    .unwrap_or(false)
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
        assert!(generate_invitation().starts_with(INVITATION_PREFIX));
    }

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_ne!(hash, hash_password("correct horse").await.unwrap(), "salted");
        assert!(verify_password("correct horse", Some(&hash)).await);
        assert!(!verify_password("wrong horse", Some(&hash)).await);
        assert!(!verify_password("correct horse", None).await);
        assert!(!verify_password("correct horse", Some("not a hash")).await);
    }
}
