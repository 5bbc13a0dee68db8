//! The HTTP front end: the JSON API (`api`), git's smart HTTP (`git`), and what every
//! request passes through (a token, the error shape, the request log). Handlers take what a
//! request says, call the core, and shape its answer; the dashboard and webhooks go beside
//! them.

pub mod api;
pub(crate) mod auth;
mod error;
mod git;

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};

use crate::core::{Error, Paas, Result};

/// The whole control-plane HTTP surface.
pub fn router(paas: Paas) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(paas.clone(), auth::require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(metrics)
        .nest("/api/v1", api::router(paas.clone()))
        .merge(git::router())
        .fallback(|| async { Error::NotFound("page".into()) })
        // After every route, so that each has it: a wrong method gets the error shape too.
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(middleware::from_fn(log_request))
        .with_state(paas)
}

async fn healthz(State(paas): State<Paas>) -> Result<Json<serde_json::Value>> {
    paas.store().user_count().await?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

/// The router's per-app counters for Prometheus (scrape with the API token as bearer token).
async fn metrics(State(paas): State<Paas>) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], paas.router().render_metrics())
}

/// One line per request. Only the path is logged: query strings and headers may hold secrets.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}
