//! The plain values the store hands out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Who someone is: what every request carries once its token or session is checked.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub is_admin: i64,
    pub created_at: String,
}

impl User {
    pub fn admin(&self) -> bool {
        self.is_admin != 0
    }
}

/// A user with what signing in needs: the password hash, a pending invitation, lockout.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    #[sqlx(flatten)]
    pub user: User,
    /// An argon2id PHC string, `None` until a password is set.
    pub password_hash: Option<String>,
    /// When a pending invitation lapses; `None` when there is none.
    pub invite_expires_at: Option<String>,
    /// Failed sign-ins since the last good one or lockout.
    pub failed_logins: i64,
    pub locked_until: Option<String>,
}

/// An API token as listed: never the token, which only its owner saw, once.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    /// The owner's email.
    pub email: String,
    pub description: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
}

/// An app linked to a GitHub repository: pushes to `branch` there deploy it. Its `Debug`
/// leaves the secret and token out, so no log line can hold them.
#[derive(Clone, sqlx::FromRow)]
pub struct GithubLink {
    pub app_id: i64,
    pub app: String,
    /// `OWNER/REPO`.
    pub repository: String,
    pub branch: String,
    /// The webhook secret deliveries are signed with.
    pub secret: String,
    /// For private repositories and commit statuses; never shown after linking.
    pub token: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

impl std::fmt::Debug for GithubLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubLink")
            .field("app", &self.app)
            .field("repository", &self.repository)
            .field("branch", &self.branch)
            .field("token_set", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

/// A link to make.
#[derive(Clone)]
pub struct NewGithubLink {
    pub repository: String,
    pub branch: String,
    pub secret: String,
    pub token: Option<String>,
    pub created_by: String,
}

/// A webhook delivery and what came of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GithubDelivery {
    pub id: i64,
    pub delivery: String,
    pub event: String,
    pub commit_sha: Option<String>,
    pub outcome: String,
    pub created_at: String,
}

/// A dashboard sign-in.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    /// What every form of this session carries.
    pub csrf_token: String,
    pub created_at: String,
    pub expires_at: String,
}

/// Someone besides the admins who may see and change an app.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub email: String,
    /// `owner` (made the app, manages access) or `member`.
    pub role: String,
    pub created_at: String,
}

/// One change in the audit log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: i64,
    pub created_at: String,
    /// The email of whoever made the change.
    pub actor: String,
    pub address: Option<String>,
    /// The front end it came through: `api`, `git`, `dashboard`, `github`.
    pub via: String,
    /// What was done, like `config.set` or `app.create`.
    pub action: String,
    pub app_id: Option<i64>,
    pub app: Option<String>,
    /// What changed, in words; never a config value.
    pub detail: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct App {
    pub id: i64,
    pub name: String,
    pub deploy_branch: String,
    /// Pushed tags matching this pattern (`*`, `v*`) build a release that waits for
    /// approval; `None`: tags are refused.
    pub deploy_tags: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

/// Where a release is in its life: made `pending`, then `succeeded` once it serves (a
/// config-only release at once), or `failed` if its rollout did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    Pending,
    Succeeded,
    Failed,
    /// Built from a tag, waiting for someone to approve it; the running release serves on.
    Waiting,
    /// A waiting release someone turned down.
    Rejected,
    /// A waiting release a newer one replaced, or approved as a newer release.
    Superseded,
}

/// Where a build is: `building` until it ends `succeeded` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Building,
    Succeeded,
    Failed,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Succeeded => "succeeded",
            ReleaseStatus::Failed => "failed",
            ReleaseStatus::Waiting => "waiting",
            ReleaseStatus::Rejected => "rejected",
            ReleaseStatus::Superseded => "superseded",
        }
    }

    fn parse(text: &str) -> Result<ReleaseStatus, StoreError> {
        [
            ReleaseStatus::Pending,
            ReleaseStatus::Succeeded,
            ReleaseStatus::Failed,
            ReleaseStatus::Waiting,
            ReleaseStatus::Rejected,
            ReleaseStatus::Superseded,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown release status {text:?}")))
    }
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Building => "building",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<BuildStatus, StoreError> {
        [BuildStatus::Building, BuildStatus::Succeeded, BuildStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown build status {text:?}")))
    }
}

/// What started a build: a `git push`, the CLI or API with a source tree, the dashboard, or
/// a GitHub webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploySource {
    Git,
    Cli,
    Api,
    Dashboard,
    Github,
}

