//! What travels between paas and its clients, in one place: the JSON API's requests and
//! answers, the events of a one-off run, and what the git hook and the server say to each
//! other. Plain serde types, shared with the CLI; store rows are the store's own.

use std::collections::BTreeMap;

use bytes::Bytes;
use paas_runner::{LogStream, OutputChunk};
use paas_store::{
    ApiToken, App, AuditEvent, Build, BuildStatus, DeploySource, Domain, Member, Release,
    ReleaseStatus, UserRecord,
};
use serde::{Deserialize, Serialize};

/// Largest JSON body the API reads (axum's default): room for a whole config of 1 MiB.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// An app, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppView {
    pub name: String,
    /// The branch whose pushes deploy.
    pub deploy_branch: String,
    /// Which pushed tags deploy (waiting for approval), if any.
    #[serde(default)]
    pub deploy_tags: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

impl From<App> for AppView {
    fn from(app: App) -> AppView {
        AppView {
            name: app.name,
            deploy_branch: app.deploy_branch,
            deploy_tags: app.deploy_tags,
            created_by: app.created_by,
            created_at: app.created_at,
        }
    }
}

/// A release, as the API shows it: never its config, which holds secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseView {
    pub version: i64,
    pub build_id: Option<i64>,
    pub image: Option<String>,
    /// Process type → command.
    pub process_types: BTreeMap<String, String>,
    pub description: String,
    pub status: ReleaseStatus,
    pub created_by: String,
    pub created_at: String,
}

impl From<Release> for ReleaseView {
    fn from(release: Release) -> ReleaseView {
        ReleaseView {
            version: release.version,
            build_id: release.build_id,
            image: release.image,
            process_types: release.process_types,
            description: release.description,
            status: release.status,
            created_by: release.created_by,
            created_at: release.created_at,
        }
    }
}

/// A build, as the API shows it; its log only where one build is asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildView {
    pub id: i64,
    pub status: BuildStatus,
    /// What started it: `git`, `cli`, `api`, `dashboard`, `github`.
    pub source: DeploySource,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    /// What the builder detected: `python`, `node`, `dockerfile`, …
    pub kind: Option<String>,
    pub image: Option<String>,
    pub image_size: Option<i64>,
    pub process_types: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log: String,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<Build> for BuildView {
    fn from(build: Build) -> BuildView {
        BuildView {
            id: build.id,
            status: build.status,
            source: build.source,
            commit_sha: build.commit_sha,
            commit_message: build.commit_message,
            kind: build.kind,
            image: build.image,
            image_size: build.image_size,
            process_types: build.process_types,
            log: build.log,
            error: build.error,
            created_by: build.created_by,
            created_at: build.created_at,
            finished_at: build.finished_at,
        }
    }
}

/// A custom domain, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DomainView {
    pub hostname: String,
    pub created_at: String,
}

impl From<Domain> for DomainView {
    fn from(domain: Domain) -> DomainView {
        DomainView { hostname: domain.hostname, created_at: domain.created_at }
    }
}

/// What `GET /api/v1/apps/{app}` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppInfo {
    #[serde(flatten)]
    pub app: AppView,
    /// Where the router serves the app.
    pub web_url: String,
    /// Version of the latest release.
    pub release: Option<i64>,
    pub formation: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CreateApp {
    pub name: Option<String>,
}

/// `PATCH /api/v1/apps/{app}`: the app's settings to change.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct UpdateApp {
    /// The branch whose pushes deploy.
    pub deploy_branch: Option<String>,
    /// Pushed tags matching this pattern (`v*`) build releases that wait for approval; an
    /// empty string stops tag deploys.
    #[serde(default)]
    pub deploy_tags: Option<String>,
}

/// What a config change answers: the release it made and the whole config after it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfigUpdate {
    pub release: ReleaseView,
    pub config: BTreeMap<String, String>,
    /// Nothing changed (every value was already so): no release was made, and `release` is
    /// the current one.
    #[serde(default)]
    pub unchanged: bool,
}

/// Who the token belongs to (`GET /api/v1/account`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Account {
    pub email: String,
    #[serde(default)]
    pub admin: bool,
    /// A password is set (`paas passwd` then asks for it first).
    #[serde(default)]
    pub password_set: bool,
}

