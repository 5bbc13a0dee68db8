//! The deploy pipeline: source → build → release (→ rollout, with the runner). git push, the
//! API, the dashboard and webhooks all call these operations, so every deploy is built,
//! recorded and logged the same way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use paas_builder::{BuildLog, BuildRequest};
use paas_store::{App, BuildOutcome, DeploySource, NewBuild, Release, ReleaseStatus};
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};

/// Why a build was not released: a newer commit is waiting to deploy.
pub(crate) const SUPERSEDED: &str = "superseded by a newer commit";
pub(crate) const INTERRUPTED: &str = "the deploy was interrupted before its rollout: whoever started it went away, or paas is stopping";

/// One lock per app: deploys of an app queue up, deploys of different apps never wait.
pub(crate) type DeployLocks = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// Per app, cancelled when `apps:destroy` starts.
pub(crate) type DestroyTokens = Arc<Mutex<HashMap<String, CancellationToken>>>;

fn gone(app: &App) -> Error {
    Error::Conflict(format!("{} was destroyed; nothing was deployed", app.name))
}

/// A checkout to build, and where it came from.
#[derive(Debug, Clone)]
pub struct SourceTree {
    pub dir: PathBuf,
    /// What started the deploy.
    pub source: DeploySource,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    /// A pushed tag: the release it makes waits for approval.
    pub git_tag: Option<String>,
}

impl Paas {
    /// Takes the app's deploy lock, waiting (and saying so in `log`) while another deploy of
    /// the same app runs. Fails when the app is destroyed meanwhile: whatever waited for the
    /// lock was about an app that is gone.
    pub async fn lock_deploys(&self, app: &App, log: &BuildLog) -> Result<OwnedMutexGuard<()>> {
        let destroyed = self.destroying(&app.name);
        let guard = tokio::select! {
            guard = self.wait_for_deploy_lock(app, log) => guard,
            () = destroyed.cancelled() => return Err(gone(app)),
        };
        match self.store().app(&app.name).await {
            Ok(now) if now.id == app.id => Ok(guard),
            Ok(_) | Err(paas_store::StoreError::NotFound(_)) => Err(gone(app)),
            Err(err) => Err(err.into()),
        }
    }

