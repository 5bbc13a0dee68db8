//! API tokens: minted at random, shown once, stored only as a SHA-256 hash.
//!
//! A token carries 192 random bits, so a fast hash is enough: there is nothing to brute-force
//! that a slow password hash would protect.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use paas_store::{Store, User};

use crate::ops::Paas;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::Error;

const TOKEN_PREFIX: &str = "paas_";

pub fn generate_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token from `Authorization: Bearer …`.
fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolves a token to its user; `None` for unknown tokens.
pub async fn authenticate(store: &Store, token: &str) -> Result<Option<User>, Error> {
    if token.is_empty() {
        return Ok(None);
    }
    Ok(store.user_by_token_hash(&hash_token(token)).await?)
}

/// Middleware for every `/api/v1` route: a valid bearer token, or 401.
pub async fn require_token(
    State(paas): State<Paas>,
    mut request: Request,
    next: Next,
) -> Result<Response, Error> {
    let Some(token) = bearer_token(&request) else {
        return Err(Error::Unauthorized(
            "this API needs a token: send `Authorization: Bearer <token>` (paas login sets it up)"
                .into(),
        ));
    };
    let Some(user) = authenticate(paas.store(), token).await? else {
        return Err(Error::Unauthorized("invalid API token".into()));
    };
    request.extensions_mut().insert(user);
    Ok(next.run(request).await)
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