/// A user, as admins see them: never a password or invitation, only whether there is one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserView {
    pub email: String,
    pub admin: bool,
    pub created_at: String,
    /// A password is set: the user can sign in with it.
    pub password_set: bool,
    /// An invitation is waiting to be accepted, until then.
    pub invitation_expires_at: Option<String>,
    /// Locked after too many failed sign-ins, until then.
    pub locked_until: Option<String>,
}

impl From<UserRecord> for UserView {
    fn from(record: UserRecord) -> UserView {
        UserView {
            admin: record.user.admin(),
            email: record.user.email,
            created_at: record.user.created_at,
            password_set: record.password_hash.is_some(),
            invitation_expires_at: record.invite_expires_at,
            locked_until: record.locked_until.filter(|until| *until > paas_store::now()),
        }
    }
}

/// `POST /api/v1/users`: with a password, or without one for an invitation.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AddUser {
    pub email: String,
    #[serde(default)]
    pub admin: bool,
    pub password: Option<String>,
}

/// What adding a user answers: the invitation to hand over, shown this once.
#[derive(Debug, Serialize, Deserialize)]
pub struct AddedUser {
    pub email: String,
    pub admin: bool,
    pub invitation: Option<String>,
}

/// `POST /api/v1/login`: email and password for a personal token named `description`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogIn {
    pub email: String,
    pub password: String,
    pub description: String,
}

/// `POST /api/v1/invitations/accept`: the invitation, the password to set, and a
/// description for the personal token it issues.
#[derive(Debug, Serialize, Deserialize)]
pub struct AcceptInvitation {
    pub invitation: String,
    pub password: String,
    pub description: String,
}

/// `PUT /api/v1/account/password`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangePassword {
    /// Needed when a password is set already.
    pub current_password: Option<String>,
    pub password: String,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NewToken {
    pub description: String,
    /// Lasts this long; none: until revoked.
    pub expires_in_secs: Option<i64>,
}

/// An API token as listed: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenView {
    pub id: i64,
    /// Whose it is.
    pub email: String,
    pub description: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
}

impl From<ApiToken> for TokenView {
    fn from(token: ApiToken) -> TokenView {
        TokenView {
            id: token.id,
            email: token.email,
            description: token.description,
            created_at: token.created_at,
            last_used_at: token.last_used_at,
            expires_at: token.expires_at,
        }
    }
}

/// A new token: shown this once, then only its hash is kept.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}

/// Someone who may touch an app besides the admins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberView {
    pub email: String,
    /// `owner` or `member`.
    pub role: String,
    pub created_at: String,
}

impl From<Member> for MemberView {
    fn from(member: Member) -> MemberView {
        MemberView { email: member.email, role: member.role, created_at: member.created_at }
    }
}

/// `POST /api/v1/apps/{app}/access`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AddMember {
    pub email: String,
}

/// One change in the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEventView {
    pub id: i64,
    pub created_at: String,
    /// Who made the change.
    pub actor: String,
    pub address: Option<String>,
    /// Through which front end: `api`, `git`, `dashboard`, `github`.
    pub via: String,
    pub action: String,
    pub app: Option<String>,
    pub detail: String,
}

impl From<AuditEvent> for AuditEventView {
    fn from(event: AuditEvent) -> AuditEventView {
        AuditEventView {
            id: event.id,
            created_at: event.created_at,
            actor: event.actor,
            address: event.address,
            via: event.via,
            action: event.action,
            app: event.app,
            detail: event.detail,
        }
    }
}

/// `POST /api/v1/apps/{app}/github`: link the app to a GitHub repository's branch.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LinkGithub {
    /// `OWNER/REPO`.
    pub repository: String,
    /// Default: `main`.
    pub branch: Option<String>,
    /// The webhook secret (at least 16 characters); made for you when absent.
    pub secret: Option<String>,
    /// For private repositories and commit statuses; never shown again.
    pub token: Option<String>,
}

/// What linking answers: what to paste into GitHub's webhook settings, shown this once.
#[derive(Debug, Serialize, Deserialize)]
pub struct GithubLinked {
    pub repository: String,
    pub branch: String,
    pub secret: String,
    /// The path of the Payload URL on this server: `/hooks/github`.
    pub webhook_path: String,
    pub content_type: String,
    pub events: Vec<String>,
}

