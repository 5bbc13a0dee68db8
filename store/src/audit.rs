//! The audit log: append-only, one row per change, kept after the app it names is gone.

use super::*;

/// A change to record; the time is the store's.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEvent {
    pub actor: String,
    pub address: Option<String>,
    pub via: String,
    pub action: String,
    pub app: Option<(i64, String)>,
    pub detail: String,
}

/// Which events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this app's (by id: an earlier app of the same name is another app).
    pub app_id: Option<i64>,
    /// Only what this user may see: events of apps they can access, and their own doing.
    pub visible_to: Option<User>,
    pub limit: i64,
}

impl Store {
    pub async fn record_audit(&self, event: &NewAuditEvent) -> Result<()> {
        let (app_id, app) = event.app.clone().unzip();
        sqlx::query(
            "INSERT INTO audit_events (created_at, actor, address, via, action, app_id, app, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(now())
        .bind(&event.actor)
        .bind(&event.address)
        .bind(&event.via)
        .bind(&event.action)
        .bind(app_id)
        .bind(app)
        .bind(&event.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let (user_id, email) = filter.visible_to.as_ref().map(|u| (u.id, u.email.clone())).unzip();
        Ok(sqlx::query_as(
            "SELECT id, created_at, actor, address, via, action, app_id, app, detail
             FROM audit_events
             WHERE ($1 IS NULL OR app_id = $1)
               AND ($2 IS NULL
                    OR app_id IN (SELECT app_id FROM app_members WHERE user_id = $2)
                    OR actor = $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(filter.app_id)
        .bind(user_id)
        .bind(email)
        .bind(filter.limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?)
    }
}
