//! The JSON API under `/api/v1`. Handlers are thin: they parse, call an operation in
//! [`crate::core`], and shape the answer.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use axum::{Extension, Json, Router, middleware};
use paas_store::App;

use crate::core::{Actor, AppHttps, Error, Paas, Result};
use crate::http::{accounts, auth};
use crate::wire::{
    Account, AddDomain, AppInfo, AppView, BuildView, ConfigUpdate, CreateApp, DomainView,
    ReleaseView, Restart, Rollback, RunCommand, SetHttps, UpdateApp,
};

/// Store rows as the API shows them.
fn views<Row, View: From<Row>>(rows: Vec<Row>) -> Vec<View> {
    rows.into_iter().map(View::from).collect()
}

/// A JSON request body whose rejections (malformed JSON, a wrong field, a body over the
/// limit) answer in the API's error shape, as axum's `error-handling` example does.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(ApiJson(value))
    }
}

/// Every API route that needs a token: method, path (relative to `/api/v1`) and handler.
/// The router is built from this list, and the auth test walks the same list.
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<Paas>)> {
    vec![
        (Method::GET, "/account", get(account)),
        (Method::PUT, "/account/password", put(accounts::change_password)),
        (Method::GET, "/users", get(accounts::list_users)),
        (Method::POST, "/users", post(accounts::add_user)),
        (Method::DELETE, "/users/{email}", delete(accounts::remove_user)),
        (Method::GET, "/tokens", get(accounts::list_tokens)),
        (Method::POST, "/tokens", post(accounts::create_token)),
        (Method::DELETE, "/tokens/{id}", delete(accounts::revoke_token)),
        (Method::GET, "/audit", get(accounts::audit_log)),
        (Method::GET, "/apps", get(list_apps)),
        (Method::POST, "/apps", post(create_app)),
        (Method::GET, "/apps/{app}", get(show_app)),
        (Method::PATCH, "/apps/{app}", patch(update_app)),
        (Method::DELETE, "/apps/{app}", delete(destroy_app)),
        (Method::GET, "/apps/{app}/config", get(show_config)),
        (Method::PATCH, "/apps/{app}/config", patch(update_config)),
        (Method::GET, "/apps/{app}/releases", get(list_releases)),
        (Method::GET, "/apps/{app}/releases/{version}", get(show_release)),
        (Method::GET, "/apps/{app}/builds", get(list_builds)),
        (Method::GET, "/apps/{app}/builds/{id}", get(show_build)),
        (Method::POST, "/apps/{app}/rollback", post(rollback)),
        (Method::POST, "/apps/{app}/releases/{version}/approve", post(approve_release)),
        (Method::POST, "/apps/{app}/releases/{version}/reject", post(reject_release)),
        (Method::GET, "/apps/{app}/ps", get(list_processes)),
        (Method::POST, "/apps/{app}/ps/restart", post(restart_processes)),
        (Method::GET, "/apps/{app}/logs", get(stream_logs)),
        (Method::POST, "/apps/{app}/run", post(run_one_off)),
        (Method::GET, "/apps/{app}/formation", get(show_formation)),
        (Method::PATCH, "/apps/{app}/formation", patch(scale)),
        (Method::GET, "/apps/{app}/domains", get(list_domains)),
        (Method::POST, "/apps/{app}/domains", post(add_domain)),
        (Method::DELETE, "/apps/{app}/domains/{hostname}", delete(remove_domain)),
        (Method::GET, "/apps/{app}/https", get(show_https)),
        (Method::PATCH, "/apps/{app}/https", patch(set_https)),
        (Method::GET, "/apps/{app}/access", get(accounts::list_members)),
        (Method::POST, "/apps/{app}/access", post(accounts::add_member)),
        (Method::DELETE, "/apps/{app}/access/{email}", delete(accounts::remove_member)),
        (Method::GET, "/apps/{app}/github", get(super::github::show)),
        (Method::POST, "/apps/{app}/github", post(super::github::link)),
        (Method::DELETE, "/apps/{app}/github", delete(super::github::unlink)),
        (Method::GET, "/apps/{app}/routes", get(list_routes)),
        (Method::POST, "/apps/{app}/routes", post(add_route)),
        (Method::DELETE, "/apps/{app}/routes", delete(remove_route)),
        (Method::GET, "/apps/{app}/cron", get(list_cron_jobs)),
        (Method::POST, "/apps/{app}/cron", post(add_cron_job)),
        (Method::DELETE, "/apps/{app}/cron/{id}", delete(remove_cron_job)),
        (Method::GET, "/apps/{app}/volumes", get(list_volumes)),
        (Method::POST, "/apps/{app}/volumes", post(add_volume)),
        (Method::DELETE, "/apps/{app}/volumes/{name}", delete(remove_volume)),
        (Method::GET, "/apps/{app}/addons", get(super::addons::list_for_app)),
        (Method::POST, "/apps/{app}/addons", post(super::addons::create)),
        (Method::POST, "/apps/{app}/psql", post(super::addons::psql)),
        (Method::GET, "/addons", get(super::addons::list)),
        (Method::GET, "/addons/{addon}", get(super::addons::show)),
        (Method::DELETE, "/addons/{addon}", delete(super::addons::destroy)),
        (Method::POST, "/addons/{addon}/attachments", post(super::addons::attach)),
        (Method::DELETE, "/addons/{addon}/attachments/{app}", delete(super::addons::detach)),
        (Method::GET, "/addons/{addon}/backups", get(super::addons::list_backups)),
        (Method::POST, "/addons/{addon}/backups", post(super::addons::capture_backup)),
        (Method::POST, "/addons/{addon}/backups/{id}/restore", post(super::addons::restore_backup)),
        (Method::PUT, "/addons/{addon}/backups/schedule", put(super::addons::schedule_backups)),
        (Method::GET, "/pipelines", get(super::pipelines::list)),
        (Method::POST, "/pipelines", post(super::pipelines::create)),
        (Method::GET, "/pipelines/{pipeline}", get(super::pipelines::show)),
        (Method::DELETE, "/pipelines/{pipeline}", delete(super::pipelines::destroy)),
        (Method::POST, "/pipelines/{pipeline}/apps", post(super::pipelines::add_app)),
        (Method::PUT, "/pipelines/{pipeline}/review-apps", put(super::pipelines::set_review_apps)),
        (
            Method::DELETE,
            "/pipelines/{pipeline}/review-apps",
            delete(super::pipelines::end_review_apps),
        ),
        (Method::DELETE, "/apps/{app}/pipeline", delete(super::pipelines::remove_app)),
        (Method::POST, "/apps/{app}/promote", post(super::pipelines::promote)),
    ]
}

