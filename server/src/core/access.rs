//! Who may touch which app, checked here for every front end: admins may touch every app;
//! other users the apps they made (their owner) or were added to. An app someone may not
//! touch is "not found" to them, exactly like one that does not exist, so names do not leak.

use paas_store::{App, Member};

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};

impl Paas {
    /// The app named `name`, if the actor may touch it: every front end looks apps up
    /// through here.
    pub async fn app_for(&self, actor: &Actor, name: &str) -> Result<App> {
        let app = self.store().app(name).await?;
        if actor.is_admin() || self.store().role(&app, &actor.user).await?.is_some() {
            Ok(app)
        } else {
            Err(Error::NotFound(format!("app {name}")))
        }
    }

    /// The apps the actor may touch.
    pub async fn apps_for(&self, actor: &Actor) -> Result<Vec<App>> {
        Ok(if actor.is_admin() {
            self.store().apps().await?
        } else {
            self.store().apps_of(&actor.user).await?
        })
    }

    /// Who besides the admins may touch the app.
    pub async fn members(&self, app: &App) -> Result<Vec<Member>> {
        Ok(self.store().members(app).await?)
    }

    /// Lets another user touch the app. Its owner and admins may.
    pub async fn add_member(&self, actor: &Actor, app: &App, email: &str) -> Result<()> {
        self.may_manage_access(actor, app).await?;
        let user = self.store().user(&email.trim().to_ascii_lowercase()).await?;
        self.store().add_member(app, &user).await?;
        self.audit(actor, Some(app), "access.add", format!("gave {} access", user.email)).await;
        Ok(())
    }

    /// Takes a member's access away. The owner and admins may, and members may leave; the
    /// owner cannot be removed.
    pub async fn remove_member(&self, actor: &Actor, app: &App, email: &str) -> Result<()> {
        let email = email.trim().to_ascii_lowercase();
        if email != actor.email() {
            self.may_manage_access(actor, app).await?;
        }
        let user = self.store().user(&email).await?;
        let role = self.store().role(app, &user).await?;
        match role.as_deref() {
            Some("owner") => {
                return Err(Error::Conflict(format!(
                    "{email} owns {} and keeps access; destroy the app to take it away",
                    app.name
                )));
            }
            None => return Err(Error::NotFound(format!("{email} among {}'s members", app.name))),
            Some(_) => {}
        }
        self.store().remove_member(app, &user).await?;
        self.audit(actor, Some(app), "access.remove", format!("took access from {email}")).await;
        Ok(())
    }

    async fn may_manage_access(&self, actor: &Actor, app: &App) -> Result<()> {
        if actor.is_admin()
            || self.store().role(app, &actor.user).await?.as_deref() == Some("owner")
        {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "only {}'s owner or an admin can change who has access to it",
            app.name
        )))
    }
}
