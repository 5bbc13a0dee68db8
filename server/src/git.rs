//! `git push paas main` and `git clone` over git's smart HTTP protocol.
//!
//! git's own `receive-pack` and `upload-pack` speak the protocol (`--stateless-rpc`); this
//! module authenticates, pipes request and response bodies through them as they stream (no
//! pack is ever held in memory), and answers each repository's pre-receive hook. The hook
//! (`paas git-hook`, the same binary) sends the pushed refs back here; the deploy runs in this
//! server through [`Paas::deploy_until`], and its log streams back to the hook, which prints
//! it, so the pusher sees it as `remote:` lines. A failed deploy fails the hook, and git then
//! leaves the branch where it was.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures_util::StreamExt;
use paas_builder::BuildLog;
use paas_store::{App, User};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::auth;
use crate::deploy::SourceTree;
use crate::error::{Error, Result};
use crate::ops::Paas;

/// The pre-receive hook every app repository gets. It only hands over to `paas git-hook`,
/// which the server names in the environment of the `receive-pack` it starts: a push that
/// did not come through the server (a local `git push` into the directory) is refused.
const PRE_RECEIVE_HOOK: &str = r#"#!/bin/sh
# Installed by paas: a push to this repository deploys through the paas server.
if [ -z "$PAAS_HOOK_URL" ] || [ -z "$PAAS_HOOK_BIN" ]; then
    echo "This repository deploys through paas: push to the paas server over HTTP." >&2
    exit 1
fi
exec "$PAAS_HOOK_BIN" git-hook
"#;

/// The git side of a server: where repositories live, and the pushes under way.
pub struct Git {
    repos: PathBuf,
    /// Scratch space for checkouts being built.
    work: PathBuf,
    hook_bin: PathBuf,
    /// Where hooks reach this server (loopback).
    hook_url: String,
    max_push_bytes: u64,
    /// Hash of each running push's hook token → who pushed to which app.
    pushes: Mutex<HashMap<String, Push>>,
    /// Bounds the git processes running at once (each holds pipes and memory).
    requests: Arc<Semaphore>,
}

/// How long a git request waits for its turn (`--git-max-requests`) before a 503.
const GIT_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Clone)]
struct Push {
    app: String,
    user: User,
    /// The app's deploy lock once this push has deployed, held until its `receive-pack`
    /// exits: git moves the branch after the hook succeeds, and no other push may deploy
    /// before it has, or production would run a commit the branch does not point at.
    deploy_lock: Arc<Mutex<Option<OwnedMutexGuard<()>>>>,
}

impl Git {
    pub fn new(
        data_dir: &Path,
        hook_bin: PathBuf,
        hook_url: String,
        max_push_bytes: u64,
        max_requests: usize,
    ) -> Arc<Git> {
        Arc::new(Git {
            repos: data_dir.join("repos"),
            work: data_dir.join("tmp"),
            hook_bin,
            hook_url,
            max_push_bytes,
            pushes: Mutex::default(),
            requests: Arc::new(Semaphore::new(max_requests.max(1))),
        })
    }

    pub fn repo_path(&self, app: &str) -> PathBuf {
        self.repos.join(format!("{app}.git"))
    }

