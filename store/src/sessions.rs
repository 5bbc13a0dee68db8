//! Dashboard sessions: only the hash of each session's cookie token is kept.

use super::*;

impl Store {
    /// Records a new session; returns its id.
    pub async fn create_session(
        &self,
        user: &User,
        token_hash: &str,
        csrf_token: &str,
        address: Option<&str>,
        expires_at: &str,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, address, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(token_hash)
        .bind(user.id)
        .bind(csrf_token)
        .bind(address)
        .bind(now())
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// The unexpired session a token hash belongs to, with its user.
    pub async fn session(&self, token_hash: &str) -> Result<Option<(User, Session)>> {
        let row = sqlx::query(
            "SELECT s.id, s.csrf_token, s.created_at, s.expires_at,
                    u.id AS user_id, u.email, u.is_admin, u.created_at AS user_created_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let session = Session {
            id: row.try_get("id")?,
            csrf_token: row.try_get("csrf_token")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        };
        let user = User {
            id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            is_admin: row.try_get("is_admin")?,
            created_at: row.try_get("user_created_at")?,
        };
        Ok(Some((user, session)))
    }

    pub async fn delete_session(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Ends every session of the user but `keep`; returns how many ended.
    pub async fn delete_other_sessions(&self, user: &User, keep: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(user.id)
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Forgets expired sessions (called now and then; an expired one is refused anyway).
    pub async fn delete_expired_sessions(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
