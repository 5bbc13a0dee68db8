//! Who may touch which app: each app's owner and members (Heroku's collaborators). Admins
//! need no row here.

use super::*;

impl Store {
    /// The app's owner and members, the owner first.
    pub async fn members(&self, app: &App) -> Result<Vec<Member>> {
        Ok(sqlx::query_as(
            "SELECT u.email, m.role, m.created_at
             FROM app_members m JOIN users u ON u.id = m.user_id
             WHERE m.app_id = $1 ORDER BY m.role DESC, u.email",
        )
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The user's role on the app (`owner` or `member`), if they have one.
    pub async fn role(&self, app: &App, user: &User) -> Result<Option<String>> {
        let row = sqlx::query("SELECT role FROM app_members WHERE app_id = $1 AND user_id = $2")
            .bind(app.id)
            .bind(user.id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    pub async fn add_member(&self, app: &App, user: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_members (app_id, user_id, role, created_at)
             VALUES ($1, $2, 'member', $3)",
        )
        .bind(app.id)
        .bind(user.id)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("{} already has access to {}", user.email, app.name)))?;
        Ok(())
    }

    /// Takes a member's access away; false if they had none. The owner stays.
    pub async fn remove_member(&self, app: &App, user: &User) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM app_members WHERE app_id = $1 AND user_id = $2 AND role = 'member'",
        )
        .bind(app.id)
        .bind(user.id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The apps a user owns or is a member of.
    pub async fn apps_of(&self, user: &User) -> Result<Vec<App>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {APP_COLUMNS} FROM apps
             WHERE id IN (SELECT app_id FROM app_members WHERE user_id = $1) ORDER BY name"
        ))
        .bind(user.id)
        .fetch_all(&self.pool)
        .await?)
    }
}