    /// Creates the app's bare repository if it is missing, and (re)writes its hook, so a
    /// repository from an older paas gets the current one.
    pub async fn ensure_repo(&self, app: &str) -> Result<PathBuf> {
        let path = self.repo_path(app);
        if !path.join("HEAD").exists() {
            tokio::fs::create_dir_all(&self.repos).await.map_err(io_error)?;
            git(&self.repos, &["init", "--quiet", "--bare", "--initial-branch=main"], &path)
                .await?;
        }
        let hook = path.join("hooks").join("pre-receive");
        tokio::fs::write(&hook, PRE_RECEIVE_HOOK).await.map_err(io_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o755);
            tokio::fs::set_permissions(&hook, mode).await.map_err(io_error)?;
        }
        Ok(path)
    }

    /// Points the repository's HEAD at `branch`, so that a clone checks out what deploys.
    pub async fn point_head(&self, app: &str, branch: &str) -> Result<()> {
        let path = self.ensure_repo(app).await?;
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(&path)
            .args(["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")])
            .output()
            .await
            .map_err(io_error)?;
        match output.status.success() {
            true => Ok(()),
            false => Err(Error::Internal(format!(
                "git symbolic-ref HEAD: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))),
        }
    }

    /// Removes the app's repository, once the pushes to it have ended (up to a few
    /// seconds): git must not find its directory gone while it winds down.
    pub async fn remove_repo(&self, app: &str) {
        for _ in 0..100 {
            if !self.lock_pushes().values().any(|push| push.app == app) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let path = self.repo_path(app);
        if let Err(err) = tokio::fs::remove_dir_all(&path).await
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(app, error = %err, "could not remove the app's git repository");
        }
    }

    fn lock_pushes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Push>> {
        self.pushes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A turn to run a git process, or the response to give when none came in time.
    async fn turn(&self) -> std::result::Result<OwnedSemaphorePermit, Response> {
        let permit = tokio::time::timeout(GIT_QUEUE_WAIT, self.requests.clone().acquire_owned());
        match permit.await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "paas is serving too many git requests at once; try again in a minute",
            )),
        }
    }
}

/// Runs `git ARGS… PATH` in `cwd`; its stderr becomes the error.
async fn git(cwd: &Path, args: &[&str], path: &Path) -> Result<()> {
    let output = Command::new("git")
        .args(args)
        .arg(path)
        .current_dir(cwd)
        .output()
        .await
        .map_err(io_error)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn io_error(err: std::io::Error) -> Error {
    Error::Internal(format!("git repository: {err}"))
}

/// The routes git clients and hooks use, outside `/api/v1`.
pub fn router() -> Router<Paas> {
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

/// The user behind the request's token and the app its URL names, or the response to give.
async fn authorize(
    paas: &Paas,
    headers: &HeaderMap,
    repo: &str,
) -> std::result::Result<(User, App, Arc<Git>), Response> {
    let Some(git) = paas.git.clone() else {
        return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "git is not enabled on this server"));
    };
    let user = match token_from(headers) {
        Some(token) => {
            auth::authenticate(paas.store(), &token).await.map_err(|e| e.into_response())?
        }
        None => None,
    };
    let Some(user) = user else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Authentication failed: use a paas API token as the password (`paas login` sets \
             git up to send it)",
        ));
    };
    let name = repo.strip_suffix(".git").unwrap_or(repo);
    let app = match paas.store().app(name).await {
        Ok(app) => app,
        Err(paas_store::StoreError::NotFound(_)) => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("There is no app named {name}: create it with `paas apps:create {name}`"),
            ));
        }
        Err(err) => return Err(Error::from(err).into_response()),
    };
    Ok((user, app, git))
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
    headers: HeaderMap,
) -> Response {
    let Some(service) = query.service.as_deref().and_then(Service::parse) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "paas speaks git's smart HTTP protocol only; use git 1.6.6 or newer",
        );
    };
    let (_user, app, git) = match authorize(&paas, &headers, &repo).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let _turn = match git.turn().await {
        Ok(turn) => turn,
        Err(response) => return response,
    };
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

/// Forgets a push's hook token when its `receive-pack` is over.
struct PushRegistration {
    git: Arc<Git>,
    token_hash: String,
}

impl Drop for PushRegistration {
    fn drop(&mut self) {
        self.git.lock_pushes().remove(&self.token_hash);
    }
}

