//! GitHub auto-deploy: an app linked to a repository's branch deploys each push GitHub
//! reports to its webhook, once per delivery and newest first.
//!
//! A delivery is trusted only once its `X-Hub-Signature-256` (HMAC-SHA256 of the raw body)
//! matches a linked app's secret, checked before anything in it is read. While an app deploys,
//! newer pushes wait in one slot, each replacing the last, and a build of an older commit
//! still under way is not released once a newer one waits. With a token, each deploy's outcome goes
//! back to GitHub as a commit status.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use hmac::{Hmac, Mac};
use paas_builder::BuildLog;
use paas_store::{App, DeploySource, GithubDelivery, GithubLink, NewGithubLink};
use serde::Deserialize;
use sha2::Sha256;
use tokio::process::Command;
use tokio::sync::watch;

use super::Paas;
use super::audit::{Actor, FrontEnd};
use super::deploy::SourceTree;
use super::error::{Error, Result};
use super::repos::{CheckoutError, io_error};
use super::{auth, validate};

/// GitHub sends at most 25 MB; a bigger body is not GitHub's.
pub const MAX_DELIVERY_BYTES: usize = 25 * 1024 * 1024;
/// The shortest webhook secret accepted.
pub const MIN_SECRET_CHARS: usize = 16;

/// Where GitHub is: its web (git) and API addresses, GitHub Enterprise's too.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    pub web_url: String,
    pub api_url: String,
}

impl Default for GithubSettings {
    fn default() -> GithubSettings {
        GithubSettings {
            web_url: "https://github.com".into(),
            api_url: "https://api.github.com".into(),
        }
    }
}

/// A delivery's headers, as GitHub sends them.
#[derive(Debug, Default)]
pub struct Delivery<'a> {
    pub event: Option<&'a str>,
    pub id: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// What a delivery is answered: `200` (ping, a redelivery), or `202` with what will come of
/// it.
#[derive(Debug)]
pub struct DeliveryAnswer {
    pub status: u16,
    pub message: String,
}

/// A push waiting to deploy: what deploys is the branch's tip when its turn comes. With
/// `review`, a pull request's review app to deploy or remove instead.
#[derive(Clone)]
struct Job {
    delivery: i64,
    link: GithubLink,
    review: Option<ReviewJob>,
}

/// What to fetch from the linked repository and deploy, and the commit status's context.
struct GithubFetch {
    refspec: String,
    /// The ref the fetch updates here, whose tip deploys.
    tracking: String,
    /// `branch main`, `pull request #7`, for messages.
    what: String,
    context: &'static str,
}

/// A pull request event for a review app.
#[derive(Clone)]
struct ReviewJob {
    pipeline: String,
    number: u64,
    /// Closed: the review app goes.
    closed: bool,
}

/// Per app: the newest push waiting, whether a deploy runs, and a counter that moves when a
/// newer push arrives (what keeps an older build from being released).
#[derive(Default)]
pub(crate) struct GithubQueue {
    apps: Mutex<HashMap<String, AppQueue>>,
}

struct AppQueue {
    waiting: Option<Job>,
    running: bool,
    newer: watch::Sender<u64>,
}

impl GithubQueue {
    /// Drops a destroyed app's waiting push; a worker under way finds nothing more to do.
    pub(crate) fn forget(&self, app: &str) {
        self.apps.lock().unwrap_or_else(|p| p.into_inner()).remove(app);
    }
}

#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct AnyPayload {
    repository: Option<Repository>,
}

/// The fields of a `pull_request` event paas reads.
#[derive(Deserialize)]
struct PullRequestPayload {
    action: String,
    number: u64,
    pull_request: PullRequest,
}

#[derive(Deserialize)]
struct PullRequest {
    head: PullRequestHead,
}

#[derive(Deserialize)]
struct PullRequestHead {
    sha: String,
    /// Gone when the fork was deleted.
    repo: Option<Repository>,
}

/// `OWNER/REPO`, as GitHub allows them.
fn repository_name(text: &str) -> Result<String> {
    let text = text.trim().trim_end_matches(".git");
    let valid_part = |part: &str| {
        !part.is_empty()
            && part.len() <= 100
            && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && part != "."
            && part != ".."
    };
    match text.split_once('/') {
        Some((owner, repo)) if valid_part(owner) && valid_part(repo) => Ok(text.to_string()),
        _ => Err(Error::invalid(
            "invalid_repository",
            format!("{text:?} is not a GitHub repository: use OWNER/REPO"),
        )),
    }
}