/// An app's link and its newest deliveries (never the secret or the token).
#[derive(Debug, Serialize, Deserialize)]
pub struct GithubView {
    pub repository: String,
    pub branch: String,
    pub token_set: bool,
    pub created_by: String,
    pub created_at: String,
    pub deliveries: Vec<DeliveryView>,
}

/// One webhook delivery and what came of it.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeliveryView {
    pub delivery: String,
    pub event: String,
    pub commit_sha: Option<String>,
    pub outcome: String,
    pub created_at: String,
}

impl From<paas_store::GithubDelivery> for DeliveryView {
    fn from(d: paas_store::GithubDelivery) -> DeliveryView {
        DeliveryView {
            delivery: d.delivery,
            event: d.event,
            commit_sha: d.commit_sha,
            outcome: d.outcome,
            created_at: d.created_at,
        }
    }
}

/// `GET /api/v1/audit?app=APP&limit=N`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    pub app: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AddDomain {
    pub hostname: String,
}

/// `PATCH /api/v1/apps/{app}/https`: what to change; a missing field stays as it is.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetHttps {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts: Option<bool>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Rollback {
    /// `v3` or `3`; none: the release before the current one.
    pub version: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RunCommand {
    pub command: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Restart {
    /// Only this process type; none: all.
    pub process_type: Option<String>,
}

/// One event of a one-off run: the answer of `POST /apps/{app}/run` is one JSON object a
/// line, `{"out": "<base64>"}` and `{"err": "<base64>"}` as the command writes, then
/// `{"exit": N}` or `{"error": "…"}`. Shared by the server and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RunEvent {
    /// Bytes the command wrote to its standard output, as they came (base64 in JSON, so
    /// any bytes, not only UTF-8 lines, get through).
    #[serde(rename = "out", with = "base64_bytes")]
    Stdout(Bytes),
    /// Bytes the command wrote to its standard error.
    #[serde(rename = "err", with = "base64_bytes")]
    Stderr(Bytes),
    /// The command ended with this exit code: the last event of a run.
    #[serde(rename = "exit")]
    Exit(i64),
    /// paas could not run it, or not to the end: the last event of a run.
    #[serde(rename = "error")]
    Error(String),
}

impl From<OutputChunk> for RunEvent {
    fn from(chunk: OutputChunk) -> RunEvent {
        match chunk.stream {
            LogStream::Stdout => RunEvent::Stdout(chunk.bytes),
            LogStream::Stderr => RunEvent::Stderr(chunk.bytes),
        }
    }
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        bytes: &Bytes,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map(Bytes::from).map_err(serde::de::Error::custom)
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

/// The environment variables through which git tells a hook where the quarantined objects
/// are; the checkout needs them to see the pushed commit.
pub const QUARANTINE_ENV: [&str; 3] =
    ["GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_events_carry_any_bytes_as_base64_json_lines() {
        let events = [
            RunEvent::Stdout(Bytes::from_static(b"caf\xc3\xa9 \xff\x00 no newline")),
            RunEvent::Stderr(Bytes::from_static(b"warning\n")),
            RunEvent::Exit(3),
            RunEvent::Error("boom".into()),
        ];
        let lines: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
        assert_eq!(
            lines,
            [
                r#"{"out":"Y2Fmw6kg/wAgbm8gbmV3bGluZQ=="}"#,
                r#"{"err":"d2FybmluZwo="}"#,
                r#"{"exit":3}"#,
                r#"{"error":"boom"}"#,
            ]
        );
        for (line, event) in lines.iter().zip(&events) {
            assert_eq!(&serde_json::from_str::<RunEvent>(line).unwrap(), event);
        }
        assert!(serde_json::from_str::<RunEvent>(r#"{"out":"not base64!"}"#).is_err());
    }
}

/// An add-on, as the API shows it: never its password (the attached apps' config has it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddonView {
    pub name: String,
    /// `postgres` or `redis`.
    pub service: String,
    /// The major version its data was made with.
    pub major: String,
    pub image: String,
    /// The app it was created for.
    pub app: Option<String>,
    /// `running`, `stopped`, `missing` or `unknown`.
    pub state: String,
    pub attachments: Vec<AttachmentView>,
    /// Backups' cron schedule (UTC), and when the next one is due.
    pub backup_schedule: Option<String>,
    pub next_backup: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

impl From<crate::core::AddonInfo> for AddonView {
    fn from(info: crate::core::AddonInfo) -> AddonView {
        let addon = info.addon;
        let next_backup = addon
            .backup_schedule
            .as_deref()
            .and_then(|s| crate::core::cron::Schedule::parse(s).ok())
            .and_then(|s| s.next_after(time::OffsetDateTime::now_utc()))
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
        AddonView {
            name: addon.name,
            service: addon.service,
            major: addon.major,
            image: addon.image,
            app: addon.app,
            state: info.state,
            attachments: views(info.attachments),
            backup_schedule: addon.backup_schedule,
            next_backup,
            created_by: addon.created_by,
            created_at: addon.created_at,
        }
    }
}

/// An app an add-on is attached to, and as what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachmentView {
    pub app: String,
    /// `DATABASE`.
    pub name: String,
    /// `DATABASE_URL`.
    pub config_var: String,
    pub created_at: String,
}

impl From<paas_store::Attachment> for AttachmentView {
    fn from(attachment: paas_store::Attachment) -> AttachmentView {
        AttachmentView {
            config_var: attachment.config_var(),
            app: attachment.app,
            name: attachment.name,
            created_at: attachment.created_at,
        }
    }
}

fn views<Row, View: From<Row>>(rows: Vec<Row>) -> Vec<View> {
    rows.into_iter().map(View::from).collect()
}

/// `POST /apps/{app}/routes`: paths starting with `prefix` go to `process_type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddRoute {
    pub prefix: String,
    pub process_type: String,
}

