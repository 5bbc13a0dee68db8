//! Builds: one per deploy attempt, with its log and outcome.

use super::*;

impl Store {
    pub async fn create_build(&self, app: &App, new: &NewBuild) -> Result<Build> {
        let row: BuildRow = sqlx::query_as(&format!(
            "INSERT INTO builds (app_id, status, source, commit_sha, commit_message, git_tag,
                                 created_by, created_at)
             VALUES ($1, 'building', $2, $3, $4, $5, $6, $7) RETURNING {BUILD_COLUMNS}"
        ))
        .bind(app.id)
        .bind(new.source.as_str())
        .bind(&new.commit_sha)
        .bind(&new.commit_message)
        .bind(&new.git_tag)
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
                               process_types = $5, log = $6, error = $7, finished_at = $8,
                               manifest = $9
             WHERE id = $10 RETURNING {BUILD_COLUMNS}"
        ))
        .bind(match outcome.succeeded {
            true => BuildStatus::Succeeded.as_str(),
            false => BuildStatus::Failed.as_str(),
        })
        .bind(&outcome.kind)
        .bind(&outcome.image)
        .bind(outcome.image_size)
        .bind(types)
        .bind(&outcome.log)
        .bind(&outcome.error)
        .bind(now())
        .bind(&outcome.manifest)
        .bind(build_id)
        .fetch_one(&self.pool)
        .await?;
        row.try_into()
    }

    /// Replaces a finished build's log with the whole deploy's (the rollout after it too),
    /// so that what a viewer saw live is what is kept.
    pub async fn set_build_log(&self, build_id: i64, log: &str) -> Result<()> {
        sqlx::query("UPDATE builds SET log = $1 WHERE id = $2")
            .bind(log)
            .bind(build_id)
            .execute(&self.pool)
            .await?;
        Ok(())
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
    /// current config, in one transaction. With `waits`, the release waits for approval
    /// (a tag deploy), and any release that waited before it is superseded.
    pub async fn create_release_from_build(
        &self,
        app: &App,
        build: &Build,
        description: &str,
        created_by: &str,
        waits: bool,
    ) -> Result<Release> {
        let mut tx = self.begin().await?;
        if waits {
            sqlx::query(
                "UPDATE releases SET status = 'superseded' WHERE app_id = $1 AND status = 'waiting'",
            )
            .bind(app.id)
            .execute(&mut *tx)
            .await?;
        }
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
        let release = if waits {
            sqlx::query("UPDATE releases SET status = 'waiting' WHERE id = $1")
                .bind(release.id)
                .execute(&mut *tx)
                .await?;
            Release { status: ReleaseStatus::Waiting, ..release }
        } else {
            release
        };
        tx.commit().await?;
        Ok(release)
    }
}

const BUILD_COLUMNS: &str = "id, status, source, commit_sha, commit_message, git_tag, manifest, \
                             kind, image, image_size, process_types, log, error, created_by, \
                             created_at, finished_at";
const BUILD_COLUMNS_NO_LOG: &str = "id, status, source, commit_sha, commit_message, git_tag, \
                                    manifest, kind, image, image_size, process_types, \
                                    '' AS log, error, created_by, created_at, finished_at";
