//! `git push paas main` and `git clone` over git's smart HTTP protocol.
//!
//! git's own `receive-pack` and `upload-pack` speak the protocol (`--stateless-rpc`); this
//! front end authenticates, pipes request and response bodies through them as they stream
//! (no pack is ever held in memory), and answers each repository's pre-receive hook, whose
//! push the core runs (`core::push`).

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures_util::StreamExt;
use paas_store::App;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::auth::Peer;
use crate::core::repos::{Git, PushRegistration, io_error};
use crate::core::{Actor, Error, FrontEnd, Paas, push};
use crate::wire::HookRequest;

/// The routes git clients and hooks use, outside `/api/v1`.
pub(super) fn router() -> Router<Paas> {
    Router::new()
        .route("/{repo}/info/refs", get(info_refs))
        .route("/{repo}/{service}", post(service_rpc))
        .route("/internal/git-hook", post(hook))
}

#[derive(Clone, Copy)]
enum Service {
    ReceivePack,
    UploadPack,
}

impl Service {
    fn parse(name: &str) -> Option<Service> {
        match name {
            "git-receive-pack" => Some(Service::ReceivePack),
            "git-upload-pack" => Some(Service::UploadPack),
            _ => None,
        }
    }

    /// The git subcommand: `receive-pack` / `upload-pack`.
    fn command(self) -> &'static str {
        match self {
            Service::ReceivePack => "receive-pack",
            Service::UploadPack => "upload-pack",
        }
    }
}

/// A git-facing failure: git shows the body of a 4xx to the user, and prompts for a
/// password again on a 401 that names a realm.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = (status, format!("{}\n", message.into())).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"paas\""));
    }
    response
}

/// The password of `Authorization: Basic …` (the API token; the user name is ignored, as on
/// Heroku), or a bearer token.
fn token_from(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (_user, password) = decoded.split_once(':')?;
    Some(password.to_string())
}

/// Who is pushing or fetching, and the app its URL names if they may touch it, or the
/// response to give.
async fn authorize(
    paas: &Paas,
    headers: &HeaderMap,
    address: Option<std::net::IpAddr>,
    repo: &str,
) -> std::result::Result<(Actor, App, Arc<Git>), Response> {
    let Some(git) = paas.git.clone() else {
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "git is not enabled on this server"));
    };
    let user = match token_from(headers) {
        Some(token) => paas.authenticate(&token).await.map_err(|e| e.into_response())?,
        None => None,
    };
    let Some(user) = user else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Authentication failed: use a paas API token as the password (`paas login` sets \
             git up to send it)",
        ));
    };
    let actor = Actor::new(user, address, FrontEnd::Git);
    let name = repo.strip_suffix(".git").unwrap_or(repo);
    // Another user's app is "no app" too, so names do not leak.
    let app = match paas.app_for(&actor, name).await {
        Ok(app) => app,
        Err(Error::NotFound(_)) => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("There is no app named {name}: create it with `paas apps:create {name}`"),
            ));
        }
        Err(err) => return Err(err.into_response()),
    };
    Ok((actor, app, git))
}

#[derive(Deserialize)]
struct InfoRefsQuery {
    service: Option<String>,
}

/// `GET /APP.git/info/refs?service=…`: the refs advertisement that starts every fetch and push.
async fn info_refs(
    State(paas): State<Paas>,
    UrlPath(repo): UrlPath<String>,
    Query(query): Query<InfoRefsQuery>,
    Peer(address): Peer,
    headers: HeaderMap,
) -> Response {
    let Some(service) = query.service.as_deref().and_then(Service::parse) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "paas speaks git's smart HTTP protocol only; use git 1.6.6 or newer",
        );
    };
    let (_actor, app, git) = match authorize(&paas, &headers, address, &repo).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(_turn) = git.turn().await else { return too_busy() };
    let path = match git.ensure_repo(&app.name).await {
        Ok(path) => path,
        Err(err) => return err.into_response(),
    };
    let output = Command::new("git")
        .args([service.command(), "--stateless-rpc", "--advertise-refs"])
        .arg(&path)
        .output()
        .await;
    let output = match output {
        Ok(output) if output.status.success() => output.stdout,
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Error::Internal(format!("git {}: {}", service.command(), stderr.trim()))
                .into_response();
        }
        Err(err) => return io_error(err).into_response(),
    };
    let mut body = pkt_line(&format!("# service=git-{}\n", service.command()));
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&output);
    let content_type = format!("application/x-git-{}-advertisement", service.command());
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache".to_string())], body)
        .into_response()
}

/// One pkt-line: four hex digits of length (itself included), then the data.
fn pkt_line(data: &str) -> Vec<u8> {
    format!("{:04x}{data}", data.len() + 4).into_bytes()
}

