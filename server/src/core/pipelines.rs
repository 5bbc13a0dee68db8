//! Pipelines: apps in stages (development → staging → production). Promoting releases the
//! current image of one stage's app on the apps of the next stage, each with its own config
//! and its own release phase, with no build: what production runs is the image staging
//! tested, byte for byte.

use serde::{Deserialize, Serialize};

use paas_builder::BuildLog;
use paas_store::{App, Pipeline, Release, ReleaseStatus};

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};
use super::validate;

/// The stages, in the order releases move through them; `review` holds the review apps of
/// pull requests.
pub const STAGES: [&str; 4] = ["review", "development", "staging", "production"];

fn stage_index(stage: &str) -> Result<usize> {
    STAGES.iter().position(|s| *s == stage).ok_or_else(|| {
        Error::invalid(
            "invalid_stage",
            format!("{stage:?} is not a stage: use review, development, staging or production"),
        )
    })
}

/// A pipeline as `paas pipelines NAME` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineStatus {
    pub name: String,
    pub apps: Vec<StagedApp>,
    /// Review apps for pull requests, when on.
    #[serde(default)]
    pub review: Option<super::ReviewApps>,
}

/// An app of a pipeline, and what it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagedApp {
    pub app: String,
    pub stage: String,
    /// The release that serves, and what it is.
    pub release: Option<i64>,
    pub description: Option<String>,
    pub commit: Option<String>,
    /// Commits the stage before has that this app does not run yet (`None`: not known, or
    /// nothing to compare with).
    pub behind: Option<u64>,
    /// The stage before's app it was compared with.
    pub behind_of: Option<String>,
}

impl StagedApp {
    /// The commit it runs, shortened as git shows it.
    pub fn short_commit(&self) -> String {
        self.commit.as_deref().map(|c| c[..c.len().min(7)].to_string()).unwrap_or_default()
    }

    /// `v14 Deploy 3f9c2e1`, or that nothing is deployed.
    pub fn runs(&self) -> String {
        match (self.release, &self.description) {
            (Some(version), Some(description)) => format!("v{version} {description}"),
            _ => "(nothing deployed)".into(),
        }
    }

    /// `1 commit behind shop-staging`, `up to date with shop-staging`, or nothing when there
    /// is nothing to compare with.
    pub fn behind_words(&self) -> String {
        match (self.behind, &self.behind_of) {
            (Some(0), Some(of)) => format!("up to date with {of}"),
            (Some(1), Some(of)) => format!("1 commit behind {of}"),
            (Some(n), Some(of)) => format!("{n} commits behind {of}"),
            _ => String::new(),
        }
    }
}

impl Paas {
    pub async fn create_pipeline(&self, actor: &Actor, name: &str) -> Result<Pipeline> {
        validate::app_name(name).map_err(|_| {
            Error::invalid(
                "invalid_pipeline_name",
                format!(
                    "{name:?} cannot name a pipeline: use lowercase letters, digits and hyphens"
                ),
            )
        })?;
        let pipeline = self.store().create_pipeline(name, actor.email()).await?;
        self.audit(actor, None, "pipeline.create", format!("created pipeline {name}")).await;
        Ok(pipeline)
    }

    pub async fn pipelines(&self) -> Result<Vec<Pipeline>> {
        Ok(self.store().pipelines().await?)
    }

    pub async fn pipeline(&self, name: &str) -> Result<Pipeline> {
        Ok(self.store().pipeline(name).await?)
    }

    /// Deletes the pipeline; its apps stay, in no pipeline. Only someone with access to
    /// every app in it may.
    pub async fn destroy_pipeline(&self, actor: &Actor, pipeline: &Pipeline) -> Result<()> {
        for staged in self.store().pipeline_stages(pipeline).await? {
            self.app_for(actor, &staged.app).await?;
        }
        self.store().delete_pipeline(pipeline).await?;
        let detail = format!("destroyed pipeline {}", pipeline.name);
        self.audit(actor, None, "pipeline.destroy", detail).await;
        Ok(())
    }

    /// Whether `actor` may change `pipeline` (its apps, its review apps): an admin, whoever
    /// made it, or someone with access to an app in it. Others could otherwise put an app of
    /// theirs where promotions or pull requests go.
    pub(crate) async fn may_change_pipeline(
        &self,
        actor: &Actor,
        pipeline: &Pipeline,
    ) -> Result<()> {
        if actor.is_admin() || pipeline.created_by == actor.email() {
            return Ok(());
        }
        for staged in self.store().pipeline_stages(pipeline).await? {
            if self.app_for(actor, &staged.app).await.is_ok() {
                return Ok(());
            }
        }
        Err(Error::Forbidden(format!(
            "only whoever made pipeline {}, an admin, or someone with access to one of its apps \
             may change it",
            pipeline.name
        )))
    }