/// Whether `signature` (`sha256=HEX`) is `body` signed with `secret`, compared in constant time.
fn signed_with(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_part) = signature.strip_prefix("sha256=") else { return false };
    let Ok(expected) = hex::decode(hex_part) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

impl Paas {
    /// Links the app to `repository`'s `branch`: pushes there deploy. The secret is made when
    /// not given (given, it must have [`MIN_SECRET_CHARS`]); it is returned to paste into
    /// GitHub, the token never again.
    pub async fn link_github(
        &self,
        actor: &Actor,
        app: &App,
        repository: &str,
        branch: &str,
        secret: Option<&str>,
        token: Option<&str>,
    ) -> Result<GithubLink> {
        let repository = repository_name(repository)?;
        validate::branch_name(branch)?;
        if secret.is_some_and(|s| s != s.trim()) {
            // GitHub signs with the secret as typed: trimming it here would fail every delivery.
            return Err(Error::invalid("invalid_secret", "the secret starts or ends with a space"));
        }
        let secret = match secret {
            Some(secret) if secret.chars().count() >= MIN_SECRET_CHARS => secret.to_string(),
            Some(_) => {
                return Err(Error::invalid(
                    "invalid_secret",
                    format!("a webhook secret needs at least {MIN_SECRET_CHARS} characters"),
                ));
            }
            None => auth::random_secret(),
        };
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        if token.is_some_and(|t| t.chars().any(|c| c.is_control() || c.is_whitespace())) {
            return Err(Error::invalid(
                "invalid_token",
                "that token has spaces or control characters",
            ));
        }
        let new = NewGithubLink {
            repository: repository.clone(),
            branch: branch.to_string(),
            secret,
            token: token.map(str::to_string),
            created_by: actor.email().to_string(),
        };
        let link = self.store().link_github(app, &new).await?;
        let with_token = if token.is_some() { " with a token" } else { "" };
        let detail = format!("linked {repository} ({branch}){with_token}");
        self.audit(actor, Some(app), "github.link", detail).await;
        Ok(link)
    }

    pub async fn unlink_github(&self, actor: &Actor, app: &App) -> Result<()> {
        if !self.store().unlink_github(app).await? {
            return Err(Error::NotFound(format!("a GitHub link of {}", app.name)));
        }
        self.audit(actor, Some(app), "github.unlink", "unlinked its GitHub repository").await;
        Ok(())
    }

    /// The app's link and its newest deliveries.
    pub async fn github(&self, app: &App) -> Result<Option<(GithubLink, Vec<GithubDelivery>)>> {
        let Some(link) = self.store().github_link(app).await? else { return Ok(None) };
        Ok(Some((link, self.store().deliveries(app, 20).await?)))
    }

