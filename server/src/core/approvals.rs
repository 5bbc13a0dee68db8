//! Tag deploys that wait for a person: an app with `deploy_tags` builds a pushed tag into a
//! release that waits (the running release serves on); `paas releases:approve vN` rolls it
//! out, `releases:reject vN` turns it down, and a newer tag supersedes it. Who approved or
//! rejected is in the audit log.

use paas_builder::BuildLog;
use paas_store::{App, Release, ReleaseStatus};

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};

/// A tag pattern: `*`, `v*`, `release-*`: letters, digits, `.`, `_`, `-`, `/` and `*`.
fn tag_pattern(pattern: &str) -> Result<()> {
    let valid = !pattern.is_empty()
        && pattern.len() <= 100
        && pattern.chars().all(|c| c.is_ascii_alphanumeric() || "._-/*".contains(c));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_tag_pattern",
            format!(
                "{pattern:?} is not a tag pattern: letters, digits, . _ - / and * (any run of \
                 characters), like v* or release-*"
            ),
        ))
    }
}

impl Paas {
    /// Deploys pushed tags matching `pattern` (waiting for approval); empty: tags are
    /// refused again.
    pub async fn set_deploy_tags(&self, actor: &Actor, app: &App, pattern: &str) -> Result<App> {
        let pattern = pattern.trim();
        let (setting, detail) = match pattern {
            "" => (None, "stopped deploying tags".to_string()),
            pattern => {
                tag_pattern(pattern)?;
                (Some(pattern), format!("deploys tags matching {pattern}, after approval"))
            }
        };
        let app = self.store().set_deploy_tags(app, setting).await?;
        self.audit(actor, Some(&app), "app.update", detail).await;
        Ok(app)
    }

    /// The release `version` if it waits for approval; else why it cannot be decided on.
    async fn waiting_release(&self, app: &App, version: i64) -> Result<Release> {
        let release = self.store().release(app, version).await?;
        if release.status != ReleaseStatus::Waiting {
            return Err(Error::invalid(
                "release_not_waiting",
                format!(
                    "v{version} is {}: only a release waiting for approval can be approved or \
                     rejected",
                    release.status.as_str()
                ),
            ));
        }
        Ok(release)
    }

    /// Rolls a waiting release out. If releases were made since it was (a config change), it
    /// goes out as a new release with today's config, so the newest release is what runs.
    pub async fn approve_release(
        &self,
        actor: &Actor,
        app: &App,
        version: i64,
        log: &BuildLog,
    ) -> Result<Release> {
        let _lock = self.lock_deploys(app, log).await?;
        let waiting = self.waiting_release(app, version).await?;
        let manifest = self.build_declarations(waiting.build_id).await?;
        // Its declarations first: if they cannot be applied, it still waits, to approve again.
        let changes = self.check_manifest(app, &manifest).await?;
        self.apply_manifest(actor, app, changes, log).await?;
        let latest = self.store().latest_release(app).await?;
        let release = if latest.is_some_and(|l| l.version == waiting.version) {
            self.store().set_release_status(&waiting, ReleaseStatus::Pending).await?;
            Release { status: ReleaseStatus::Pending, ..waiting }
        } else {
            self.store().set_release_status(&waiting, ReleaseStatus::Superseded).await?;
            let image = waiting.image.clone().unwrap_or_default();
            let description = format!("Approve v{version}: {}", waiting.description);
            self.store()
                .create_release_of_image(app, &waiting, &image, &description, actor.email())
                .await?
        };
        self.announce_release(app, &release);
        log.step(format!(
            "v{version} approved by {}; rolling out v{}",
            actor.email(),
            release.version
        ));
        let rolled_out = self.roll_out(app, &release, log).await;
        let outcome = if rolled_out.is_ok() { "" } else { ", which failed to roll out" };
        let detail = format!("approved v{version} as v{}{outcome}", release.version);
        self.audit(actor, Some(app), "release.approve", detail).await;
        rolled_out?;
        Ok(release)
    }

    /// Turns a waiting release down: it never runs, and the running release serves on.
    pub async fn reject_release(&self, actor: &Actor, app: &App, version: i64) -> Result<Release> {
        // Under the deploy lock: an approval of it under way finishes first, and then it is
        // no longer waiting.
        let _lock = self.lock_deploys(app, &BuildLog::new()).await?;
        let waiting = self.waiting_release(app, version).await?;
        self.store().set_release_status(&waiting, ReleaseStatus::Rejected).await?;
        self.audit(actor, Some(app), "release.reject", format!("rejected v{version}")).await;
        self.events().emit(
            &app.name,
            "deploy",
            format!("v{version} rejected by {}", actor.email()),
        );
        Ok(Release { status: ReleaseStatus::Rejected, ..waiting })
    }
}