    /// Puts `app` (which the caller may change) at `stage` of `pipeline`.
    pub async fn add_to_pipeline(
        &self,
        actor: &Actor,
        pipeline: &Pipeline,
        app: &App,
        stage: &str,
    ) -> Result<()> {
        stage_index(stage)?;
        self.may_change_pipeline(actor, pipeline).await?;
        if let Some(current) = self.store().pipeline_stage_of(app).await?
            && current.pipeline != pipeline.name
        {
            return Err(Error::Conflict(format!(
                "{} is in pipeline {} already; `paas pipelines:remove -a {}` first",
                app.name, current.pipeline, app.name
            )));
        }
        self.store().set_pipeline_stage(pipeline, app, stage, actor.email()).await?;
        let detail = format!("put {} at stage {stage} of pipeline {}", app.name, pipeline.name);
        self.audit(actor, Some(app), "pipeline.add", detail).await;
        Ok(())
    }

    pub async fn remove_from_pipeline(&self, actor: &Actor, app: &App) -> Result<()> {
        if !self.store().remove_from_pipeline(app).await? {
            return Err(Error::NotFound(format!("{} in a pipeline", app.name)));
        }
        self.audit(actor, Some(app), "pipeline.remove", "left its pipeline".to_string()).await;
        Ok(())
    }

    /// Each stage's apps with what they run and how many commits behind the stage before
    /// they are. Apps the caller has no access to are left out.
    pub async fn pipeline_status(
        &self,
        actor: &Actor,
        pipeline: &Pipeline,
    ) -> Result<PipelineStatus> {
        let mut apps = Vec::new();
        for staged in self.store().pipeline_stages(pipeline).await? {
            let Ok(app) = self.app_for(actor, &staged.app).await else { continue };
            // A release made before the first deploy (config vars) runs nothing.
            let current = self.store().current_release(&app).await?.filter(|r| r.image.is_some());
            let commit = match current.as_ref().and_then(|r| r.build_id) {
                Some(build) => self.store().build_commit(build).await?,
                None => None,
            };
            apps.push(StagedApp {
                app: app.name,
                stage: staged.stage,
                release: current.as_ref().map(|r| r.version),
                description: current.map(|r| r.description),
                commit,
                behind: None,
                behind_of: None,
            });
        }
        apps.sort_by_key(|a| (stage_index(&a.stage).unwrap_or(0), a.app.clone()));
        // Each app against the first app of the stage before, in that app's repository
        // (where the commits it has and this one lacks are). The review stage is no stage
        // before development: each review app holds one pull request.
        for i in 0..apps.len() {
            let stage = stage_index(&apps[i].stage).unwrap_or(0);
            let before_stage = stage.checked_sub(1).filter(|s| STAGES[*s] != "review");
            let Some(before) = apps
                .iter()
                .find(|a| before_stage.is_some() && stage_index(&a.stage).ok() == before_stage)
            else {
                continue;
            };
            let (Some(from), Some(to), Some(git)) = (&apps[i].commit, &before.commit, &self.git)
            else {
                continue;
            };
            let repo = git.repo_path(&before.app);
            let behind = super::repos::commits_between(&repo, from, to).await;
            let name = before.app.clone();
            apps[i].behind = behind;
            apps[i].behind_of = Some(name);
        }
        let review = pipeline.review.as_deref().and_then(|json| serde_json::from_str(json).ok());
        Ok(PipelineStatus { name: pipeline.name.clone(), apps, review })
    }

