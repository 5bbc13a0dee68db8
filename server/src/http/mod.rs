//! The HTTP front end: the JSON API (`api`), git's smart HTTP (`git`), and what every
//! request passes through (a token, the error shape, the request log). Handlers take what a
//! request says, call the core, and shape its answer; the dashboard and webhooks go beside
//! them.

mod accounts;
mod addons;
pub mod api;
pub(crate) mod auth;
mod error;
mod git;
mod github;
mod pipelines;

pub use auth::ClientAddr;

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::core::{Error, Paas, Result};

/// Longest an API request may take to answer (a config change waits for its rollout, whose
/// health check may take 10 minutes); streamed bodies (logs, `paas run`) go on past it.
const API_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The whole control-plane HTTP surface.
/// The whole control-plane HTTP surface, with the routes of `front_ends` (the dashboard)
/// beside the API's, each behind the same request ids and request log.
pub fn router(paas: Paas, front_ends: &[crate::FrontEndRoutes]) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn(auth::require_admin))
        .layer(middleware::from_fn_with_state(paas.clone(), auth::require_token));
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .merge(metrics)
        .nest("/api/v1", api_layers(api::router(paas.clone())))
        .merge(git::router())
        .merge(github::router());
    let routes = front_ends.iter().fold(routes, |routes, front_end| routes.merge(front_end()));
    routes
        .layer(middleware::from_fn_with_state(paas.clone(), auth::client_address))
        .fallback(|| async { Error::NotFound("page".into()) })
        // After every route, so that each has it: a wrong method gets the error shape too.
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        // An `x-request-id` for every request (a UUIDv7, unless the client sent one), on the
        // response too, and a span per request with it, its method and path, whose end logs
        // the status and time. Only the path: query strings and headers may hold secrets.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok());
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = request.uri().path(),
                        id = id.unwrap_or_default(),
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(UuidV7))
        .with_state(paas)
}

/// What every API request gets: a time limit, and compressed JSON for clients that ask
/// (never the streamed answers, whose lines must arrive as they come).
fn api_layers(api: Router<Paas>) -> Router<Paas> {
    let streamed = NotForContentType::const_new("application/x-ndjson")
        .and(NotForContentType::const_new("text/plain"));
    api.layer(CompressionLayer::new().compress_when(DefaultPredicate::new().and(streamed)))
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, API_TIMEOUT))
}

/// Request ids that sort by time.
#[derive(Clone, Copy)]
struct UuidV7;

impl MakeRequestId for UuidV7 {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).ok().map(RequestId::new)
    }
}

async fn healthz(State(paas): State<Paas>) -> Result<Json<serde_json::Value>> {
    paas.store().user_count().await?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

/// The router's per-app counters for Prometheus (scrape with an admin's API token as bearer
/// token).
async fn metrics(State(paas): State<Paas>) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], paas.router().render_metrics())
}
