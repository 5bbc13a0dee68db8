//! The app pages: the list, an app's overview (processes, scale, restart, domains, access,
//! activity), config vars, deploying a branch, releases and rollback, builds, logs.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Redirect, Response};
use paas_server::core::{App, BuildLog, Error, Paas, ProcessState};
use serde::Deserialize;

use crate::page::{self, Layout, duration, encode, render, render_status};
use crate::session::{CsrfForm, SignedIn};

/// `?notice=…`: what the last form did, shown once after its redirect.
#[derive(Deserialize, Default)]
pub(crate) struct Notice {
    notice: Option<String>,
}

impl Notice {
    pub(crate) fn into_inner(self) -> Option<String> {
        self.notice
    }
}

/// Back to `path` with a notice.
pub(crate) fn done(path: &str, notice: &str) -> Response {
    use axum::response::IntoResponse;
    Redirect::to(&format!("{path}?notice={}", encode(notice))).into_response()
}

/// The app, if the signed-in user may touch it; else the page the core's answer calls for
/// (another user's app is "not found", as a missing one).
async fn app_for(paas: &Paas, signed_in: &SignedIn, name: &str) -> Result<App, Response> {
    paas.app_for(&signed_in.actor, name)
        .await
        .map_err(|err| page::error_page(Some(signed_in.layout("Not found")), &err))
}

fn app_path(app: &App) -> String {
    format!("/apps/{}", app.name)
}

/// How an app is doing, in a word for the list and its badge.
async fn state_of(paas: &Paas, app: &App) -> &'static str {
    if paas.is_deploying(app) {
        return "deploying";
    }
    let current = paas.store().current_release(app).await.ok().flatten();
    if current.is_none_or(|r| r.image.is_none()) {
        return "not deployed";
    }
    let formation = paas.formation(app).await.unwrap_or_default();
    if formation.get("web").copied().unwrap_or(0) == 0 {
        return "no web process";
    }
    let Ok(processes) = paas.processes(app).await else { return "unknown" };
    let web: Vec<_> = processes.iter().filter(|p| p.process_type == "web" && !p.one_off).collect();
    if web.iter().any(|p| p.state == ProcessState::Running) {
        "running"
    } else if web.iter().any(|p| p.restart_count > 0 || p.state == ProcessState::Restarting) {
        "crashed"
    } else if web.is_empty() {
        "not deployed"
    } else {
        "stopped"
    }
}

