//! The pipeline routes: create, show, add and remove apps, destroy, and promote. Access to
//! each app is checked by the core (`app_for`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::api::ApiJson;
use crate::core::{Actor, Error, Paas, PipelineStatus, Result, ReviewApps};
use crate::wire::{AddToPipeline, ConfirmQuery, CreatePipeline, Promote, Promoted};

pub(super) async fn list(State(paas): State<Paas>) -> Result<Json<Vec<String>>> {
    Ok(Json(paas.pipelines().await?.into_iter().map(|p| p.name).collect()))
}

pub(super) async fn create(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<CreatePipeline>,
) -> Result<(StatusCode, Json<PipelineStatus>)> {
    let pipeline = paas.create_pipeline(&actor, &body.name).await?;
    Ok((StatusCode::CREATED, Json(paas.pipeline_status(&actor, &pipeline).await?)))
}

pub(super) async fn show(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<PipelineStatus>> {
    let pipeline = paas.pipeline(&name).await?;
    Ok(Json(paas.pipeline_status(&actor, &pipeline).await?))
}

pub(super) async fn destroy(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Query(query): Query<ConfirmQuery>,
) -> Result<StatusCode> {
    let pipeline = paas.pipeline(&name).await?;
    if query.confirm != name {
        return Err(Error::invalid(
            "confirmation_required",
            format!("destroying pipeline {name} needs ?confirm={name}"),
        ));
    }
    paas.destroy_pipeline(&actor, &pipeline).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn add_app(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<AddToPipeline>,
) -> Result<Json<PipelineStatus>> {
    let pipeline = paas.pipeline(&name).await?;
    let app = paas.app_for(&actor, &body.app).await?;
    paas.add_to_pipeline(&actor, &pipeline, &app, &body.stage).await?;
    Ok(Json(paas.pipeline_status(&actor, &pipeline).await?))
}

pub(super) async fn remove_app(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(app): Path<String>,
) -> Result<StatusCode> {
    let app = paas.app_for(&actor, &app).await?;
    paas.remove_from_pipeline(&actor, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn set_review_apps(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ReviewApps>,
) -> Result<Json<PipelineStatus>> {
    let pipeline = paas.pipeline(&name).await?;
    paas.set_review_apps(&actor, &pipeline, Some(&body)).await?;
    let pipeline = paas.pipeline(&name).await?;
    Ok(Json(paas.pipeline_status(&actor, &pipeline).await?))
}

pub(super) async fn end_review_apps(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    let pipeline = paas.pipeline(&name).await?;
    // Only someone with access to the app the review apps come from may turn them off.
    if let Some(json) = &pipeline.review {
        let settings: ReviewApps =
            serde_json::from_str(json).map_err(|e| Error::Internal(e.to_string()))?;
        paas.app_for(&actor, &settings.app).await?;
    }
    paas.set_review_apps(&actor, &pipeline, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn promote(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<Promote>,
) -> Result<Json<Vec<Promoted>>> {
    let app = paas.app_for(&actor, &app).await?;
    let log = paas_builder::BuildLog::new();
    let made = paas.promote(&actor, &app, &body.to, &log).await?;
    Ok(Json(
        made.into_iter()
            .map(|(app, release)| Promoted { app: app.name, release: release.into() })
            .collect(),
    ))
}