impl DeploySource {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploySource::Git => "git",
            DeploySource::Cli => "cli",
            DeploySource::Api => "api",
            DeploySource::Dashboard => "dashboard",
            DeploySource::Github => "github",
        }
    }

    fn parse(text: &str) -> Result<DeploySource, StoreError> {
        use DeploySource::*;
        [Git, Cli, Api, Dashboard, Github]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown build source {text:?}")))
    }
}

impl std::fmt::Display for DeploySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One build of an app's source into an image, with its whole log.
#[derive(Debug, Clone)]
pub struct Build {
    pub id: i64,
    pub status: BuildStatus,
    pub source: DeploySource,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    /// The tag pushed, for a tag deploy.
    pub git_tag: Option<String>,
    /// What the build's paas.toml declares (routes, volumes, jobs), as JSON.
    pub manifest: Option<String>,
    /// What the builder detected: `python`, `node`, `dockerfile`, …
    pub kind: Option<String>,
    pub image: Option<String>,
    pub image_size: Option<i64>,
    pub process_types: BTreeMap<String, String>,
    /// The whole build log; empty in listings.
    pub log: String,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct BuildRow {
    id: i64,
    status: String,
    source: String,
    commit_sha: Option<String>,
    commit_message: Option<String>,
    git_tag: Option<String>,
    manifest: Option<String>,
    kind: Option<String>,
    image: Option<String>,
    image_size: Option<i64>,
    process_types: Option<String>,
    log: String,
    error: Option<String>,
    created_by: String,
    created_at: String,
    finished_at: Option<String>,
}

impl TryFrom<BuildRow> for Build {
    type Error = StoreError;

    fn try_from(row: BuildRow) -> Result<Self, StoreError> {
        let process_types = match row.process_types.as_deref() {
            Some(json) => serde_json::from_str(json)
                .map_err(|e| StoreError::Corrupt(format!("build {} process types: {e}", row.id)))?,
            None => BTreeMap::new(),
        };
        Ok(Build {
            id: row.id,
            status: BuildStatus::parse(&row.status)?,
            source: DeploySource::parse(&row.source)?,
            commit_sha: row.commit_sha,
            commit_message: row.commit_message,
            git_tag: row.git_tag,
            manifest: row.manifest,
            kind: row.kind,
            image: row.image,
            image_size: row.image_size,
            process_types,
            log: row.log,
            error: row.error,
            created_by: row.created_by,
            created_at: row.created_at,
            finished_at: row.finished_at,
        })
    }
}

/// What a build started with.
#[derive(Debug, Clone)]
pub struct NewBuild {
    pub source: DeploySource,
    pub commit_sha: Option<String>,
    pub git_tag: Option<String>,
    pub commit_message: Option<String>,
    pub created_by: String,
}

/// How a build ended.
#[derive(Debug, Clone, Default)]
pub struct BuildOutcome {
    pub succeeded: bool,
    pub kind: Option<String>,
    pub image: Option<String>,
    pub image_size: Option<i64>,
    pub process_types: BTreeMap<String, String>,
    /// The build's declared routes, volumes and jobs, as JSON.
    pub manifest: Option<String>,
    pub log: String,
    pub error: Option<String>,
}

/// A custom hostname routed to an app.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Domain {
    pub hostname: String,
    pub created_at: String,
}

/// An immutable release: what runs (image, process types) and with which config.
#[derive(Debug, Clone)]
pub struct Release {
    pub id: i64,
    pub version: i64,
    pub build_id: Option<i64>,
    pub image: Option<String>,
    /// Config vars as they were when the release was made. Never sent over the API in
    /// release listings: it holds secrets.
    pub config: BTreeMap<String, String>,
    /// Process type → command.
    pub process_types: BTreeMap<String, String>,
    pub description: String,
    pub status: ReleaseStatus,
    pub created_by: String,
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReleaseRow {
    id: i64,
    #[allow(dead_code)]
    app_id: i64,
    version: i64,
    build_id: Option<i64>,
    image: Option<String>,
    config: String,
    process_types: String,
    description: String,
    status: String,
    created_by: String,
    created_at: String,
}

impl TryFrom<ReleaseRow> for Release {
    type Error = StoreError;

    fn try_from(row: ReleaseRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("release {} {what}: {e}", row.id))
        };
        Ok(Release {
            id: row.id,
            version: row.version,
            build_id: row.build_id,
            image: row.image,
            config: serde_json::from_str(&row.config).map_err(|e| corrupt("config", e))?,
            process_types: serde_json::from_str(&row.process_types)
                .map_err(|e| corrupt("process types", e))?,
            description: row.description,
            status: ReleaseStatus::parse(&row.status)?,
            created_by: row.created_by,
            created_at: row.created_at,
        })
    }
}

