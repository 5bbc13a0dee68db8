//! Apps' persistent volumes.

use super::*;

impl Store {
    /// The app's volumes, by path.
    pub async fn volumes(&self, app: &App) -> Result<Vec<Volume>> {
        Ok(sqlx::query_as(
            "SELECT name, path, created_by, created_at FROM app_volumes WHERE app_id = $1
             ORDER BY path",
        )
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn add_volume(
        &self,
        app: &App,
        name: &str,
        path: &str,
        created_by: &str,
    ) -> Result<Volume> {
        sqlx::query_as(
            "INSERT INTO app_volumes (app_id, name, path, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING name, path, created_by, created_at",
        )
        .bind(app.id)
        .bind(name)
        .bind(path)
        .bind(created_by)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            conflict(e, &format!("{} already has a volume named {name} or one at {path}", app.name))
        })
    }

    /// Forgets the volume; false if there was none of that name.
    pub async fn remove_volume(&self, app: &App, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM app_volumes WHERE app_id = $1 AND name = $2")
            .bind(app.id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