/// The routes that take no token: signing in with a password or an invitation. Failures
/// are counted per account and address.
pub fn public_routes() -> Vec<(Method, &'static str, MethodRouter<Paas>)> {
    vec![
        (Method::POST, "/login", post(accounts::log_in)),
        (Method::POST, "/invitations/accept", post(accounts::accept_invitation)),
    ]
}

/// The `/api/v1` router: every route behind the token check but the public ones.
pub fn router(paas: Paas) -> Router<Paas> {
    let guarded = router_of(routes())
        .fallback(|| async { Error::NotFound("API route".into()) })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(paas, auth::require_token));
    router_of(public_routes())
        .merge(guarded)
        .layer(DefaultBodyLimit::max(crate::wire::MAX_BODY_BYTES))
        .layer(middleware::from_fn(refuse_large_bodies))
}

/// One route per path, its methods merged.
fn router_of(routes: Vec<(Method, &'static str, MethodRouter<Paas>)>) -> Router<Paas> {
    let mut by_path: BTreeMap<&str, MethodRouter<Paas>> = BTreeMap::new();
    for (_, path, handler) in routes {
        let merged = match by_path.remove(path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(path, merged);
    }
    by_path.into_iter().fold(Router::new(), |router, (path, handler)| router.route(path, handler))
}

/// Refuses a body that says it is over [`crate::wire::MAX_BODY_BYTES`] before reading any of it, so a
/// client that waits for `100 Continue` (curl does past 1 MB) is told at once. Piped input
/// to `paas run` (`application/octet-stream`) streams, with no limit.
async fn refuse_large_bodies(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    use axum::response::IntoResponse;
    let headers = request.headers();
    let streamed = headers
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/octet-stream"));
    let declared = headers.get(CONTENT_LENGTH).and_then(|n| n.to_str().ok()?.parse::<usize>().ok());
    if !streamed && declared.is_some_and(|n| n > crate::wire::MAX_BODY_BYTES) {
        return Error::TooLarge.into_response();
    }
    next.run(request).await
}

async fn account(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<Account>> {
    let record = paas.store().user_record(actor.email()).await?;
    let password_set = record.is_some_and(|r| r.password_hash.is_some());
    Ok(Json(Account { admin: actor.is_admin(), email: actor.user.email, password_set }))
}

async fn list_apps(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<Vec<AppView>>> {
    Ok(Json(views(paas.apps_for(&actor).await?)))
}

async fn create_app(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    ApiJson(body): ApiJson<CreateApp>,
) -> Result<(StatusCode, Json<AppInfo>)> {
    let app = paas.create_app(body.name.as_deref(), &actor).await?;
    Ok((StatusCode::CREATED, Json(app_info(&paas, app).await?)))
}

async fn show_app(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<AppInfo>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(app_info(&paas, app).await?))
}

async fn update_app(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateApp>,
) -> Result<Json<AppInfo>> {
    let mut app = paas.app_for(&actor, &name).await?;
    if let Some(branch) = body.deploy_branch {
        app = paas.set_deploy_branch(&actor, &app, &branch).await?;
    }
    if let Some(pattern) = body.deploy_tags {
        app = paas.set_deploy_tags(&actor, &app, &pattern).await?;
    }
    Ok(Json(app_info(&paas, app).await?))
}

async fn app_info(paas: &Paas, app: App) -> Result<AppInfo> {
    // Current is what serves: a release that failed to roll out never is.
    let release = paas.store().current_release(&app).await?.map(|r| r.version);
    let formation = paas.formation(&app).await?;
    Ok(AppInfo { web_url: paas.web_url(&app), app: app.into(), release, formation })
}

async fn destroy_app(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    let app = paas.app_for(&actor, &name).await?;
    paas.destroy_app(&actor, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn show_config(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<BTreeMap<String, String>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(paas.config(&app).await?))
}

/// `{"KEY": "value", "OTHER": null}`: strings set, nulls remove.
async fn update_config(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(changes): ApiJson<BTreeMap<String, Option<String>>>,
) -> Result<Json<ConfigUpdate>> {
    let app = paas.app_for(&actor, &name).await?;
    let (release, changed) = paas.update_config(&actor, &app, changes).await?;
    let config = release.config.clone();
    Ok(Json(ConfigUpdate { release: release.into(), config, unchanged: !changed }))
}

async fn list_releases(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ReleaseView>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(views(paas.releases(&app).await?)))
}

async fn show_release(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ReleaseView>> {
    let app = paas.app_for(&actor, &name).await?;
    let version = parse_version(&version)?;
    Ok(Json(paas.release(&app, version).await?.into()))
}

fn parse_version(text: &str) -> Result<i64> {
    crate::core::validate::release_version(text)
}

async fn show_formation(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<BTreeMap<String, i64>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(paas.formation(&app).await?))
}

/// `{"web": 2, "worker": 1}`.
async fn scale(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(changes): ApiJson<BTreeMap<String, i64>>,
) -> Result<Json<BTreeMap<String, i64>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(paas.scale(&actor, &app, changes).await?))
}

async fn list_domains(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Vec<DomainView>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(views(paas.domains(&app).await?)))
}

