//! Persistence for the control plane, over SQLite (the embedded default) or PostgreSQL.
//!
//! One set of SQL runs on both through sqlx's `Any` driver: the queries stick to what both
//! dialects share (`$N` placeholders, `RETURNING`, `ON CONFLICT`), and each backend has its own
//! migrations under `migrations/`. Every write that must be all-or-nothing (a config change and
//! the release it makes) happens in one transaction.

mod apps;
mod builds;
mod config_vars;
mod domains;
mod formation;
mod models;
mod releases;
mod users;

use std::collections::BTreeMap;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};

pub use models::*;

// Shared by the files that hold each table's queries.
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
        match backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("../migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool, backend })
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
    time::OffsetDateTime::now_utc()
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

    #[tokio::test]
    async fn config_change_and_release_are_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/paas.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        let app = store.create_app("demo", "admin").await.unwrap();
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
        let mut apps = Vec::new();
        for n in 0..16 {
            apps.push(store.create_app(&format!("app{n}"), "admin").await.unwrap());
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
                        created_by: "admin".into(),
                    };
                    let build = store.create_build(&app, &new).await?;
                    let outcome = BuildOutcome {
                        succeeded: true,
                        image: Some(format!("paas/app-{}:{i}", app.name)),
                        ..Default::default()
                    };
                    let build = store.finish_build(build.id, &outcome).await?;
                    store.create_release_from_build(&app, &build, "Deploy", "admin").await
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
}
