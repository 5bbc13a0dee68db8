//! Users and their API tokens (only hashes are kept).

use super::*;

impl Store {
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
}
