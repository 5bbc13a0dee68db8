//! Formation: how many processes of each type an app runs.

use super::*;

impl Store {
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
