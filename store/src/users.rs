//! Users: who they are, their passwords and invitations (hashes only), and sign-in lockout.

use super::*;

const USER_COLUMNS: &str = "id, email, is_admin, created_at";
const RECORD_COLUMNS: &str = "id, email, is_admin, created_at, password_hash, invite_expires_at, \
                              failed_logins, locked_until";

/// A user to create: a password hash, or an invitation hash and when it lapses.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub email: String,
    pub is_admin: bool,
    pub password_hash: Option<String>,
    pub invitation: Option<(String, String)>,
}

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
        let user: User = sqlx::query_as(&format!(
            "INSERT INTO users (email, is_admin, created_at) VALUES ($1, 1, $2)
             RETURNING {USER_COLUMNS}"
        ))
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

    pub async fn create_user(&self, new: &NewUser) -> Result<User> {
        let (invite_hash, invite_expires_at) = new.invitation.clone().unzip();
        sqlx::query_as(&format!(
            "INSERT INTO users (email, is_admin, password_hash, invite_hash, invite_expires_at,
                                created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLUMNS}"
        ))
        .bind(&new.email)
        .bind(i64::from(new.is_admin))
        .bind(&new.password_hash)
        .bind(invite_hash)
        .bind(invite_expires_at)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("a user with the email {} already exists", new.email)))
    }

    pub async fn users(&self) -> Result<Vec<UserRecord>> {
        Ok(sqlx::query_as(&format!("SELECT {RECORD_COLUMNS} FROM users ORDER BY email"))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn user_record(&self, email: &str) -> Result<Option<UserRecord>> {
        Ok(sqlx::query_as(&format!("SELECT {RECORD_COLUMNS} FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn user(&self, email: &str) -> Result<User> {
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {email}")))
    }

    /// Deletes a user with their tokens and app access, in one transaction that refuses to
    /// remove the last admin.
    pub async fn delete_user(&self, email: &str) -> Result<User> {
        let mut tx = self.begin().await?;
        let user: User =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"))
                .bind(email)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("user {email}")))?;
        if user.admin() {
            let admins: i64 = sqlx::query("SELECT COUNT(*) FROM users WHERE is_admin = 1")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if admins <= 1 {
                return Err(StoreError::Conflict(format!(
                    "{email} is the last admin; make another admin before removing them"
                )));
            }
        }
        // Tokens and access go with the user (ON DELETE CASCADE), in this transaction.
        sqlx::query("DELETE FROM users WHERE id = $1").bind(user.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Sets a user's password; a pending invitation and any lockout end with it.
    pub async fn set_password(&self, user: &User, password_hash: &str) -> Result<()> {
        sqlx::query(
            "UPDATE users SET password_hash = $1, invite_hash = NULL, invite_expires_at = NULL,
                              failed_logins = 0, locked_until = NULL
             WHERE id = $2",
        )
        .bind(password_hash)
        .bind(user.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Redeems a pending, unexpired invitation: sets the password and returns the user.
    /// Each invitation works once.
    pub async fn accept_invitation(
        &self,
        invite_hash: &str,
        password_hash: &str,
    ) -> Result<Option<User>> {
        Ok(sqlx::query_as(&format!(
            "UPDATE users SET password_hash = $1, invite_hash = NULL, invite_expires_at = NULL,
                              failed_logins = 0, locked_until = NULL
             WHERE invite_hash = $2 AND invite_expires_at > $3
             RETURNING {USER_COLUMNS}"
        ))
        .bind(password_hash)
        .bind(invite_hash)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Counts a failed sign-in; the `limit`th in a row locks the account until `lock_until`
    /// (and starts the count again). Returns when the account is locked until, if it is.
    pub async fn record_failed_login(
        &self,
        user: &User,
        limit: i64,
        lock_until: &str,
    ) -> Result<Option<String>> {
        // Every SET expression sees the row as it was, in SQLite and PostgreSQL alike.
        let row = sqlx::query(
            "UPDATE users SET
                 locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END,
                 failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END
             WHERE id = $1 RETURNING locked_until",
        )
        .bind(user.id)
        .bind(limit)
        .bind(lock_until)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|row| row.try_get::<Option<String>, _>(0).ok().flatten()))
    }

    /// A good sign-in starts the failure count again.
    pub async fn clear_failed_logins(&self, user: &User) -> Result<()> {
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(user.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