/// A database or cache paas runs for apps.
#[derive(Clone, sqlx::FromRow)]
pub struct Addon {
    pub id: i64,
    /// Unique among add-ons that exist; the host name attached apps reach it by.
    pub name: String,
    /// `postgres` or `redis`.
    pub service: String,
    /// The major version its data was made with (`15`, `7`).
    pub major: String,
    pub image: String,
    /// The app it was created for, unless that app was destroyed.
    pub app_id: Option<i64>,
    pub app: Option<String>,
    pub username: Option<String>,
    pub password: String,
    pub database: Option<String>,
    pub backup_schedule: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub destroyed_at: Option<String>,
}

impl std::fmt::Debug for Addon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Addon")
            .field("name", &self.name)
            .field("service", &self.service)
            .field("major", &self.major)
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// An add-on to record.
#[derive(Clone)]
pub struct NewAddon {
    pub name: String,
    pub service: String,
    pub major: String,
    pub image: String,
    pub username: Option<String>,
    pub password: String,
    pub database: Option<String>,
    pub created_by: String,
}

/// An add-on attached to an app as `NAME_URL`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attachment {
    pub addon_id: i64,
    pub addon: String,
    pub app_id: i64,
    pub app: String,
    /// `DATABASE`: the app has `DATABASE_URL`.
    pub name: String,
    pub created_by: String,
    pub created_at: String,
}

impl Attachment {
    /// The config var the app gets: `DATABASE_URL`.
    pub fn config_var(&self) -> String {
        format!("{}_URL", self.name)
    }
}

/// A backup of an add-on, taken or being taken.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Backup {
    pub id: i64,
    pub addon_id: i64,
    pub addon: String,
    /// `running`, `succeeded` or `failed`: only `succeeded` has a file to restore.
    pub status: String,
    pub size_bytes: Option<i64>,
    pub error: Option<String>,
    pub file: Option<String>,
    pub created_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl Backup {
    /// `b007`, as it is shown and named on the command line.
    pub fn label(&self) -> String {
        format!("b{:03}", self.id)
    }
}

/// A persistent volume of an app, mounted at `path` in its processes.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Volume {
    pub name: String,
    pub path: String,
    pub created_by: String,
    pub created_at: String,
}

/// A command an app runs on a schedule, with what came of its last run.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct CronJob {
    pub id: i64,
    pub app: String,
    /// Five cron fields, UTC.
    pub schedule: String,
    pub command: String,
    pub created_by: String,
    pub created_at: String,
    pub last_minute: Option<String>,
    pub running: i64,
    pub last_started_at: Option<String>,
    pub last_finished_at: Option<String>,
    pub last_exit_code: Option<i64>,
    pub last_error: Option<String>,
    /// Runs started, and runs skipped because the one before was still going.
    pub runs: i64,
    pub skipped: i64,
}

/// Requests to an app whose path starts with `prefix` go to `process_type`.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct AppRoute {
    pub app: String,
    pub prefix: String,
    pub process_type: String,
    pub created_by: String,
    pub created_at: String,
}

/// A pipeline: apps in stages, promoted from one stage to the next.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Pipeline {
    pub id: i64,
    pub name: String,
    /// Review apps' settings, as JSON; `None`: no review apps.
    pub review: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

/// An app's place in a pipeline: `development`, `staging` or `production`.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct PipelineStage {
    pub app: String,
    pub pipeline: String,
    pub stage: String,
    pub added_by: String,
    pub added_at: String,
}

/// A hostname's certificate: being issued, issued (until `not_after`), or failed (why, and
/// when it is tried again). A renewal keeps the issued chain until the new one replaces it.
#[derive(Clone, sqlx::FromRow)]
pub struct Certificate {
    pub hostname: String,
    /// `pending`, `issued` or `failed`.
    pub state: String,
    pub chain_pem: Option<String>,
    pub key_pem: Option<String>,
    /// RFC 3339.
    pub not_after: Option<String>,
    pub error: Option<String>,
    pub failures: i64,
    pub retry_at: Option<String>,
    pub updated_at: String,
}

impl std::fmt::Debug for Certificate {
    // The private key stays out of every log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("hostname", &self.hostname)
            .field("state", &self.state)
            .field("not_after", &self.not_after)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// An app's HTTPS behaviour at the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpsSettings {
    /// Plain HTTP is redirected (308) once the host has a certificate.
    pub redirect: bool,
    /// HTTPS answers carry `Strict-Transport-Security`.
    pub hsts: bool,
}

impl Default for HttpsSettings {
    fn default() -> HttpsSettings {
        HttpsSettings { redirect: true, hsts: false }
    }
}
