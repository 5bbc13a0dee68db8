//! A push, once git has received it: the pre-receive hook reports the refs, and the push is
//! judged against the app's deploy branch, checked out and deployed, with its log streamed
//! back as `remote:` lines. A failed deploy rejects the push, and git leaves the branch.

use std::sync::Arc;

use paas_builder::BuildLog;
use paas_store::App;
use tokio::sync::mpsc;

use super::Paas;
use super::deploy::SourceTree;
use super::error::{Error, Result};
use super::repos::{CheckoutError, Git, Push, branch_head, peel_to_commit, quarantine_env};
use crate::wire::{HookEvent, HookRequest, RefUpdate};

/// What a pusher is told when paas stops under (or before) their push.
const STOPPING: &str = "paas is stopping (a restart or an upgrade): this push was not deployed; push again once it is back";

/// How often the hook hears from a deploy that is silent: a write to a pusher that went
/// away fails, so the deploy learns of it even during a silent build step.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the push a hook reports, in the background: its events (log lines, heartbeats,
/// then the verdict) arrive on the returned channel, and stop when it is dropped.
pub(crate) fn receive_push(
    paas: Paas,
    git: Arc<Git>,
    push: Push,
    request: HookRequest,
) -> mpsc::Receiver<HookEvent> {
    let (events, receiver) = mpsc::channel::<HookEvent>(256);
    tokio::spawn(async move {
        let beat = async {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if events.send(HookEvent::Heartbeat { heartbeat: true }).await.is_err() {
                    // The pusher is gone; the deploy sees it too and winds down.
                    std::future::pending::<()>().await;
                }
            }
        };
        let ok = tokio::select! {
            outcome = run_push(&paas, &git, &push, &request, &events) => match outcome {
                Ok(ok) => ok,
                Err(err) => {
                    let _ = events.send(line(format!(" !     {}", err.public_message()))).await;
                    false
                }
            },
            () = beat => false,
        };
        let _ = events.send(HookEvent::Done { ok }).await;
    });
    receiver
}

fn line(text: impl Into<String>) -> HookEvent {
    HookEvent::Line { line: text.into() }
}

/// What a push asks for, once checked against the app's deploy branch.
#[derive(Debug, PartialEq)]
enum Verdict {
    Deploy {
        sha: String,
        update: RefUpdate,
        /// A tag that deploys (waiting for approval), not a branch.
        tag: Option<String>,
    },
    /// Branches that do not deploy: kept in the repository, to deploy from the dashboard.
    Store(String),
    Refuse(String),
}

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The branches a push may update: the app's deploy branch, and `master` too while that is
/// `main`, as Heroku accepts either.
fn deploy_branches(app: &App) -> Vec<String> {
    let mut branches = vec![app.deploy_branch.clone()];
    if app.deploy_branch == "main" {
        branches.push("master".into());
    }
    branches
}

