//! Who is asking: the API's bearer token, checked on every `/api/v1` route.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::core::{Error, Paas, auth};

/// The token from `Authorization: Bearer …`.
fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware for every `/api/v1` route: a valid bearer token, or 401.
pub(crate) async fn require_token(
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
    let Some(user) = auth::authenticate(paas.store(), token).await? else {
        return Err(Error::Unauthorized("invalid API token".into()));
    };
    request.extensions_mut().insert(user);
    Ok(next.run(request).await)
}
