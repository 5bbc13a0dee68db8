//! The server core: every operation a front end can ask for (apps, config, domains,
//! deploys, rollouts and rollbacks, formation, one-off runs, the supervision of running
//! processes, git repositories and pushes, events and logs, users, tokens, access and the
//! audit log), over the store, builder, runner and router. Front ends (`crate::http`, and later the dashboard and webhooks) call it; it
//! never names axum or HTTP, so a rule enforced here holds for all of them. Each operation
//! that changes something takes the [`Actor`] asking, checks what they may do, and records
//! the change in the audit log.

mod access;
mod accounts;
mod addons;
mod approvals;
mod apps;
mod audit;
pub(crate) mod auth;
mod branches;
pub mod cron;
mod deploy;
mod error;
mod events;
mod github;
mod https;
mod jobs;
mod logs;
mod manifest;
mod one_off;
mod paas;
mod pipelines;
pub(crate) mod push;
pub(crate) mod repos;
mod review_apps;
mod rollout;
mod router_file;
mod routes;
mod sessions;
mod supervise;
pub mod validate;
mod volumes;

pub use accounts::{
    ADDRESS_FAILURES, INVITATION_SECS, LOCK_AFTER_FAILURES, LOCK_SECS, MAX_TOKEN_SECS,
};
pub use addons::{AddonInfo, SERVICES, human_size, url as addon_url};
pub use apps::{MAX_PROCESSES, MAX_QUANTITY};
pub use audit::{Actor, FrontEnd, MAX_AUDIT_EVENTS};
pub use auth::random_secret;
// What the core's operations take and give, for front ends built on it (the dashboard), so
// that they depend on the core alone, never on the leaves beneath it.
pub use branches::{Branch, LiveDeploy};
pub use deploy::SourceTree;
pub use error::{Error, Result};
pub use events::AppEvents;
pub use github::{Delivery, DeliveryAnswer, GithubSettings, MAX_DELIVERY_BYTES, MIN_SECRET_CHARS};
pub use https::{
    AcmeSettings, AppHttps, CertificateStatus, Challenge, HostHttps, LETS_ENCRYPT,
    LETS_ENCRYPT_STAGING, given_certificate,
};
pub use jobs::MAX_JOBS;
pub use logs::LogQuery;
pub use paas::Paas;
pub use paas_builder::BuildLog;
pub use paas_runner::ProcessState;
pub use paas_store::{
    Addon, App, AppRoute, Attachment, Backup, CronJob, ReleaseStatus, Session, Volume, now,
};
pub use pipelines::{PipelineStatus, STAGES, StagedApp};
pub use repos::Git;
pub use review_apps::ReviewApps;
pub use routes::MAX_ROUTES;
pub use sessions::SESSION_SECS;
pub use volumes::MAX_VOLUMES;