/// `POST /APP.git/git-receive-pack` or `git-upload-pack`: runs the service with the request
/// body as its input and its output as the response, both streamed.
async fn service_rpc(
    State(paas): State<Paas>,
    UrlPath((repo, service)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(service) = Service::parse(&service) else {
        return refuse(StatusCode::NOT_FOUND, format!("no git service named {service}"));
    };
    let (user, app, git) = match authorize(&paas, &headers, &repo).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let turn = match git.turn().await {
        Ok(turn) => turn,
        Err(response) => return response,
    };
    let path = match git.ensure_repo(&app.name).await {
        Ok(path) => path,
        Err(err) => return err.into_response(),
    };
    let mut command = Command::new("git");
    let mut registration = None;
    if let Service::ReceivePack = service {
        // git refuses a larger pack itself, with a message the pusher sees.
        command.arg("-c").arg(format!("receive.maxInputSize={}", git.max_push_bytes));
        let token = auth::generate_token();
        let token_hash = auth::hash_token(&token);
        let push = Push { app: app.name.clone(), user, deploy_lock: Arc::default() };
        git.lock_pushes().insert(token_hash.clone(), push);
        registration = Some(PushRegistration { git: git.clone(), token_hash });
        command
            .env("PAAS_HOOK_URL", &git.hook_url)
            .env("PAAS_HOOK_TOKEN", token)
            .env("PAAS_HOOK_BIN", &git.hook_bin);
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
    let limit = git.max_push_bytes.saturating_add(1024 * 1024);
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

/// What the pre-receive hook sends: the ref updates it read from git, and where git keeps
/// the pushed objects until the hook accepts them (git's quarantine directory).
#[derive(Debug, Serialize, Deserialize)]
pub struct HookRequest {
    pub refs: Vec<RefUpdate>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

/// One line of the hook's answer (newline-delimited JSON): log lines, then the verdict.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HookEvent {
    Line {
        line: String,
    },
    Done {
        ok: bool,
    },
    /// Sent every few seconds: a write to a pusher that went away fails, so the deploy
    /// learns of it even during a silent build step.
    Heartbeat {
        heartbeat: bool,
    },
}

const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// The environment variables through which git tells a hook where the quarantined objects
/// are; the checkout needs them to see the pushed commit.
pub const QUARANTINE_ENV: [&str; 3] =
    ["GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"];

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
    let push = token_from(&headers)
        .and_then(|token| git.lock_pushes().get(&auth::hash_token(&token)).cloned());
    let Some(push) = push else {
        return Error::Unauthorized("unknown push".into()).into_response();
    };
    let request = match request {
        Ok(Json(request)) => request,
        Err(rejection) => return Error::from(rejection).into_response(),
    };
    let (events, receiver) = mpsc::channel::<HookEvent>(256);
    tokio::spawn(async move {
        let beat = async {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if events.send(HookEvent::Heartbeat { heartbeat: true }).await.is_err() {
                    // The pusher is gone; the deploy sees it too and winds down.
                    std::future::pending::<()>().await;
                }
            }
        };
        let ok = tokio::select! {
            outcome = run_push(&paas, &git, &push, &request, &events) => match outcome {
                Ok(ok) => ok,
                Err(err) => {
                    let _ = events.send(line(format!(" !     {}", err.public_message()))).await;
                    false
                }
            },
            () = beat => false,
        };
        let _ = events.send(HookEvent::Done { ok }).await;
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        let mut json = serde_json::to_vec(&event).unwrap_or_default();
        json.push(b'\n');
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(json)), receiver))
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}

fn line(text: impl Into<String>) -> HookEvent {
    HookEvent::Line { line: text.into() }
}

/// What a push asks for, once checked against the app's deploy branch.
#[derive(Debug, PartialEq)]
enum Verdict {
    Deploy { sha: String, update: RefUpdate },
    Refuse(String),
}

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The branches a push may update: the app's deploy branch, and `master` too while that is
/// `main`, as Heroku accepts either.
fn deploy_branches(app: &App) -> Vec<String> {
    let mut branches = vec![app.deploy_branch.clone()];
    if app.deploy_branch == "main" {
        branches.push("master".into());
    }
    branches
}

