//! Apps: create, look up, rename their deploy branch, delete with everything they own.

use super::*;

impl Store {
    /// Creates an app with its first release, "Initial release" (v1), as Heroku does.
    /// The creator becomes its owner.
    pub async fn create_app(&self, name: &str, owner: &User) -> Result<App> {
        let created_by = owner.email.as_str();
        let mut tx = self.begin().await?;
        let now = now();
        let app: App = sqlx::query_as(&format!(
            "INSERT INTO apps (name, created_by, created_at) VALUES ($1, $2, $3) RETURNING {APP_COLUMNS}"
        ))
        .bind(name)
        .bind(created_by)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict(e, &format!("an app named {name} already exists")))?;
        sqlx::query(
            "INSERT INTO app_members (app_id, user_id, role, created_at)
             VALUES ($1, $2, 'owner', $3)",
        )
        .bind(app.id)
        .bind(owner.id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        insert_release(
            &mut tx,
            &app,
            NewRelease {
                description: "Initial release".into(),
                created_by: created_by.into(),
                ..NewRelease::default()
            },
            &BTreeMap::new(),
        )
        .await?;
        tx.commit().await?;
        self.app(name).await
    }

    pub async fn apps(&self) -> Result<Vec<App>> {
        Ok(sqlx::query_as(&format!("SELECT {APP_COLUMNS} FROM apps ORDER BY name"))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn app(&self, name: &str) -> Result<App> {
        sqlx::query_as(&format!("SELECT {APP_COLUMNS} FROM apps WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app {name}")))
    }

    /// Sets the branch whose pushes deploy the app.
    pub async fn set_deploy_branch(&self, app: &App, branch: &str) -> Result<App> {
        sqlx::query_as(&format!(
            "UPDATE apps SET deploy_branch = $1 WHERE id = $2 RETURNING {APP_COLUMNS}"
        ))
        .bind(branch)
        .bind(app.id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("app {}", app.name)))
    }

    /// Sets which pushed tags deploy (waiting for approval); `None` refuses tags.
    pub async fn set_deploy_tags(&self, app: &App, pattern: Option<&str>) -> Result<App> {
        sqlx::query_as(&format!(
            "UPDATE apps SET deploy_tags = $1 WHERE id = $2 RETURNING {APP_COLUMNS}"
        ))
        .bind(pattern)
        .bind(app.id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("app {}", app.name)))
    }

    /// Deletes an app and everything that hangs off it.
    pub async fn delete_app(&self, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let app: Option<App> =
            sqlx::query_as(&format!("SELECT {APP_COLUMNS} FROM apps WHERE name = $1"))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let app = app.ok_or_else(|| StoreError::NotFound(format!("app {name}")))?;
        // Explicit deletes rather than relying on ON DELETE CASCADE being switched on.
        for table in [
            "domains",
            "formation",
            "releases",
            "builds",
            "config_vars",
            "addon_attachments",
            "app_volumes",
            "cron_jobs",
            "app_routes",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE app_id = $1"))
                .bind(app.id)
                .execute(&mut *tx)
                .await?;
        }
        // Add-ons made for it outlive it (they are destroyed on their own, by name).
        sqlx::query("UPDATE addons SET app_id = NULL WHERE app_id = $1")
            .bind(app.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM apps WHERE id = $1").bind(app.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

pub(crate) const APP_COLUMNS: &str = "id, name, deploy_branch, deploy_tags, created_by, created_at";