    /// Releases `source`'s current image on the apps of the next stage of its pipeline (or
    /// on `to`, apps of a later stage), each with its own config and release phase, with no
    /// build. Returns the releases made, in the order they rolled out.
    pub async fn promote(
        &self,
        actor: &Actor,
        source: &App,
        to: &[String],
        log: &BuildLog,
    ) -> Result<Vec<(App, Release)>> {
        let builder = self.builder.as_ref().ok_or_else(|| Error::docker_unavailable("promote"))?;
        let Some(staged) = self.store().pipeline_stage_of(source).await? else {
            return Err(Error::invalid(
                "not_in_a_pipeline",
                format!(
                    "{} is in no pipeline: `paas pipelines:add PIPELINE -a {} --stage staging`",
                    source.name, source.name
                ),
            ));
        };
        let pipeline = self.store().pipeline(&staged.pipeline).await?;
        let stage = stage_index(&staged.stage)?;
        let stages = self.store().pipeline_stages(&pipeline).await?;
        let targets: Vec<String> = if to.is_empty() {
            let Some(next) = STAGES.get(stage + 1) else {
                return Err(Error::invalid(
                    "nothing_to_promote_to",
                    format!("{} is at the last stage, production", source.name),
                ));
            };
            let names: Vec<String> =
                stages.iter().filter(|s| s.stage == *next).map(|s| s.app.clone()).collect();
            if names.is_empty() {
                return Err(Error::invalid(
                    "nothing_to_promote_to",
                    format!(
                        "pipeline {} has no app at stage {next}: `paas pipelines:add {} -a APP \
                         --stage {next}`",
                        pipeline.name, pipeline.name
                    ),
                ));
            }
            names
        } else {
            for name in to {
                let later = stages
                    .iter()
                    .any(|s| s.app == *name && stage_index(&s.stage).is_ok_and(|i| i > stage));
                if !later {
                    return Err(Error::invalid(
                        "invalid_promotion_target",
                        format!(
                            "{name} is not at a stage after {}'s ({}) in pipeline {}",
                            source.name, staged.stage, pipeline.name
                        ),
                    ));
                }
            }
            to.to_vec()
        };
        // Every target is checked before any is changed.
        let mut apps = Vec::new();
        for name in &targets {
            apps.push(self.app_for(actor, name).await?);
        }

        let release = self.promotable_release(source).await?;
        let image = release.image.clone().unwrap_or_default();
        let build = release.build_id.unwrap_or_default();
        let commit = self.store().build_commit(build).await?;
        let short = commit.as_deref().map(|c| format!(", {}", &c[..c.len().min(7)]));
        let description =
            format!("Promote {} v{}{}", source.name, release.version, short.unwrap_or_default());
        let docker = |e: paas_builder::BuildError| Error::Internal(format!("image {image}: {e}"));
        let id = builder.image_id(&image).await.map_err(docker)?;
        let declared = self.build_declarations(release.build_id).await?;
        let mut made = Vec::new();
        for app in apps {
            let _lock = self.lock_deploys(&app, log).await?;
            // The build's paas.toml (routes, volumes, jobs) goes with its image.
            let changes = self.check_manifest(&app, &declared).await?;
            self.apply_manifest(actor, &app, changes, log).await?;
            let tag =
                paas_builder::app_image_tag(self.image_namespace.as_deref(), &app.name, build);
            builder.tag_image(&image, &tag).await.map_err(docker)?;
            let tag = self.publish_image(builder, &tag, log).await.map_err(docker)?;
            let promoted = self
                .store()
                .create_release_of_image(&app, &release, &tag, &description, actor.email())
                .await?;
            self.announce_release(&app, &promoted);
            log.step(format!(
                "Promoting {} v{} to {} as v{} (image {}, no build)",
                source.name,
                release.version,
                app.name,
                promoted.version,
                &id[..id.len().min(19)]
            ));
            let rolled_out = self.roll_out(&app, &promoted, log).await;
            let outcome = if rolled_out.is_ok() { "" } else { ", which failed to roll out" };
            let detail = format!(
                "promoted {} v{} as v{}{outcome}",
                source.name, release.version, promoted.version
            );
            self.audit(actor, Some(&app), "promote", detail).await;
            rolled_out?;
            made.push((app, promoted));
        }
        Ok(made)
    }

    /// The release of `source` a promotion takes: the one that serves, which must also be
    /// its latest that was meant to run (a newer one that failed, or still rolls out, is not
    /// what was tested; one that waits for approval, or was turned down, never ran).
    async fn promotable_release(&self, source: &App) -> Result<Release> {
        let latest = self.store().releases(source).await?.into_iter().find(|r| {
            ![ReleaseStatus::Waiting, ReleaseStatus::Rejected, ReleaseStatus::Superseded]
                .contains(&r.status)
        });
        let current = self.store().current_release(source).await?;
        let refuse = |why: String| Err(Error::invalid("release_not_promotable", why));
        match (latest, current) {
            (_, None) => refuse(format!("{} has no release that serves yet", source.name)),
            (Some(latest), Some(current)) if latest.version != current.version => {
                let what = match latest.status {
                    ReleaseStatus::Failed => "failed to roll out",
                    ReleaseStatus::Pending => "is still rolling out",
                    _ => "is newer",
                };
                refuse(format!(
                    "{}'s latest release v{} {what}, so v{} serves: promote once its latest \
                     release serves",
                    source.name, latest.version, current.version
                ))
            }
            (_, Some(current)) if current.image.is_none() || current.build_id.is_none() => {
                refuse(format!("{} v{} has no build to promote", source.name, current.version))
            }
            (_, Some(current)) => Ok(current),
        }
    }
}