fn judge(app: &App, refs: &[RefUpdate]) -> Verdict {
    let branches = deploy_branches(app);
    let branch_list = branches.iter().map(|b| format!("`{b}`")).collect::<Vec<_>>().join(" or ");
    let mut deploy: Option<&RefUpdate> = None;
    for update in refs {
        let branch = update.name.strip_prefix("refs/heads/");
        let Some(branch) = branch.filter(|b| branches.iter().any(|d| d == b)) else {
            let shown = branch.unwrap_or(&update.name);
            let head = &app.deploy_branch;
            return Verdict::Refuse(format!(
                "{} deploys from {branch_list}; pushing `{shown}` is refused.\n\
                 To deploy that branch: git push paas {shown}:{head}",
                app.name
            ));
        };
        if update.new == ZERO_SHA {
            return Verdict::Refuse(format!("the deploy branch `{branch}` cannot be deleted"));
        }
        if deploy.is_some() {
            return Verdict::Refuse(format!("push one of {branch_list} at a time"));
        }
        deploy = Some(update);
    }
    match deploy {
        Some(update) => Verdict::Deploy { sha: update.new.clone(), update: update.clone() },
        None => Verdict::Refuse("nothing to deploy in this push".into()),
    }
}

/// Runs the deploy a push asks for, streaming its log to `events`; `Ok(false)` when the
/// push must be rejected.
async fn run_push(
    paas: &Paas,
    git: &Git,
    push: &Push,
    request: &HookRequest,
    events: &mpsc::Sender<HookEvent>,
) -> Result<bool> {
    let app = paas.store().app(&push.app).await?;
    let (sha, update) = match judge(&app, &request.refs) {
        Verdict::Deploy { sha, update } => (sha, update),
        Verdict::Refuse(message) => {
            refusal(events, &message).await;
            return Ok(false);
        }
    };
    let short = &sha[..sha.len().min(7)];
    let repo = git.repo_path(&app.name);
    let env = quarantine_env(&repo, &request.env)?;
    // One deploy branch per repository, so a clone gets what is deployed: `master` stands in
    // for `main` only where there is no `main`, and becomes the app's deploy branch.
    let adopt_master = update.name == "refs/heads/master" && app.deploy_branch == "main";
    if adopt_master && branch_head(&repo, "refs/heads/main").await?.is_some() {
        let message = format!(
            "{} deploys from `main`, and pushing `master` beside it would leave two branches.\n\
             To deploy this commit: git push paas master:main",
            app.name
        );
        refusal(events, &message).await;
        return Ok(false);
    }

    let log = BuildLog::new();
    let forward = {
        let mut lines = log.subscribe();
        let events = events.clone();
        tokio::spawn(async move {
            while let Some(text) = lines.next().await {
                if events.send(line(text)).await.is_err() {
                    break;
                }
            }
        })
    };
    let outcome = async {
        // The pusher going away (the hook's connection closing) abandons the deploy until
        // its rollout starts.
        let watcher = events.clone();
        let mut interrupted = std::pin::pin!(async move { watcher.closed().await });
        let lock = tokio::select! {
            lock = paas.lock_deploys(&app, &log) => lock?,
            () = &mut interrupted => return Ok(false),
        };
        // Checked under the lock: another push may have moved the branch while this one
        // waited, and git would then refuse to update it after the deploy.
        let now = branch_head(&repo, &update.name).await?;
        if now.as_deref().unwrap_or(ZERO_SHA) != update.old {
            log.error(format!(
                "{} moved while this push waited for another deploy; pull and push again",
                update.name.trim_start_matches("refs/heads/")
            ));
            return Ok(false);
        }
        if let Some(version) = deployed_version(paas, &app, &sha).await?
            && !adopt_master
        {
            log.step(format!("{short} is already deployed as v{version}; nothing to do"));
            *push.deploy_lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
            return Ok(true);
        }
        tokio::fs::create_dir_all(&git.work).await.map_err(io_error)?;
        let checkout = tempfile::Builder::new()
            .prefix(&format!("{}-", app.name))
            .tempdir_in(&git.work)
            .map_err(io_error)?;
        let limit = git.max_push_bytes.saturating_mul(CHECKOUT_FACTOR);
        let commit_message = match checkout_commit(&repo, &sha, &env, checkout.path(), limit).await
        {
            Ok(message) => message,
            Err(CheckoutError::TooLarge(why)) => {
                log.error(why);
                return Ok(false);
            }
            Err(CheckoutError::Failed(err)) => return Err(err),
        };
        let tree = SourceTree {
            dir: checkout.path().to_path_buf(),
            source: "git".into(),
            commit_sha: Some(sha.clone()),
            commit_message: Some(commit_message),
        };
        let deployed = paas.deploy_locked(&app, &tree, &push.user.email, &log, interrupted).await;
        if deployed.is_ok() && adopt_master {
            paas.set_deploy_branch(&app, "master").await?;
            log.info(format!("{} deploys from master from now on", app.name));
        }
        if deployed.is_ok() {
            // Released only when git has moved the branch (or the push is gone).
            *push.deploy_lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
        }
        Ok::<bool, Error>(deployed.is_ok())
    }
    .await;
    if let Ok(false) = outcome {
        log.error("Push rejected: nothing was deployed, and the branch stays where it was");
    }
    log.close();
    let _ = forward.await;
    outcome
}

