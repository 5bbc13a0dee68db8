//! Review apps: with a pipeline's review apps on, a pull request opened (or updated) on the
//! repository its staging app is linked to gets an app of its own, `PIPELINE-pr-N`, in the
//! pipeline's `review` stage: config vars copied from that app, add-ons of its own, the pull
//! request's commit deployed, and its URL sent back to GitHub as a commit status. Closing
//! the pull request destroys the app and all it owned: add-ons, volumes, containers, images.
//! Pull requests from forks get none unless the pipeline allows them: their code would run
//! with the copied config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use paas_store::{App, GithubLink, Pipeline, StoreError};

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};
use super::validate;

/// A pipeline's review app settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewApps {
    /// The pipeline's app whose GitHub link the pull requests come through, and whose config
    /// vars are copied.
    pub app: String,
    #[serde(default)]
    pub copy_config: Vec<String>,
    /// Add-on services each review app gets its own of (`postgres`, `redis`).
    #[serde(default)]
    pub addons: Vec<String>,
    /// Pull requests from forks get review apps too.
    #[serde(default)]
    pub forks: bool,
}

/// Longest pipeline name that leaves room for `-pr-NNNNN` in an app name.
const MAX_PIPELINE_NAME: usize = 21;

/// `shop-pr-7`.
pub(crate) fn review_app_name(pipeline: &str, number: u64) -> Result<String> {
    let name = format!("{pipeline}-pr-{number}");
    validate::app_name(&name)?;
    Ok(name)
}

impl Paas {
    /// Turns the pipeline's review apps on with `settings`, or off with `None` (review apps
    /// that exist stay until their pull requests close).
    pub async fn set_review_apps(
        &self,
        actor: &Actor,
        pipeline: &Pipeline,
        settings: Option<&ReviewApps>,
    ) -> Result<()> {
        self.may_change_pipeline(actor, pipeline).await?;
        let Some(settings) = settings else {
            self.store().set_pipeline_review(pipeline, None).await?;
            let detail = format!("turned review apps of {} off", pipeline.name);
            self.audit(actor, None, "pipeline.review", detail).await;
            return Ok(());
        };
        if pipeline.name.len() > MAX_PIPELINE_NAME {
            return Err(Error::invalid(
                "pipeline_name_too_long",
                format!(
                    "review apps are named {}-pr-N, longer than an app name may be: use a \
                     pipeline of at most {MAX_PIPELINE_NAME} characters",
                    pipeline.name
                ),
            ));
        }
        let app = self.app_for(actor, &settings.app).await?;
        let in_pipeline = self.store().pipeline_stage_of(&app).await?;
        if in_pipeline.is_none_or(|s| s.pipeline != pipeline.name) {
            return Err(Error::invalid(
                "not_in_the_pipeline",
                format!("{} is not in pipeline {}", app.name, pipeline.name),
            ));
        }
        if self.store().github_link(&app).await?.is_none() {
            return Err(Error::invalid(
                "not_linked",
                format!(
                    "{} is not linked to GitHub, where pull requests come from: `paas \
                     github:link OWNER/REPO -a {}` first",
                    app.name, app.name
                ),
            ));
        }
        for key in &settings.copy_config {
            validate::config_key(key)?;
        }
        for service in &settings.addons {
            if !super::SERVICES.iter().any(|s| s.name == service) {
                return Err(Error::invalid(
                    "unknown_addon_service",
                    format!("{service:?} is not an add-on service: postgres or redis"),
                ));
            }
        }
        let json = serde_json::to_string(settings).map_err(|e| Error::Internal(e.to_string()))?;
        self.store().set_pipeline_review(pipeline, Some(&json)).await?;
        let detail = format!("review apps of {} from {}'s pull requests", pipeline.name, app.name);
        self.audit(actor, Some(&app), "pipeline.review", detail).await;
        Ok(())
    }