/// `DELETE /apps/{app}/routes?prefix=/ws/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteQuery {
    #[serde(default)]
    pub prefix: String,
}

/// `POST /apps/{app}/cron`: five cron fields in UTC, and the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddCronJob {
    pub schedule: String,
    pub command: String,
}

/// `POST /apps/{app}/volumes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddVolume {
    /// `media`.
    pub name: String,
    /// Where it is mounted: `/app/media`.
    pub path: String,
}

/// `POST /apps/{app}/addons`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateAddon {
    /// `postgres` or `redis`.
    pub service: String,
    /// Attach as this name (`DATABASE` → `DATABASE_URL`); the service's default if absent.
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub attach_as: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What `addons:create` and `addons:attach` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddonAttached {
    pub addon: AddonView,
    pub app: String,
    pub config_var: String,
    /// The release that set it.
    pub release: i64,
}

/// `POST /addons/{addon}/attachments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachAddon {
    pub app: String,
    #[serde(rename = "as", default, skip_serializing_if = "Option::is_none")]
    pub attach_as: Option<String>,
}

/// `DELETE /addons/{addon}?confirm=NAME`: the name typed again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfirmQuery {
    #[serde(default)]
    pub confirm: String,
}

/// `PUT /addons/{addon}/backups/schedule`: a cron expression in UTC, or none to stop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupSchedule {
    pub schedule: Option<String>,
}

/// A backup, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupView {
    /// `b007`.
    pub id: String,
    pub addon: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub size_bytes: Option<i64>,
    pub error: Option<String>,
    pub file: Option<String>,
    pub created_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl From<paas_store::Backup> for BackupView {
    fn from(backup: paas_store::Backup) -> BackupView {
        BackupView {
            id: backup.label(),
            addon: backup.addon,
            status: backup.status,
            size_bytes: backup.size_bytes,
            error: backup.error,
            file: backup.file,
            created_by: backup.created_by,
            started_at: backup.started_at,
            finished_at: backup.finished_at,
        }
    }
}

/// The first line of a piped `POST /apps/{app}/psql`: which add-on (the app's only
/// PostgreSQL one, or the one attached as DATABASE, when absent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Psql {
    #[serde(default)]
    pub addon: Option<String>,
}

/// `POST /pipelines`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatePipeline {
    pub name: String,
}

/// `POST /pipelines/{pipeline}/apps`: put an app at a stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddToPipeline {
    pub app: String,
    pub stage: String,
}

/// `POST /apps/{app}/promote`: to the next stage's apps, or to `to`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Promote {
    #[serde(default)]
    pub to: Vec<String>,
}

/// A release a promotion made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Promoted {
    pub app: String,
    pub release: ReleaseView,
}