async fn refusal(events: &mpsc::Sender<HookEvent>, message: &str) {
    for text in message.lines() {
        let _ = events.send(line(format!(" !     {text}"))).await;
    }
}

/// The commit a branch of the repository points at, if it exists.
async fn branch_head(repo: &Path, refname: &str) -> Result<Option<String>> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet", refname])
        .output()
        .await
        .map_err(io_error)?;
    let sha = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Ok((output.status.success() && !sha.is_empty()).then_some(sha))
}

/// The version serving `sha` right now, if one does.
async fn deployed_version(paas: &Paas, app: &App, sha: &str) -> Result<Option<i64>> {
    let Some(current) = paas.store().current_release(app).await? else {
        return Ok(None);
    };
    let Some(build_id) = current.build_id else {
        return Ok(None);
    };
    let build = paas.store().build(app, build_id).await?;
    Ok((build.commit_sha.as_deref() == Some(sha)).then_some(current.version))
}

/// The hook's quarantine variables, each checked to point inside the app's repository: the
/// hook token proves the push, not the paths it reports.
fn quarantine_env(repo: &Path, env: &BTreeMap<String, String>) -> Result<Vec<(String, String)>> {
    let root = repo.canonicalize().map_err(io_error)?;
    let mut checked = Vec::new();
    for (key, value) in env {
        if !QUARANTINE_ENV.contains(&key.as_str()) {
            continue;
        }
        for part in value.split(':').filter(|p| !p.is_empty()) {
            let inside = root.join(part).canonicalize().is_ok_and(|p| p.starts_with(&root));
            if !inside {
                return Err(Error::invalid(
                    "bad_hook",
                    format!("{key} points outside the repository"),
                ));
            }
        }
        checked.push((key.clone(), value.clone()));
    }
    Ok(checked)
}

/// How much bigger than the largest push a checkout may be: packs compress, but a small
/// pack that inflates to gigabytes must not fill the disk.
const CHECKOUT_FACTOR: u64 = 4;
/// Most files a checkout may hold (each costs an inode).
const MAX_CHECKOUT_FILES: u64 = 200_000;

enum CheckoutError {
    /// The pusher's to fix: said in the push output.
    TooLarge(String),
    Failed(Error),
}

impl From<Error> for CheckoutError {
    fn from(err: Error) -> CheckoutError {
        CheckoutError::Failed(err)
    }
}

