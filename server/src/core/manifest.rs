//! Routes, volumes and scheduled jobs declared in `paas.toml` (and `cron` in `app.json`),
//! made the app's when a build of them is released: checked as the CLI's commands check
//! them before the release is made, applied before it rolls out, so its processes start
//! with their volumes and routes.
//!
//! A section the build declares replaces what the CLI set for routes and jobs; volumes are
//! only ever added by a deploy, since removing one deletes its files. A section left out
//! changes nothing.

use std::collections::BTreeSet;

use paas_builder::{AppManifest, BuildLog};
use paas_store::App;

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};
use super::jobs::{MAX_JOBS, check_job};
use super::routes::{MAX_ROUTES, check_route};
use super::volumes::check_volume;

/// What the manifest changes, checked.
#[derive(Debug, Default)]
pub(crate) struct ManifestChanges {
    routes: Option<Vec<(String, String)>>,
    new_volumes: Vec<(String, String)>,
    /// (schedule as stored, command).
    cron: Option<Vec<(String, String)>>,
}

fn too_many(what: &str, most: usize) -> Error {
    Error::invalid("invalid_manifest", format!("paas.toml declares more than {most} {what}"))
}

/// Names the file in an error about one of its entries.
fn in_manifest(section: &str, err: Error) -> Error {
    Error::invalid("invalid_manifest", format!("paas.toml [{section}]: {err}"))
}

impl Paas {
    /// What the build of a release declared, kept with the build: for a release that goes
    /// out later than its build (an approval, a promotion).
    pub(crate) async fn build_declarations(&self, build_id: Option<i64>) -> Result<AppManifest> {
        let Some(id) = build_id else { return Ok(AppManifest::default()) };
        match self.store().build_manifest(id).await? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| Error::Internal(format!("build {id}'s declarations: {e}"))),
            None => Ok(AppManifest::default()),
        }
    }

    /// Checks `manifest` as `routes:add`, `volumes:add` and `cron:add` would.
    pub(crate) async fn check_manifest(
        &self,
        app: &App,
        manifest: &AppManifest,
    ) -> Result<ManifestChanges> {
        let mut changes = ManifestChanges::default();
        if let Some(routes) = &manifest.routes {
            if routes.len() > MAX_ROUTES {
                return Err(too_many("routes", MAX_ROUTES));
            }
            let mut checked = Vec::new();
            for (prefix, process_type) in routes {
                let prefix =
                    check_route(prefix, process_type).map_err(|e| in_manifest("routes", e))?;
                checked.push((prefix, process_type.clone()));
            }
            changes.routes = Some(checked);
        }
        if let Some(volumes) = &manifest.volumes {
            let mut existing: Vec<(String, String)> =
                self.store().volumes(app).await?.into_iter().map(|v| (v.name, v.path)).collect();
            for (name, path) in volumes {
                if existing.iter().any(|(have, _)| have == name) {
                    continue;
                }
                let path =
                    check_volume(&existing, name, path).map_err(|e| in_manifest("volumes", e))?;
                existing.push((name.clone(), path.clone()));
                changes.new_volumes.push((name.clone(), path));
            }
        }
        if let Some(jobs) = &manifest.cron {
            if jobs.len() > MAX_JOBS {
                return Err(too_many("scheduled jobs", MAX_JOBS));
            }
            let mut checked = Vec::new();
            for job in jobs {
                let (schedule, command) =
                    check_job(&job.schedule, &job.command).map_err(|e| in_manifest("cron", e))?;
                // (Or app.json's `cron`: the error names the job either way.)
                checked.push((schedule.as_str().to_string(), command));
            }
            changes.cron = Some(checked);
        }
        Ok(changes)
    }

    /// Makes the app's routes, volumes and jobs what the release's build declared, each
    /// change in the build log and the audit log. Jobs that stay keep their history.
    pub(crate) async fn apply_manifest(
        &self,
        actor: &Actor,
        app: &App,
        changes: ManifestChanges,
        log: &BuildLog,
    ) -> Result<()> {
        let mut done = Vec::new();
        for (name, path) in &changes.new_volumes {
            self.store().add_volume(app, name, path, actor.email()).await?;
            done.push(format!("added volume {name} at {path}"));
        }
        if let Some(routes) = &changes.routes {
            let declared: BTreeSet<&str> = routes.iter().map(|(p, _)| p.as_str()).collect();
            for route in self.store().routes(Some(app)).await? {
                if !declared.contains(route.prefix.as_str()) {
                    self.store().remove_route(app, &route.prefix).await?;
                    done.push(format!("removed route {}", route.prefix));
                }
            }
            let current = self.store().routes(Some(app)).await?;
            for (prefix, process_type) in routes {
                let same =
                    current.iter().any(|r| &r.prefix == prefix && &r.process_type == process_type);
                if !same {
                    self.store().set_route(app, prefix, process_type, actor.email()).await?;
                    done.push(format!("routed {prefix} to {process_type}"));
                }
            }
        }
        if let Some(jobs) = &changes.cron {
            let current = self.store().cron_jobs(Some(app)).await?;
            for job in &current {
                if !jobs.iter().any(|(s, c)| *s == job.schedule && *c == job.command) {
                    self.store().remove_cron_job(app, job.id).await?;
                    done.push(format!("removed scheduled job {} at {:?}", job.id, job.schedule));
                }
            }
            for (schedule, command) in jobs {
                if !current.iter().any(|j| j.schedule == *schedule && j.command == *command) {
                    let job =
                        self.store().add_cron_job(app, schedule, command, actor.email()).await?;
                    // The schedule, not the command: it may carry a secret.
                    done.push(format!("scheduled job {} at {:?}", job.id, job.schedule));
                }
            }
        }
        if done.is_empty() {
            return Ok(());
        }
        log.step("Applying the routes, volumes and jobs the app declares");
        for change in &done {
            log.info(change);
        }
        self.audit(actor, Some(app), "manifest", format!("from paas.toml: {}", done.join("; ")))
            .await;
        Ok(())
    }
}