    /// Takes one webhook delivery: refused (with nothing recorded) unless signed by a linked
    /// app's secret and about that app's repository; then recorded once by its id, and a push
    /// to the linked branch queued to deploy in the background.
    pub async fn github_delivery(
        &self,
        delivery: Delivery<'_>,
        body: &[u8],
    ) -> Result<DeliveryAnswer> {
        if body.len() > MAX_DELIVERY_BYTES {
            return Err(Error::TooLarge);
        }
        let Some(signature) = delivery.signature else {
            return Err(Error::Unauthorized(
                "no X-Hub-Signature-256: set the webhook's secret in GitHub".into(),
            ));
        };
        let links = self.store().github_links().await?;
        // One HMAC of the whole body per link: off the async threads, a few at a time, so
        // unsigned floods cannot stall the API.
        let _turn =
            self.github_checks.acquire().await.map_err(|e| Error::Internal(e.to_string()))?;
        let (body_copy, signature_copy) = (body.to_vec(), signature.to_string());
        let signed: Vec<GithubLink> = tokio::task::spawn_blocking(move || {
            links
                .into_iter()
                .filter(|l| signed_with(&l.secret, &body_copy, &signature_copy))
                .collect()
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        if signed.is_empty() {
            return Err(Error::Unauthorized("the signature matches no linked app's secret".into()));
        }
        // Signed: now the body may be read.
        let payload: AnyPayload = serde_json::from_slice(body).map_err(|e| {
            Error::BadRequest(format!("the delivery is not JSON GitHub sends: {e}"))
        })?;
        let repository = payload.repository.map(|r| r.full_name).unwrap_or_default();
        let Some(link) =
            signed.into_iter().find(|l| l.repository.eq_ignore_ascii_case(&repository))
        else {
            return Err(Error::NotFound(format!("a link to the repository {repository:?}")));
        };
        let app = self.store().app(&link.app).await?;
        let event = delivery.event.unwrap_or("unknown");
        let id = delivery
            .id
            .filter(|id| !id.is_empty() && id.len() <= 200)
            .ok_or_else(|| Error::BadRequest("no X-GitHub-Delivery id".into()))?;
        let answer = |status: u16, message: String| Ok(DeliveryAnswer { status, message });
        if event == "ping" {
            let Some(_) = self.store().record_delivery(id, Some(&app), event, None, "pong").await?
            else {
                return answer(200, format!("delivery {id} was received before"));
            };
            return answer(200, format!("pong: {} is linked to {}", app.name, link.repository));
        }
        if event == "pull_request" {
            return self.pull_request_delivery(id, &app, link, body).await;
        }
        if event != "push" {
            let outcome =
                format!("ignored: paas acts on push and pull_request events, not {event}");
            return match self.store().record_delivery(id, Some(&app), event, None, &outcome).await?
            {
                Some(_) => answer(202, outcome),
                None => answer(200, format!("delivery {id} was received before")),
            };
        }
        let push: PushPayload = serde_json::from_slice(body)
            .map_err(|e| Error::BadRequest(format!("not a push event GitHub sends: {e}")))?;
        let wanted = format!("refs/heads/{}", link.branch);
        let sha = push.after.to_ascii_lowercase();
        let ignored = if push.git_ref != wanted {
            Some(format!("ignored: {} is not the linked branch {}", push.git_ref, link.branch))
        } else if push.deleted || sha.chars().all(|c| c == '0') {
            Some(format!("ignored: {} was deleted", link.branch))
        } else if sha.len() != 40 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            Some(format!("ignored: {:?} is not a commit", push.after))
        } else {
            None
        };
        let (outcome, commit) = match &ignored {
            Some(reason) => (reason.clone(), None),
            None => (format!("queued {}", &sha[..7]), Some(sha.as_str())),
        };
        let store = self.store();
        let row = match store.record_delivery(id, Some(&app), event, commit, &outcome).await? {
            Some(row) => Some(row),
            // Seen before: only one lost to a stop of paas goes through again.
            None => store.retry_delivery(id, commit, &outcome).await?,
        };
        let Some(row) = row else {
            return answer(200, format!("delivery {id} was received before; nothing to do"));
        };
        if ignored.is_some() {
            return answer(202, outcome);
        }
        self.queue_github_deploy(&app.name, Job { delivery: row, link, review: None });
        answer(202, format!("deploying {} to {}", &sha[..7], app.name))
    }

    /// A signed `pull_request` delivery to `source`'s link: queues its review app's deploy
    /// (opened, reopened, updated) or removal (closed), where `source`'s pipeline has review
    /// apps; anything else is recorded as ignored, with why.
    async fn pull_request_delivery(
        &self,
        id: &str,
        source: &App,
        link: GithubLink,
        body: &[u8],
    ) -> Result<DeliveryAnswer> {
        let answer = |status: u16, message: String| Ok(DeliveryAnswer { status, message });
        let pr: PullRequestPayload = serde_json::from_slice(body).map_err(|e| {
            Error::BadRequest(format!("not a pull_request event GitHub sends: {e}"))
        })?;
        let sha = pr.pull_request.head.sha.to_ascii_lowercase();
        let head_repo = pr.pull_request.head.repo.map(|r| r.full_name).unwrap_or_default();
        let review = self.review_apps_of(&source.name).await?;
        // A closed pull request's review app goes even if review apps were turned off since.
        let own_pipeline = self.store().pipeline_stage_of(source).await?.map(|s| s.pipeline);
        let (job, ignored) = match (&review, pr.action.as_str()) {
            (None, "closed") if own_pipeline.is_some() => (
                Some(ReviewJob {
                    pipeline: own_pipeline.clone().unwrap_or_default(),
                    number: pr.number,
                    closed: true,
                }),
                None,
            ),
            (None, _) => (
                None,
                Some(format!(
                    "ignored: pull request #{}: no pipeline has review apps from {}",
                    pr.number, source.name
                )),
            ),
            (Some((pipeline, _)), "closed") => (
                Some(ReviewJob {
                    pipeline: pipeline.name.clone(),
                    number: pr.number,
                    closed: true,
                }),
                None,
            ),
            (Some((_, settings)), "opened" | "reopened" | "synchronize")
                if !super::review_apps::review_allowed(&link, &head_repo, settings) =>
            {
                (
                    None,
                    Some(format!(
                        "ignored: pull request #{} comes from the fork {head_repo}, and review apps \
                     of forks are off",
                        pr.number
                    )),
                )
            }
            (Some((pipeline, _)), "opened" | "reopened" | "synchronize") => (
                Some(ReviewJob {
                    pipeline: pipeline.name.clone(),
                    number: pr.number,
                    closed: false,
                }),
                None,
            ),
            (Some(_), action) => (
                None,
                Some(format!(
                    "ignored: paas acts on pull requests opened, updated or closed, not {action}"
                )),
            ),
        };
        let outcome = match (&job, &ignored) {
            (_, Some(reason)) => reason.clone(),
            (Some(job), None) if job.closed => format!("removing the review app of #{}", pr.number),
            _ => format!("queued #{} at {}", pr.number, &sha[..sha.len().min(7)]),
        };
        let commit =
            (sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit())).then_some(sha.as_str());
        let store = self.store();
        let row = match store
            .record_delivery(id, Some(source), "pull_request", commit, &outcome)
            .await?
        {
            Some(row) => Some(row),
            None => store.retry_delivery(id, commit, &outcome).await?,
        };
        let Some(row) = row else {
            return answer(200, format!("delivery {id} was received before; nothing to do"));
        };
        let Some(job) = job else { return answer(202, outcome) };
        let name = super::review_apps::review_app_name(&job.pipeline, job.number)?;
        self.queue_github_deploy(&name, Job { delivery: row, link, review: Some(job) });
        answer(202, outcome)
    }

