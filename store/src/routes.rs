//! Apps' routes by path to process types.

use super::*;

const ROUTE_COLUMNS: &str = "a.name AS app, r.prefix, r.process_type, r.created_by, r.created_at";

impl Store {
    /// One app's routes, or with `None` every app's (for the routing table).
    pub async fn routes(&self, app: Option<&App>) -> Result<Vec<AppRoute>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ROUTE_COLUMNS} FROM app_routes r JOIN apps a ON a.id = r.app_id
             WHERE $1 = 0 OR r.app_id = $1 ORDER BY a.name, r.prefix"
        ))
        .bind(app.map_or(0, |a| a.id))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Routes `prefix` to `process_type`, replacing the type an existing route of that
    /// prefix had.
    pub async fn set_route(
        &self,
        app: &App,
        prefix: &str,
        process_type: &str,
        created_by: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_routes (app_id, prefix, process_type, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (app_id, prefix) DO UPDATE SET process_type = excluded.process_type,
                 created_by = excluded.created_by, created_at = excluded.created_at",
        )
        .bind(app.id)
        .bind(prefix)
        .bind(process_type)
        .bind(created_by)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the route of `prefix`; false if there was none.
    pub async fn remove_route(&self, app: &App, prefix: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM app_routes WHERE app_id = $1 AND prefix = $2")
            .bind(app.id)
            .bind(prefix)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
