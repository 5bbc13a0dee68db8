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

/// The address a request came from: its peer, or, when the peer is one of
/// `--trusted-proxies`, the client its `X-Forwarded-For` names. Sign-in counts failures by
/// it; the audit log records it. Set on every request by [`client_address`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

pub(crate) struct Peer(pub(crate) Option<IpAddr>);

fn peer(extensions: &Extensions) -> Option<IpAddr> {
    match extensions.get::<ClientAddr>() {
        Some(ClientAddr(address)) => *address,
        None => extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()),
    }
}

/// The client behind `peer`: walking `X-Forwarded-For` from the right (the entry the
/// nearest proxy added), the first address that is not a trusted proxy. A client can put
/// anything at the left of the header; only what trusted proxies appended counts.
pub(crate) fn client_behind(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &paas_router::TrustedProxies,
) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded.into_iter().rev().find(|ip| !trusted.contains(*ip)).unwrap_or(peer)
}

/// Middleware for every route: records the request's [`ClientAddr`].
pub(crate) async fn client_address(
    State(paas): State<Paas>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let client = peer.map(|peer| client_behind(peer, request.headers(), paas.trusted_proxies()));
    request.extensions_mut().insert(ClientAddr(client));
    next.run(request).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted: paas_router::TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let headers = |xff: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", xff.parse().unwrap());
            h
        };
        // Through nginx on this host: the client nginx saw.
        assert_eq!(
            client_behind(ip("127.0.0.1"), &headers("203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        // A client that forges the header's start gets the address the proxy appended.
        let forged = headers("198.51.100.1, 203.0.113.9, 10.1.2.3");
        assert_eq!(client_behind(ip("127.0.0.1"), &forged, &trusted), ip("203.0.113.9"));
        // From anyone not trusted, the header is ignored.
        assert_eq!(
            client_behind(ip("192.0.2.5"), &headers("203.0.113.9"), &trusted),
            ip("192.0.2.5")
        );
        let nobody = paas_router::TrustedProxies::default();
        assert_eq!(
            client_behind(ip("127.0.0.1"), &headers("203.0.113.9"), &nobody),
            ip("127.0.0.1")
        );
        // No header, or only proxies in it: the peer.
        assert_eq!(client_behind(ip("127.0.0.1"), &HeaderMap::new(), &trusted), ip("127.0.0.1"));
        assert_eq!(
            client_behind(ip("127.0.0.1"), &headers("garbage, 10.0.0.1"), &trusted),
            ip("127.0.0.1")
        );
    }
}