    /// Puts a push in the app's waiting slot (replacing an older one, and telling a build
    /// under way that a newer commit came) and starts the app's worker if none runs.
    fn queue_github_deploy(&self, app: &str, job: Job) {
        let mut apps = self.github_queue.apps.lock().unwrap_or_else(|p| p.into_inner());
        let queue = apps.entry(app.to_string()).or_insert_with(|| AppQueue {
            waiting: None,
            running: false,
            newer: watch::channel(0).0,
        });
        if let Some(old) = queue.waiting.replace(job) {
            let store = self.store().clone();
            tokio::spawn(async move {
                let _ =
                    store.set_delivery_outcome(old.delivery, "superseded by a newer push").await;
            });
        }
        queue.newer.send_modify(|n| *n += 1);
        if !queue.running {
            queue.running = true;
            let paas = self.clone();
            let name = app.to_string();
            tokio::spawn(async move { paas.github_worker(&name).await });
        }
    }

    /// Deploys the app's waiting pushes, newest first, until none waits.
    async fn github_worker(&self, name: &str) {
        loop {
            let (job, newer) = {
                let mut apps = self.github_queue.apps.lock().unwrap_or_else(|p| p.into_inner());
                let Some(queue) = apps.get_mut(name) else { return };
                match queue.waiting.take() {
                    Some(job) => {
                        let mut newer = queue.newer.subscribe();
                        newer.borrow_and_update();
                        (job, newer)
                    }
                    None => {
                        queue.running = false;
                        return;
                    }
                }
            };
            // A newer push makes this one's build go unreleased (it finishes: interrupting
            // each build for the next would build every commit of a burst in part).
            let superseded = move || newer.has_changed().unwrap_or(false);
            // A panic in a deploy must not leave the app's worker marked running forever.
            let deployed = std::panic::AssertUnwindSafe(async {
                match &job.review {
                    Some(review) => self.deploy_review_job(&job, review, &superseded).await,
                    None => self.deploy_github_push(&job, &superseded).await,
                }
            });
            let deployed =
                futures_util::FutureExt::catch_unwind(deployed).await.unwrap_or_else(|_| {
                    Err(Error::Internal("the deploy of a GitHub push panicked".into()))
                });
            let outcome = match deployed {
                Ok(outcome) => outcome,
                Err(Error::Conflict(message)) if message == super::deploy::SUPERSEDED => {
                    "superseded by a newer push".to_string()
                }
                Err(err) => format!("failed: {}", err.public_message()),
            };
            if let Err(err) = self.store().set_delivery_outcome(job.delivery, &outcome).await {
                tracing::warn!(error = %err, "could not record a delivery's outcome");
            }
        }
    }