    pub(crate) async fn wait_for_deploy_lock(
        &self,
        app: &App,
        log: &BuildLog,
    ) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.deploy_locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(app.name.clone()).or_default().clone()
        };
        match lock.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                log.step(format!("Another deploy of {} is in progress; waiting for it", app.name));
                lock.lock_owned().await
            }
        }
    }

    /// Cancelled when the app is being destroyed: its build stops, and what waits for its
    /// deploy lock gives up.
    pub(crate) fn destroying(&self, app: &str) -> CancellationToken {
        let mut tokens = self.destroy_tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.entry(app.to_string()).or_default().clone()
    }

    /// Whether a deploy (build, rollout, rollback, restart or config change) holds the app's
    /// deploy lock right now.
    pub fn is_deploying(&self, app: &App) -> bool {
        let locks = self.deploy_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.get(&app.name).is_some_and(|lock| lock.try_lock().is_err())
    }

    /// The whole deploy of a source tree: wait for the app's deploy lock, build, release, roll
    /// out. Every front end (git push, API, dashboard, webhooks) calls this.
    pub async fn deploy(
        &self,
        actor: &Actor,
        app: &App,
        tree: &SourceTree,
        log: &BuildLog,
    ) -> Result<Release> {
        self.deploy_until(actor, app, tree, log, std::future::pending()).await
    }

    /// [`Paas::deploy`], abandoned if `interrupted` resolves (a pusher that went away) while
    /// waiting for the lock or building: the build is then recorded as failed and nothing
    /// changes. Once the rollout starts it runs to the end, so an app is never left half
    /// switched.
    pub async fn deploy_until(
        &self,
        actor: &Actor,
        app: &App,
        tree: &SourceTree,
        log: &BuildLog,
        interrupted: impl Future<Output = ()>,
    ) -> Result<Release> {
        let mut interrupted = std::pin::pin!(interrupted);
        let _lock = tokio::select! {
            lock = self.lock_deploys(app, log) => lock?,
            () = &mut interrupted => return Err(Error::Conflict(INTERRUPTED.into())),
        };
        self.deploy_locked(actor, app, tree, log, interrupted).await
    }

    /// The deploy itself, for a caller that holds the app's deploy lock.
    pub async fn deploy_locked(
        &self,
        actor: &Actor,
        app: &App,
        tree: &SourceTree,
        log: &BuildLog,
        interrupted: impl Future<Output = ()>,
    ) -> Result<Release> {
        self.deploy_locked_unless(actor, app, tree, log, interrupted, &|| false).await
    }

    /// [`Paas::deploy_locked`], releasing nothing if `superseded()` says, once the build is
    /// done, that a newer commit is waiting: an older build is never released over it.
    pub(crate) async fn deploy_locked_unless(
        &self,
        actor: &Actor,
        app: &App,
        tree: &SourceTree,
        log: &BuildLog,
        interrupted: impl Future<Output = ()>,
        superseded: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<Release> {
        let deployed = async {
            let release = self
                .build_and_release_unless(actor, app, tree, log, interrupted, superseded)
                .await?;
            if release.status == ReleaseStatus::Waiting {
                log.step(format!(
                    "v{} waits for approval; the running release serves until then",
                    release.version
                ));
                log.info(format!(
                    "Approve it: paas releases:approve v{} -a {} (or reject it: \
                     paas releases:reject v{})",
                    release.version, app.name, release.version
                ));
                if let Some(build_id) = release.build_id {
                    self.store().set_build_log(build_id, &log.text()).await?;
                }
                return Ok(release);
            }
            let rolled_out = self.roll_out(app, &release, log).await;
            // The stored log gets the rollout's lines too: a failed health check is there.
            if let Some(build_id) = release.build_id {
                self.store().set_build_log(build_id, &log.text()).await?;
            }
            rolled_out.map(|()| release)
        }
        .await;
        let detail = match &deployed {
            Ok(release) => format!("{} as v{}", release.description, release.version),
            // The code, not the message: a failed build's message may quote the app's output.
            Err(err) => format!("failed ({}) from {}", err.code(), tree.source),
        };
        self.audit(actor, Some(app), "deploy", detail).await;
        let release = deployed?;
        if release.status == ReleaseStatus::Waiting {
            return Ok(release);
        }
        // Deployed, yet serving nothing: say so, or "deployed" reads as "up".
        let formation = self.store().formation(app).await?;
        if release.process_types.keys().all(|t| t == "release") {
            log.error(
                "No process types: nothing runs this release, and the app answers 503 (Heroku's \
                 \"No web processes running\"). Add a Procfile with a line like \
                 `web: gunicorn myproject.wsgi`, then push again",
            );
        }
        let web = formation.get("web").copied();
        if release.process_types.contains_key("web") && web == Some(0) {
            log.error("web is scaled to 0: the app will answer 503 until `paas ps:scale web=1`");
        }
        for route in self.store().routes(Some(app)).await? {
            let (path, process_type) = (&route.prefix, &route.process_type);
            if formation.get(process_type).copied().unwrap_or(0) == 0 {
                log.info(format!(
                    "Note: {process_type} is scaled to 0: {path} answers 503 until `paas \
                     ps:scale {process_type}=1`"
                ));
            }
        }
        log.info(format!("{} deployed to paas", self.web_url(app)));
        Ok(release)
    }

    /// Builds `tree` into an image and records the build and its release. The build's whole
    /// log goes to `log` as it happens and into the store at the end; a failed build makes no
    /// release. The caller holds the deploy lock.
    pub async fn build_and_release(
        &self,
        actor: &Actor,
        app: &App,
        tree: &SourceTree,
        log: &BuildLog,
        interrupted: impl Future<Output = ()>,
    ) -> Result<Release> {
        self.build_and_release_unless(actor, app, tree, log, interrupted, &|| false).await
    }

    async fn build_and_release_unless(
        &self,
        actor: &Actor,
        app: &App,
        tree: &SourceTree,
        log: &BuildLog,
        interrupted: impl Future<Output = ()>,
        superseded: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<Release> {
        let builder = self.builder.as_ref().ok_or_else(|| Error::docker_unavailable("builds"))?;
        let build = self
            .store()
            .create_build(
                app,
                &NewBuild {
                    source: tree.source,
                    commit_sha: tree.commit_sha.clone(),
                    commit_message: tree.commit_message.clone(),
                    git_tag: tree.git_tag.clone(),
                    created_by: actor.email().to_string(),
                },
            )
            .await?;
        tracing::info!(app = %app.name, build = build.id, source = %tree.source, "build started");
        let from = match tree.commit_sha.as_deref() {
            Some(sha) => format!(" of {}", &sha[..sha.len().min(7)]),
            None => String::new(),
        };
        self.events().emit(
            &app.name,
            "deploy",
            format!("Build {} started by {} ({}{from})", build.id, actor.email(), tree.source),
        );
        let config = self.store().config(app).await?;
        let mut request = BuildRequest::new(&app.name, build.id, &tree.dir);
        request.base_dir = config.get("PAAS_APP_BASE").map(PathBuf::from);
        request.commit = tree.commit_sha.clone();
        request.namespace = self.image_namespace.clone();
        request.config = config;

        let destroyed = self.destroying(&app.name);
        let built = tokio::select! {
            built = builder.build(&request, log) => built.map_err(|e| (e.code(), e.to_string())),
            () = interrupted => Err(("interrupted", INTERRUPTED.to_string())),
            () = destroyed.cancelled() => {
                let err = gone(app);
                log.error(err.to_string());
                return Err(err);
            }
        };
        let built = match built {
            Ok(mut image) => match self.publish_image(builder, &image.image, log).await {
                Ok(published) => {
                    image.image = published;
                    Ok(image)
                }
                Err(e) => Err((e.code(), e.to_string())),
            },
            failed => failed,
        };
        let outcome = match &built {
            Ok(image) => BuildOutcome {
                succeeded: true,
                kind: Some(image.kind.clone()),
                image: Some(image.image.clone()),
                image_size: i64::try_from(image.size).ok(),
                process_types: image.process_types.clone(),
                manifest: (!image.manifest.is_empty())
                    .then(|| serde_json::to_string(&image.manifest).unwrap_or_default()),
                log: log.text(),
                error: None,
            },
            Err((_, message)) => {
                log.error(message);
                BuildOutcome {
                    succeeded: false,
                    log: log.text(),
                    error: Some(message.clone()),
                    ..Default::default()
                }
            }
        };
        let build = self.store().finish_build(build.id, &outcome).await?;
        if let Err((code, message)) = built {
            tracing::info!(app = %app.name, build = build.id, code, "build failed");
            let reason = message.lines().next().unwrap_or_default();
            self.events().emit(&app.name, "deploy", format!("Build {} failed: {reason}", build.id));
            return Err(Error::BuildFailed { build_id: build.id, code, message });
        }
        let description = match (tree.commit_sha.as_deref(), &tree.git_tag) {
            (Some(sha), Some(tag)) => format!("Deploy tag {tag} ({})", &sha[..sha.len().min(7)]),
            (Some(sha), None) => format!("Deploy {}", &sha[..sha.len().min(7)]),
            (None, _) => format!("Deploy build {}", build.id),
        };
        self.events().emit(&app.name, "deploy", format!("Build {} succeeded", build.id));
        if superseded() {
            log.step("A newer commit came while this one built: it is not released");
            return Err(Error::Conflict(SUPERSEDED.into()));
        }
        let manifest = built.map(|image| image.manifest).unwrap_or_default();
        let changes = match self.check_manifest(app, &manifest).await {
            Ok(changes) => changes,
            Err(err) => {
                log.error(err.to_string());
                return Err(err);
            }
        };
        let waits = tree.git_tag.is_some();
        let release = self
            .store()
            .create_release_from_build(app, &build, &description, actor.email(), waits)
            .await?;
        // A waiting release's declarations apply when it is approved.
        if !waits {
            self.apply_manifest(actor, app, changes, log).await?;
        }
        self.announce_release(app, &release);
        tracing::info!(app = %app.name, build = build.id, release = release.version, "build released");
        Ok(release)
    }
}