/// Whether `tag` matches `pattern`: `*` matches any run of characters (`v*`, `release-*`).
pub(crate) fn tag_matches(pattern: &str, tag: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = tag.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// What a push may do: update the deploy branch (and deploy it), on its own; update other
/// branches, which are kept without deploying (the dashboard deploys them on demand); or,
/// for an app that deploys tags, push one matching tag, which builds a release that waits
/// for approval. Other refs are refused.
fn judge(app: &App, refs: &[RefUpdate]) -> Verdict {
    let branches = deploy_branches(app);
    let branch_list = branches.iter().map(|b| format!("`{b}`")).collect::<Vec<_>>().join(" or ");
    let head = &app.deploy_branch;
    let mut deploy: Option<&RefUpdate> = None;
    let mut tagged: Option<(&RefUpdate, &str)> = None;
    let mut stored: Vec<&str> = Vec::new();
    for update in refs {
        if let Some(tag) = update.name.strip_prefix("refs/tags/")
            && let Some(pattern) = &app.deploy_tags
        {
            if !tag_matches(pattern, tag) {
                return Verdict::Refuse(format!(
                    "{} deploys tags matching `{pattern}`; `{tag}` does not match",
                    app.name
                ));
            }
            if update.new == ZERO_SHA {
                return Verdict::Refuse(format!("the deployed tag `{tag}` cannot be deleted"));
            }
            if tagged.is_some() {
                return Verdict::Refuse("push one tag at a time".into());
            }
            tagged = Some((update, tag));
            continue;
        }
        let Some(branch) = update.name.strip_prefix("refs/heads/") else {
            return Verdict::Refuse(format!(
                "{} takes branches only; pushing `{}` is refused",
                app.name, update.name
            ));
        };
        if !branches.iter().any(|d| d == branch) {
            stored.push(branch);
            continue;
        }
        if update.new == ZERO_SHA {
            return Verdict::Refuse(format!("the deploy branch `{branch}` cannot be deleted"));
        }
        if deploy.is_some() {
            return Verdict::Refuse(format!("push one of {branch_list} at a time"));
        }
        deploy = Some(update);
    }
    if let Some((update, tag)) = tagged {
        if deploy.is_some() || !stored.is_empty() {
            return Verdict::Refuse(format!("push the tag on its own: git push paas {tag}"));
        }
        return Verdict::Deploy {
            sha: update.new.clone(),
            update: update.clone(),
            tag: Some(tag.to_string()),
        };
    }
    match (deploy, stored.as_slice()) {
        (Some(update), []) => {
            Verdict::Deploy { sha: update.new.clone(), update: update.clone(), tag: None }
        }
        (Some(_), others) => Verdict::Refuse(format!(
            "a push that deploys updates {branch_list} alone; push `{}` separately",
            others.join("`, `")
        )),
        (None, []) => Verdict::Refuse("nothing to deploy in this push".into()),
        (None, others) => Verdict::Store(format!(
            "Updated `{}` without deploying: {} deploys from {branch_list}.\n\
             Deploy it from the dashboard (the app's Deploy page), or: git push paas {}:{head}",
            others.join("`, `"),
            app.name,
            others[0]
        )),
    }
}

/// Runs the deploy a push asks for, streaming its log to `events`; `Ok(false)` when the
/// push must be rejected.
async fn run_push(
    paas: &Paas,
    git: &Git,
    push: &Push,
    request: &HookRequest,
    events: &mpsc::Sender<HookEvent>,
) -> Result<bool> {
    if paas.stopping().is_cancelled() {
        refusal(events, STOPPING).await;
        return Ok(false);
    }
    let app = paas.store().app(&push.app).await?;
    let (sha, update, tag) = match judge(&app, &request.refs) {
        Verdict::Deploy { sha, update, tag } => (sha, update, tag),
        Verdict::Store(message) => {
            for text in message.lines() {
                let _ = events.send(line(format!("-----> {text}"))).await;
            }
            return Ok(true);
        }
        Verdict::Refuse(message) => {
            refusal(events, &message).await;
            return Ok(false);
        }
    };
    let repo = git.repo_path(&app.name);
    let env = quarantine_env(&repo, &request.env)?;
    // An annotated tag names a tag object; the build is of the commit it points at.
    let sha = match &tag {
        Some(_) => peel_to_commit(&repo, &sha, &env).await?,
        None => sha,
    };
    let short = &sha[..sha.len().min(7)];
    // One deploy branch per repository, so a clone gets what is deployed: `master` stands in
    // for `main` only where there is no `main`, and becomes the app's deploy branch.
    let adopt_master = update.name == "refs/heads/master" && app.deploy_branch == "main";
    if adopt_master && branch_head(&repo, "refs/heads/main").await?.is_some() {
        let message = format!(
            "{} deploys from `main`, and pushing `master` beside it would leave two branches.\n\
             To deploy this commit: git push paas master:main",
            app.name
        );
        refusal(events, &message).await;
        return Ok(false);
    }

    let log = BuildLog::new();
    let forward = {
        let mut lines = log.subscribe();
        let events = events.clone();
        tokio::spawn(async move {
            while let Some(text) = lines.next().await {
                if events.send(line(text)).await.is_err() {
                    break;
                }
            }
        })
    };
    let outcome = async {
        // The pusher going away (the hook's connection closing) abandons the deploy until
        // its rollout starts.
        let watcher = events.clone();
        let stopping = paas.stopping().clone();
        let mut interrupted = std::pin::pin!(async move {
            tokio::select! {
                () = watcher.closed() => {}
                () = stopping.cancelled() => {}
            }
        });
        let lock = tokio::select! {
            lock = paas.lock_deploys(&app, &log) => lock?,
            () = &mut interrupted => return Ok(false),
        };
        // Checked under the lock: another push may have moved the branch while this one
        // waited, and git would then refuse to update it after the deploy.
        let now = branch_head(&repo, &update.name).await?;
        if now.as_deref().unwrap_or(ZERO_SHA) != update.old {
            log.error(format!(
                "{} moved while this push waited for another deploy; pull and push again",
                update.name.trim_start_matches("refs/heads/")
            ));
            return Ok(false);
        }
        if let Some(version) = deployed_version(paas, &app, &sha).await?
            && !adopt_master
            && tag.is_none()
        {
            log.step(format!("{short} is already deployed as v{version}; nothing to do"));
            *push.deploy_lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
            return Ok(true);
        }
        let checkout = git.scratch_dir(&app.name).await?;
        let commit_message = match git.checkout(&repo, &sha, &env, checkout.path()).await {
            Ok(message) => message,
            Err(CheckoutError::TooLarge(why)) => {
                log.error(why);
                return Ok(false);
            }
            Err(CheckoutError::Failed(err)) => return Err(err),
        };
        let tree = SourceTree {
            dir: checkout.path().to_path_buf(),
            source: paas_store::DeploySource::Git,
            commit_sha: Some(sha.clone()),
            commit_message: Some(commit_message),
            git_tag: tag.clone(),
        };
        let deployed = paas.deploy_locked(&push.actor, &app, &tree, &log, interrupted).await;
        if deployed.is_ok() && adopt_master {
            paas.set_deploy_branch(&push.actor, &app, "master").await?;
            log.info(format!("{} deploys from master from now on", app.name));
        }
        if deployed.is_ok() {
            // Released only when git has moved the branch (or the push is gone).
            *push.deploy_lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
        }
        Ok::<bool, Error>(deployed.is_ok())
    }
    .await;
    if let Ok(false) | Err(_) = outcome
        && paas.stopping().is_cancelled()
    {
        log.error(STOPPING);
    }
    if let Ok(false) = outcome {
        log.error("Push rejected: nothing was deployed, and the branch stays where it was");
    }
    log.close();
    let _ = forward.await;
    outcome
}

async fn refusal(events: &mpsc::Sender<HookEvent>, message: &str) {
    for text in message.lines() {
        let _ = events.send(line(format!(" !     {text}"))).await;
    }
}

/// The version serving `sha` right now, if one does.
pub(crate) async fn deployed_version(paas: &Paas, app: &App, sha: &str) -> Result<Option<i64>> {
    let Some(current) = paas.store().current_release(app).await? else {
        return Ok(None);
    };
    let Some(build_id) = current.build_id else {
        return Ok(None);
    };
    // A promoted release runs another app's build: its commit is looked up by id alone.
    let commit = paas.store().build_commit(build_id).await?;
    Ok((commit.as_deref() == Some(sha)).then_some(current.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(branch: &str) -> App {
        App {
            id: 1,
            name: "shop".into(),
            deploy_branch: branch.into(),
            deploy_tags: None,
            created_by: "a@b".into(),
            created_at: String::new(),
        }
    }

    fn update(name: &str, new: &str) -> RefUpdate {
        RefUpdate { old: ZERO_SHA.into(), new: new.into(), name: name.into() }
    }

    #[test]
    fn main_and_master_deploy_other_branches_are_stored() {
        let sha = "a".repeat(40);
        let deploy = |name: &str| Verdict::Deploy {
            sha: sha.clone(),
            update: update(name, &sha),
            tag: None,
        };
        let main = update("refs/heads/main", &sha);
        assert_eq!(judge(&app("main"), std::slice::from_ref(&main)), deploy("refs/heads/main"));
        let master = update("refs/heads/master", &sha);
        assert_eq!(judge(&app("main"), &[master]), deploy("refs/heads/master"));
        let Verdict::Store(message) = judge(&app("main"), &[update("refs/heads/feature", &sha)])
        else {
            panic!("a feature branch must be stored, not deployed");
        };
        assert!(message.contains("deploys from `main` or `master`"), "{message}");
        assert!(message.contains("git push paas feature:main"), "{message}");
        assert!(matches!(judge(&app("main"), &[update("refs/tags/v1", &sha)]), Verdict::Refuse(_)));
        // Deploying and storing in one push would leave a half-done push if the deploy fails.
        let both = [update("refs/heads/main", &sha), update("refs/heads/feature", &sha)];
        assert!(
            matches!(judge(&app("main"), &both), Verdict::Refuse(m) if m.contains("separately"))
        );

        // A configured branch is the only one.
        assert_eq!(
            judge(&app("production"), &[update("refs/heads/production", &sha)]),
            deploy("refs/heads/production")
        );
        assert!(matches!(
            judge(&app("production"), &[update("refs/heads/master", &sha)]),
            Verdict::Store(_)
        ));
    }

    #[test]
    fn deleting_or_splitting_the_deploy_branch_is_refused() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        assert!(matches!(
            judge(&app("main"), &[update("refs/heads/main", ZERO_SHA)]),
            Verdict::Refuse(m) if m.contains("cannot be deleted")
        ));
        for pair in [[&a, &b], [&a, &a]] {
            let refs = [update("refs/heads/main", pair[0]), update("refs/heads/master", pair[1])];
            assert!(matches!(
                judge(&app("main"), &refs),
                Verdict::Refuse(m) if m.contains("at a time")
            ));
        }
    }

    #[test]
    fn tags_deploy_where_the_app_takes_them_one_at_a_time() {
        let sha = "a".repeat(40);
        let tags = App { deploy_tags: Some("v*".into()), ..app("main") };
        let v1 = update("refs/tags/v1.4.0", &sha);
        assert_eq!(
            judge(&tags, std::slice::from_ref(&v1)),
            Verdict::Deploy { sha: sha.clone(), update: v1.clone(), tag: Some("v1.4.0".into()) }
        );
        let refused = |refs: &[RefUpdate], says: &str| {
            assert!(
                matches!(judge(&tags, refs), Verdict::Refuse(m) if m.contains(says)),
                "{refs:?}"
            );
        };
        refused(&[update("refs/tags/nightly", &sha)], "`nightly` does not match");
        refused(&[update("refs/tags/v1.4.0", ZERO_SHA)], "cannot be deleted");
        refused(&[v1.clone(), update("refs/tags/v1.5.0", &sha)], "one tag at a time");
        refused(&[v1, update("refs/heads/main", &sha)], "push the tag on its own");
        // Without the setting, tags are refused as before.
        assert!(matches!(
            judge(&app("main"), &[update("refs/tags/v1", &sha)]),
            Verdict::Refuse(m) if m.contains("takes branches only")
        ));
    }

    #[test]
    fn tag_patterns_match_with_stars() {
        for (pattern, tag, matches) in [
            ("*", "anything", true),
            ("v*", "v1.4.0", true),
            ("v*", "1.4.0", false),
            ("release-*-eu", "release-7-eu", true),
            ("release-*-eu", "release-7-us", false),
            ("v1.4.0", "v1.4.0", true),
            ("v1.4.0", "v1.4.01", false),
            ("*-rc", "v2-rc", true),
        ] {
            assert_eq!(tag_matches(pattern, tag), matches, "{pattern} {tag}");
        }
    }
}