    /// The pipeline whose review apps come through `app`'s GitHub link, with its settings.
    pub(crate) async fn review_apps_of(&self, app: &str) -> Result<Option<(Pipeline, ReviewApps)>> {
        for pipeline in self.store().pipelines().await? {
            let Some(json) = &pipeline.review else { continue };
            let settings: ReviewApps = serde_json::from_str(json)
                .map_err(|e| Error::Internal(format!("review apps of {}: {e}", pipeline.name)))?;
            if settings.app == app {
                return Ok(Some((pipeline, settings)));
            }
        }
        Ok(None)
    }

    /// The review app of pull request `number`, made as `source`'s settings say if it does
    /// not exist yet.
    pub(crate) async fn review_app(
        &self,
        actor: &Actor,
        source: &App,
        pipeline: &Pipeline,
        settings: &ReviewApps,
        number: u64,
    ) -> Result<App> {
        let name = review_app_name(&pipeline.name, number)?;
        match self.store().app(&name).await {
            Ok(app) if self.is_review_app_of(&app, &pipeline.name).await? => return Ok(app),
            // Another app of that name (made ahead by someone) never gets the pull request's
            // code and the pipeline's config.
            Ok(app) => {
                return Err(Error::Conflict(format!(
                    "an app named {} exists and is not a review app of pipeline {}",
                    app.name, pipeline.name
                )));
            }
            Err(StoreError::NotFound(_)) => {}
            Err(err) => return Err(err.into()),
        }
        let app = self.create_app(Some(&name), actor).await?;
        self.add_to_pipeline(actor, pipeline, &app, "review").await?;
        let config = self.store().config(source).await?;
        let copied: BTreeMap<String, Option<String>> = settings
            .copy_config
            .iter()
            .filter_map(|key| config.get(key).map(|value| (key.clone(), Some(value.clone()))))
            .collect();
        if !copied.is_empty() {
            self.update_config(actor, &app, copied).await?;
        }
        for service in &settings.addons {
            self.create_addon(actor, &app, service, None, None).await?;
        }
        Ok(app)
    }

    /// Whether `app` sits in the review stage of `pipeline`.
    async fn is_review_app_of(&self, app: &App, pipeline: &str) -> Result<bool> {
        let stage = self.store().pipeline_stage_of(app).await?;
        Ok(stage.is_some_and(|s| s.pipeline == pipeline && s.stage == "review"))
    }

    /// Destroys the review app of pull request `number` and everything it owned.
    pub(crate) async fn remove_review_app(
        &self,
        actor: &Actor,
        pipeline: &str,
        number: u64,
    ) -> Result<String> {
        let name = review_app_name(pipeline, number)?;
        let app = match self.store().app(&name).await {
            Ok(app) if self.is_review_app_of(&app, pipeline).await? => app,
            Ok(_) => return Ok(format!("{name} is not a review app of {pipeline}; left alone")),
            Err(StoreError::NotFound(_)) => return Ok(format!("no review app {name} to remove")),
            Err(err) => return Err(err.into()),
        };
        // Its add-ons were made for it alone.
        for addon in self.store().addons().await? {
            if addon.app_id == Some(app.id) {
                self.destroy_addon(actor, &addon).await?;
            }
        }
        self.destroy_app(actor, &app).await?;
        Ok(format!("removed review app {name}"))
    }
}

/// Whether a pull request may have a review app: from the repository itself, or a fork
/// where the settings allow forks.
pub(crate) fn review_allowed(
    link: &GithubLink,
    head_repository: &str,
    settings: &ReviewApps,
) -> bool {
    settings.forks || head_repository.eq_ignore_ascii_case(&link.repository)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_apps_are_named_after_the_pipeline_and_the_pull_request() {
        assert_eq!(review_app_name("shop", 7).unwrap(), "shop-pr-7");
        assert!(review_app_name(&"a".repeat(MAX_PIPELINE_NAME), 99999).is_ok());
        assert!(review_app_name(&"a".repeat(MAX_PIPELINE_NAME + 5), 99999).is_err());
    }
}
