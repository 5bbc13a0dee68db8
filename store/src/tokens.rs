//! API tokens: only their SHA-256 hashes are kept, with who owns each and when it was last
//! used and lapses.

use sqlx::FromRow;

use super::*;

const TOKEN_COLUMNS: &str = "t.id, t.user_id, u.email, t.description, t.created_at, \
                             t.last_used_at, t.expires_at";

impl Store {
    pub async fn create_token(
        &self,
        user: &User,
        token_hash: &str,
        description: &str,
        expires_at: Option<&str>,
    ) -> Result<ApiToken> {
        let row = sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, description, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(user.id)
        .bind(token_hash)
        .bind(description)
        .bind(now())
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict(e, "that token already exists"))?;
        let id: i64 = row.try_get(0)?;
        self.token(id).await?.ok_or_else(|| StoreError::NotFound(format!("token {id}")))
    }

    /// The user a token hash belongs to, and the token; `None` for unknown tokens. One
    /// query: every API request asks it.
    pub async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<(User, ApiToken)>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS}, u.is_admin, u.created_at AS user_created_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = ApiToken::from_row(&row)?;
        let user = User {
            id: token.user_id,
            email: token.email.clone(),
            is_admin: row.try_get("is_admin")?,
            created_at: row.try_get("user_created_at")?,
        };
        Ok(Some((user, token)))
    }

    /// One user's tokens, or everyone's.
    pub async fn tokens(&self, user: Option<&User>) -> Result<Vec<ApiToken>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE $1 IS NULL OR t.user_id = $1 ORDER BY t.id"
        ))
        .bind(user.map(|u| u.id))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn token(&self, id: i64) -> Result<Option<ApiToken>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Deletes a token; false if there was none with that id.
    pub async fn delete_token(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn touch_token(&self, id: i64, at: &str) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
