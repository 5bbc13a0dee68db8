//! Persistence for the control plane, over SQLite (the embedded default) or PostgreSQL.
//!
//! One set of SQL runs on both through sqlx's `Any` driver: the queries stick to what both
//! dialects share (`$N` placeholders, `RETURNING`, `ON CONFLICT`), and each backend has its own
//! migrations under `migrations/`. Every write that must be all-or-nothing (a config change and
//! the release it makes) happens in one transaction.

mod addons;
mod apps;
mod audit;
mod builds;
mod certificates;
mod config_vars;
mod cron;
mod domains;
mod formation;
mod github;
mod members;
mod models;
mod pipelines;
mod releases;
mod routes;
mod sessions;
mod tokens;
mod users;
mod volumes;

use std::collections::BTreeMap;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};

pub use audit::{AuditFilter, NewAuditEvent};
pub use models::*;
pub use users::NewUser;

// Shared by the files that hold each table's queries.
use apps::APP_COLUMNS;
use config_vars::config_of;
use releases::{NewRelease, current_release_in, insert_release};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the database was brought to schema version {database} by a newer paas; this paas \
         knows versions up to {binary} and does not start, so as not to damage it: run the \
         newer paas, or restore a backup taken before the upgrade (docs/operations.md)"
    )]
    SchemaTooNew { database: i64, binary: i64 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// A change to one config var: `Some` sets it, `None` removes it.
pub type ConfigChange = (String, Option<String>);

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        let (store, migrator) = Store::open(url).await?;
        migrator.run(&store.pool).await?;
        Ok(store)
    }

    /// Connects to a database another process (the running server) owns, without changing
    /// its schema: refused unless it is at exactly this binary's schema version, so a backup
    /// taken with a newer or older `paas` never migrates the live database under it.
    pub async fn connect_as_is(url: &str) -> Result<Store> {
        let (store, migrator) = Store::open(url).await?;
        let binary = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let database = store.schema_version().await?;
        if database != binary {
            store.close().await;
            return Err(StoreError::Conflict(format!(
                "the database is at schema version {database} and this paas knows {binary}: use \
                 the paas binary that runs the server"
            )));
        }
        Ok(store)
    }

    /// Connects and checks the schema is not newer than this binary's; the migrator that
    /// brings it up to date.
    async fn open(url: &str) -> Result<(Store, sqlx::migrate::Migrator)> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let mut options = AnyPoolOptions::new().max_connections(8);
        if backend == Backend::Sqlite {
            // WAL lets readers (the dashboard, `paas logs`) run while a deploy writes.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // Writers queue for the lock (up to 30 s) rather than fail at once.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                         PRAGMA busy_timeout = 30000;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await?;
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("../migrations/postgres"),
        };
        // A binary older than the schema (a downgrade, or an old binary started by mistake)
        // stops here, before it reads or writes data it does not understand.
        let binary = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten();
        if let Some((Some(database),)) = applied
            && database > binary
        {
            pool.close().await;
            return Err(StoreError::SchemaTooNew { database, binary });
        }
        Ok((Store { pool, backend }, migrator))
    }

    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads first and writes later fails with
    /// `SQLITE_BUSY_SNAPSHOT` when another connection wrote in between, instead of waiting.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Writes a consistent copy of a SQLite database to `path` while the server runs
    /// (`VACUUM INTO`: one read transaction, the result compacted). PostgreSQL is backed up
    /// with `pg_dump` instead.
    pub async fn backup_sqlite_into(&self, path: &std::path::Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::UnsupportedUrl("a PostgreSQL store (use pg_dump)".into()));
        }
        sqlx::query("VACUUM INTO $1")
            .bind(path.to_string_lossy().into_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The schema version this database is at.
    pub async fn schema_version(&self) -> Result<i64> {
        let (version,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn conflict(err: sqlx::Error, message: &str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(message.to_string())
        }
        _ => StoreError::Database(err),
    }
}

/// The current time as RFC 3339 text, the one timestamp format in the schema.
pub fn now() -> String {
    time_in(0)
}

/// The time `seconds` from now, in the schema's format (for expiries and lockouts).
pub fn time_in(seconds: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// A database URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both backends run the same migrations: a file added to one folder only would leave
    /// the other schema behind.
    #[test]
    fn both_migration_folders_list_the_same_files() {
        let names = |backend: &str| {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
            let mut names: Vec<String> = std::fs::read_dir(dir.join(backend))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert!(!names("sqlite").is_empty());
        assert_eq!(names("sqlite"), names("postgres"));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://paas:secret@db:5432/paas"),
            "postgres://paas:***@db:5432/paas"
        );
        assert_eq!(redact_url("sqlite:///data/paas.db"), "sqlite:///data/paas.db");
    }

    /// A database a newer paas migrated is refused, with what to do, and left as it was.
    #[tokio::test]
    async fn a_schema_newer_than_this_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("paas.db").display());
        let store = Store::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, \
             checksum, execution_time) VALUES (9999, 'from the future', CURRENT_TIMESTAMP, \
             1, x'00', 0)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        store.close().await;
        let err = Store::connect(&url).await.unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { database: 9999, .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("newer paas") && message.contains("restore a backup"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn config_change_and_release_are_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/paas.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        let admin = store.bootstrap_admin("admin", "hash").await.unwrap().unwrap();
        let app = store.create_app("demo", &admin).await.unwrap();
        let v2 = store
            .update_config(&app, &[("A".into(), Some("1".into()))], "Set A config vars", "admin")
            .await
            .unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v2.config.get("A").map(String::as_str), Some("1"));
        let releases = store.releases(&app).await.unwrap();
        assert_eq!(releases.iter().map(|r| r.version).collect::<Vec<_>>(), vec![2, 1]);
        store.delete_app("demo").await.unwrap();
        assert!(matches!(store.app("demo").await, Err(StoreError::NotFound(_))));
    }

    /// Deferred SQLite transactions that read, then write, fail with SQLITE_BUSY_SNAPSHOT
    /// when another connection wrote in between; write transactions must queue instead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_releases_of_different_apps_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/paas.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        let admin = store.bootstrap_admin("admin", "hash").await.unwrap().unwrap();
        let mut apps = Vec::new();
        for n in 0..16 {
            apps.push(store.create_app(&format!("app{n}"), &admin).await.unwrap());
        }
        // What a deploy writes: a finished build, then the release made from it (which reads
        // the config before it writes).
        let writes = apps.iter().flat_map(|app| {
            (0..5).map(|i| {
                let store = store.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let new = NewBuild {
                        source: DeploySource::Git,
                        commit_sha: None,
                        commit_message: None,
                        git_tag: None,
                        created_by: "admin".into(),
                    };
                    let build = store.create_build(&app, &new).await?;
                    let outcome = BuildOutcome {
                        succeeded: true,
                        image: Some(format!("paas/app-{}:{i}", app.name)),
                        ..Default::default()
                    };
                    let build = store.finish_build(build.id, &outcome).await?;
                    store.create_release_from_build(&app, &build, "Deploy", "admin", false).await
                })
            })
        });
        for result in futures_util::future::join_all(writes).await {
            result.unwrap().expect("every release is made");
        }
        for app in &apps {
            assert_eq!(store.releases(app).await.unwrap().len(), 6, "v1 and five changes");
        }
    }

    async fn scratch_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/paas.db?mode=rwc", dir.path().display());
        (dir, Store::connect(&url).await.unwrap())
    }

    #[tokio::test]
    async fn removing_a_user_takes_their_tokens_and_access_but_never_the_last_admin() {
        let (_dir, store) = scratch_store().await;
        let admin = store.bootstrap_admin("admin", "h0").await.unwrap().unwrap();
        let new = |email: &str, is_admin| NewUser {
            email: email.into(),
            is_admin,
            password_hash: Some("x".into()),
            ..NewUser::default()
        };
        let ann = store.create_user(&new("ann@example.com", false)).await.unwrap();
        assert!(matches!(
            store.create_user(&new("ann@example.com", true)).await,
            Err(StoreError::Conflict(_))
        ));
        let app = store.create_app("shop", &admin).await.unwrap();
        store.add_member(&app, &ann).await.unwrap();
        store.create_token(&ann, "h1", "laptop", None).await.unwrap();
        assert_eq!(store.apps_of(&ann).await.unwrap().len(), 1);
        assert_eq!(store.role(&app, &admin).await.unwrap().as_deref(), Some("owner"));

        assert!(matches!(store.delete_user("admin").await, Err(StoreError::Conflict(_))));
        assert!(store.user_by_token_hash("h0").await.unwrap().is_some());
        store.delete_user("ann@example.com").await.unwrap();
        assert!(store.user_by_token_hash("h1").await.unwrap().is_none());
        assert_eq!(store.members(&app).await.unwrap().len(), 1);
        assert!(store.user_record("ann@example.com").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_limit_th_failed_sign_in_locks_and_a_good_one_clears() {
        let (_dir, store) = scratch_store().await;
        let user = store.bootstrap_admin("admin", "h0").await.unwrap().unwrap();
        let until = time_in(900);
        for _ in 0..2 {
            assert_eq!(store.record_failed_login(&user, 3, &until).await.unwrap(), None);
        }
        assert_eq!(store.record_failed_login(&user, 3, &until).await.unwrap(), Some(until));
        let record = store.user_record("admin").await.unwrap().unwrap();
        assert_eq!(record.failed_logins, 0, "the count starts again once locked");
        store.clear_failed_logins(&user).await.unwrap();
        assert_eq!(store.user_record("admin").await.unwrap().unwrap().locked_until, None);
    }

    #[tokio::test]
    async fn an_invitation_works_once_and_not_after_it_lapses() {
        let (_dir, store) = scratch_store().await;
        store.bootstrap_admin("admin", "h0").await.unwrap();
        let invited = |email: &str, expires: String| NewUser {
            email: email.into(),
            invitation: Some((format!("invite-{email}"), expires)),
            ..NewUser::default()
        };
        store.create_user(&invited("bo@example.com", time_in(60))).await.unwrap();
        store.create_user(&invited("cy@example.com", time_in(-60))).await.unwrap();
        let bo = store.accept_invitation("invite-bo@example.com", "pw").await.unwrap();
        assert_eq!(bo.map(|u| u.email).as_deref(), Some("bo@example.com"));
        assert!(store.accept_invitation("invite-bo@example.com", "pw2").await.unwrap().is_none());
        assert!(store.accept_invitation("invite-cy@example.com", "pw").await.unwrap().is_none());
        let record = store.user_record("bo@example.com").await.unwrap().unwrap();
        assert_eq!(record.password_hash.as_deref(), Some("pw"));
        assert_eq!(record.invite_expires_at, None);
    }

    #[tokio::test]
    async fn audit_events_are_listed_for_who_may_see_them() {
        let (_dir, store) = scratch_store().await;
        let admin = store.bootstrap_admin("admin", "h0").await.unwrap().unwrap();
        let ann = store
            .create_user(&NewUser { email: "ann@example.com".into(), ..NewUser::default() })
            .await
            .unwrap();
        let mine = store.create_app("mine", &ann).await.unwrap();
        let theirs = store.create_app("theirs", &admin).await.unwrap();
        for (actor, app) in [("ann@example.com", &mine), ("admin", &theirs)] {
            let event = NewAuditEvent {
                actor: actor.into(),
                via: "api".into(),
                action: "app.create".into(),
                app: Some((app.id, app.name.clone())),
                ..NewAuditEvent::default()
            };
            store.record_audit(&event).await.unwrap();
        }
        let all = store.audit_events(&AuditFilter { limit: 10, ..Default::default() }).await;
        assert_eq!(all.unwrap().len(), 2);
        let visible = AuditFilter { visible_to: Some(ann), limit: 10, ..Default::default() };
        let seen = store.audit_events(&visible).await.unwrap();
        assert_eq!(seen.iter().map(|e| e.app.as_deref()).collect::<Vec<_>>(), [Some("mine")]);
        let only = AuditFilter { app_id: Some(theirs.id), limit: 10, ..Default::default() };
        assert_eq!(store.audit_events(&only).await.unwrap()[0].actor, "admin");
    }

    #[tokio::test]
    async fn a_delivery_counts_once_unless_a_stop_lost_it() {
        let (_dir, store) = scratch_store().await;
        let admin = store.bootstrap_admin("admin", "h0").await.unwrap().unwrap();
        let app = store.create_app("shop", &admin).await.unwrap();
        let first = store.record_delivery("d1", Some(&app), "push", Some("a"), "queued a").await;
        assert!(first.unwrap().is_some());
        assert!(
            store.record_delivery("d1", Some(&app), "push", None, "x").await.unwrap().is_none()
        );
        store.record_delivery("d2", Some(&app), "push", Some("b"), "deployed v2").await.unwrap();
        assert_eq!(store.mark_lost_deliveries().await.unwrap(), 1, "only the queued one");
        assert!(store.retry_delivery("d1", Some("a"), "queued a").await.unwrap().is_some());
        assert!(store.retry_delivery("d1", Some("a"), "queued a").await.unwrap().is_none());
        assert!(store.retry_delivery("d2", Some("b"), "queued b").await.unwrap().is_none());
    }
}
