//! The apps' git repositories: where they live, their pre-receive hook, the pushes under
//! way (each with the one-off token its hook reports back with), and checking a pushed
//! commit out to build, within limits.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::process::Command;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use super::audit::Actor;
use super::auth;
use super::error::{Error, Result};
use crate::wire::QUARANTINE_ENV;

/// The pre-receive hook every app repository gets. It only hands over to `paas git-hook`,
/// which the server names in the environment of the `receive-pack` it starts: a push that
/// did not come through the server (a local `git push` into the directory) is refused.
const PRE_RECEIVE_HOOK: &str = r#"#!/bin/sh
# Installed by paas: a push to this repository deploys through the paas server.
if [ -z "$PAAS_HOOK_URL" ] || [ -z "$PAAS_HOOK_BIN" ]; then
    echo "This repository deploys through paas: push to the paas server over HTTP." >&2
    exit 1
fi
exec "$PAAS_HOOK_BIN" git-hook
"#;

/// The git side of a server: where repositories live, and the pushes under way.
pub struct Git {
    repos: PathBuf,
    /// Scratch space for checkouts being built.
    work: PathBuf,
    hook_bin: PathBuf,
    /// Where hooks reach this server (loopback).
    hook_url: String,
    max_push_bytes: u64,
    /// Hash of each running push's hook token → who pushed to which app.
    pushes: Mutex<HashMap<String, Push>>,
    /// Bounds the git processes running at once (each holds pipes and memory).
    requests: Arc<Semaphore>,
    /// How long a git request waits for its turn before a 503 (`--git-queue-wait`).
    queue_wait: std::time::Duration,
}

#[derive(Clone)]
pub(crate) struct Push {
    pub(crate) app: String,
    /// Who pushed, from where.
    pub(crate) actor: Actor,
    /// The app's deploy lock once this push has deployed, held until its `receive-pack`
    /// exits: git moves the branch after the hook succeeds, and no other push may deploy
    /// before it has, or production would run a commit the branch does not point at.
    pub(crate) deploy_lock: Arc<Mutex<Option<OwnedMutexGuard<()>>>>,
}

impl Git {
    pub fn new(
        data_dir: &Path,
        hook_bin: PathBuf,
        hook_url: String,
        max_push_bytes: u64,
        max_requests: usize,
        queue_wait: std::time::Duration,
    ) -> Arc<Git> {
        Arc::new(Git {
            repos: data_dir.join("repos"),
            work: data_dir.join("tmp"),
            hook_bin,
            hook_url,
            max_push_bytes,
            pushes: Mutex::default(),
            requests: Arc::new(Semaphore::new(max_requests.max(1))),
            queue_wait,
        })
    }

    pub fn repo_path(&self, app: &str) -> PathBuf {
        self.repos.join(format!("{app}.git"))
    }