async fn show_https(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<AppHttps>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(paas.https_of(&app).await?))
}

async fn set_https(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SetHttps>,
) -> Result<Json<AppHttps>> {
    let app = paas.app_for(&actor, &name).await?;
    paas.set_https_settings(&actor, &app, body.redirect, body.hsts).await?;
    Ok(Json(paas.https_of(&app).await?))
}

async fn add_domain(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<AddDomain>,
) -> Result<(StatusCode, Json<DomainView>)> {
    let app = paas.app_for(&actor, &name).await?;
    Ok((StatusCode::CREATED, Json(paas.add_domain(&actor, &app, &body.hostname).await?.into())))
}

async fn remove_domain(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path((name, hostname)): Path<(String, String)>,
) -> Result<StatusCode> {
    let app = paas.app_for(&actor, &name).await?;
    paas.remove_domain(&actor, &app, &hostname).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_builds(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Vec<BuildView>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(views(paas.store().builds(&app).await?)))
}

/// One build, with its whole log.
async fn show_build(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<BuildView>> {
    let app = paas.app_for(&actor, &name).await?;
    let id: i64 = id
        .parse()
        .map_err(|_| Error::invalid("invalid_build_id", format!("{id:?} is not a build number")))?;
    Ok(Json(paas.store().build(&app, id).await?.into()))
}

async fn rollback(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Rollback>,
) -> Result<Json<ReleaseView>> {
    let app = paas.app_for(&actor, &name).await?;
    let version = body.version.as_deref().map(parse_version).transpose()?;
    let log = paas_builder::BuildLog::new();
    Ok(Json(paas.rollback(&actor, &app, version, &log).await?.into()))
}

async fn approve_release(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ReleaseView>> {
    let app = paas.app_for(&actor, &name).await?;
    let version = parse_version(&version)?;
    let log = paas_builder::BuildLog::new();
    Ok(Json(paas.approve_release(&actor, &app, version, &log).await?.into()))
}

async fn reject_release(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ReleaseView>> {
    let app = paas.app_for(&actor, &name).await?;
    let version = parse_version(&version)?;
    Ok(Json(paas.reject_release(&actor, &app, version).await?.into()))
}

async fn list_routes(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Vec<paas_store::AppRoute>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(paas.routes(&app).await?))
}

async fn add_route(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<crate::wire::AddRoute>,
) -> Result<(StatusCode, Json<paas_store::AppRoute>)> {
    let app = paas.app_for(&actor, &name).await?;
    let route = paas.add_route(&actor, &app, &body.prefix, &body.process_type).await?;
    Ok((StatusCode::CREATED, Json(route)))
}

/// `?prefix=/ws/`: a prefix is a path, so it travels as a query value.
async fn remove_route(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Query(query): Query<crate::wire::RouteQuery>,
) -> Result<StatusCode> {
    let app = paas.app_for(&actor, &name).await?;
    paas.remove_route(&actor, &app, &query.prefix).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_cron_jobs(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Vec<paas_store::CronJob>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(paas.cron_jobs(&app).await?))
}

async fn add_cron_job(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<crate::wire::AddCronJob>,
) -> Result<(StatusCode, Json<paas_store::CronJob>)> {
    let app = paas.app_for(&actor, &name).await?;
    let job = paas.add_cron_job(&actor, &app, &body.schedule, &body.command).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

async fn remove_cron_job(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let app = paas.app_for(&actor, &name).await?;
    let id = id.parse::<i64>().map_err(|_| {
        Error::invalid("invalid_job_id", format!("{id:?} is not a job id (see `paas cron`)"))
    })?;
    paas.remove_cron_job(&actor, &app, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_volumes(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Vec<paas_store::Volume>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(paas.volumes(&app).await?))
}

async fn add_volume(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<crate::wire::AddVolume>,
) -> Result<(StatusCode, Json<paas_store::Volume>)> {
    let app = paas.app_for(&actor, &name).await?;
    let volume = paas.add_volume(&actor, &app, &body.name, &body.path).await?;
    Ok((StatusCode::CREATED, Json(volume)))
}

/// `?confirm=NAME`: its data goes with it.
async fn remove_volume(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path((name, volume)): Path<(String, String)>,
    Query(query): Query<crate::wire::ConfirmQuery>,
) -> Result<StatusCode> {
    let app = paas.app_for(&actor, &name).await?;
    if query.confirm != volume {
        return Err(Error::invalid(
            "confirmation_required",
            format!(
                "removing volume {volume} deletes its files; confirm with its name (?confirm={volume})"
            ),
        ));
    }
    paas.remove_volume(&actor, &app, &volume).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The app's containers: type and index, release, state, restarts, since when.
async fn list_processes(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<Vec<paas_runner::Process>>> {
    let app = paas.app_for(&actor, &name).await?;
    Ok(Json(paas.processes(&app).await?))
}

/// `?tail=true&ps=web&num=100`: the app's output as plain text, streamed while `tail`.
async fn stream_logs(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    query: std::result::Result<Query<crate::core::LogQuery>, QueryRejection>,
) -> Result<axum::response::Response> {
    use futures_util::StreamExt;
    let Query(query) = query?;
    let app = paas.app_for(&actor, &name).await?;
    let lines = paas.logs(&app, &query).await?;
    let body = axum::body::Body::from_stream(
        lines.map(|line| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line))),
    );
    Ok(axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(axum::http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_default())
}

/// Runs a one-off command; answers JSON lines ([`RunEvent`](crate::wire::RunEvent):
/// `{"out": "<base64>"}`, `{"err": "<base64>"}`, then `{"exit": N}`) as they come, each
/// once the client has read the ones before: a client that stops reading holds the command
/// up. The request is JSON (`{"command": …}`), or `application/octet-stream` whose first
/// line is that JSON and the rest the command's standard input, streamed.
async fn run_one_off(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Result<axum::response::Response> {
    let app = paas.app_for(&actor, &name).await?;
    let piped = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"));
    let (RunCommand { command }, input) = if piped {
        let (command, input) = first_line_then_input(request.into_body()).await?;
        (command, Some(input))
    } else {
        let Json(body) = Json::<RunCommand>::from_request(request, &paas).await?;
        (body, None)
    };
    let events = paas.run_one_off(&actor, &app, &command, input).await?;
    Ok(run_events(events))
}

/// A one-off run's events as the answer: one JSON object a line, as they come.
pub(crate) fn run_events(
    events: tokio::sync::mpsc::Receiver<crate::wire::RunEvent>,
) -> axum::response::Response {
    use futures_util::StreamExt;
    let lines = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line)), events))
    });
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/x-ndjson")
        .body(axum::body::Body::from_stream(lines.boxed()))
        .unwrap_or_default()
}

