//! Releases: immutable, numbered per app; made by builds, config changes and rollbacks.

use super::*;

impl Store {
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
    pub async fn set_release_status(&self, release: &Release, status: ReleaseStatus) -> Result<()> {
        sqlx::query("UPDATE releases SET status = $1 WHERE id = $2")
            .bind(status.as_str())
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
        config: &BTreeMap<String, String>,
        description: &str,
        created_by: &str,
    ) -> Result<Release> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM config_vars WHERE app_id = $1")
            .bind(app.id)
            .execute(&mut *tx)
            .await?;
        for (key, value) in config {
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
                description: description.to_string(),
                created_by: created_by.into(),
                build_id: from.build_id,
                image: from.image.clone(),
                process_types: from.process_types.clone(),
            },
            config,
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
}

const RELEASE_COLUMNS: &str = "id, app_id, version, build_id, image, config, process_types, \
                               description, status, created_by, created_at";

#[derive(Debug, Default)]
pub(crate) struct NewRelease {
    pub(crate) description: String,
    pub(crate) created_by: String,
    pub(crate) build_id: Option<i64>,
    pub(crate) image: Option<String>,
    pub(crate) process_types: BTreeMap<String, String>,
}

pub(crate) async fn current_release_in(
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
pub(crate) async fn insert_release(
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
    let status = match new.image {
        Some(_) => ReleaseStatus::Pending,
        None => ReleaseStatus::Succeeded,
    };
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
    .bind(status.as_str())
    .bind(new.created_by)
    .bind(now())
    .fetch_one(&mut *conn)
    .await?;
    row.try_into()
}
