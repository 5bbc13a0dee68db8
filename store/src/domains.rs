//! Custom hostnames routed to apps.

use super::*;

impl Store {
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
