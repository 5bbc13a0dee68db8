//! The web dashboard: server-rendered pages (askama) over the server core's operations, the
//! same ones the JSON API calls, so every rule (access, validation, the audit log) holds here
//! too. `paas server` merges [`router`] in at `/` of the control plane's address.
//!
//! Every page needs a session (a cookie from signing in with a password); every form carries
//! the session's CSRF token; everything shown is escaped by askama. JavaScript is used only
//! where a page updates live (the deploy log and the app's logs, over server-sent events).

mod account;
mod apps;
mod page;
mod pipelines;
mod session;
mod stream;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use paas_server::core::Paas;

/// Every dashboard route: method, path, handler. The router is built from this list, and
/// the security tests walk it (every page redirects without a session, every form is
/// refused without its CSRF token).
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<Paas>)> {
    vec![
        ("GET", "/", get(apps::list)),
        ("POST", "/apps", post(apps::create)),
        ("GET", "/apps/{app}", get(apps::overview)),
        ("POST", "/apps/{app}/scale", post(apps::scale)),
        ("POST", "/apps/{app}/restart", post(apps::restart)),
        ("POST", "/apps/{app}/domains", post(apps::add_domain)),
        ("POST", "/apps/{app}/domains/remove", post(apps::remove_domain)),
        ("POST", "/apps/{app}/access", post(apps::add_member)),
        ("POST", "/apps/{app}/access/remove", post(apps::remove_member)),
        ("POST", "/apps/{app}/destroy", post(apps::destroy)),
        ("GET", "/apps/{app}/config", get(apps::config)),
        ("POST", "/apps/{app}/config", post(apps::set_config)),
        ("POST", "/apps/{app}/config/remove", post(apps::remove_config)),
        ("POST", "/apps/{app}/config/paste", post(apps::paste_config)),
        ("GET", "/apps/{app}/deploy", get(apps::deploy_page)),
        ("POST", "/apps/{app}/deploy", post(apps::deploy)),
        ("GET", "/apps/{app}/deploy/stream", get(stream::deploy_log)),
        ("POST", "/apps/{app}/github", post(apps::link_github)),
        ("POST", "/apps/{app}/github/unlink", post(apps::unlink_github)),
        ("GET", "/apps/{app}/releases", get(apps::releases)),
        ("GET", "/apps/{app}/rollback", get(apps::confirm_rollback)),
        ("POST", "/apps/{app}/rollback", post(apps::rollback)),
        ("GET", "/apps/{app}/builds/{id}", get(apps::build)),
        ("GET", "/apps/{app}/logs", get(apps::logs)),
        ("GET", "/apps/{app}/logs/stream", get(stream::app_logs)),
        ("POST", "/apps/{app}/releases/approve", post(apps::approve)),
        ("POST", "/apps/{app}/releases/reject", post(apps::reject)),
        ("GET", "/pipelines", get(pipelines::list)),
        ("POST", "/pipelines", post(pipelines::create)),
        ("GET", "/pipelines/{pipeline}", get(pipelines::show)),
        ("POST", "/pipelines/{pipeline}/apps", post(pipelines::add_app)),
        ("POST", "/pipelines/{pipeline}/promote", post(pipelines::promote)),
        ("POST", "/pipelines/{pipeline}/approve", post(pipelines::approve)),
        ("POST", "/pipelines/{pipeline}/reject", post(pipelines::reject)),
        ("GET", "/account", get(account::page)),
        ("POST", "/account/password", post(account::change_password)),
        ("POST", "/account/tokens", post(account::create_token)),
        ("POST", "/account/tokens/revoke", post(account::revoke_token)),
        ("POST", "/account/sessions/end-others", post(account::end_other_sessions)),
        ("GET", "/users", get(account::users)),
        ("POST", "/users", post(account::add_user)),
        ("POST", "/users/remove", post(account::remove_user)),
        ("POST", "/logout", post(session::log_out)),
    ]
}

/// The dashboard, to merge into the control plane's router.
pub fn router() -> Router<Paas> {
    let mut router = Router::new()
        .route("/login", get(session::login_page).post(session::log_in))
        .route("/static/app.css", get(|| asset("text/css", include_str!("../static/app.css"))))
        .route(
            "/static/app.js",
            get(|| asset("text/javascript", include_str!("../static/app.js"))),
        );
    // One route per path, its methods merged.
    let mut by_path: std::collections::BTreeMap<&str, MethodRouter<Paas>> = Default::default();
    for (_, path, handler) in routes() {
        let merged = match by_path.remove(path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(path, merged);
    }
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    router.layer(axum::middleware::from_fn(protective_headers))
}

/// Headers on every dashboard answer: scripts, styles and forms from this site only (no
/// inline script runs, whatever a page shows), never inside another site's frame, and no
/// caching of pages that hold secrets.
async fn protective_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        body,
    )
}
