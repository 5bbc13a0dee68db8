//! The add-on routes: create, attach, detach, destroy, backups, and `psql` streamed like
//! `paas run`. Each checks access through the core (`app_for`, `addon_for`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::api::{ApiJson, first_line_then_input, run_events};
use crate::core::{Actor, Error, Paas, Result};
use crate::wire::{
    AddonAttached, AddonView, AttachAddon, BackupSchedule, BackupView, ConfirmQuery, CreateAddon,
    Psql,
};

pub(super) async fn list(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<Vec<AddonView>>> {
    let addons = paas.addons(&actor, None).await?;
    Ok(Json(addons.into_iter().map(AddonView::from).collect()))
}

pub(super) async fn list_for_app(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(app): Path<String>,
) -> Result<Json<Vec<AddonView>>> {
    let app = paas.app_for(&actor, &app).await?;
    let addons = paas.addons(&actor, Some(&app)).await?;
    Ok(Json(addons.into_iter().map(AddonView::from).collect()))
}

pub(super) async fn create(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<CreateAddon>,
) -> Result<(StatusCode, Json<AddonAttached>)> {
    let app = paas.app_for(&actor, &app).await?;
    let (info, release) = paas
        .create_addon(&actor, &app, &body.service, body.attach_as.as_deref(), body.name.as_deref())
        .await?;
    let config_var = attached_var(&info, &app.name);
    let answer =
        AddonAttached { addon: info.into(), app: app.name, config_var, release: release.version };
    Ok((StatusCode::CREATED, Json(answer)))
}

pub(super) async fn show(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<AddonView>> {
    let addon = paas.addon_for(&actor, &name).await?;
    Ok(Json(paas.addon_info(addon).await?.into()))
}

pub(super) async fn destroy(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Query(query): Query<ConfirmQuery>,
) -> Result<StatusCode> {
    let addon = paas.addon_for(&actor, &name).await?;
    if query.confirm != addon.name {
        return Err(Error::invalid(
            "confirmation_required",
            format!(
                "destroying {name} deletes its data; confirm with its name (?confirm={name}, \
                 `--confirm {name}`)"
            ),
        ));
    }
    paas.destroy_addon(&actor, &addon).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn attach(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<AttachAddon>,
) -> Result<(StatusCode, Json<AddonAttached>)> {
    let addon = paas.addon_for(&actor, &name).await?;
    let app = paas.app_for(&actor, &body.app).await?;
    let release = paas.attach_addon(&actor, &addon, &app, body.attach_as.as_deref()).await?;
    let info = paas.addon_info(paas.addon_for(&actor, &name).await?).await?;
    let config_var = attached_var(&info, &app.name);
    let answer =
        AddonAttached { addon: info.into(), app: app.name, config_var, release: release.version };
    Ok((StatusCode::CREATED, Json(answer)))
}

pub(super) async fn detach(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path((name, app)): Path<(String, String)>,
) -> Result<StatusCode> {
    let addon = paas.addon_for(&actor, &name).await?;
    let app = paas.app_for(&actor, &app).await?;
    paas.detach_addon(&actor, &addon, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_backups(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Vec<BackupView>>> {
    let addon = paas.addon_for(&actor, &name).await?;
    let backups = paas.backups(&addon).await?;
    Ok(Json(backups.into_iter().map(BackupView::from).collect()))
}

pub(super) async fn capture_backup(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<BackupView>)> {
    let addon = paas.addon_for(&actor, &name).await?;
    let backup = paas.capture_backup(&actor, &addon).await?;
    Ok((StatusCode::CREATED, Json(backup.into())))
}

pub(super) async fn restore_backup(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<BackupView>> {
    let addon = paas.addon_for(&actor, &name).await?;
    Ok(Json(paas.restore_backup(&actor, &addon, &id).await?.into()))
}

pub(super) async fn schedule_backups(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<BackupSchedule>,
) -> Result<Json<AddonView>> {
    let addon = paas.addon_for(&actor, &name).await?;
    paas.schedule_backups(&actor, &addon, body.schedule.as_deref()).await?;
    Ok(Json(paas.addon_info(paas.addon_for(&actor, &name).await?).await?.into()))
}

/// `psql` in a one-off container: the body's first line names the add-on (`{}` for the
/// app's only one), the rest is psql's input; the answer streams as `paas run`'s does.
pub(super) async fn psql(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(app): Path<String>,
    body: axum::body::Body,
) -> Result<axum::response::Response> {
    let app = paas.app_for(&actor, &app).await?;
    let (Psql { addon }, input) = first_line_then_input(body).await?;
    let events = paas.psql(&actor, &app, addon.as_deref(), Some(input)).await?;
    Ok(run_events(events))
}

fn attached_var(info: &crate::core::AddonInfo, app: &str) -> String {
    info.attachments.iter().find(|t| t.app == app).map(|t| t.config_var()).unwrap_or_default()
}
