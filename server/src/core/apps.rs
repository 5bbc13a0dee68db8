//! Apps and what belongs to each: its name and deploy branch, custom domains, config vars,
//! releases and formation. A rule enforced here holds for every front end.

use std::collections::BTreeMap;

use paas_store::{App, Domain, Release, StoreError};
use rand::Rng;

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};
use super::validate;

/// Most containers of one process type a single app may ask for.
pub const MAX_QUANTITY: i64 = 100;
/// Most containers a single app may ask for, all process types together.
pub const MAX_PROCESSES: i64 = 100;

impl Paas {
    /// Creates an app owned by the actor; with no name, picks a free random one like
    /// `gentle-river-4821`.
    pub async fn create_app(&self, name: Option<&str>, actor: &Actor) -> Result<App> {
        let app = match name {
            Some(name) => {
                validate::app_name(name)?;
                self.store().create_app(name, &actor.user).await?
            }
            None => self.create_randomly_named_app(actor).await?,
        };
        self.audit(actor, Some(&app), "app.create", format!("created {}", app.name)).await;
        // Lines about an earlier app of this name (its processes' last exits) are not this one's.
        self.events().forget(&app.name);
        if let Some(git) = &self.git {
            // A failure here is not the app's end: the first push creates the repository.
            if let Err(err) = git.ensure_repo(&app.name).await {
                tracing::warn!(app = %app.name, error = %err, "could not create the git repository");
            }
        }
        self.sync_routes().await?;
        Ok(app)
    }

    async fn create_randomly_named_app(&self, actor: &Actor) -> Result<App> {
        for _ in 0..10 {
            let name = random_app_name();
            match self.store().create_app(&name, &actor.user).await {
                Err(StoreError::Conflict(_)) => continue,
                other => return Ok(other?),
            }
        }
        Err(Error::Conflict("could not find a free random app name; pass one".into()))
    }

    /// Makes pushes to `branch` (and only to it) deploy the app.
    pub async fn set_deploy_branch(&self, actor: &Actor, app: &App, branch: &str) -> Result<App> {
        validate::branch_name(branch)?;
        let app = self.store().set_deploy_branch(app, branch).await?;
        if let Some(git) = &self.git {
            git.point_head(&app.name, branch).await?;
        }
        self.audit(actor, Some(&app), "app.update", format!("deploy branch {branch}")).await;
        Ok(app)
    }

    /// Destroys an app and everything paas made for it: containers, images, repository.
    /// A build under way is cancelled; a rollout under way finishes first, so nothing of
    /// the app is started after it is gone.
    /// Only its owner or an admin may, as on Heroku.
    pub async fn destroy_app(&self, actor: &Actor, app: &App) -> Result<()> {
        let name = app.name.as_str();
        let owner = self.store().role(app, &actor.user).await?.as_deref() == Some("owner");
        if !actor.is_admin() && !owner {
            return Err(Error::Forbidden(format!(
                "only {name}'s owner or an admin can destroy it"
            )));
        }
        // Its add-ons hold data that must never go as a side effect: they are destroyed on
        // their own, by name.
        let owned: Vec<String> = self
            .store()
            .addons()
            .await?
            .into_iter()
            .filter(|addon| addon.app_id == Some(app.id))
            .map(|addon| addon.name)
            .collect();
        if !owned.is_empty() {
            return Err(Error::Conflict(format!(
                "{name} has add-ons made for it, whose data would go with it: {}. Destroy \
                 them first (`paas addons:destroy NAME --confirm NAME`; capture a backup \
                 before, if you want the data)",
                owned.join(", ")
            )));
        }
        let attached = self.store().attachments_of(app).await?;
        let volumes = self.store().volumes(app).await?;
        self.destroying(&app.name).cancel();
        let _lock = self.wait_for_deploy_lock(app, &paas_builder::BuildLog::new()).await;
        let images: Vec<String> =
            self.store().releases(app).await?.into_iter().filter_map(|r| r.image).collect();
        self.stop_all(&app.name).await?;
        if let Some(runner) = &self.runner {
            // Other apps' add-ons it shared: they stay, off its network, which goes.
            for attachment in &attached {
                if let Err(err) = runner.detach_service(&attachment.addon, name).await {
                    tracing::warn!(addon = %attachment.addon, error = %err, "add-on still on a destroyed app's network");
                }
            }
            runner.remove_app_network(name).await;
            for volume in &volumes {
                if let Err(err) = runner.remove_app_volume(name, &volume.name).await {
                    tracing::warn!(volume = %volume.name, error = %err, "a destroyed app's volume is left");
                }
            }
        }
        self.store().delete_app(name).await?;
        if let Some(git) = &self.git {
            git.remove_repo(&app.name).await;
        }
        if let Some(builder) = &self.builder {
            for image in images.iter().collect::<std::collections::BTreeSet<_>>() {
                if let Err(err) = builder.remove_image(image).await {
                    tracing::warn!(app = %app.name, %image, error = %err, "image not removed");
                }
            }
        }
        self.events().forget(&app.name);
        self.live_deploys.forget(&app.name);
        self.github_queue.forget(&app.name);
        // A later app of this name starts with a deploy lock and token of its own.
        self.destroy_tokens.lock().unwrap_or_else(|p| p.into_inner()).remove(&app.name);
        self.audit(actor, Some(app), "app.destroy", format!("destroyed {name}")).await;
        self.sync_routes().await
    }

