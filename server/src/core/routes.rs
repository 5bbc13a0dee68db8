//! Routes by path to process types: `paas routes:add /ws/ channels` sends requests whose path
//! starts with `/ws/` to the app's `channels` processes (daphne beside gunicorn), the longest
//! prefix first, everything else to `web`. A routed type gets `PORT`, is health-checked and
//! takes part in zero-downtime rollouts as `web` does.

use paas_builder::BuildLog;
use paas_store::{App, AppRoute};

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};
use super::validate;

/// Most routes one app may have.
pub const MAX_ROUTES: usize = 20;

/// `/ws/`: starts with `/`, not `/` itself (that is `web`'s), printable, no query.
fn prefix(prefix: &str) -> Result<String> {
    let prefix = prefix.trim();
    let invalid = |why: &str| {
        Err(Error::invalid("invalid_route_prefix", format!("{prefix:?} cannot be a route: {why}")))
    };
    if !prefix.starts_with('/') {
        return invalid("a path prefix starts with /, like /ws/");
    }
    if prefix == "/" {
        return invalid("everything not routed elsewhere goes to web already");
    }
    if prefix.len() > 200
        || prefix.chars().any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return invalid("write a path of at most 200 characters, without spaces, ? or #");
    }
    Ok(prefix.to_string())
}

/// A route as paas allows it: its prefix as stored, to a type other than `web` and `release`.
pub(super) fn check_route(path: &str, process_type: &str) -> Result<String> {
    let path = prefix(path)?;
    validate::process_type(process_type)?;
    if ["web", "release"].contains(&process_type) {
        return Err(Error::invalid(
            "invalid_route_process",
            format!(
                "routes send paths to a process type other than web (which gets the rest); \
                 {process_type:?} cannot take one"
            ),
        ));
    }
    Ok(path)
}

impl Paas {
    pub async fn routes(&self, app: &App) -> Result<Vec<AppRoute>> {
        Ok(self.store().routes(Some(app)).await?)
    }

    /// Routes `prefix` to `process_type` and restarts that type's processes so they listen
    /// on `PORT` (health-checked before they get traffic, the old ones drained).
    pub async fn add_route(
        &self,
        actor: &Actor,
        app: &App,
        path: &str,
        process_type: &str,
    ) -> Result<AppRoute> {
        let path = check_route(path, process_type)?;
        // The release that serves: the one whose processes the route will reach.
        let latest = match self.store().current_release(app).await? {
            Some(current) => Some(current),
            None => self.store().latest_release(app).await?,
        };
        if let Some(known) = latest.as_ref().map(|r| &r.process_types)
            && !known.is_empty()
            && !known.contains_key(process_type)
        {
            let names: Vec<&str> =
                known.keys().map(String::as_str).filter(|t| *t != "release").collect();
            return Err(Error::invalid(
                "unknown_process_type",
                format!(
                    "{} has no process type {process_type:?}; its latest release has: {}",
                    app.name,
                    names.join(", ")
                ),
            ));
        }
        let routes = self.store().routes(Some(app)).await?;
        if routes.len() >= MAX_ROUTES && !routes.iter().any(|r| r.prefix == path) {
            return Err(Error::invalid(
                "too_many_routes",
                format!("{} has {MAX_ROUTES} routes, the most an app may have", app.name),
            ));
        }
        let before = self.store().routes(Some(app)).await?.into_iter().find(|r| r.prefix == path);
        self.store().set_route(app, &path, process_type, actor.email()).await?;
        // Its processes listen on PORT from now on: replace the running ones. If they cannot
        // be, the route is as it was, and the old processes serve on.
        let running = self.store().formation(app).await?.get(process_type).copied().unwrap_or(0);
        let deployed = latest.as_ref().is_some_and(|r| r.image.is_some());
        if deployed
            && running > 0
            && let Err(err) = self.restart(actor, app, Some(process_type), &BuildLog::new()).await
        {
            match before {
                Some(old) => {
                    self.store().set_route(app, &path, &old.process_type, &old.created_by).await?
                }
                None => drop(self.store().remove_route(app, &path).await?),
            }
            return Err(err);
        }
        self.audit(actor, Some(app), "route.add", format!("routed {path} to {process_type}")).await;
        self.events().emit(&app.name, "deploy", format!("Routing {path} to {process_type}"));
        self.sync_routes().await?;
        let routes = self.store().routes(Some(app)).await?;
        routes
            .into_iter()
            .find(|r| r.prefix == path)
            .ok_or_else(|| Error::NotFound(format!("route {path}")))
    }

    /// Stops routing `prefix`: those paths go to `web` again.
    pub async fn remove_route(&self, actor: &Actor, app: &App, path: &str) -> Result<()> {
        let path = path.trim();
        if !self.store().remove_route(app, path).await? {
            return Err(Error::NotFound(format!("route {path} of {}", app.name)));
        }
        self.audit(actor, Some(app), "route.remove", format!("removed route {path}")).await;
        self.events().emit(&app.name, "deploy", format!("{path} goes to web again"));
        self.sync_routes().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_paths() {
        assert_eq!(prefix(" /ws/ ").unwrap(), "/ws/");
        for bad in ["ws/", "/", "/a b", "/a?b", ""] {
            assert!(prefix(bad).is_err(), "{bad}");
        }
    }
}
