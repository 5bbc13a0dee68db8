//! git's side of paas: the remote (`git:remote`), the credential helper git asks for the
//! token (`git-credential`), and the pre-receive hook that streams a push's deploy back to
//! the pusher (`git-hook`).

use std::io::{BufRead, Write};
use std::process::Command;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use paas_server::wire::{HookEvent, HookRequest, QUARANTINE_ENV, RefUpdate};

use super::{app_name, client};
use crate::{AppArg, credentials, git};

/// `paas git:remote`: points a remote of this checkout at the app's repository.
pub(crate) fn remote(arg: &AppArg) -> Result<()> {
    if arg.app.is_none() {
        bail!("name the app: paas git:remote -a APP");
    }
    if !git::in_repository() {
        bail!("this is not a git checkout: run `git init` first");
    }
    let name = app_name(arg)?;
    let url = format!("{}/{name}.git", client()?.base_url());
    if !git::set_remote(&arg.remote, &url)? {
        bail!("git could not set the remote {}", arg.remote);
    }
    println!("Git remote {} now points at {url}", arg.remote);
    Ok(())
}

/// The git config key that makes git ask `paas git-credential` for `url`'s password.
fn helper_key(url: &str) -> String {
    format!("credential.{}.helper", url.trim_end_matches('/'))
}

/// Makes plain `git push` to `url` authenticate with the saved token (a global git setting
/// scoped to that URL alone). Returns whether git took it.
pub(crate) fn install_credential_helper(url: &str) -> bool {
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    // git runs a helper starting with `!` through the shell; quote the path for it.
    let helper = format!("!'{}' git-credential", exe.display().to_string().replace('\'', "'\\''"));
    Command::new("git")
        .args(["config", "--global", "--replace-all", &helper_key(url), &helper])
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn remove_credential_helper(url: &str) {
    let _ = Command::new("git")
        .args(["config", "--global", "--unset-all", &helper_key(url)])
        .stderr(std::process::Stdio::null())
        .status();
}

/// `paas git-credential get`: git's credential-helper protocol. Answers with the saved token
/// when git asks about the server paas is logged in to, and with nothing otherwise, so git
/// goes on to other helpers. `store` and `erase` have nothing to do: the login is the store.
pub(crate) fn credential(action: &str) -> Result<()> {
    if action != "get" {
        return Ok(());
    }
    let mut asked = std::collections::HashMap::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once('=') {
            asked.insert(key.to_string(), value.to_string());
        }
    }
    let Ok(saved) = credentials::load() else {
        return Ok(());
    };
    let (Some(protocol), Some(host)) = (asked.get("protocol"), asked.get("host")) else {
        return Ok(());
    };
    let origin = format!("{protocol}://{host}");
    if saved.url.trim_end_matches('/') != origin {
        return Ok(());
    }
    println!("username=paas");
    println!("password={}", saved.token);
    Ok(())
}

/// `paas git-hook`: run by git as an app repository's pre-receive hook, inside a push the
/// server is receiving. Hands the pushed refs to the server and prints the deploy's log as
/// it streams (git shows it as `remote:` lines); exits non-zero to reject the push.
pub(crate) async fn hook() -> Result<bool> {
    let url = std::env::var("PAAS_HOOK_URL").context("PAAS_HOOK_URL is not set")?;
    let token = std::env::var("PAAS_HOOK_TOKEN").context("PAAS_HOOK_TOKEN is not set")?;
    let mut refs = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut parts = line.split_whitespace();
        if let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) {
            refs.push(RefUpdate { old: old.into(), new: new.into(), name: name.into() });
        }
    }
    // A NUL asks receive-pack to send keepalives to the pusher while this hook is silent
    // (a quiet build step): writing them is also how the server notices a pusher gone.
    // Written before the request, so that receive-pack reads it alone: output that came in
    // the same read as the NUL was seen lost (only the tail of a refusal reached the pusher).
    let mut out = std::io::stdout();
    out.write_all(b"\0").and_then(|()| out.flush())?;
    let env = QUARANTINE_ENV
        .iter()
        .filter_map(|key| std::env::var(key).ok().map(|value| (key.to_string(), value)))
        .collect();
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json(&HookRequest { refs, env })
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .context("cannot reach the paas server")?;

    let parent = std::os::unix::process::parent_id();
    let mut stdout = std::io::stdout();
    let mut body = response.bytes_stream();
    let mut pending = Vec::new();
    while let Some(chunk) = body.next().await {
        pending.extend_from_slice(&chunk.context("lost the paas server mid-deploy")?);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            match serde_json::from_slice::<HookEvent>(&line) {
                Ok(HookEvent::Line { line }) => {
                    // The pusher gone (git's pipe closed) ends the hook, and the server
                    // then abandons the build.
                    if writeln!(stdout, "{line}").and_then(|()| stdout.flush()).is_err() {
                        return Ok(false);
                    }
                }
                Ok(HookEvent::Done { ok }) => return Ok(ok),
                // A new parent means git's receive-pack died (its pusher went away): leave,
                // so the server abandons the deploy.
                Ok(HookEvent::Heartbeat { .. })
                    if std::os::unix::process::parent_id() != parent =>
                {
                    return Ok(false);
                }
                Ok(HookEvent::Heartbeat { .. }) => {}
                Err(err) => bail!("garbled answer from the paas server: {err}"),
            }
        }
    }
    bail!("the paas server stopped answering before the deploy finished")
}
