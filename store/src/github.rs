//! GitHub links and deliveries.

use super::*;

/// The outcome of a delivery queued when paas stopped.
const LOST: &str = "lost: paas stopped before deploying it; redeliver it from GitHub";

const LINK_COLUMNS: &str = "l.app_id, a.name AS app, l.repository, l.branch, l.secret, l.token, \
                            l.created_by, l.created_at";

impl Store {
    /// Links the app to `repository`'s `branch`, replacing an earlier link.
    pub async fn link_github(&self, app: &App, link: &NewGithubLink) -> Result<GithubLink> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM github_links WHERE app_id = $1")
            .bind(app.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO github_links (app_id, repository, branch, secret, token, created_by,
                                       created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(app.id)
        .bind(&link.repository)
        .bind(&link.branch)
        .bind(&link.secret)
        .bind(&link.token)
        .bind(&link.created_by)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.github_link(app).await?.ok_or_else(|| StoreError::NotFound("github link".into()))
    }

    pub async fn github_link(&self, app: &App) -> Result<Option<GithubLink>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {LINK_COLUMNS} FROM github_links l JOIN apps a ON a.id = l.app_id
             WHERE l.app_id = $1"
        ))
        .bind(app.id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every link: a delivery's signature is checked against each one's secret.
    pub async fn github_links(&self) -> Result<Vec<GithubLink>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {LINK_COLUMNS} FROM github_links l JOIN apps a ON a.id = l.app_id
             ORDER BY l.app_id"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes the link; false if there was none.
    pub async fn unlink_github(&self, app: &App) -> Result<bool> {
        let done = sqlx::query("DELETE FROM github_links WHERE app_id = $1")
            .bind(app.id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a delivery once: `None` when its id was seen before (a redelivery).
    pub async fn record_delivery(
        &self,
        delivery: &str,
        app: Option<&App>,
        event: &str,
        commit_sha: Option<&str>,
        outcome: &str,
    ) -> Result<Option<i64>> {
        let inserted = sqlx::query(
            "INSERT INTO github_deliveries (delivery, app_id, event, commit_sha, outcome,
                                            created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(delivery)
        .bind(app.map(|a| a.id))
        .bind(event)
        .bind(commit_sha)
        .bind(outcome)
        .bind(now())
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(row) => Ok(Some(row.try_get(0)?)),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Deliveries that were queued when paas stopped will never deploy: say so, and let a
    /// redelivery of each go through ([`Store::retry_delivery`]). Returns how many.
    pub async fn mark_lost_deliveries(&self) -> Result<u64> {
        let done =
            sqlx::query("UPDATE github_deliveries SET outcome = $1 WHERE outcome LIKE 'queued%'")
                .bind(LOST)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// A redelivery of a delivery that was lost (queued when paas stopped): recorded again
    /// with `outcome`; `None` for any other delivery seen before.
    pub async fn retry_delivery(
        &self,
        delivery: &str,
        commit_sha: Option<&str>,
        outcome: &str,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "UPDATE github_deliveries SET outcome = $1, commit_sha = $2
             WHERE delivery = $3 AND outcome = $4 RETURNING id",
        )
        .bind(outcome)
        .bind(commit_sha)
        .bind(delivery)
        .bind(LOST)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    /// What came of a delivery, once known (deployed v5, failed, superseded).
    pub async fn set_delivery_outcome(&self, id: i64, outcome: &str) -> Result<()> {
        sqlx::query("UPDATE github_deliveries SET outcome = $1 WHERE id = $2")
            .bind(outcome)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The app's newest deliveries first.
    pub async fn deliveries(&self, app: &App, limit: i64) -> Result<Vec<GithubDelivery>> {
        Ok(sqlx::query_as(
            "SELECT id, delivery, event, commit_sha, outcome, created_at FROM github_deliveries
             WHERE app_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(app.id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