/// Splits a piped run's body: what to run (the first line, as JSON: `{"command": …}`), then
/// the rest, which ends where the body does, or breaks off with an error where the body does.
pub(crate) async fn first_line_then_input<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
) -> Result<(T, paas_runner::StdinStream)> {
    use futures_util::StreamExt;
    let mut chunks = body.into_data_stream();
    let mut head = Vec::new();
    let newline = loop {
        if let Some(at) = head.iter().position(|b| *b == b'\n') {
            break at;
        }
        if head.len() > 64 * 1024 {
            return Err(Error::invalid("invalid_body", "the first line must be the command"));
        }
        match chunks.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(error)) => return Err(Error::BadRequest(error.to_string())),
            None => return Err(Error::invalid("invalid_body", "no command line before the input")),
        }
    };
    let rest = head.split_off(newline + 1);
    let what = serde_json::from_slice(&head).map_err(|e| {
        Error::invalid("invalid_body", format!("the first line must be a JSON object: {e}"))
    })?;
    let first = futures_util::stream::iter((!rest.is_empty()).then_some(Ok(rest)));
    let more = chunks.map(|chunk| chunk.map(|c| c.to_vec()).map_err(std::io::Error::other));
    Ok((what, first.chain(more).boxed()))
}

async fn restart_processes(
    State(paas): State<Paas>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Restart>,
) -> Result<Json<Vec<paas_runner::Process>>> {
    let app = paas.app_for(&actor, &name).await?;
    let log = paas_builder::BuildLog::new();
    paas.restart(&actor, &app, body.process_type.as_deref(), &log).await?;
    Ok(Json(paas.processes(&app).await?))
}