    pub async fn domains(&self, app: &App) -> Result<Vec<Domain>> {
        Ok(self.store().domains(app).await?)
    }

    /// Routes a custom hostname (or `*.example.com`) to the app.
    pub async fn add_domain(&self, actor: &Actor, app: &App, hostname: &str) -> Result<Domain> {
        let hostname = validate::hostname(hostname)?;
        let base = hostname.strip_prefix("*.").unwrap_or(&hostname);
        if base == self.domain() || base.ends_with(&format!(".{}", self.domain())) {
            return Err(Error::invalid(
                "invalid_domain",
                format!(
                    "{hostname} is under paas's own domain {}, where every app already has \
                     APP.{}; add a domain of your own",
                    self.domain(),
                    self.domain()
                ),
            ));
        }
        let domain = self.store().add_domain(app, &hostname).await?;
        self.audit(actor, Some(app), "domain.add", format!("added {hostname}")).await;
        self.sync_routes().await?;
        Ok(domain)
    }

    pub async fn remove_domain(&self, actor: &Actor, app: &App, hostname: &str) -> Result<()> {
        let hostname = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
        self.store().remove_domain(app, &hostname).await?;
        self.audit(actor, Some(app), "domain.remove", format!("removed {hostname}")).await;
        self.sync_routes().await
    }

    pub async fn config(&self, app: &App) -> Result<BTreeMap<String, String>> {
        Ok(self.store().config(app).await?)
    }