    /// Creates the app's bare repository if it is missing, and (re)writes its hook, so a
    /// repository from an older paas gets the current one.
    pub async fn ensure_repo(&self, app: &str) -> Result<PathBuf> {
        let path = self.repo_path(app);
        if !path.join("HEAD").exists() {
            tokio::fs::create_dir_all(&self.repos).await.map_err(io_error)?;
            git(&self.repos, &["init", "--quiet", "--bare", "--initial-branch=main"], &path)
                .await?;
        }
        let hook = path.join("hooks").join("pre-receive");
        tokio::fs::write(&hook, PRE_RECEIVE_HOOK).await.map_err(io_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o755);
            tokio::fs::set_permissions(&hook, mode).await.map_err(io_error)?;
        }
        Ok(path)
    }

    /// Points the repository's HEAD at `branch`, so that a clone checks out what deploys.
    pub async fn point_head(&self, app: &str, branch: &str) -> Result<()> {
        let path = self.ensure_repo(app).await?;
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(&path)
            .args(["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")])
            .output()
            .await
            .map_err(io_error)?;
        match output.status.success() {
            true => Ok(()),
            false => Err(Error::Internal(format!(
                "git symbolic-ref HEAD: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))),
        }
    }

    /// Removes the app's repository, once the pushes to it have ended (up to a few
    /// seconds): git must not find its directory gone while it winds down.
    pub async fn remove_repo(&self, app: &str) {
        for _ in 0..100 {
            if !self.lock_pushes().values().any(|push| push.app == app) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let path = self.repo_path(app);
        if let Err(err) = tokio::fs::remove_dir_all(&path).await
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(app, error = %err, "could not remove the app's git repository");
        }
    }

    pub(crate) fn lock_pushes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Push>> {
        self.pushes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A turn to run a git process (`--git-max-requests`), or `None` when none came within
    /// `--git-queue-wait`.
    pub(crate) async fn turn(&self) -> Option<OwnedSemaphorePermit> {
        let permit = tokio::time::timeout(self.queue_wait, self.requests.clone().acquire_owned());
        permit.await.ok()?.ok()
    }

    /// Registers a push to `app` by `actor` for the hook of the `receive-pack` about to run:
    /// the hook's one-off token, and what forgets the push when dropped.
    pub(crate) fn register_push(
        self: &Arc<Git>,
        app: &str,
        actor: Actor,
    ) -> (String, PushRegistration) {
        let token = auth::generate_token();
        let token_hash = auth::hash_token(&token);
        let push = Push { app: app.to_string(), actor, deploy_lock: Arc::default() };
        self.lock_pushes().insert(token_hash.clone(), push);
        (token, PushRegistration { git: self.clone(), token_hash })
    }

    /// The push a hook's token belongs to.
    pub(crate) fn push_for(&self, token: &str) -> Option<Push> {
        self.lock_pushes().get(&auth::hash_token(token)).cloned()
    }

    /// What `receive-pack` is told: where the hook reaches this server, and with what.
    pub(crate) fn hook_env(&self) -> [(&'static str, &std::ffi::OsStr); 2] {
        [("PAAS_HOOK_URL", self.hook_url.as_ref()), ("PAAS_HOOK_BIN", self.hook_bin.as_os_str())]
    }

    pub(crate) fn max_push_bytes(&self) -> u64 {
        self.max_push_bytes
    }

    /// A fresh folder to check a push out into, removed when dropped.
    pub(crate) async fn scratch_dir(&self, app: &str) -> Result<tempfile::TempDir> {
        tokio::fs::create_dir_all(&self.work).await.map_err(io_error)?;
        let prefix = format!("{app}-");
        tempfile::Builder::new().prefix(&prefix).tempdir_in(&self.work).map_err(io_error)
    }

    /// Checks `sha` out into `dir`, within [`CHECKOUT_FACTOR`] times the push limit.
    pub(crate) async fn checkout(
        &self,
        repo: &Path,
        sha: &str,
        env: &[(String, String)],
        dir: &Path,
    ) -> std::result::Result<String, CheckoutError> {
        let limit = self.max_push_bytes.saturating_mul(CHECKOUT_FACTOR);
        checkout_commit(repo, sha, env, dir, limit).await
    }
}

/// Runs `git ARGS… PATH` in `cwd`; its stderr becomes the error.
async fn git(cwd: &Path, args: &[&str], path: &Path) -> Result<()> {
    let output = Command::new("git")
        .args(args)
        .arg(path)
        .current_dir(cwd)
        .output()
        .await
        .map_err(io_error)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

pub(crate) fn io_error(err: std::io::Error) -> Error {
    Error::Internal(format!("git repository: {err}"))
}

/// Forgets a push's hook token when its `receive-pack` is over.
pub(crate) struct PushRegistration {
    git: Arc<Git>,
    token_hash: String,
}

impl Drop for PushRegistration {
    fn drop(&mut self) {
        self.git.lock_pushes().remove(&self.token_hash);
    }
}

/// The commit a branch of the repository points at, if it exists.
pub(crate) async fn branch_head(repo: &Path, refname: &str) -> Result<Option<String>> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet", refname])
        .output()
        .await
        .map_err(io_error)?;
    let sha = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Ok((output.status.success() && !sha.is_empty()).then_some(sha))
}

/// The commit `sha` names: itself, or the commit an annotated tag points at. `env` lets git
/// see a push's objects while they are still in quarantine.
pub(crate) async fn peel_to_commit(
    repo: &Path,
    sha: &str,
    env: &[(String, String)],
) -> Result<String> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet", &format!("{sha}^{{commit}}")])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .map_err(io_error)?;
    let commit = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || commit.is_empty() {
        return Err(Error::invalid("not_a_commit", format!("{sha} does not name a commit")));
    }
    Ok(commit)
}

/// How many commits `to` has that `from` lacks (`git rev-list --count from..to`), if the
/// repository has both.
pub(crate) async fn commits_between(repo: &Path, from: &str, to: &str) -> Option<u64> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-list", "--count", &format!("{from}..{to}"), "--"])
        .output()
        .await
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// The hook's quarantine variables, each checked to point inside the app's repository: the
/// hook token proves the push, not the paths it reports.
pub(crate) fn quarantine_env(
    repo: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let root = repo.canonicalize().map_err(io_error)?;
    let mut checked = Vec::new();
    for (key, value) in env {
        if !QUARANTINE_ENV.contains(&key.as_str()) {
            continue;
        }
        for part in value.split(':').filter(|p| !p.is_empty()) {
            let inside = root.join(part).canonicalize().is_ok_and(|p| p.starts_with(&root));
            if !inside {
                return Err(Error::invalid(
                    "bad_hook",
                    format!("{key} points outside the repository"),
                ));
            }
        }
        checked.push((key.clone(), value.clone()));
    }
    Ok(checked)
}

/// How much bigger than the largest push a checkout may be: packs compress, but a small
/// pack that inflates to gigabytes must not fill the disk.
const CHECKOUT_FACTOR: u64 = 4;
/// Most files a checkout may hold (each costs an inode).
const MAX_CHECKOUT_FILES: u64 = 200_000;

pub(crate) enum CheckoutError {
    /// The pusher's to fix: said in the push output.
    TooLarge(String),
    Failed(Error),
}

impl From<Error> for CheckoutError {
    fn from(err: Error) -> CheckoutError {
        CheckoutError::Failed(err)
    }
}

/// Writes the tree of `sha` into `dir` (`git archive`, so no `.git` comes along) and returns
/// the commit's message. Refuses, before writing past it, a tree over `limit` bytes or
/// [`MAX_CHECKOUT_FILES`] files.
async fn checkout_commit(
    repo: &Path,
    sha: &str,
    env: &[(String, String)],
    dir: &Path,
    limit: u64,
) -> std::result::Result<String, CheckoutError> {
    let (repo, sha, env, dir) = (repo.to_path_buf(), sha.to_string(), env.to_vec(), dir.to_owned());
    tokio::task::spawn_blocking(move || {
        let git = |args: &[&str]| {
            let mut command = std::process::Command::new("git");
            command.arg("--git-dir").arg(&repo).args(args).current_dir(&repo);
            command.envs(env.iter().map(|(k, v)| (k, v)));
            command
        };
        let mut archive = git(&["archive", "--format=tar", &sha])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_error)?;
        let stdout = archive.stdout.take().ok_or_else(|| Error::Internal("no pipe".into()))?;
        let unpacked = unpack_within(stdout, &dir, limit, &sha);
        if unpacked.is_err() {
            // Stop git rather than read the rest of a tree that is refused anyway.
            let _ = archive.kill();
        }
        let output = archive.wait_with_output().map_err(io_error)?;
        unpacked?;
        if !output.status.success() {
            return Err(Error::Internal(format!(
                "git archive {sha}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
            .into());
        }
        let message = git(&["log", "-1", "--format=%B", &sha]).output().map_err(io_error)?;
        Ok(String::from_utf8_lossy(&message.stdout).trim().to_string())
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

/// Unpacks a tar into `dir`, entry by entry, counting bytes and files against the limits.
fn unpack_within(
    tar: impl Read,
    dir: &Path,
    limit: u64,
    sha: &str,
) -> std::result::Result<(), CheckoutError> {
    let short = &sha[..sha.len().min(7)];
    let mut archive = tar::Archive::new(tar);
    let (mut bytes, mut files) = (0u64, 0u64);
    let entries = archive.entries().map_err(|e| Error::Internal(format!("unpacking: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::Internal(format!("unpacking {short}: {e}")))?;
        bytes = bytes.saturating_add(entry.header().size().unwrap_or(0));
        files += 1;
        if bytes > limit {
            return Err(CheckoutError::TooLarge(format!(
                "{short} unpacks to more than {} MiB, the most a checkout may hold (4 times \
                 --max-push-mb); remove large files from the repository or raise the limit",
                limit / (1024 * 1024)
            )));
        }
        if files > MAX_CHECKOUT_FILES {
            return Err(CheckoutError::TooLarge(format!(
                "{short} holds more than {MAX_CHECKOUT_FILES} files, the most a checkout may hold"
            )));
        }
        entry.unpack_in(dir).map_err(|e| Error::Internal(format!("unpacking {short}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_git_request_gets_no_turn_once_the_queue_wait_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let git =
            Git::new(dir.path(), "paas".into(), String::new(), 1, 1, Duration::from_millis(200));
        let first = git.turn().await.expect("the only turn is free");
        let started = std::time::Instant::now();
        assert!(git.turn().await.is_none(), "a second request got a turn beside the first");
        assert!(started.elapsed() >= Duration::from_millis(200), "it did not wait its turn");
        drop(first);
        assert!(git.turn().await.is_some(), "the turn was not handed back");
    }
}