    /// The app a delivery came for, its link, and the user deploys act as (who linked the
    /// repository), if all are still what they were when it came; else why it is skipped.
    async fn linked_actor(
        &self,
        job: &Job,
    ) -> Result<std::result::Result<(App, GithubLink, Actor), String>> {
        // The app and link as they are now: destroyed, unlinked or linked elsewhere since the
        // push came means nothing to do (an app of the same name is another app).
        let app = match self.store().app(&job.link.app).await {
            Ok(app) if app.id == job.link.app_id => app,
            _ => return Ok(Err("skipped: the app is gone".into())),
        };
        let unchanged = |l: &GithubLink| {
            l.repository == job.link.repository
                && l.branch == job.link.branch
                && l.secret == job.link.secret
        };
        let Some(link) = self.store().github_link(&app).await?.filter(unchanged) else {
            return Ok(Err("skipped: the GitHub link changed since".into()));
        };
        let user = match self.store().user(&link.created_by).await {
            Ok(user) => user,
            Err(paas_store::StoreError::NotFound(_)) => {
                return Err(Error::invalid(
                    "linker_removed",
                    format!(
                        "{} linked the repository and was removed; link it again",
                        link.created_by
                    ),
                ));
            }
            Err(err) => return Err(err.into()),
        };
        let actor = Actor::new(user, None, FrontEnd::GitHub);
        // Deploys act as whoever linked the repository, so they must still have access.
        if self.app_for(&actor, &app.name).await.is_err() {
            return Err(Error::Forbidden(format!(
                "{} linked the repository and no longer has access to {}; link it again",
                link.created_by, app.name
            )));
        }
        Ok(Ok((app, link, actor)))
    }