    /// Sets (`Some`) and removes (`None`) config vars, making one new release; returns it and
    /// `true`. A change that changes nothing (values already so, keys already absent) makes
    /// no release, as on Heroku: the current release comes back with `false`. Everything is
    /// validated before anything is written, so a refused change leaves no trace.
    pub async fn update_config(
        &self,
        actor: &Actor,
        app: &App,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<(Release, bool)> {
        // An add-on's URL changes with its attachment, never by hand: a typo would cut the
        // app off its database, and the add-on would still count as attached.
        let managed = self.addon_vars(app).await?;
        if let Some((key, addon)) = changes.keys().find_map(|k| Some((k, managed.get(k)?))) {
            return Err(Error::invalid(
                "addon_config_var",
                format!(
                    "{key} is set by add-on {addon} and changes only with it: `paas \
                     addons:detach {addon} -a {}` removes it (or, on the app it was made for, \
                     `paas addons:destroy {addon}`)",
                    app.name
                ),
            ));
        }
        self.change_config(actor, app, changes, None).await
    }

    /// [`Paas::update_config`] without the add-on guard, with the release's description
    /// given (`Attach DATABASE (shop-postgres)`) or made from the changes.
    pub(crate) async fn change_config(
        &self,
        actor: &Actor,
        app: &App,
        mut changes: BTreeMap<String, Option<String>>,
        description: Option<String>,
    ) -> Result<(Release, bool)> {
        if changes.is_empty() {
            return Err(Error::invalid("no_config_changes", "no config vars given"));
        }
        for (key, value) in &changes {
            validate::config_key(key)?;
            if let Some(value) = value {
                validate::config_value(key, value)?;
            }
        }
        // Under the deploy lock, so releases roll out in the order they were made, and the
        // config compared with is the one changed.
        let log = paas_builder::BuildLog::new();
        let _lock = self.lock_deploys(app, &log).await?;
        let stored = self.store().config(app).await?;
        let current = self.store().current_release(app).await?;
        // A change stays unless both the stored config and the serving release have it: after
        // a rollout that failed they differ, and setting the value again retries it.
        changes.retain(|key, value| {
            let has = |config: &BTreeMap<String, String>| config.get(key) == value.as_ref();
            !has(&stored) || !current.as_ref().is_some_and(|r| has(&r.config))
        });
        if let Some(current) = current.filter(|_| changes.is_empty()) {
            return Ok((current, false));
        }
        let kept = stored.iter().filter(|(key, _)| !changes.contains_key(*key));
        let set = changes.iter().filter_map(|(key, value)| Some((key, value.as_ref()?)));
        validate::config_size(kept, set)?;
        let description = description.unwrap_or_else(|| config_description(&changes));
        let changes: Vec<_> = changes.into_iter().collect();
        let release =
            self.store().update_config(app, &changes, &description, actor.email()).await?;
        // The description names keys only: values never reach the audit log.
        let detail = format!("{description} (v{})", release.version);
        self.audit(actor, Some(app), "config.update", detail).await;
        self.announce_release(app, &release);
        if release.image.is_some() {
            self.roll_out(app, &release, &log).await.map_err(|err| {
                Error::invalid(
                    "rollout_failed",
                    format!(
                        "config saved as v{}, but it did not roll out, so the previous release \
                         keeps serving: {err}",
                        release.version
                    ),
                )
            })?;
        }
        Ok((release, true))
    }

    pub async fn releases(&self, app: &App) -> Result<Vec<Release>> {
        Ok(self.store().releases(app).await?)
    }

    pub async fn release(&self, app: &App, version: i64) -> Result<Release> {
        Ok(self.store().release(app, version).await?)
    }

    pub async fn formation(&self, app: &App) -> Result<BTreeMap<String, i64>> {
        Ok(self.store().formation(app).await?)
    }

    /// Sets process quantities. Only the process types of the latest release can be scaled,
    /// so before the first deploy none can, as on Heroku (the first deploy starts `web=1`);
    /// a type the formation has can always go to 0, also once no release declares it. All
    /// types together are capped at [`MAX_PROCESSES`].
    pub async fn scale(
        &self,
        actor: &Actor,
        app: &App,
        changes: BTreeMap<String, i64>,
    ) -> Result<BTreeMap<String, i64>> {
        if changes.is_empty() {
            return Err(Error::invalid("no_formation_changes", "no process types given"));
        }
        let known =
            self.store().latest_release(app).await?.map(|r| r.process_types).unwrap_or_default();
        let formation = self.store().formation(app).await?;
        for (process_type, quantity) in &changes {
            validate::process_type(process_type)?;
            if process_type == "release" {
                return Err(Error::invalid(
                    "invalid_process_type",
                    "`release` runs once per deploy (the release phase) and cannot be scaled",
                ));
            }
            let leaving = *quantity == 0 && formation.contains_key(process_type);
            if !known.contains_key(process_type) && !leaving {
                return Err(unknown_process_type(app, process_type, &known));
            }
            if !(0..=MAX_QUANTITY).contains(quantity) {
                return Err(Error::invalid(
                    "invalid_quantity",
                    format!("{process_type}={quantity}: quantity must be 0 to {MAX_QUANTITY}"),
                ));
            }
        }
        let before: i64 = formation.values().sum();
        let mut after = formation;
        after.extend(changes.clone());
        let total: i64 = after.values().sum();
        // Scaling down is always allowed, even from over the cap.
        if total > MAX_PROCESSES && total > before {
            return Err(Error::invalid(
                "too_many_processes",
                format!(
                    "that makes {total} processes; an app may run at most {MAX_PROCESSES} in \
                     total, all process types together"
                ),
            ));
        }
        self.store().scale(app, &changes).await?;
        let wanted: Vec<String> = changes.iter().map(|(t, n)| format!("{t}={n}")).collect();
        self.events().emit(&app.name, "deploy", format!("Scaling to {}", wanted.join(" ")));
        self.audit(actor, Some(app), "scale", format!("scaled to {}", wanted.join(" "))).await;
        self.reconcile_formation(app).await?;
        self.formation(app).await
    }
}

/// Heroku's words for a process type it cannot scale, and what the app has instead.
fn unknown_process_type(app: &App, process_type: &str, known: &BTreeMap<String, String>) -> Error {
    let names: Vec<&str> = known.keys().map(String::as_str).filter(|t| *t != "release").collect();
    let why = if names.is_empty() {
        format!(
            "{} has no deployed process types yet. Deploy it first (git push); the first \
             deploy starts web=1",
            app.name
        )
    } else {
        format!("{}'s latest release has: {}", app.name, names.join(", "))
    };
    Error::invalid(
        "unknown_process_type",
        format!("Couldn't find that process type ({process_type}): {why}"),
    )
}

/// Heroku-style release description: "Set A, B config vars", "Remove C config vars".
fn config_description(changes: &BTreeMap<String, Option<String>>) -> String {
    let (set, removed): (Vec<_>, Vec<_>) = changes.iter().partition(|(_, v)| v.is_some());
    let names = |list: Vec<(&String, &Option<String>)>| {
        list.into_iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
    };
    match (set.is_empty(), removed.is_empty()) {
        (false, true) => format!("Set {} config vars", names(set)),
        (true, false) => format!("Remove {} config vars", names(removed)),
        _ => format!("Set {}; remove {} config vars", names(set), names(removed)),
    }
}

fn random_app_name() -> String {
    const ADJECTIVES: &[&str] = &[
        "amber", "brave", "calm", "daring", "eager", "fancy", "gentle", "happy", "icy", "jolly",
        "keen", "lively", "mellow", "noble", "proud", "quiet", "rapid", "sunny", "tidy", "vivid",
    ];
    const NOUNS: &[&str] = &[
        "brook", "cloud", "dawn", "field", "forest", "harbor", "island", "lake", "meadow",
        "mountain", "ocean", "peak", "river", "shore", "sky", "star", "stone", "valley", "wave",
        "wind",
    ];
    let mut rng = rand::rng();
    format!(
        "{}-{}-{:04}",
        ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
        NOUNS[rng.random_range(0..NOUNS.len())],
        rng.random_range(0..10_000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_read_like_heroku() {
        let changes = |pairs: &[(&str, Option<&str>)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            config_description(&changes(&[("A", Some("1")), ("B", Some("2"))])),
            "Set A, B config vars"
        );
        assert_eq!(config_description(&changes(&[("A", None)])), "Remove A config vars");
        assert_eq!(
            config_description(&changes(&[("A", None), ("B", Some("2"))])),
            "Set B; remove A config vars"
        );
    }

    #[test]
    fn random_names_are_valid() {
        for _ in 0..200 {
            let name = random_app_name();
            assert!(validate::app_name(&name).is_ok(), "{name}");
        }
    }
}
