//! Pipelines: apps in stages, for promotions from one stage to the next.

use super::*;

const STAGE_COLUMNS: &str = "a.name AS app, p.name AS pipeline, s.stage, s.added_by, s.added_at";

impl Store {
    pub async fn create_pipeline(&self, name: &str, created_by: &str) -> Result<Pipeline> {
        sqlx::query_as(
            "INSERT INTO pipelines (name, created_by, created_at) VALUES ($1, $2, $3)
             RETURNING id, name, review, created_by, created_at",
        )
        .bind(name)
        .bind(created_by)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("there is already a pipeline named {name}")))
    }

    pub async fn pipelines(&self) -> Result<Vec<Pipeline>> {
        Ok(sqlx::query_as(
            "SELECT id, name, review, created_by, created_at FROM pipelines ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn pipeline(&self, name: &str) -> Result<Pipeline> {
        let found: Option<Pipeline> = sqlx::query_as(
            "SELECT id, name, review, created_by, created_at FROM pipelines WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        found.ok_or_else(|| StoreError::NotFound(format!("pipeline {name}")))
    }

    /// Sets (or with `None` ends) the pipeline's review apps, as JSON.
    pub async fn set_pipeline_review(
        &self,
        pipeline: &Pipeline,
        review: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE pipelines SET review = $1 WHERE id = $2")
            .bind(review)
            .bind(pipeline.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes the pipeline; its apps stay, in no pipeline. False if there was none.
    pub async fn delete_pipeline(&self, pipeline: &Pipeline) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM pipeline_apps WHERE pipeline_id = $1")
            .bind(pipeline.id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM pipelines WHERE id = $1")
            .bind(pipeline.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Puts `app` at `stage` of `pipeline`, moving it from wherever it was.
    pub async fn set_pipeline_stage(
        &self,
        pipeline: &Pipeline,
        app: &App,
        stage: &str,
        added_by: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO pipeline_apps (app_id, pipeline_id, stage, added_by, added_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (app_id) DO UPDATE SET pipeline_id = excluded.pipeline_id,
                 stage = excluded.stage, added_by = excluded.added_by,
                 added_at = excluded.added_at",
        )
        .bind(app.id)
        .bind(pipeline.id)
        .bind(stage)
        .bind(added_by)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes `app` out of its pipeline; false if it was in none.
    pub async fn remove_from_pipeline(&self, app: &App) -> Result<bool> {
        let done = sqlx::query("DELETE FROM pipeline_apps WHERE app_id = $1")
            .bind(app.id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The apps of `pipeline` with their stages, by app name.
    pub async fn pipeline_stages(&self, pipeline: &Pipeline) -> Result<Vec<PipelineStage>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {STAGE_COLUMNS} FROM pipeline_apps s JOIN apps a ON a.id = s.app_id
             JOIN pipelines p ON p.id = s.pipeline_id WHERE s.pipeline_id = $1 ORDER BY a.name"
        ))
        .bind(pipeline.id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The pipeline and stage `app` is in, if any.
    pub async fn pipeline_stage_of(&self, app: &App) -> Result<Option<PipelineStage>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {STAGE_COLUMNS} FROM pipeline_apps s JOIN apps a ON a.id = s.app_id
             JOIN pipelines p ON p.id = s.pipeline_id WHERE s.app_id = $1"
        ))
        .bind(app.id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Makes a release of `app` that runs `from`'s build as `image` with `app`'s config as it
    /// is now, and no build: a promotion (`from` is another app's, `image` its image tagged
    /// for this app), or an approval of a release that waited while the config changed.
    pub async fn create_release_of_image(
        &self,
        app: &App,
        from: &Release,
        image: &str,
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
                build_id: from.build_id,
                image: Some(image.to_string()),
                process_types: from.process_types.clone(),
            },
            &config,
        )
        .await?;
        tx.commit().await?;
        Ok(release)
    }

    /// The commit a build was made of, whichever app it was made for (a promoted release
    /// runs another app's build).
    pub async fn build_commit(&self, build_id: i64) -> Result<Option<String>> {
        Ok(self.build_source(build_id).await?.0)
    }

    /// What a build's paas.toml declares (JSON), whichever app it was made for.
    pub async fn build_manifest(&self, build_id: i64) -> Result<Option<String>> {
        let found: Option<(Option<String>,)> =
            sqlx::query_as("SELECT manifest FROM builds WHERE id = $1")
                .bind(build_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.and_then(|(manifest,)| manifest))
    }

    /// The commit and the tag (for a tag deploy) a build was made of, whichever app it was
    /// made for.
    pub async fn build_source(&self, build_id: i64) -> Result<(Option<String>, Option<String>)> {
        let found: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT commit_sha, git_tag FROM builds WHERE id = $1")
                .bind(build_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.unwrap_or_default())
    }
}
