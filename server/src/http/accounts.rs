//! The API's account routes: signing in, users, tokens, who may touch an app, and the audit
//! log. Like the rest of the API, thin: each calls one core operation.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;

use super::api::ApiJson;
use super::auth::Peer;
use crate::core::{Actor, Error, Paas, Result};
use crate::wire::{
    AcceptInvitation, AddMember, AddUser, AddedUser, AuditEventView, AuditQuery, ChangePassword,
    CreatedToken, LogIn, MemberView, NewToken, TokenView, UserView,
};

fn views<Row, View: From<Row>>(rows: Vec<Row>) -> Vec<View> {
    rows.into_iter().map(View::from).collect()
}

/// `POST /login`: an email and password for a new personal token (no token needed).
pub(crate) async fn log_in(
    State(paas): State<Paas>,
    Peer(address): Peer,
    ApiJson(body): ApiJson<LogIn>,
) -> Result<(StatusCode, Json<CreatedToken>)> {
    let (info, token) =
        paas.log_in(&body.email, &body.password, address, &body.description).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info: info.into() })))
}

/// `POST /invitations/accept`: sets the invited user's password and issues their first
/// personal token (no token needed: the invitation is the proof).
pub(crate) async fn accept_invitation(
    State(paas): State<Paas>,
    Peer(address): Peer,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> Result<(StatusCode, Json<CreatedToken>)> {
    let (info, token) = paas
        .accept_invitation(&body.invitation, &body.password, address, &body.description)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info: info.into() })))
}

pub(crate) async fn change_password(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<StatusCode> {
    paas.change_password(&actor, body.current_password.as_deref(), &body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn list_users(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<Vec<UserView>>> {
    Ok(Json(views(paas.users(&actor).await?)))
}

pub(crate) async fn add_user(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<AddUser>,
) -> Result<(StatusCode, Json<AddedUser>)> {
    let (user, invitation) =
        paas.add_user(&actor, &body.email, body.admin, body.password.as_deref()).await?;
    let added = AddedUser { admin: user.admin(), email: user.email, invitation };
    Ok((StatusCode::CREATED, Json(added)))
}

pub(crate) async fn remove_user(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(email): Path<String>,
) -> Result<StatusCode> {
    paas.remove_user(&actor, &email).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct TokensQuery {
    /// Everyone's tokens (admins).
    #[serde(default)]
    all: bool,
}

pub(crate) async fn list_tokens(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    query: std::result::Result<Query<TokensQuery>, QueryRejection>,
) -> Result<Json<Vec<TokenView>>> {
    let Query(query) = query?;
    Ok(Json(views(paas.tokens(&actor, query.all).await?)))
}

pub(crate) async fn create_token(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>)> {
    let (info, token) = paas.create_token(&actor, &body.description, body.expires_in_secs).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, info: info.into() })))
}

pub(crate) async fn revoke_token(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id: i64 = id
        .parse()
        .map_err(|_| Error::invalid("invalid_token_id", format!("{id:?} is not a token id")))?;
    paas.revoke_token(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn list_members(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Vec<MemberView>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(views(paas.members(&app).await?)))
}

pub(crate) async fn add_member(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<StatusCode> {
    let app = paas.app_for(&actor, &name).await?;
    paas.add_member(&actor, &app, &body.email).await?;
    Ok(StatusCode::CREATED)
}

pub(crate) async fn remove_member(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path((name, email)): Path<(String, String)>,
) -> Result<StatusCode> {
    let app = paas.app_for(&actor, &name).await?;
    paas.remove_member(&actor, &app, &email).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?app=APP&limit=N`: the newest changes first.
pub(crate) async fn audit_log(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    query: std::result::Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEventView>>> {
    let Query(query) = query?;
    let app = match query.app.as_deref() {
        Some(name) => Some(paas.app_for(&actor, name).await?),
        None => None,
    };
    let events = paas.audit_log(&actor, app.as_ref(), query.limit.unwrap_or(100)).await?;
    Ok(Json(views(events)))
}