/// `POST /APP.git/git-receive-pack` or `git-upload-pack`: runs the service with the request
/// body as its input and its output as the response, both streamed.
async fn service_rpc(
    State(paas): State<Paas>,
    UrlPath((repo, service)): UrlPath<(String, String)>,
    Peer(address): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(service) = Service::parse(&service) else {
        return refuse(StatusCode::NOT_FOUND, format!("no git service named {service}"));
    };
    let (actor, app, git) = match authorize(&paas, &headers, address, &repo).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(turn) = git.turn().await else { return too_busy() };
    let path = match git.ensure_repo(&app.name).await {
        Ok(path) => path,
        Err(err) => return err.into_response(),
    };
    let mut command = Command::new("git");
    let mut registration = None;
    if let Service::ReceivePack = service {
        // git refuses a larger pack itself, with a message the pusher sees.
        command.arg("-c").arg(format!("receive.maxInputSize={}", git.max_push_bytes()));
        let (token, registered) = git.register_push(&app.name, actor);
        registration = Some(registered);
        command.envs(git.hook_env()).env("PAAS_HOOK_TOKEN", token);
    }
    command
        .args([service.command(), "--stateless-rpc"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A client that goes away takes git with it: no half-received push lingers.
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return io_error(err).into_response(),
    };
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Error::Internal("git started without pipes".into()).into_response();
    };
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    // Room for the commands that precede the pack.
    let limit = git.max_push_bytes().saturating_add(1024 * 1024);
    tokio::spawn(feed(body, gzipped, stdin, limit));
    tokio::spawn(log_stderr(stderr, app.name.clone(), service.command()));

    let output = ServiceOutput { stdout, child, _registration: registration, _turn: turn };
    let stream = futures_util::stream::unfold(Some(output), |output| async move {
        let mut output = output?;
        let mut buffer = vec![0; 64 * 1024];
        match output.stdout.read(&mut buffer).await {
            Ok(0) => {
                let _ = output.child.wait().await;
                None
            }
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buffer)), Some(output)))
            }
            Err(err) => Some((Err(err), None)),
        }
    });
    let content_type = format!("application/x-git-{}-result", service.command());
    (
        [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache".to_string())],
        Body::from_stream(stream),
    )
        .into_response()
}

/// What the response body holds on to: dropping it (the client went away) kills git.
struct ServiceOutput {
    stdout: ChildStdout,
    child: Child,
    _registration: Option<PushRegistration>,
    _turn: OwnedSemaphorePermit,
}

/// Copies the request body into git as it arrives. git sends small requests gzipped whole
/// and big ones (packs) chunked and plain; those stream through untouched. Past `limit`
/// bytes, git's input just ends: a truncated pack changes nothing. The rest of the body is
/// still read, and dropped, up to twice the limit (64 MiB more at least), so that the client
/// gets to read git's answer (`pack exceeds maximum allowed size`) instead of a broken pipe.
async fn feed(body: Body, gzipped: bool, stdin: ChildStdin, limit: u64) {
    if gzipped {
        // Inflated as it arrives, straight into git: a small body that inflates to gigabytes
        // never sits in memory, and git's input ends at the limit.
        let chunks = body.into_data_stream().map(|chunk| chunk.map_err(std::io::Error::other));
        let compressed = SyncIoBridge::new(StreamReader::new(chunks));
        let mut git_input = SyncIoBridge::new(stdin);
        let inflate = move || {
            let mut inflated = flate2::read::GzDecoder::new(compressed).take(limit);
            std::io::copy(&mut inflated, &mut git_input)
        };
        if let Ok(Err(err)) = tokio::task::spawn_blocking(inflate).await {
            tracing::debug!(error = %err, "gzip request body ended early");
        }
        return;
    }
    let mut chunks = body.into_data_stream();
    let mut total: u64 = 0;
    let mut git_input = Some(stdin);
    // Past this, the client is cut off: reading on would only waste the bandwidth.
    let drain_limit = limit.saturating_mul(2).max(limit.saturating_add(64 * 1024 * 1024));
    while let Some(Ok(chunk)) = chunks.next().await {
        total = total.saturating_add(chunk.len() as u64);
        if total > drain_limit {
            return;
        }
        if total > limit && git_input.take().is_some() {
            tracing::warn!(bytes = total, "push over the size limit; cutting it off");
        }
        if let Some(stdin) = &mut git_input
            && stdin.write_all(&chunk).await.is_err()
        {
            // git stopped reading (it refused the pack): its answer says why.
            git_input = None;
        }
    }
}

async fn log_stderr(stderr: tokio::process::ChildStderr, app: String, command: &'static str) {
    let mut text = String::new();
    let mut stderr = stderr;
    if stderr.read_to_string(&mut text).await.is_ok() && !text.trim().is_empty() {
        tracing::info!(app, command, stderr = %text.trim(), "git said");
    }
}

/// `POST /internal/git-hook`: the pre-receive hook of a push this server is receiving. The
/// bearer token is the one-off token handed to that push's `receive-pack`.
async fn hook(
    State(paas): State<Paas>,
    headers: HeaderMap,
    request: std::result::Result<Json<HookRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    // The hook's client is paas itself, so its refusals have the API's error shape.
    let Some(git) = paas.git.clone() else {
        return Error::Unavailable("git is not enabled on this server".into()).into_response();
    };
    let Some(push) = token_from(&headers).and_then(|token| git.push_for(&token)) else {
        return Error::Unauthorized("unknown push".into()).into_response();
    };
    let request = match request {
        Ok(Json(request)) => request,
        Err(rejection) => return Error::from(rejection).into_response(),
    };
    let events = push::receive_push(paas, git, push, request);
    let stream = futures_util::stream::unfold(events, |mut events| async move {
        let event = events.recv().await?;
        let mut json = serde_json::to_vec(&event).unwrap_or_default();
        json.push(b'\n');
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(json)), events))
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}

/// A 503 for a git request that got no turn within `--git-queue-wait`.
fn too_busy() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "paas is serving too many git requests at once; try again in a minute",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_basic_or_bearer() {
        let mut headers = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:paas_secret");
        headers.insert(header::AUTHORIZATION, format!("Basic {basic}").parse().unwrap());
        assert_eq!(token_from(&headers).as_deref(), Some("paas_secret"));
        headers.insert(header::AUTHORIZATION, "Bearer paas_x".parse().unwrap());
        assert_eq!(token_from(&headers).as_deref(), Some("paas_x"));
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(token_from(&headers), None);
    }

    #[test]
    fn pkt_lines_count_their_own_header() {
        assert_eq!(pkt_line("# service=git-upload-pack\n"), b"001e# service=git-upload-pack\n");
    }
}
