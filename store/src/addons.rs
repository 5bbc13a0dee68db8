//! Add-ons, the apps they are attached to, and their backups.

use super::*;

const ADDON_COLUMNS: &str = "d.id, d.name, d.service, d.major, d.image, d.app_id, a.name AS app, \
                             d.username, d.password, d.database, d.backup_schedule, \
                             d.created_by, d.created_at, d.destroyed_at";
const ADDON_FROM: &str = "addons d LEFT JOIN apps a ON a.id = d.app_id";

const ATTACHMENT_COLUMNS: &str = "t.addon_id, d.name AS addon, t.app_id, a.name AS app, t.name, \
                                  t.created_by, t.created_at";
const ATTACHMENT_FROM: &str =
    "addon_attachments t JOIN addons d ON d.id = t.addon_id JOIN apps a ON a.id = t.app_id";

const BACKUP_COLUMNS: &str = "b.id, b.addon_id, d.name AS addon, b.status, b.size_bytes, \
                              b.error, b.file, b.created_by, b.started_at, b.finished_at";

/// What a backup stopped by paas's own stop is marked with.
const INTERRUPTED: &str = "paas stopped while the backup ran; capture another";

impl Store {
    /// Records an add-on made for `app`, attached to it as `attach_as`, in one transaction.
    pub async fn create_addon(
        &self,
        app: &App,
        addon: &NewAddon,
        attach_as: &str,
    ) -> Result<Addon> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO addons (name, service, major, image, app_id, username, password,
                                 database, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(&addon.name)
        .bind(&addon.service)
        .bind(&addon.major)
        .bind(&addon.image)
        .bind(app.id)
        .bind(&addon.username)
        .bind(&addon.password)
        .bind(&addon.database)
        .bind(&addon.created_by)
        .bind(now())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict(e, &format!("an add-on named {} exists", addon.name)))?;
        insert_attachment(&mut tx, id, app, attach_as, &addon.created_by).await?;
        tx.commit().await?;
        self.addon_by_id(id).await
    }

    async fn addon_by_id(&self, id: i64) -> Result<Addon> {
        sqlx::query_as(&format!("SELECT {ADDON_COLUMNS} FROM {ADDON_FROM} WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("add-on {id}")))
    }

    /// The add-on named `name` that exists now.
    pub async fn addon(&self, name: &str) -> Result<Addon> {
        sqlx::query_as(&format!(
            "SELECT {ADDON_COLUMNS} FROM {ADDON_FROM}
             WHERE d.name = $1 AND d.destroyed_at IS NULL"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("add-on {name}")))
    }

    /// Every add-on that exists, by name.
    pub async fn addons(&self) -> Result<Vec<Addon>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ADDON_COLUMNS} FROM {ADDON_FROM} WHERE d.destroyed_at IS NULL ORDER BY d.name"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every add-on ever made, destroyed ones too (newest first).
    pub async fn addons_ever(&self) -> Result<Vec<Addon>> {
        Ok(sqlx::query_as(&format!("SELECT {ADDON_COLUMNS} FROM {ADDON_FROM} ORDER BY d.id DESC"))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Marks the add-on destroyed and ends its attachments. Its backups' records stay, with
    /// the files they name.
    pub async fn destroy_addon(&self, addon: &Addon) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM addon_attachments WHERE addon_id = $1")
            .bind(addon.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE addons SET destroyed_at = $1 WHERE id = $2")
            .bind(now())
            .bind(addon.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets an add-on that never came up: there is nothing of it to remember.
    pub async fn forget_addon(&self, addon: &Addon) -> Result<()> {
        let mut tx = self.begin().await?;
        for table in ["addon_attachments", "addon_backups"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE addon_id = $1"))
                .bind(addon.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM addons WHERE id = $1").bind(addon.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn attach_addon(
        &self,
        addon: &Addon,
        app: &App,
        name: &str,
        created_by: &str,
    ) -> Result<Attachment> {
        let mut tx = self.begin().await?;
        insert_attachment(&mut tx, addon.id, app, name, created_by).await?;
        tx.commit().await?;
        let attachments = self.attachments_of(app).await?;
        attachments
            .into_iter()
            .find(|t| t.addon_id == addon.id)
            .ok_or_else(|| StoreError::NotFound("attachment".into()))
    }

    /// Ends the attachment; false if there was none.
    pub async fn detach_addon(&self, addon: &Addon, app: &App) -> Result<bool> {
        let done = sqlx::query("DELETE FROM addon_attachments WHERE addon_id = $1 AND app_id = $2")
            .bind(addon.id)
            .bind(app.id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The add-ons attached to `app`.
    pub async fn attachments_of(&self, app: &App) -> Result<Vec<Attachment>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM {ATTACHMENT_FROM} WHERE t.app_id = $1 ORDER BY t.name"
        ))
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The apps `addon` is attached to.
    pub async fn attachments_to(&self, addon: &Addon) -> Result<Vec<Attachment>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM {ATTACHMENT_FROM} WHERE t.addon_id = $1 ORDER BY a.name"
        ))
        .bind(addon.id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn set_backup_schedule(&self, addon: &Addon, schedule: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE addons SET backup_schedule = $1 WHERE id = $2")
            .bind(schedule)
            .bind(addon.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a backup as running.
    pub async fn start_backup(&self, addon: &Addon, created_by: &str) -> Result<Backup> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO addon_backups (addon_id, status, created_by, started_at)
             VALUES ($1, 'running', $2, $3) RETURNING id",
        )
        .bind(addon.id)
        .bind(created_by)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        self.backup(addon, id).await
    }

    /// Records how a backup ended: its file and size, or why it failed.
    pub async fn finish_backup(
        &self,
        backup: &Backup,
        outcome: std::result::Result<(&str, i64), &str>,
    ) -> Result<Backup> {
        let (status, file, size, error) = match outcome {
            Ok((file, size)) => ("succeeded", Some(file), Some(size), None),
            Err(error) => ("failed", None, None, Some(error)),
        };
        sqlx::query(
            "UPDATE addon_backups SET status = $1, file = $2, size_bytes = $3, error = $4,
                                      finished_at = $5
             WHERE id = $6",
        )
        .bind(status)
        .bind(file)
        .bind(size)
        .bind(error)
        .bind(now())
        .bind(backup.id)
        .execute(&self.pool)
        .await?;
        let addon = self.addon_by_id(backup.addon_id).await?;
        self.backup(&addon, backup.id).await
    }

    /// Backups that were running when paas stopped failed: says so; returns how many.
    pub async fn fail_running_backups(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE addon_backups SET status = 'failed', error = $1, finished_at = $2
             WHERE status = 'running'",
        )
        .bind(INTERRUPTED)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The add-on's backups, newest first.
    pub async fn backups(&self, addon: &Addon) -> Result<Vec<Backup>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {BACKUP_COLUMNS} FROM addon_backups b JOIN addons d ON d.id = b.addon_id
             WHERE b.addon_id = $1 ORDER BY b.id DESC"
        ))
        .bind(addon.id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn backup(&self, addon: &Addon, id: i64) -> Result<Backup> {
        sqlx::query_as(&format!(
            "SELECT {BACKUP_COLUMNS} FROM addon_backups b JOIN addons d ON d.id = b.addon_id
             WHERE b.addon_id = $1 AND b.id = $2"
        ))
        .bind(addon.id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("backup b{id:03} of {}", addon.name)))
    }
}

async fn insert_attachment(
    tx: &mut sqlx::AnyConnection,
    addon_id: i64,
    app: &App,
    name: &str,
    created_by: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO addon_attachments (addon_id, app_id, name, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(addon_id)
    .bind(app.id)
    .bind(name)
    .bind(created_by)
    .bind(now())
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        conflict(e, &format!("{} already has this add-on, or another one as {name}", app.name))
    })?;
    Ok(())
}
