//! Who is asking: the API's bearer token, checked on every `/api/v1` route, and turned into
//! the [`Actor`] the core checks access against.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::core::{Actor, Error, FrontEnd, Paas};

/// The token from `Authorization: Bearer …`.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The address a request came from: its peer (paas does not trust forwarding headers on its
/// own API). Sign-in counts failures by it; the audit log records it.
pub(crate) struct Peer(pub(crate) Option<IpAddr>);

fn peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(peer(&parts.extensions)))
    }
}

/// Middleware for every `/api/v1` route but sign-in: a valid bearer token, or 401. The
/// handlers get the [`Actor`].
pub(crate) async fn require_token(
    State(paas): State<Paas>,
    mut request: Request,
    next: Next,
) -> Result<Response, Error> {
    let Some(token) = bearer_token(request.headers()) else {
        return Err(Error::Unauthorized(
            "this API needs a token: send `Authorization: Bearer <token>` (paas login sets it up)"
                .into(),
        ));
    };
    let Some(user) = paas.authenticate(token).await? else {
        return Err(Error::Unauthorized("invalid API token".into()));
    };
    let actor = Actor::new(user, peer(request.extensions()), FrontEnd::Api);
    request.extensions_mut().insert(actor);
    Ok(next.run(request).await)
}

/// Middleware for routes only admins may use (metrics).
pub(crate) async fn require_admin(request: Request, next: Next) -> Result<Response, Error> {
    match request.extensions().get::<Actor>() {
        Some(actor) if actor.is_admin() => Ok(next.run(request).await),
        _ => Err(Error::Forbidden("only an admin can read the metrics".into())),
    }
}
