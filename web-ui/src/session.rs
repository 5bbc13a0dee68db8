//! Signing in and out, the session cookie, and the CSRF token every form carries.
//!
//! The cookie holds a random session token (only its hash is stored): `HttpOnly`,
//! `SameSite=Lax`, and `Secure` when the request came over HTTPS. Each session has its own
//! CSRF token, rendered into every form and checked on every post. The sign-in form, which
//! has no session yet, gets a token in a short-lived cookie and the same in the form
//! (double submit).

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use paas_server::core::{Actor, Error, FrontEnd, Paas, SESSION_SECS, Session};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::page::{self, Layout};

const SESSION_COOKIE: &str = "paas_session";
const LOGIN_CSRF_COOKIE: &str = "paas_login_csrf";

/// A signed-in request: who (as the core sees them) and which session.
pub(crate) struct SignedIn {
    pub(crate) actor: Actor,
    pub(crate) session: Session,
}

impl SignedIn {
    /// The frame every page shares: who is signed in, and the token its forms carry.
    pub(crate) fn layout(&self, title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            email: self.actor.email().to_string(),
            admin: self.actor.is_admin(),
            csrf: self.session.csrf_token.clone(),
        }
    }
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The client's address, as the control plane worked it out (behind trusted proxies too).
fn peer(parts: &Parts) -> Option<IpAddr> {
    match parts.extensions.get::<paas_server::http::ClientAddr>() {
        Some(client) => client.0,
        None => parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()),
    }
}

/// Whether the browser reached paas over HTTPS (directly or through a TLS proxy that says
/// so): the cookies are then `Secure`.
fn over_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: i64) -> String {
    let secure = if over_https(headers) { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// Compares in time that does not depend on where the strings differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<Paas> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, paas: &Paas) -> Result<Self, Response> {
        let token = cookie(&parts.headers, SESSION_COOKIE).unwrap_or_default();
        match paas.session(token).await {
            Ok(Some((user, session))) => {
                let actor = Actor::new(user, peer(parts), FrontEnd::Dashboard);
                Ok(SignedIn { actor, session })
            }
            Ok(None) => {
                let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let next = if parts.method == axum::http::Method::GET { here } else { "/" };
                Err(Redirect::to(&format!("/login?next={}", page::encode(next))).into_response())
            }
            Err(err) => Err(page::error_page(None, &err)),
        }
    }
}

/// A posted form of a signed-in user whose CSRF token matched: every form handler takes
/// this, so none can forget the check.
pub(crate) struct CsrfForm<T> {
    pub(crate) signed_in: SignedIn,
    pub(crate) form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<Paas> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, paas: &Paas) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let signed_in = SignedIn::from_request_parts(&mut parts, paas).await?;
        let bytes = axum::body::to_bytes(body, 1024 * 1024)
            .await
            .map_err(|_| page::message_page(413, "That form is too large (over 1 MiB)."))?;
        let CsrfField { csrf } =
            serde_urlencoded::from_bytes(&bytes).unwrap_or(CsrfField { csrf: String::new() });
        if !same_secret(&csrf, &signed_in.session.csrf_token) {
            return Err(page::message_page(
                403,
                "This form has expired or did not come from this dashboard (its CSRF token \
                 does not match). Go back, reload the page and try again.",
            ));
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| page::message_page(400, &format!("That form is not valid: {e}")))?;
        Ok(CsrfForm { signed_in, form })
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Only a path on this site: `next` must not send the browser elsewhere. Browsers drop tabs
/// and newlines from URLs and read `\\` as `/`, so `/\t/evil.example` is refused too.
pub(crate) fn local_path(next: Option<&str>) -> String {
    let local = |path: &str| {
        path.starts_with('/')
            && !path.chars().any(|c| c == '\\' || c.is_whitespace() || c.is_control())
            && !path.starts_with("//")
    };
    match next {
        Some(path) if local(path) => path.to_string(),
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path(Some("/apps/shop?x=1")), "/apps/shop?x=1");
        for away in [
            "//evil.example",
            "/\t/evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/\n/x",
            "",
        ] {
            assert_eq!(local_path(Some(away)), "/", "{away:?}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "ab") && !same_secret("", "a"));
    }
}

/// The sign-in page; with an error, answered `status` (401, or 429 when locked out).
fn login_form(
    headers: &HeaderMap,
    next: &str,
    email: &str,
    error: Option<(u16, String)>,
) -> Response {
    let csrf = paas_server::core::random_secret();
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (200, None),
    };
    let page = LoginPage { csrf: csrf.clone(), next: next.to_string(), email: email.into(), error };
    let mut response = page::render_status(status, &page);
    if let Ok(value) = set_cookie(headers, LOGIN_CSRF_COOKIE, &csrf, 3600).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub(crate) async fn login_page(headers: HeaderMap, Query(query): Query<Next>) -> Response {
    login_form(&headers, &local_path(query.next.as_deref()), "", None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub(crate) async fn log_in(State(paas): State<Paas>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let address = peer(&parts);
    let headers = std::mem::take(&mut parts.headers);
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return page::message_page(413, "That form is too large.");
    };
    let form: LoginForm = match serde_urlencoded::from_bytes(&bytes) {
        Ok(form) => form,
        Err(e) => return page::message_page(400, &format!("That form is not valid: {e}")),
    };
    let next = local_path(form.next.as_deref());
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&form.csrf, expected) {
        let error = "The sign-in form expired; please try again.".to_string();
        return login_form(&headers, &next, &form.email, Some((401, error)));
    }
    match paas.start_session(&form.email, &form.password, address).await {
        Ok(token) => {
            let mut response = Redirect::to(&next).into_response();
            let cookies = [
                set_cookie(&headers, SESSION_COOKIE, &token, SESSION_SECS),
                set_cookie(&headers, LOGIN_CSRF_COOKIE, "", 0),
            ];
            for value in cookies {
                if let Ok(value) = value.parse() {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(err) => {
            let status = match &err {
                Error::TooManyAttempts { .. } => 429,
                _ => 401,
            };
            login_form(&headers, &next, &form.email, Some((status, err.public_message())))
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Empty {}

pub(crate) async fn log_out(
    State(paas): State<Paas>,
    headers: HeaderMap,
    CsrfForm { signed_in, .. }: CsrfForm<Empty>,
) -> Response {
    if let Err(err) = paas.end_session(&signed_in.actor, &signed_in.session).await {
        return page::error_page(None, &err);
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = set_cookie(&headers, SESSION_COOKIE, "", 0).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
