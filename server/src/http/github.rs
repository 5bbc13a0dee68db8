//! GitHub's side: the webhook GitHub posts deliveries to (`POST /hooks/github`, no token:
//! the signature is the proof), and the API routes that link an app to a repository.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Extension, Json, Router};

use super::api::ApiJson;
use crate::core::{Actor, Delivery, Error, MAX_DELIVERY_BYTES, Paas, Result};
use crate::wire::{GithubLinked, GithubView, LinkGithub};

/// The webhook route, outside `/api/v1`.
pub(super) fn router() -> Router<Paas> {
    Router::new()
        .route("/hooks/github", post(delivery))
        // One byte over GitHub's cap still reads, so the core can say why it refuses.
        .layer(DefaultBodyLimit::max(MAX_DELIVERY_BYTES + 1))
}

async fn delivery(
    State(paas): State<Paas>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivery = Delivery {
        event: header("x-github-event"),
        id: header("x-github-delivery"),
        signature: header("x-hub-signature-256"),
    };
    let answer = paas.github_delivery(delivery, &body).await?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::ACCEPTED);
    Ok((status, Json(serde_json::json!({ "message": answer.message }))))
}

pub(super) async fn link(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<LinkGithub>,
) -> Result<(StatusCode, Json<GithubLinked>)> {
    let app = paas.app_for(&actor, &name).await?;
    let branch = body.branch.as_deref().unwrap_or("main");
    let link = paas
        .link_github(
            &actor,
            &app,
            &body.repository,
            branch,
            body.secret.as_deref(),
            body.token.as_deref(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(GithubLinked {
            repository: link.repository,
            branch: link.branch,
            secret: link.secret,
            webhook_path: "/hooks/github".into(),
            content_type: "application/json".into(),
            events: vec!["push".into()],
        }),
    ))
}

pub(super) async fn show(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<GithubView>> {
    let app = paas.app_for(&actor, &name).await?;
    let Some((link, deliveries)) = paas.github(&app).await? else {
        return Err(Error::NotFound(format!("a GitHub link of {name}")));
    };
    Ok(Json(GithubView {
        repository: link.repository,
        branch: link.branch,
        token_set: link.token.is_some(),
        created_by: link.created_by,
        created_at: link.created_at,
        deliveries: deliveries.into_iter().map(Into::into).collect(),
    }))
}

pub(super) async fn unlink(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    let app = paas.app_for(&actor, &name).await?;
    paas.unlink_github(&actor, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}
