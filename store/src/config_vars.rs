//! An app's config vars; each change is one transaction with the release it makes.

use super::*;

impl Store {
    pub async fn config(&self, app: &App) -> Result<BTreeMap<String, String>> {
        let mut conn = self.pool.acquire().await?;
        config_of(&mut conn, app.id).await
    }

    /// Applies config changes and records the new release that carries them, in one
    /// transaction: either both happen or neither does. The release keeps the image and
    /// process types of the app's latest release.
    pub async fn update_config(
        &self,
        app: &App,
        changes: &[ConfigChange],
        description: &str,
        created_by: &str,
    ) -> Result<Release> {
        let mut tx = self.begin().await?;
        for (key, value) in changes {
            match value {
                Some(value) => {
                    sqlx::query(
                        "INSERT INTO config_vars (app_id, key, value) VALUES ($1, $2, $3)
                         ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(app.id)
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM config_vars WHERE app_id = $1 AND key = $2")
                        .bind(app.id)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        let config = config_of(&mut tx, app.id).await?;
        // What serves, never a release that failed: a config change applies to that.
        let previous = current_release_in(&mut tx, app.id).await?;
        let release = insert_release(
            &mut tx,
            app,
            NewRelease {
                description: description.into(),
                created_by: created_by.into(),
                build_id: previous.as_ref().and_then(|r| r.build_id),
                image: previous.as_ref().and_then(|r| r.image.clone()),
                process_types: previous.map(|r| r.process_types).unwrap_or_default(),
            },
            &config,
        )
        .await?;
        tx.commit().await?;
        Ok(release)
    }
}

/// An app's config vars, read on `conn` (inside a transaction when it is one).
pub(crate) async fn config_of(
    conn: &mut sqlx::AnyConnection,
    app_id: i64,
) -> Result<BTreeMap<String, String>> {
    let rows = sqlx::query("SELECT key, value FROM config_vars WHERE app_id = $1")
        .bind(app_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}
