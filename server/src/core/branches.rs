//! Deploying a branch already pushed to the app's repository, from a front end that is not
//! git (the dashboard): the branches there, and a deploy that runs in the background with
//! its log kept where any number of viewers can follow it, and come back to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paas_builder::BuildLog;
use paas_store::{App, DeploySource};
use tokio::process::Command;

use super::Paas;
use super::audit::Actor;
use super::deploy::SourceTree;
use super::error::{Error, Result};
use super::repos::{CheckoutError, branch_head, io_error};
use super::validate;

/// How long a finished deploy's log stays in memory for viewers who come back to it (the
/// stored build log outlives it).
const KEEP_FINISHED: Duration = Duration::from_secs(15 * 60);

/// A branch of an app's repository.
#[derive(Debug, Clone)]
pub struct Branch {
    pub name: String,
    pub sha: String,
    /// The tip's subject line.
    pub subject: String,
    /// The tip's commit time, RFC 3339.
    pub committed_at: String,
}

/// A deploy started by [`Paas::deploy_branch`]: its log, and how it ended once it has.
#[derive(Clone)]
pub struct LiveDeploy {
    /// Counts the app's deploys from this server start, to tell one from the next.
    pub number: u64,
    pub branch: String,
    pub sha: String,
    pub started_by: String,
    pub log: BuildLog,
    outcome: Arc<Mutex<Option<std::result::Result<i64, String>>>>,
}

impl LiveDeploy {
    /// `None` while it runs; then the release it made, or why it failed.
    pub fn outcome(&self) -> Option<std::result::Result<i64, String>> {
        self.outcome.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Each app's latest deploy started from outside git.
#[derive(Default)]
pub(crate) struct LiveDeploys {
    by_app: Mutex<HashMap<String, LiveDeploy>>,
    count: std::sync::atomic::AtomicU64,
}

impl LiveDeploys {
    /// Forgets a destroyed app's deploy: an app made later with its name is another app.
    pub(crate) fn forget(&self, app: &str) {
        self.by_app.lock().unwrap_or_else(|p| p.into_inner()).remove(app);
    }
}

impl Paas {
    /// The app's branches, newest commit first.
    pub async fn branches(&self, app: &App) -> Result<Vec<Branch>> {
        let Some(git) = &self.git else { return Ok(Vec::new()) };
        let repo = git.ensure_repo(&app.name).await?;
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(&repo)
            .args([
                "for-each-ref",
                "--sort=-committerdate",
                "--format=%(refname:short)%00%(objectname)%00%(committerdate:iso-strict)%00%(subject)",
                "refs/heads",
            ])
            .output()
            .await
            .map_err(io_error)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(Error::Internal(format!("git for-each-ref: {}", stderr.trim())));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        Ok(text
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(4, '\0');
                Some(Branch {
                    name: parts.next()?.to_string(),
                    sha: parts.next()?.to_string(),
                    committed_at: parts.next()?.to_string(),
                    subject: parts.next().unwrap_or_default().to_string(),
                })
            })
            .collect())
    }

    /// The app's latest deploy started by [`Paas::deploy_branch`], while it is kept.
    pub fn live_deploy(&self, app: &App) -> Option<LiveDeploy> {
        self.live_deploys.by_app.lock().unwrap_or_else(|p| p.into_inner()).get(&app.name).cloned()
    }

    /// Deploys the tip of `branch` in the background: waits for the app's deploy lock,
    /// checks the commit out, builds, releases and rolls out, as a push would. Returns at
    /// once with the deploy, whose log the caller can follow.
    pub async fn deploy_branch(
        &self,
        actor: &Actor,
        app: &App,
        branch: &str,
    ) -> Result<LiveDeploy> {
        validate::branch_name(branch)?;
        let git =
            self.git.clone().ok_or_else(|| Error::Unavailable("git is not enabled".into()))?;
        let repo = git.ensure_repo(&app.name).await?;
        let refname = format!("refs/heads/{branch}");
        let Some(sha) = branch_head(&repo, &refname).await? else {
            return Err(Error::NotFound(format!("branch {branch} of {}", app.name)));
        };
        let number = self.live_deploys.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let live = LiveDeploy {
            number,
            branch: branch.to_string(),
            sha: sha.clone(),
            started_by: actor.email().to_string(),
            log: BuildLog::new(),
            outcome: Arc::default(),
        };
        self.live_deploys
            .by_app
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.name.clone(), live.clone());
        let (paas, actor, app, handle) = (self.clone(), actor.clone(), app.clone(), live.clone());
        let branch = branch.to_string();
        tokio::spawn(async move {
            let log = &handle.log;
            log.step(format!(
                "Deploying {branch} ({}) for {}",
                &sha[..sha.len().min(7)],
                actor.email()
            ));
            let result = async {
                let _lock = paas.lock_deploys(&app, log).await?;
                let checkout = git.scratch_dir(&app.name).await?;
                let commit_message = match git.checkout(&repo, &sha, &[], checkout.path()).await {
                    Ok(message) => message,
                    Err(CheckoutError::TooLarge(why)) => {
                        return Err(Error::invalid("too_large", why));
                    }
                    Err(CheckoutError::Failed(err)) => return Err(err),
                };
                let tree = SourceTree {
                    dir: checkout.path().to_path_buf(),
                    source: DeploySource::Dashboard,
                    commit_sha: Some(sha.clone()),
                    commit_message: Some(commit_message),
                    git_tag: None,
                };
                paas.deploy_locked(&actor, &app, &tree, log, paas.stopping().cancelled()).await
            }
            .await;
            let outcome = match result {
                // The rollout has said "Released vN" in the log already.
                Ok(release) => Ok(release.version),
                Err(err) => {
                    let message = err.public_message();
                    log.error(format!("Deploy failed: {message}"));
                    Err(message)
                }
            };
            *handle.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
            log.close();
            tokio::time::sleep(KEEP_FINISHED).await;
            let mut live = paas.live_deploys.by_app.lock().unwrap_or_else(|p| p.into_inner());
            if live.get(&app.name).is_some_and(|d| d.number == handle.number) {
                live.remove(&app.name);
            }
        });
        Ok(live)
    }
}
