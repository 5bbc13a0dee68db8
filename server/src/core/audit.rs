//! Who asks (an [`Actor`]: a user, from an address, through a front end) and the audit log
//! of what they changed. Every operation that changes something takes the actor, checks it
//! and records the change here.

use std::net::IpAddr;

use paas_store::{App, AuditEvent, AuditFilter, NewAuditEvent, User};

use super::Paas;
use super::error::Result;

/// The way a request reached paas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontEnd {
    /// The JSON API (the CLI uses it).
    Api,
    /// git push and clone.
    Git,
    Dashboard,
    /// A GitHub webhook.
    GitHub,
    /// paas's own timer: scheduled backups.
    Scheduler,
}

impl FrontEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            FrontEnd::Api => "api",
            FrontEnd::Git => "git",
            FrontEnd::Dashboard => "dashboard",
            FrontEnd::GitHub => "github",
            FrontEnd::Scheduler => "scheduler",
        }
    }
}

/// Who is asking: what access is checked against and what the audit log records.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    /// The peer address of the request.
    pub address: Option<IpAddr>,
    pub via: FrontEnd,
}

impl Actor {
    pub fn new(user: User, address: Option<IpAddr>, via: FrontEnd) -> Actor {
        Actor { user, address, via }
    }

    /// paas itself, running what was scheduled.
    pub fn scheduler() -> Actor {
        let user =
            User { id: 0, email: "scheduler".to_string(), is_admin: 1, created_at: String::new() };
        Actor { user, address: None, via: FrontEnd::Scheduler }
    }

    pub fn email(&self) -> &str {
        &self.user.email
    }

    pub fn is_admin(&self) -> bool {
        self.user.admin()
    }
}

/// Most audit events one request lists.
pub const MAX_AUDIT_EVENTS: i64 = 1000;

impl Paas {
    /// Records a change. A failure to record is logged, not returned: the change is made by
    /// then, and telling the caller it failed would be wrong.
    pub(crate) async fn audit(
        &self,
        actor: &Actor,
        app: Option<&App>,
        action: &str,
        detail: impl Into<String>,
    ) {
        let event = NewAuditEvent {
            actor: actor.user.email.clone(),
            address: actor.address.map(|a| a.to_string()),
            via: actor.via.as_str().to_string(),
            action: action.to_string(),
            app: app.map(|a| (a.id, a.name.clone())),
            detail: detail.into(),
        };
        if let Err(err) = self.store().record_audit(&event).await {
            tracing::error!(error = %err, action, "could not write the audit log");
        }
    }

    /// The newest `limit` changes the actor may see: all for an admin, else those of apps
    /// they can access and their own; with `app`, only that app's.
    pub async fn audit_log(
        &self,
        actor: &Actor,
        app: Option<&App>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>> {
        let filter = AuditFilter {
            app_id: app.map(|a| a.id),
            visible_to: (!actor.is_admin() && app.is_none()).then(|| actor.user.clone()),
            limit: limit.clamp(1, MAX_AUDIT_EVENTS),
        };
        Ok(self.store().audit_events(&filter).await?)
    }
}