/// Writes the tree of `sha` into `dir` (`git archive`, so no `.git` comes along) and returns
/// the commit's message. Refuses, before writing past it, a tree over `limit` bytes or
/// [`MAX_CHECKOUT_FILES`] files.
async fn checkout_commit(
    repo: &Path,
    sha: &str,
    env: &[(String, String)],
    dir: &Path,
    limit: u64,
) -> std::result::Result<String, CheckoutError> {
    let (repo, sha, env, dir) = (repo.to_path_buf(), sha.to_string(), env.to_vec(), dir.to_owned());
    tokio::task::spawn_blocking(move || {
        let git = |args: &[&str]| {
            let mut command = std::process::Command::new("git");
            command.arg("--git-dir").arg(&repo).args(args).current_dir(&repo);
            command.envs(env.iter().map(|(k, v)| (k, v)));
            command
        };
        let mut archive = git(&["archive", "--format=tar", &sha])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_error)?;
        let stdout = archive.stdout.take().ok_or_else(|| Error::Internal("no pipe".into()))?;
        let unpacked = unpack_within(stdout, &dir, limit, &sha);
        if unpacked.is_err() {
            // Stop git rather than read the rest of a tree that is refused anyway.
            let _ = archive.kill();
        }
        let output = archive.wait_with_output().map_err(io_error)?;
        unpacked?;
        if !output.status.success() {
            return Err(Error::Internal(format!(
                "git archive {sha}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
            .into());
        }
        let message = git(&["log", "-1", "--format=%B", &sha]).output().map_err(io_error)?;
        Ok(String::from_utf8_lossy(&message.stdout).trim().to_string())
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

/// Unpacks a tar into `dir`, entry by entry, counting bytes and files against the limits.
fn unpack_within(
    tar: impl Read,
    dir: &Path,
    limit: u64,
    sha: &str,
) -> std::result::Result<(), CheckoutError> {
    let short = &sha[..sha.len().min(7)];
    let mut archive = tar::Archive::new(tar);
    let (mut bytes, mut files) = (0u64, 0u64);
    let entries = archive.entries().map_err(|e| Error::Internal(format!("unpacking: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::Internal(format!("unpacking {short}: {e}")))?;
        bytes = bytes.saturating_add(entry.header().size().unwrap_or(0));
        files += 1;
        if bytes > limit {
            return Err(CheckoutError::TooLarge(format!(
                "{short} unpacks to more than {} MiB, the most a checkout may hold (4 times \
                 --max-push-mb); remove large files from the repository or raise the limit",
                limit / (1024 * 1024)
            )));
        }
        if files > MAX_CHECKOUT_FILES {
            return Err(CheckoutError::TooLarge(format!(
                "{short} holds more than {MAX_CHECKOUT_FILES} files, the most a checkout may hold"
            )));
        }
        entry.unpack_in(dir).map_err(|e| Error::Internal(format!("unpacking {short}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(branch: &str) -> App {
        App {
            id: 1,
            name: "shop".into(),
            deploy_branch: branch.into(),
            created_by: "a@b".into(),
            created_at: String::new(),
        }
    }

    fn update(name: &str, new: &str) -> RefUpdate {
        RefUpdate { old: ZERO_SHA.into(), new: new.into(), name: name.into() }
    }

    #[test]
    fn main_and_master_deploy_other_branches_are_refused() {
        let sha = "a".repeat(40);
        let deploy = |name: &str| Verdict::Deploy { sha: sha.clone(), update: update(name, &sha) };
        let main = update("refs/heads/main", &sha);
        assert_eq!(judge(&app("main"), std::slice::from_ref(&main)), deploy("refs/heads/main"));
        let master = update("refs/heads/master", &sha);
        assert_eq!(judge(&app("main"), &[master]), deploy("refs/heads/master"));
        let Verdict::Refuse(message) = judge(&app("main"), &[update("refs/heads/feature", &sha)])
        else {
            panic!("a feature branch must be refused");
        };
        assert!(message.contains("deploys from `main` or `master`"), "{message}");
        assert!(message.contains("git push paas feature:main"), "{message}");
        assert!(matches!(judge(&app("main"), &[update("refs/tags/v1", &sha)]), Verdict::Refuse(_)));

        // A configured branch is the only one.
        assert_eq!(
            judge(&app("production"), &[update("refs/heads/production", &sha)]),
            deploy("refs/heads/production")
        );
        assert!(matches!(
            judge(&app("production"), &[update("refs/heads/master", &sha)]),
            Verdict::Refuse(_)
        ));
    }

    #[test]
    fn deleting_or_splitting_the_deploy_branch_is_refused() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        assert!(matches!(
            judge(&app("main"), &[update("refs/heads/main", ZERO_SHA)]),
            Verdict::Refuse(m) if m.contains("cannot be deleted")
        ));
        for pair in [[&a, &b], [&a, &a]] {
            let refs = [update("refs/heads/main", pair[0]), update("refs/heads/master", pair[1])];
            assert!(matches!(
                judge(&app("main"), &refs),
                Verdict::Refuse(m) if m.contains("at a time")
            ));
        }
    }

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
