//! Persistence for the control plane, over SQLite (the embedded default) or PostgreSQL.
//!
//! One set of SQL runs on both through sqlx's `Any` driver: the queries stick to what both
//! dialects share (`$N` placeholders, `RETURNING`, `ON CONFLICT`), and each backend has its own
//! migrations under `migrations/`. Every write that must be all-or-nothing (a config change and
//! the release it makes) happens in one transaction.

mod models;

use std::collections::BTreeMap;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};

pub use models::*;

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

    // ---- users and tokens ----

    pub async fn user_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }

    /// Creates the first admin user with one API token, only if there is no user yet.
    /// Returns `None` when users already exist, so two servers starting at once cannot both
    /// mint a bootstrap token.
    pub async fn bootstrap_admin(&self, email: &str, token_hash: &str) -> Result<Option<User>> {
        let mut tx = self.begin().await?;
        let existing: i64 =
            sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?.try_get(0)?;
        if existing > 0 {
            return Ok(None);
        }
        let now = now();
        let user: User = sqlx::query_as(
            "INSERT INTO users (email, is_admin, created_at) VALUES ($1, 1, $2)
             RETURNING id, email, is_admin, created_at",
        )
        .bind(email)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict(e, "a user already exists"))?;
        sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, description, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(user.id)
        .bind(token_hash)
        .bind("initial admin token")
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(user))
    }

    /// The user a token hash belongs to, if any.
    pub async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>> {
        Ok(sqlx::query_as(
            "SELECT u.id, u.email, u.is_admin, u.created_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    // ---- apps ----

    /// Creates an app with its first release, "Initial release" (v1), as Heroku does.
    pub async fn create_app(&self, name: &str, created_by: &str) -> Result<App> {
        let mut tx = self.begin().await?;
        let now = now();
        let app: App = sqlx::query_as(&format!(
            "INSERT INTO apps (name, created_by, created_at) VALUES ($1, $2, $3) RETURNING {APP_COLUMNS}"
        ))
        .bind(name)
        .bind(created_by)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict(e, &format!("an app named {name} already exists")))?;
        insert_release(
            &mut tx,
            &app,
            NewRelease {
                description: "Initial release".into(),
                created_by: created_by.into(),
                ..NewRelease::default()
            },
            &BTreeMap::new(),
        )
        .await?;
        tx.commit().await?;
        self.app(name).await
    }

    pub async fn apps(&self) -> Result<Vec<App>> {
        Ok(sqlx::query_as(&format!("SELECT {APP_COLUMNS} FROM apps ORDER BY name"))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn app(&self, name: &str) -> Result<App> {
        sqlx::query_as(&format!("SELECT {APP_COLUMNS} FROM apps WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app {name}")))
    }

    /// Sets the branch whose pushes deploy the app.
    pub async fn set_deploy_branch(&self, app: &App, branch: &str) -> Result<App> {
        sqlx::query_as(&format!(
            "UPDATE apps SET deploy_branch = $1 WHERE id = $2 RETURNING {APP_COLUMNS}"
        ))
        .bind(branch)
        .bind(app.id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("app {}", app.name)))
    }

    /// Deletes an app and everything that hangs off it.
    pub async fn delete_app(&self, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let app: Option<App> =
            sqlx::query_as(&format!("SELECT {APP_COLUMNS} FROM apps WHERE name = $1"))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let app = app.ok_or_else(|| StoreError::NotFound(format!("app {name}")))?;
        // Explicit deletes rather than relying on ON DELETE CASCADE being switched on.
        for table in ["domains", "formation", "releases", "builds", "config_vars"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE app_id = $1"))
                .bind(app.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM apps WHERE id = $1").bind(app.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- config vars ----

    pub async fn config(&self, app: &App) -> Result<BTreeMap<String, String>> {
        let mut conn = self.pool.acquire().await?;
        config_of(&mut conn, app.id).await
    }

    /// Applies config changes and records the new release that carries them, in one
    /// transaction: either both happen or neither does. The release keeps the image and
    /// process types of the app's latest release.
    pub async fn update_config(
        &self,
        app: &App,
        changes: &[ConfigChange],
        description: &str,
        created_by: &str,
    ) -> Result<Release> {
        let mut tx = self.begin().await?;
        for (key, value) in changes {
            match value {
                Some(value) => {
                    sqlx::query(
                        "INSERT INTO config_vars (app_id, key, value) VALUES ($1, $2, $3)
                         ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(app.id)
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM config_vars WHERE app_id = $1 AND key = $2")
                        .bind(app.id)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        let config = config_of(&mut tx, app.id).await?;
        // What serves, never a release that failed: a config change applies to that.
        let previous = current_release_in(&mut tx, app.id).await?;
        let release = insert_release(
            &mut tx,
            app,
            NewRelease {
                description: description.into(),
                created_by: created_by.into(),
                build_id: previous.as_ref().and_then(|r| r.build_id),
                image: previous.as_ref().and_then(|r| r.image.clone()),
                process_types: previous.map(|r| r.process_types).unwrap_or_default(),
            },
            &config,
        )
        .await?;
        tx.commit().await?;
        Ok(release)
    }

    // ---- releases ----

    /// Releases of an app, newest first.
    pub async fn releases(&self, app: &App) -> Result<Vec<Release>> {
        let rows: Vec<ReleaseRow> = sqlx::query_as(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE app_id = $1 ORDER BY version DESC"
        ))
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Release::try_from).collect()
    }

    pub async fn release(&self, app: &App, version: i64) -> Result<Release> {
        let row: Option<ReleaseRow> = sqlx::query_as(&format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE app_id = $1 AND version = $2"
        ))
        .bind(app.id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| StoreError::NotFound(format!("release v{version} of {}", app.name)))?
            .try_into()
    }

    /// Marks a release `succeeded` (it is what runs now) or `failed` (its rollout was aborted).
    pub async fn set_release_status(&self, release: &Release, status: &str) -> Result<()> {
        sqlx::query("UPDATE releases SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(release.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest release that rolled out: what should be running.
    pub async fn current_release(&self, app: &App) -> Result<Option<Release>> {
        let mut conn = self.pool.acquire().await?;
        current_release_in(&mut conn, app.id).await
    }

    /// Makes a new release that runs `from`'s image with `from`'s config, and puts that
    /// config back in place: a rollback, with no build.
    pub async fn create_rollback_release(
        &self,
        app: &App,
        from: &Release,
        created_by: &str,
    ) -> Result<Release> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM config_vars WHERE app_id = $1")
            .bind(app.id)
            .execute(&mut *tx)
            .await?;
        for (key, value) in &from.config {
            sqlx::query("INSERT INTO config_vars (app_id, key, value) VALUES ($1, $2, $3)")
                .bind(app.id)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        let release = insert_release(
            &mut tx,
            app,
            NewRelease {
                description: format!("Rollback to v{}", from.version),
                created_by: created_by.into(),
                build_id: from.build_id,
                image: from.image.clone(),
                process_types: from.process_types.clone(),
            },
            &from.config,
        )
        .await?;
        tx.commit().await?;
        Ok(release)
    }

    /// Marks releases whose rollout was cut short by a stop as failed; returns how many.
    pub async fn fail_pending_releases(&self) -> Result<u64> {
        let result = sqlx::query("UPDATE releases SET status = 'failed' WHERE status = 'pending'")
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    pub async fn latest_release(&self, app: &App) -> Result<Option<Release>> {
        let mut conn = self.pool.acquire().await?;
        latest_release_in(&mut conn, app.id).await
    }

    // ---- formation ----

    /// Process type → quantity, sorted by process type.
    pub async fn formation(&self, app: &App) -> Result<BTreeMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT process_type, quantity FROM formation WHERE app_id = $1 ORDER BY process_type",
        )
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Sets the quantity of each given process type, all at once.
    pub async fn scale(&self, app: &App, changes: &BTreeMap<String, i64>) -> Result<()> {
        let mut tx = self.begin().await?;
        for (process_type, quantity) in changes {
            sqlx::query(
                "INSERT INTO formation (app_id, process_type, quantity) VALUES ($1, $2, $3)
                 ON CONFLICT (app_id, process_type) DO UPDATE SET quantity = excluded.quantity",
            )
            .bind(app.id)
            .bind(process_type)
            .bind(quantity)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    // ---- domains ----

    /// Custom hostnames of one app, sorted.
    pub async fn domains(&self, app: &App) -> Result<Vec<Domain>> {
        Ok(sqlx::query_as(
            "SELECT hostname, created_at FROM domains WHERE app_id = $1 ORDER BY hostname",
        )
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every custom hostname with the name of its app, for the routing table.
    pub async fn all_domains(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT a.name, d.hostname FROM domains d JOIN apps a ON a.id = d.app_id
             ORDER BY d.hostname",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    pub async fn add_domain(&self, app: &App, hostname: &str) -> Result<Domain> {
        sqlx::query_as(
            "INSERT INTO domains (app_id, hostname, created_at) VALUES ($1, $2, $3)
             RETURNING hostname, created_at",
        )
        .bind(app.id)
        .bind(hostname)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("{hostname} is already a domain of an app")))
    }

    pub async fn remove_domain(&self, app: &App, hostname: &str) -> Result<()> {
        let result = sqlx::query("DELETE FROM domains WHERE app_id = $1 AND hostname = $2")
            .bind(app.id)
            .bind(hostname)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("domain {hostname} of {}", app.name)));
        }
        Ok(())
    }
}

impl Store {
    // ---- builds ----

    pub async fn create_build(&self, app: &App, new: &NewBuild) -> Result<Build> {
        let row: BuildRow = sqlx::query_as(&format!(
            "INSERT INTO builds (app_id, status, source, commit_sha, commit_message, created_by,
                                 created_at)
             VALUES ($1, 'building', $2, $3, $4, $5, $6) RETURNING {BUILD_COLUMNS}"
        ))
        .bind(app.id)
        .bind(&new.source)
        .bind(&new.commit_sha)
        .bind(&new.commit_message)
        .bind(&new.created_by)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        row.try_into()
    }

    pub async fn finish_build(&self, build_id: i64, outcome: &BuildOutcome) -> Result<Build> {
        let types = serde_json::to_string(&outcome.process_types)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row: BuildRow = sqlx::query_as(&format!(
            "UPDATE builds SET status = $1, kind = $2, image = $3, image_size = $4,
                               process_types = $5, log = $6, error = $7, finished_at = $8
             WHERE id = $9 RETURNING {BUILD_COLUMNS}"
        ))
        .bind(if outcome.succeeded { "succeeded" } else { "failed" })
        .bind(&outcome.kind)
        .bind(&outcome.image)
        .bind(outcome.image_size)
        .bind(types)
        .bind(&outcome.log)
        .bind(&outcome.error)
        .bind(now())
        .bind(build_id)
        .fetch_one(&self.pool)
        .await?;
        row.try_into()
    }

    /// Builds of an app, newest first, without their logs.
    pub async fn builds(&self, app: &App) -> Result<Vec<Build>> {
        let rows: Vec<BuildRow> = sqlx::query_as(&format!(
            "SELECT {BUILD_COLUMNS_NO_LOG} FROM builds WHERE app_id = $1 ORDER BY id DESC"
        ))
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Build::try_from).collect()
    }

    /// One build with its whole log.
    pub async fn build(&self, app: &App, build_id: i64) -> Result<Build> {
        let row: Option<BuildRow> = sqlx::query_as(&format!(
            "SELECT {BUILD_COLUMNS} FROM builds WHERE app_id = $1 AND id = $2"
        ))
        .bind(app.id)
        .bind(build_id)
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| StoreError::NotFound(format!("build {build_id} of {}", app.name)))?
            .try_into()
    }

    /// Marks builds that were running when paas stopped as failed; returns how many.
    pub async fn fail_unfinished_builds(&self) -> Result<u64> {
        let result = sqlx::query(
            "UPDATE builds SET status = 'failed', finished_at = $1,
                    error = 'interrupted: paas stopped during the build'
             WHERE status = 'building'",
        )
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Records the release of a successful build: its image and process types with the app's
    /// current config, in one transaction.
    pub async fn create_release_from_build(
        &self,
        app: &App,
        build: &Build,
        description: &str,
        created_by: &str,
    ) -> Result<Release> {
        let mut tx = self.begin().await?;
        let config = config_of(&mut tx, app.id).await?;
        let release = insert_release(
            &mut tx,
            app,
            NewRelease {
                description: description.into(),
                created_by: created_by.into(),
                build_id: Some(build.id),
                image: build.image.clone(),
                process_types: build.process_types.clone(),
            },
            &config,
        )
        .await?;
        tx.commit().await?;
        Ok(release)
    }
}

const BUILD_COLUMNS: &str = "id, status, source, commit_sha, commit_message, kind, image, \
                             image_size, process_types, log, error, created_by, created_at, \
                             finished_at";
const BUILD_COLUMNS_NO_LOG: &str = "id, status, source, commit_sha, commit_message, kind, \
                                    image, image_size, process_types, '' AS log, error, \
                                    created_by, created_at, finished_at";

const APP_COLUMNS: &str = "id, name, deploy_branch, created_by, created_at";
const RELEASE_COLUMNS: &str = "id, app_id, version, build_id, image, config, process_types, \
                               description, status, created_by, created_at";

#[derive(Debug, Default)]
struct NewRelease {
    description: String,
    created_by: String,
    build_id: Option<i64>,
    image: Option<String>,
    process_types: BTreeMap<String, String>,
}

/// An app's config vars, read on `conn` (inside a transaction when it is one).
async fn config_of(
    conn: &mut sqlx::AnyConnection,
    app_id: i64,
) -> Result<BTreeMap<String, String>> {
    let rows = sqlx::query("SELECT key, value FROM config_vars WHERE app_id = $1")
        .bind(app_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

async fn current_release_in(
    conn: &mut sqlx::AnyConnection,
    app_id: i64,
) -> Result<Option<Release>> {
    let row: Option<ReleaseRow> = sqlx::query_as(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE app_id = $1 AND status = 'succeeded'
         ORDER BY version DESC LIMIT 1"
    ))
    .bind(app_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Release::try_from).transpose()
}

async fn latest_release_in(conn: &mut sqlx::AnyConnection, app_id: i64) -> Result<Option<Release>> {
    let row: Option<ReleaseRow> = sqlx::query_as(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases WHERE app_id = $1 ORDER BY version DESC LIMIT 1"
    ))
    .bind(app_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Release::try_from).transpose()
}

/// Inserts the app's next release. The version comes from a counter on the app row, bumped
/// in the same transaction, so concurrent writers serialise on that row instead of racing.
async fn insert_release(
    conn: &mut sqlx::AnyConnection,
    app: &App,
    new: NewRelease,
    config: &BTreeMap<String, String>,
) -> Result<Release> {
    let version: i64 = sqlx::query(
        "UPDATE apps SET release_seq = release_seq + 1 WHERE id = $1 RETURNING release_seq",
    )
    .bind(app.id)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    let config_json =
        serde_json::to_string(config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let types_json = serde_json::to_string(&new.process_types)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // A release with no image has nothing to run, so it is complete the moment it exists.
    let status = if new.image.is_some() { "pending" } else { "succeeded" };
    let row: ReleaseRow = sqlx::query_as(&format!(
        "INSERT INTO releases (app_id, version, build_id, image, config, process_types,
                               description, status, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING {RELEASE_COLUMNS}"
    ))
    .bind(app.id)
    .bind(version)
    .bind(new.build_id)
    .bind(new.image)
    .bind(config_json)
    .bind(types_json)
    .bind(new.description)
    .bind(status)
    .bind(new.created_by)
    .bind(now())
    .fetch_one(&mut *conn)
    .await?;
    row.try_into()
}

fn conflict(err: sqlx::Error, message: &str) -> StoreError {
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
                        source: "git".into(),
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