struct AppRow {
    name: String,
    url: String,
    state: &'static str,
    state_class: String,
    release: String,
    deployed_at: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
struct AppsPage {
    layout: Layout,
    apps: Vec<AppRow>,
    notice: Option<String>,
}

pub(crate) async fn list(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Query(notice): Query<Notice>,
) -> Response {
    let apps = match paas.apps_for(&signed_in.actor).await {
        Ok(apps) => apps,
        Err(err) => return page::error_page(Some(signed_in.layout("Apps")), &err),
    };
    let mut rows = Vec::new();
    for app in apps {
        let current = paas.store().current_release(&app).await.ok().flatten();
        let state = state_of(&paas, &app).await;
        rows.push(AppRow {
            url: paas.web_url(&app),
            state,
            state_class: state.replace(' ', "-"),
            release: current.as_ref().map(|r| format!("v{}", r.version)).unwrap_or_default(),
            deployed_at: current.map(|r| r.created_at).unwrap_or_default(),
            name: app.name,
        });
    }
    render(&AppsPage { layout: signed_in.layout("Apps"), apps: rows, notice: notice.notice })
}

#[derive(Deserialize)]
pub(crate) struct NewApp {
    #[serde(default)]
    name: String,
}

pub(crate) async fn create(
    State(paas): State<Paas>,
    CsrfForm { signed_in, form }: CsrfForm<NewApp>,
) -> Response {
    let name = form.name.trim();
    let name = (!name.is_empty()).then_some(name);
    match paas.create_app(name, &signed_in.actor).await {
        Ok(app) => done(&app_path(&app), &format!("Created {}", app.name)),
        Err(err) => page::error_page(Some(signed_in.layout("Apps")), &err),
    }
}

struct ProcessRow {
    name: String,
    release: i64,
    state: String,
    restarts: i64,
    uptime: String,
}

#[derive(Template)]
#[template(path = "app.html")]
struct AppPage {
    layout: Layout,
    app: String,
    url: String,
    state: &'static str,
    state_class: String,
    release: String,
    deploy_branch: String,
    processes: Vec<ProcessRow>,
    formation: Vec<(String, i64)>,
    /// Custom domains with their certificates, in words (empty when HTTPS is off).
    domains: Vec<(String, String)>,
    members: Vec<(String, String)>,
    activity: Vec<String>,
    may_manage: bool,
    notice: Option<String>,
}

pub(crate) async fn overview(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let layout = signed_in.layout(app.name.clone());
    let result = async {
        let processes = paas.processes(&app).await.unwrap_or_default();
        let mut formation: BTreeMap<String, i64> = paas.formation(&app).await?;
        // Every type the latest release declares can be scaled, at 0 or not.
        if let Some(latest) = paas.store().latest_release(&app).await? {
            for kind in latest.process_types.keys().filter(|t| *t != "release") {
                formation.entry(kind.clone()).or_insert(0);
            }
        }
        let role = paas.store().role(&app, &signed_in.actor.user).await?;
        let current = paas.store().current_release(&app).await?;
        let state = state_of(&paas, &app).await;
        Ok::<_, Error>(AppPage {
            url: paas.web_url(&app),
            state,
            state_class: state.replace(' ', "-"),
            release: current.map(|r| format!("v{}", r.version)).unwrap_or_default(),
            deploy_branch: app.deploy_branch.clone(),
            processes: processes
                .iter()
                .filter(|p| !p.one_off)
                .map(|p| ProcessRow {
                    name: p.process_name(),
                    release: p.release,
                    state: format!("{:?}", p.state).to_lowercase(),
                    restarts: p.restart_count,
                    uptime: p.uptime().map(|d| duration(d.as_secs())).unwrap_or_default(),
                })
                .collect(),
            formation: formation.into_iter().collect(),
            domains: custom_domains(&paas.https_of(&app).await?),
            members: paas.members(&app).await?.into_iter().map(|m| (m.email, m.role)).collect(),
            activity: paas
                .events()
                .recent(&app.name, 30, |_| true)
                .iter()
                .map(|e| e.line().trim_end().to_string())
                .collect(),
            may_manage: signed_in.actor.is_admin() || role.as_deref() == Some("owner"),
            app: app.name.clone(),
            layout,
            notice: notice.notice,
        })
    }
    .await;
    match result {
        Ok(page) => render(&page),
        Err(err) => page::error_page(Some(signed_in.layout(app.name)), &err),
    }
}

/// Runs a change of the app and goes back to `then` with what it did, or shows the error.
macro_rules! change {
    ($paas:expr, $signed_in:expr, $name:expr, |$app:ident| $work:expr, $then:expr) => {{
        let $app = match app_for(&$paas, &$signed_in, &$name).await {
            Ok(app) => app,
            Err(page) => return page,
        };
        let path = format!("{}{}", app_path(&$app), $then);
        match $work.await {
            Ok(notice) => done(&path, &notice),
            Err(err) => page::error_page(Some($signed_in.layout($app.name.clone())), &err),
        }
    }};
}

#[derive(Deserialize)]
pub(crate) struct Scale {
    process_type: String,
    quantity: String,
}

pub(crate) async fn scale(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<Scale>,
) -> Response {
    let actor = signed_in.actor.clone();
    change!(
        paas,
        signed_in,
        name,
        |app| async {
            let quantity: i64 = form.quantity.trim().parse().map_err(|_| {
                Error::invalid("invalid_quantity", format!("{:?} is not a number", form.quantity))
            })?;
            let changes = BTreeMap::from([(form.process_type.clone(), quantity)]);
            paas.scale(&actor, &app, changes).await?;
            Ok::<_, Error>(format!("Scaled {} to {quantity}", form.process_type))
        },
        ""
    )
}

#[derive(Deserialize)]
pub(crate) struct Restart {
    process_type: Option<String>,
}

pub(crate) async fn restart(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<Restart>,
) -> Response {
    let actor = signed_in.actor.clone();
    change!(
        paas,
        signed_in,
        name,
        |app| async {
            let kind = form.process_type.as_deref().filter(|t| !t.is_empty());
            paas.restart(&actor, &app, kind, &BuildLog::new()).await?;
            Ok::<_, Error>(format!("Restarted {} processes", kind.unwrap_or("all")))
        },
        ""
    )
}

#[derive(Deserialize)]
pub(crate) struct Hostname {
    hostname: String,
}

/// Each custom domain and, when the server serves HTTPS, its certificate.
fn custom_domains(https: &paas_server::core::AppHttps) -> Vec<(String, String)> {
    let custom = https.hosts.iter().filter(|host| host.custom);
    custom
        .map(|host| {
            let certificate = host.certificate.as_ref().filter(|_| https.enabled);
            (host.hostname.clone(), certificate.map(|c| c.describe()).unwrap_or_default())
        })
        .collect()
}

pub(crate) async fn add_domain(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<Hostname>,
) -> Response {
    let actor = signed_in.actor.clone();
    change!(
        paas,
        signed_in,
        name,
        |app| async {
            let domain = paas.add_domain(&actor, &app, &form.hostname).await?;
            Ok::<_, Error>(format!("Added {}", domain.hostname))
        },
        ""
    )
}

pub(crate) async fn remove_domain(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<Hostname>,
) -> Response {
    let actor = signed_in.actor.clone();
    change!(
        paas,
        signed_in,
        name,
        |app| async {
            paas.remove_domain(&actor, &app, &form.hostname).await?;
            Ok::<_, Error>(format!("Removed {}", form.hostname))
        },
        ""
    )
}

#[derive(Deserialize)]
pub(crate) struct Email {
    email: String,
}

pub(crate) async fn add_member(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<Email>,
) -> Response {
    let actor = signed_in.actor.clone();
    change!(
        paas,
        signed_in,
        name,
        |app| async {
            paas.add_member(&actor, &app, &form.email).await?;
            Ok::<_, Error>(format!("Gave {} access", form.email.trim()))
        },
        ""
    )
}

pub(crate) async fn remove_member(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<Email>,
) -> Response {
    let actor = signed_in.actor.clone();
    change!(
        paas,
        signed_in,
        name,
        |app| async {
            paas.remove_member(&actor, &app, &form.email).await?;
            Ok::<_, Error>(format!("Took {}'s access", form.email.trim()))
        },
        ""
    )
}

#[derive(Deserialize)]
pub(crate) struct Confirm {
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn destroy(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<Confirm>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let layout = signed_in.layout(app.name.clone());
    if form.confirm.trim() != app.name {
        let err = Error::invalid(
            "confirmation_mismatch",
            format!("type the app's name, {}, to destroy it; nothing was destroyed", app.name),
        );
        return page::error_page(Some(layout), &err);
    }
    match paas.destroy_app(&signed_in.actor, &app).await {
        Ok(()) => done("/", &format!("Destroyed {}", app.name)),
        Err(err) => page::error_page(Some(layout), &err),
    }
}

/// A form's error, shown next to its field.
struct FieldError {
    field: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "config.html")]
struct ConfigPage {
    layout: Layout,
    app: String,
    vars: Vec<(String, String)>,
    notice: Option<String>,
    /// Errors next to the key and value fields, and the paste box.
    key_error: Option<String>,
    value_error: Option<String>,
    paste_error: Option<String>,
    /// What the failed form held, to fix rather than retype.
    draft_key: String,
    draft_value: String,
    draft_paste: String,
}

async fn config_page(
    paas: &Paas,
    signed_in: &SignedIn,
    app: &App,
    notice: Option<String>,
    failed: Option<(FieldError, String, String, String)>,
) -> Response {
    let vars = match paas.config(app).await {
        Ok(vars) => vars.into_iter().collect(),
        Err(err) => return page::error_page(Some(signed_in.layout(app.name.clone())), &err),
    };
    let status = if failed.is_some() { 422 } else { 200 };
    let (error, draft_key, draft_value, draft_paste) = match failed {
        Some((error, key, value, paste)) => (Some(error), key, value, paste),
        None => (None, String::new(), String::new(), String::new()),
    };
    let title = format!("{} · Config vars", app.name);
    let error_for =
        |field: &str| error.as_ref().filter(|e| e.field == field).map(|e| e.message.clone());
    let page = ConfigPage {
        layout: signed_in.layout(title),
        app: app.name.clone(),
        vars,
        notice,
        key_error: error_for("key"),
        value_error: error_for("value"),
        paste_error: error_for("paste"),
        draft_key,
        draft_value,
        draft_paste,
    };
    render_status(status, &page)
}

pub(crate) async fn config(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    match app_for(&paas, &signed_in, &name).await {
        Ok(app) => config_page(&paas, &signed_in, &app, notice.notice, None).await,
        Err(page) => page,
    }
}

/// Applies config changes as one release, then back to the page saying which; on any error
/// the page again, the error next to `field` and nothing saved.
async fn change_config(
    paas: &Paas,
    signed_in: &SignedIn,
    app: &App,
    changes: BTreeMap<String, Option<String>>,
    field: &'static str,
    draft: (String, String, String),
) -> Response {
    match paas.update_config(&signed_in.actor, app, changes).await {
        Ok((release, true)) => done(
            &format!("{}/config", app_path(app)),
            &format!("{} as v{}", release.description, release.version),
        ),
        Ok((release, false)) => done(
            &format!("{}/config", app_path(app)),
            &format!("Nothing changed; v{} stays current", release.version),
        ),
        Err(err) => {
            let field = match err.code() {
                "invalid_config_key" => "key",
                "invalid_config_value" if field == "key" => "value",
                _ => field,
            };
            let error = FieldError { field, message: err.public_message() };
            config_page(paas, signed_in, app, None, Some((error, draft.0, draft.1, draft.2))).await
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct SetVar {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

pub(crate) async fn set_config(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<SetVar>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let key = form.key.trim().to_string();
    // Browsers send a text box's line ends as CRLF; the value typed had LF.
    let value = form.value.replace("\r\n", "\n");
    let changes = BTreeMap::from([(key.clone(), Some(value))]);
    change_config(&paas, &signed_in, &app, changes, "key", (key, form.value, String::new())).await
}

#[derive(Deserialize)]
pub(crate) struct Key {
    key: String,
}

pub(crate) async fn remove_config(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<Key>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let changes = BTreeMap::from([(form.key.clone(), None)]);
    change_config(&paas, &signed_in, &app, changes, "key", Default::default()).await
}

#[derive(Deserialize)]
pub(crate) struct Paste {
    #[serde(default)]
    text: String,
}

pub(crate) async fn paste_config(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<Paste>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let draft = (String::new(), String::new(), form.text.clone());
    let changes = match parse_env(&form.text.replace("\r\n", "\n")) {
        Ok(pairs) => pairs.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        Err(message) => {
            let error = FieldError { field: "paste", message };
            return config_page(
                &paas,
                &signed_in,
                &app,
                None,
                Some((error, draft.0, draft.1, draft.2)),
            )
            .await;
        }
    };
    change_config(&paas, &signed_in, &app, changes, "paste", draft).await
}

/// `KEY=value` lines as a `.env` file has them: blank lines and `#` comments skipped, an
/// optional `export `, values optionally in matching quotes. A line that is none of these is
/// an error naming it, and nothing is set.
pub(crate) fn parse_env(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {} is not KEY=value: {line:?}; nothing was set", number + 1));
        };
        let value = value.trim();
        let unquoted = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|(open, close)| {
                value
                    .strip_prefix(*open)
                    .and_then(|v| v.strip_suffix(*close))
                    .filter(|_| value.len() >= 2)
            })
            .unwrap_or(value);
        vars.insert(key.trim().to_string(), unquoted.to_string());
    }
    if vars.is_empty() {
        return Err("no KEY=value lines to set".to_string());
    }
    Ok(vars)
}

struct BranchRow {
    /// The name is one paas deploys (some names git takes, paas does not).
    deployable: bool,
    name: String,
    sha: String,
    subject: String,
    committed_at: String,
}

struct LiveView {
    branch: String,
    sha: String,
    started_by: String,
    /// Empty while it runs.
    outcome: String,
    failed: bool,
    log: String,
    /// The number of the log's next line: where the page's stream goes on from.
    position: u64,
}

/// The app's GitHub link, on the Deploy page.
struct GithubView {
    repository: String,
    branch: String,
    /// The repository's branches on GitHub, or why they could not be listed.
    branches: Result<Vec<String>, String>,
    /// When, delivery id, commit, outcome.
    deliveries: Vec<(String, String, String, String)>,
}

#[derive(Template)]
#[template(path = "deploy.html")]
struct DeployPage {
    layout: Layout,
    app: String,
    deploy_branch: String,
    branches: Vec<BranchRow>,
    live: Option<LiveView>,
    github: Option<GithubView>,
    notice: Option<String>,
}

pub(crate) async fn deploy_page(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let branches = match paas.branches(&app).await {
        Ok(branches) => branches,
        Err(err) => return page::error_page(Some(signed_in.layout(app.name.clone())), &err),
    };
    let live = paas.live_deploy(&app).map(|live| {
        let (outcome, failed) = match live.outcome() {
            None => (String::new(), false),
            Some(Ok(version)) => (format!("Released v{version}"), false),
            Some(Err(message)) => (format!("Failed: {message}"), true),
        };
        let (log, position) = live.log.text_and_position();
        LiveView {
            branch: live.branch.clone(),
            sha: live.sha.chars().take(7).collect(),
            started_by: live.started_by.clone(),
            outcome,
            failed,
            log,
            position,
        }
    });
    let github_branches = paas.github_branches(&app).await.map_err(|e| e.public_message());
    let github = paas.github(&app).await.ok().flatten().map(|(link, deliveries)| GithubView {
        repository: link.repository,
        branch: link.branch,
        branches: github_branches,
        deliveries: deliveries
            .into_iter()
            .map(|d| {
                let commit = d.commit_sha.unwrap_or_default().chars().take(7).collect();
                (d.created_at, d.delivery, commit, d.outcome)
            })
            .collect(),
    });
    let page = DeployPage {
        layout: signed_in.layout(format!("{} · Deploy", app.name)),
        github,
        deploy_branch: app.deploy_branch.clone(),
        app: app.name,
        branches: branches
            .into_iter()
            .map(|b| BranchRow {
                deployable: paas_server::core::validate::branch_name(&b.name).is_ok(),
                sha: b.sha.chars().take(7).collect(),
                name: b.name,
                subject: b.subject,
                committed_at: b.committed_at,
            })
            .collect(),
        live,
        notice: notice.notice,
    };
    render(&page)
}

#[derive(Deserialize)]
pub(crate) struct DeployBranch {
    branch: String,
    /// Set: the branch of the linked GitHub repository, fetched first.
    github: Option<String>,
}

pub(crate) async fn deploy(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<DeployBranch>,
) -> Response {
    let actor = signed_in.actor.clone();
    change!(
        paas,
        signed_in,
        name,
        |app| async {
            if form.github.is_some() {
                paas.fetch_github_branch(&app, &form.branch).await?;
            }
            let live = paas.deploy_branch(&actor, &app, &form.branch).await?;
            Ok::<_, Error>(format!(
                "Deploying {} ({})",
                live.branch,
                &live.sha[..7.min(live.sha.len())]
            ))
        },
        "/deploy"
    )
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    branch: String,
    #[serde(default)]
    token: String,
}

#[derive(Template)]
#[template(path = "linked.html")]
struct LinkedPage {
    layout: Layout,
    app: String,
    repository: String,
    branch: String,
    payload_url: String,
    secret: String,
}

/// Links the app to a GitHub repository and shows, once, what to paste into GitHub.
pub(crate) async fn link_github(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    CsrfForm { signed_in, form }: CsrfForm<LinkForm>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let branch = Some(form.branch.trim()).filter(|b| !b.is_empty()).unwrap_or("main");
    let token = Some(form.token.as_str()).filter(|t| !t.trim().is_empty());
    let linked =
        paas.link_github(&signed_in.actor, &app, &form.repository, branch, None, token).await;
    match linked {
        Ok(link) => {
            let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("PAAS-HOST");
            let https = headers.get("x-forwarded-proto").is_some_and(|p| p.as_bytes() == b"https");
            let scheme = if https { "https" } else { "http" };
            render(&LinkedPage {
                layout: signed_in.layout(format!("{} · GitHub", app.name)),
                app: app.name,
                repository: link.repository,
                branch: link.branch,
                payload_url: format!("{scheme}://{host}/hooks/github"),
                secret: link.secret,
            })
        }
        Err(err) => page::error_page(Some(signed_in.layout(app.name)), &err),
    }
}

pub(crate) async fn unlink_github(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, .. }: CsrfForm<crate::session::Empty>,
) -> Response {
    let actor = signed_in.actor.clone();
    change!(
        paas,
        signed_in,
        name,
        |app| async {
            paas.unlink_github(&actor, &app).await?;
            Ok::<_, Error>("Unlinked from GitHub".to_string())
        },
        "/deploy"
    )
}

struct ReleaseRow {
    /// Waits for approval: the page offers approve and reject.
    waiting: bool,
    version: i64,
    description: String,
    status: String,
    created_by: String,
    created_at: String,
    commit: String,
    message: String,
    build_id: Option<i64>,
    current: bool,
    can_roll_back: bool,
}

#[derive(Template)]
#[template(path = "releases.html")]
struct ReleasesPage {
    layout: Layout,
    app: String,
    releases: Vec<ReleaseRow>,
    notice: Option<String>,
}

pub(crate) async fn releases(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let result = async {
        let builds: BTreeMap<i64, (String, String)> = paas
            .store()
            .builds(&app)
            .await?
            .into_iter()
            .map(|b| {
                let sha = b.commit_sha.unwrap_or_default().chars().take(7).collect();
                (b.id, (sha, b.commit_message.unwrap_or_default()))
            })
            .collect();
        let current = paas.store().current_release(&app).await?.map(|r| r.version);
        let rows = paas
            .releases(&app)
            .await?
            .into_iter()
            .map(|r| {
                let (commit, message) =
                    r.build_id.and_then(|id| builds.get(&id).cloned()).unwrap_or_default();
                ReleaseRow {
                    waiting: r.status == paas_server::core::ReleaseStatus::Waiting,
                    current: current == Some(r.version),
                    can_roll_back: r.image.is_some()
                        && r.status == paas_server::core::ReleaseStatus::Succeeded
                        && current != Some(r.version),
                    version: r.version,
                    description: r.description,
                    status: r.status.as_str().to_string(),
                    created_by: r.created_by,
                    created_at: r.created_at,
                    commit,
                    message: message.lines().next().unwrap_or_default().to_string(),
                    // A promoted release runs another app's build: its log is that app's.
                    build_id: r.build_id.filter(|id| builds.contains_key(id)),
                }
            })
            .collect();
        Ok::<_, Error>(rows)
    }
    .await;
    match result {
        Ok(releases) => render(&ReleasesPage {
            layout: signed_in.layout(format!("{} · Releases", app.name)),
            app: app.name,
            releases,
            notice: notice.notice,
        }),
        Err(err) => page::error_page(Some(signed_in.layout(app.name)), &err),
    }
}

#[derive(Deserialize)]
pub(crate) struct Version {
    version: String,
}

#[derive(Template)]
#[template(path = "rollback.html")]
struct RollbackPage {
    layout: Layout,
    app: String,
    version: i64,
    description: String,
    created_at: String,
    keys: Vec<String>,
}

fn parse_version(text: &str) -> Result<i64, Error> {
    paas_server::core::validate::release_version(text)
}

#[derive(Deserialize)]
pub(crate) struct VersionQuery {
    version: Option<String>,
}

pub(crate) async fn confirm_rollback(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    Query(query): Query<VersionQuery>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let version = query.version.unwrap_or_default();
    let release = async { paas.release(&app, parse_version(&version)?).await }.await;
    match release {
        Ok(release) => render(&RollbackPage {
            layout: signed_in.layout(format!("{} · Roll back", app.name)),
            app: app.name,
            version: release.version,
            description: release.description,
            created_at: release.created_at,
            keys: release.config.into_keys().collect(),
        }),
        Err(err) => page::error_page(Some(signed_in.layout(app.name)), &err),
    }
}

/// Approve or reject a waiting release from the releases page.
pub(crate) async fn approve(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<crate::pipelines::DecisionForm>,
) -> Response {
    decided(&paas, &signed_in, &name, &form, true).await
}

pub(crate) async fn reject(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<crate::pipelines::DecisionForm>,
) -> Response {
    decided(&paas, &signed_in, &name, &form, false).await
}

async fn decided(
    paas: &Paas,
    signed_in: &SignedIn,
    name: &str,
    form: &crate::pipelines::DecisionForm,
    approve: bool,
) -> Response {
    if form.app() != name {
        let err = Error::invalid("invalid_body", "the form is for another app");
        return page::error_page(Some(signed_in.layout(name.to_string())), &err);
    }
    match crate::pipelines::decide(paas, signed_in, form, approve).await {
        Ok(notice) => done(&format!("/apps/{name}/releases"), &notice),
        Err(err) => page::error_page(Some(signed_in.layout(name.to_string())), &err),
    }
}

pub(crate) async fn rollback(
    State(paas): State<Paas>,
    Path(name): Path<String>,
    CsrfForm { signed_in, form }: CsrfForm<Version>,
) -> Response {
    let actor = signed_in.actor.clone();
    change!(
        paas,
        signed_in,
        name,
        |app| async {
            let version = parse_version(&form.version)?;
            let release = paas.rollback(&actor, &app, Some(version), &BuildLog::new()).await?;
            Ok::<_, Error>(format!("Rolled back to v{version} as v{}", release.version))
        },
        "/releases"
    )
}

#[derive(Template)]
#[template(path = "build.html")]
struct BuildPage {
    layout: Layout,
    app: String,
    id: i64,
    status: String,
    commit: String,
    message: String,
    created_by: String,
    created_at: String,
    log: String,
}

pub(crate) async fn build(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let build = async {
        let id: i64 = id.parse().map_err(|_| Error::NotFound(format!("build {id}")))?;
        Ok::<_, Error>(paas.store().build(&app, id).await?)
    }
    .await;
    match build {
        Ok(build) => render(&BuildPage {
            layout: signed_in.layout(format!("{} · Build {}", app.name, build.id)),
            app: app.name,
            id: build.id,
            status: format!("{:?}", build.status).to_lowercase(),
            commit: build.commit_sha.unwrap_or_default(),
            message: build.commit_message.unwrap_or_default(),
            created_by: build.created_by,
            created_at: build.created_at,
            log: build.log,
        }),
        Err(err) => page::error_page(Some(signed_in.layout(app.name)), &err),
    }
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    layout: Layout,
    app: String,
    process_types: Vec<String>,
}

pub(crate) async fn logs(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Path(name): Path<String>,
) -> Response {
    let app = match app_for(&paas, &signed_in, &name).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let process_types = paas.formation(&app).await.unwrap_or_default().into_keys().collect();
    render(&LogsPage {
        layout: signed_in.layout(format!("{} · Logs", app.name)),
        app: app.name,
        process_types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_domains_show_their_certificates_when_https_is_on() {
        use paas_server::core::{AppHttps, CertificateStatus, HostHttps};
        let status = |state: &str| CertificateStatus {
            state: state.into(),
            expires: Some("2027-03-02T10:00:00Z".into()),
            error: None,
            retry_at: None,
        };
        let mut https = AppHttps {
            enabled: true,
            redirect: true,
            hsts: false,
            hosts: vec![
                HostHttps {
                    hostname: "shop.example.com".into(),
                    custom: false,
                    certificate: Some(status("issued")),
                },
                HostHttps {
                    hostname: "www.shop.com".into(),
                    custom: true,
                    certificate: Some(status("issued")),
                },
            ],
        };
        let shown = custom_domains(&https);
        assert_eq!(shown, [("www.shop.com".to_string(), "issued, until 2027-03-02".to_string())]);
        https.enabled = false;
        assert_eq!(custom_domains(&https), [("www.shop.com".to_string(), String::new())]);
    }

    #[test]
    fn env_files_parse_like_dotenv() {
        let text = "# a comment\n\nexport A=1\nB = two words\nC=\"quoted = yes\"\nD='x'\nE=\n";
        let vars = parse_env(text).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two words");
        assert_eq!(vars["C"], "quoted = yes");
        assert_eq!(vars["D"], "x");
        assert_eq!(vars["E"], "");
        let err = parse_env("A=1\nnot a pair\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(parse_env("# only a comment").is_err());
    }
}