    /// Deploys the tip of the linked branch as the user who linked the repository, if the
    /// link, the app and that user's access are still what they were when the push came;
    /// reports the outcome to GitHub. Returns what came of it, in words.
    async fn deploy_github_push(
        &self,
        job: &Job,
        superseded: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<String> {
        let (app, link, actor) = match self.linked_actor(job).await? {
            Ok(found) => found,
            Err(skipped) => return Ok(skipped),
        };
        let fetch = GithubFetch {
            refspec: format!("+refs/heads/{}:refs/github/{}", link.branch, link.branch),
            tracking: format!("refs/github/{}", link.branch),
            what: format!("branch {}", link.branch),
            context: "paas",
        };
        self.deploy_from_github(&actor, &app, &link, &fetch, superseded).await
    }

    /// A pull request's review app: made (or found) and deployed with the pull request's
    /// head, or, once it is closed, removed with all it owned.
    async fn deploy_review_job(
        &self,
        job: &Job,
        review: &ReviewJob,
        superseded: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<String> {
        let (source, link, actor) = match self.linked_actor(job).await? {
            Ok(found) => found,
            Err(skipped) => return Ok(skipped),
        };
        if review.closed {
            return self.remove_review_app(&actor, &review.pipeline, review.number).await;
        }
        let settings = self.review_apps_of(&source.name).await?;
        let Some((pipeline, settings)) = settings.filter(|(p, _)| p.name == review.pipeline) else {
            return Ok("skipped: the pipeline's review apps were turned off".into());
        };
        let app = self.review_app(&actor, &source, &pipeline, &settings, review.number).await?;
        let number = review.number;
        let fetch = GithubFetch {
            refspec: format!("+refs/pull/{number}/head:refs/github/pr-{number}"),
            tracking: format!("refs/github/pr-{number}"),
            what: format!("pull request #{number}"),
            context: "paas/review-app",
        };
        self.deploy_from_github(&actor, &app, &link, &fetch, superseded).await
    }

    /// Fetches what `fetch` names from the linked repository into `app`'s, deploys its tip
    /// (unless that already runs), and reports the outcome to GitHub as a commit status.
    async fn deploy_from_github(
        &self,
        actor: &Actor,
        app: &App,
        link: &GithubLink,
        fetch: &GithubFetch,
        superseded: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<String> {
        let log = BuildLog::new();
        // Fetching too happens under the deploy lock: a destroyed app's repository is not
        // made again, and the tip read is the one deployed.
        let _lock = self.lock_deploys(app, &log).await?;
        if superseded() {
            return Err(Error::Conflict(super::deploy::SUPERSEDED.into()));
        }
        let git =
            self.git.clone().ok_or_else(|| Error::Unavailable("git is not enabled".into()))?;
        let repo = git.ensure_repo(&app.name).await?;
        self.fetch_from_github(link, &repo, &fetch.refspec).await?;
        // The tip on GitHub is what deploys: a delivery that came late names an older
        // commit, which must not replace a newer one.
        let Some(sha) = super::repos::branch_head(&repo, &fetch.tracking).await? else {
            return Err(Error::invalid(
                "no_branch",
                format!("{} has no {}", link.repository, fetch.what),
            ));
        };
        let short = sha[..7.min(sha.len())].to_string();
        if let Some(version) = super::push::deployed_version(self, app, &sha).await? {
            return Ok(format!(
                "{short}, the tip of the {}, is already deployed as v{version}",
                fetch.what
            ));
        }
        let report = |state: &'static str, text: String, url: Option<String>| {
            let (link, sha) = (link.clone(), sha.clone());
            async move {
                self.report_status(&link, &sha, fetch.context, state, &text, url.as_deref()).await
            }
        };
        report("pending", format!("deploying {short} to {}", app.name), None).await;
        let result = async {
            let checkout = git.scratch_dir(&app.name).await?;
            let message = match git.checkout(&repo, &sha, &[], checkout.path()).await {
                Ok(message) => message,
                Err(CheckoutError::TooLarge(why)) => return Err(Error::invalid("too_large", why)),
                Err(CheckoutError::Failed(err)) => return Err(err),
            };
            let tree = SourceTree {
                dir: checkout.path().to_path_buf(),
                source: DeploySource::Github,
                commit_sha: Some(sha.clone()),
                commit_message: Some(message),
                git_tag: None,
            };
            let release = self
                .deploy_locked_unless(
                    actor,
                    app,
                    &tree,
                    &log,
                    self.stopping().cancelled(),
                    superseded,
                )
                .await?;
            // The app's deploy branch follows what runs, as after a git push.
            let refname = format!("refs/heads/{}", app.deploy_branch);
            let _ = Command::new("git")
                .arg("--git-dir")
                .arg(&repo)
                .args(["update-ref", &refname, &sha])
                .output()
                .await;
            Ok(release.version)
        }
        .await;
        match &result {
            Ok(version) => {
                let text = format!("{} deployed as v{version}", app.name);
                report("success", text, Some(self.web_url(app))).await;
            }
            // Not released because a newer commit waits: that one's status tells.
            Err(Error::Conflict(message)) if message == super::deploy::SUPERSEDED => {}
            Err(err) => {
                let reason = err.public_message();
                let reason = reason.lines().next().unwrap_or_default().to_string();
                report("failure", reason, None).await;
            }
        }
        result.map(|version| format!("deployed v{version} ({short})"))
    }

    /// The linked repository's URL, and a `git` command that reaches it: a token goes in an
    /// HTTP header through git's environment, never on a command line or in a URL.
    fn github_git(&self, link: &GithubLink) -> (String, Command) {
        let url = format!("{}/{}.git", self.github.web_url.trim_end_matches('/'), link.repository);
        let mut command = Command::new("git");
        command.env("GIT_TERMINAL_PROMPT", "0").kill_on_drop(true);
        if let Some(token) = &link.token {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}"));
        }
        (url, command)
    }

    /// Runs a git command against GitHub, within a minute; its stderr becomes the error.
    async fn run_github_git(&self, link: &GithubLink, mut command: Command) -> Result<String> {
        let limit = std::time::Duration::from_secs(60);
        let output = tokio::time::timeout(limit, command.output()).await.map_err(|_| {
            Error::Unavailable(format!("{} did not answer within a minute", link.repository))
        })?;
        let output = output.map_err(io_error)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(Error::invalid(
                "github_unreachable",
                format!("could not reach {} on GitHub: {}", link.repository, stderr.trim()),
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Fetches `refspec` of the linked repository into the app's repository.
    async fn fetch_from_github(
        &self,
        link: &GithubLink,
        repo: &std::path::Path,
        refspec: &str,
    ) -> Result<()> {
        let (url, mut command) = self.github_git(link);
        command.arg("--git-dir").arg(repo).args(["fetch", "--quiet", "--no-tags", &url, refspec]);
        self.run_github_git(link, command).await.map(|_| ())
    }

    /// The branches of the app's linked repository on GitHub; none when it is not linked.
    pub async fn github_branches(&self, app: &App) -> Result<Vec<String>> {
        let Some(link) = self.store().github_link(app).await? else { return Ok(Vec::new()) };
        let (url, mut command) = self.github_git(&link);
        command.args(["ls-remote", "--heads", &url]);
        let listing = self.run_github_git(&link, command).await?;
        Ok(listing
            .lines()
            .filter_map(|line| line.split_once("\trefs/heads/").map(|(_, name)| name.to_string()))
            .collect())
    }

    /// Fetches `branch` of the linked repository into the app's repository as a branch of
    /// that name (GitHub's wins over one pushed here), to deploy it with
    /// [`Paas::deploy_branch`].
    pub async fn fetch_github_branch(&self, app: &App, branch: &str) -> Result<()> {
        validate::branch_name(branch)?;
        let link = self.store().github_link(app).await?;
        let link = link.ok_or_else(|| Error::NotFound(format!("a GitHub link of {}", app.name)))?;
        let git =
            self.git.clone().ok_or_else(|| Error::Unavailable("git is not enabled".into()))?;
        let repo = git.ensure_repo(&app.name).await?;
        let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        self.fetch_from_github(&link, &repo, &refspec).await
    }

    /// A commit status on GitHub (with a token): best effort, logged when it fails.
    async fn report_status(
        &self,
        link: &GithubLink,
        sha: &str,
        context: &str,
        state: &str,
        description: &str,
        target_url: Option<&str>,
    ) {
        let Some(token) = &link.token else { return };
        let url = format!(
            "{}/repos/{}/statuses/{sha}",
            self.github.api_url.trim_end_matches('/'),
            link.repository
        );
        let mut body = serde_json::json!({
            "state": state,
            "context": context,
            "description": description.chars().take(140).collect::<String>(),
        });
        if let Some(target) = target_url {
            body["target_url"] = target.into();
        }
        let sent = reqwest::Client::new()
            .post(&url)
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "paas")
            .json(&body)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(status = %response.status(), "GitHub refused a commit status")
            }
            Err(err) => tracing::warn!(error = %err, "could not send a commit status to GitHub"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"a secret of 16+ chars").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signed_with("a secret of 16+ chars", body, &good));
        assert!(!signed_with("another secret here!!", body, &good));
        assert!(!signed_with("a secret of 16+ chars", b"{}", &good));
        assert!(!signed_with("a secret of 16+ chars", body, &good.replace("sha256=", "sha1=")));
        assert!(!signed_with("a secret of 16+ chars", body, "sha256=zz"));
    }

    #[test]
    fn repositories_are_owner_slash_name() {
        assert_eq!(repository_name("octo-org/hello.world").unwrap(), "octo-org/hello.world");
        assert_eq!(repository_name("octo/repo.git").unwrap(), "octo/repo");
        for bad in ["", "octo", "octo/", "/repo", "a/b/c", "octo/re po", "../x", "octo/.."] {
            assert!(repository_name(bad).is_err(), "{bad:?}");
        }
    }
}
