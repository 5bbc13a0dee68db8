//! Persistent volumes: a named Docker volume per app and name, mounted at its path in every
//! process of the app and its one-off runs. Adding or removing one replaces the running
//! processes with no downtime (new ones start, with the volume, before the old stop; both
//! mount it meanwhile). Deploys, rollbacks and restarts never touch what is in it; only
//! `volumes:remove` or destroying the app removes it.

use paas_builder::BuildLog;
use paas_store::{App, Volume};

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};

/// Most volumes one app may have.
pub const MAX_VOLUMES: usize = 10;

/// Paths a volume must not hide: the system the app's image runs on.
const SYSTEM_PATHS: [&str; 12] = [
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr",
    "/var/run",
];

fn volume_name(name: &str) -> Result<()> {
    let valid = (1..=30).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(Error::invalid(
            "invalid_volume_name",
            format!(
                "{name:?} cannot name a volume: use 1 to 30 lowercase letters, digits, - and _, \
                 starting with a letter (like media)"
            ),
        ));
    }
    Ok(())
}

/// An absolute, plain path (`/app/media`), not `/` and not in the system's own folders.
fn volume_path(path: &str) -> Result<String> {
    let invalid = |why: &str| {
        Err(Error::invalid("invalid_volume_path", format!("{path:?} cannot hold a volume: {why}")))
    };
    let trimmed = path.trim_end_matches('/');
    if !path.starts_with('/') {
        return invalid("give an absolute path, like /app/media");
    }
    if trimmed.is_empty() {
        return invalid("a volume over / would hide the whole image");
    }
    let parts: Vec<&str> = trimmed[1..].split('/').collect();
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..")
        || trimmed.chars().any(|c| c.is_control() || c == ':' || c == ',')
    {
        return invalid("write it plainly, without //, . or .. parts, colons or commas");
    }
    if trimmed.len() > 200 {
        return invalid("it is longer than 200 characters");
    }
    if let Some(system) =
        SYSTEM_PATHS.iter().find(|s| trimmed == **s || trimmed.starts_with(&format!("{s}/")))
    {
        return invalid(&format!("{system} belongs to the system the app runs on"));
    }
    Ok(trimmed.to_string())
}

/// A new volume `name` at `path` beside the app's `existing` ones (name, path): the path as
/// stored.
pub(super) fn check_volume(
    existing: &[(String, String)],
    name: &str,
    path: &str,
) -> Result<String> {
    volume_name(name)?;
    let path = volume_path(path)?;
    if existing.len() >= MAX_VOLUMES {
        return Err(Error::invalid(
            "too_many_volumes",
            format!("an app may have {MAX_VOLUMES} volumes at most"),
        ));
    }
    if let Some((other, other_path)) = existing.iter().find(|(_, p)| nested(p, &path)) {
        return Err(Error::Conflict(format!(
            "{path} and volume {other}'s {other_path} would be inside one another; choose \
             separate folders"
        )));
    }
    Ok(path)
}

impl Paas {
    pub async fn volumes(&self, app: &App) -> Result<Vec<Volume>> {
        Ok(self.store().volumes(app).await?)
    }

    /// Adds a volume at `path` and restarts the app's processes onto it.
    pub async fn add_volume(
        &self,
        actor: &Actor,
        app: &App,
        name: &str,
        path: &str,
    ) -> Result<Volume> {
        let existing: Vec<(String, String)> =
            self.store().volumes(app).await?.into_iter().map(|v| (v.name, v.path)).collect();
        let path = check_volume(&existing, name, path)?;
        let volume = self.store().add_volume(app, name, &path, actor.email()).await?;
        if let Err(err) = self.restart_onto_volumes(actor, app).await {
            // The processes could not be restarted onto it: as if it was never asked for.
            self.store().remove_volume(app, name).await?;
            return Err(err);
        }
        self.audit(actor, Some(app), "volume.add", format!("added volume {name} at {path}")).await;
        self.events().emit(&app.name, "deploy", format!("Volume {name} added at {path}"));
        Ok(volume)
    }

    /// Removes a volume and everything in it, once the app's processes run without it.
    pub async fn remove_volume(&self, actor: &Actor, app: &App, name: &str) -> Result<()> {
        if !self.store().remove_volume(app, name).await? {
            return Err(Error::NotFound(format!("volume {name} of {}", app.name)));
        }
        self.audit(actor, Some(app), "volume.remove", format!("removed volume {name}")).await;
        self.events().emit(&app.name, "deploy", format!("Volume {name} removed"));
        self.restart_onto_volumes(actor, app).await?;
        self.runner()?.remove_app_volume(&app.name, name).await?;
        Ok(())
    }

    /// The volumes as the runner mounts them.
    pub(crate) async fn volume_mounts(&self, app: &App) -> Result<Vec<paas_runner::VolumeMount>> {
        let volumes = self.store().volumes(app).await?;
        Ok(volumes
            .into_iter()
            .map(|v| paas_runner::VolumeMount { name: v.name, path: v.path })
            .collect())
    }

    /// Replaces the running processes with ones that mount the volumes as they are now;
    /// nothing to do for an app that runs nothing yet.
    async fn restart_onto_volumes(&self, actor: &Actor, app: &App) -> Result<()> {
        let deployed = self.store().current_release(app).await?.is_some_and(|r| r.image.is_some());
        if deployed {
            self.restart(actor, app, None, &BuildLog::new()).await?;
        }
        Ok(())
    }
}

/// Whether one path is, or is inside, the other.
fn nested(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_paths_are_plain_and_leave_the_system_alone() {
        assert_eq!(volume_path("/app/media/").unwrap(), "/app/media");
        assert_eq!(volume_path("/data").unwrap(), "/data");
        for bad in [
            "app/media",
            "/",
            "/app//media",
            "/app/../etc",
            "/etc",
            "/usr/local/x",
            "/proc",
            "/a:b",
        ] {
            assert!(volume_path(bad).is_err(), "{bad}");
        }
        assert!(volume_name("media").is_ok());
        for bad in ["", "Media", "1x", "a.b", "a b"] {
            assert!(volume_name(bad).is_err(), "{bad}");
        }
        assert!(nested("/app/media", "/app/media/thumbs") && nested("/app", "/app"));
        assert!(!nested("/app/media", "/app/media2"));
    }
}
