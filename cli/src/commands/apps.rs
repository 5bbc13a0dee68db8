//! `paas apps`, `apps:create`, `apps:info`, `apps:destroy`.

use anyhow::{Result, bail};
use paas_server::wire::AppView as App;
use paas_server::wire::{AppInfo, CreateApp, UpdateApp};

use super::{app_name, checked, client, nothing, progress, table};
use crate::client::path;
use crate::{AppArg, git};

pub(crate) async fn list() -> Result<()> {
    let apps: Vec<App> = client()?.get("/apps").await?;
    if apps.is_empty() {
        println!("No apps yet. Create one with `paas apps:create NAME`.");
        return Ok(());
    }
    println!("=== Apps");
    for app in apps {
        println!("{}", app.name);
    }
    Ok(())
}

pub(crate) async fn create(name: Option<String>, remote: Option<String>) -> Result<()> {
    let client = client()?;
    let message =
        format!("Creating app{}", name.as_ref().map(|n| format!(" {n}")).unwrap_or_default());
    let info: AppInfo =
        progress(&message, client.post("/apps", &CreateApp { name }), nothing).await?;
    let git_url = format!("{}/{}.git", client.base_url(), info.app.name);
    println!("Created {}", info.app.name);
    println!("Web URL: {}", info.web_url);
    println!("Git URL: {git_url}");
    if let Some(remote) = remote.filter(|_| git::in_repository()) {
        if git::set_remote(&remote, &git_url)? {
            println!("Git remote {remote} now points at {git_url}");
        } else {
            eprintln!("warning: could not add the git remote {remote}");
        }
    }
    Ok(())
}

pub(crate) async fn info(arg: &AppArg) -> Result<()> {
    let name = app_name(arg)?;
    let client = client()?;
    let info: AppInfo = client.get(&path(&["apps", &name])?).await?;
    let formation = if info.formation.is_empty() {
        "none yet (set by the first deploy, or paas ps:scale)".to_string()
    } else {
        info.formation.iter().map(|(t, n)| format!("{t}={n}")).collect::<Vec<_>>().join(" ")
    };
    println!("=== {}", info.app.name);
    print!(
        "{}",
        table(&[
            vec!["Created:".into(), format!("{} by {}", info.app.created_at, info.app.created_by)],
            vec!["Web URL:".into(), info.web_url.clone()],
            vec!["Git URL:".into(), format!("{}/{}.git", client.base_url(), info.app.name)],
            vec!["Deploy branch:".into(), info.app.deploy_branch.clone()],
            vec!["Release:".into(), info.release.map(|v| format!("v{v}")).unwrap_or_default()],
            vec!["Formation:".into(), formation],
        ])
    );
    Ok(())
}

/// `paas apps:update --deploy-branch BRANCH`, `--deploy-tags PATTERN`, `--no-deploy-tags`.
pub(crate) async fn update(
    arg: &AppArg,
    deploy_branch: Option<String>,
    deploy_tags: Option<String>,
) -> Result<()> {
    if deploy_branch.is_none() && deploy_tags.is_none() {
        bail!(
            "nothing to change: pass --deploy-branch BRANCH, --deploy-tags PATTERN or --no-deploy-tags"
        );
    }
    let name = app_name(arg)?;
    let body = UpdateApp { deploy_branch: deploy_branch.clone(), deploy_tags: deploy_tags.clone() };
    let info: AppInfo = progress(
        &format!("Updating {name}"),
        client()?.patch(&path(&["apps", &name])?, &body),
        nothing,
    )
    .await?;
    if deploy_branch.is_some() {
        println!("Pushes to {} now deploy {}", info.app.deploy_branch, info.app.name);
    }
    match (deploy_tags, &info.app.deploy_tags) {
        (None, _) => {}
        (Some(_), Some(pattern)) => println!(
            "Pushed tags matching {pattern} now build a release of {} that waits for \
             `paas releases:approve`",
            info.app.name
        ),
        (Some(_), None) => println!("{} no longer deploys tags", info.app.name),
    }
    Ok(())
}

pub(crate) async fn destroy(arg: &AppArg, confirm: Option<String>) -> Result<()> {
    let name = match (&arg.app, &confirm) {
        (None, Some(confirm)) if git::remote_url(&arg.remote).is_none() => checked(confirm)?,
        _ => app_name(arg)?,
    };
    match confirm {
        Some(confirm) if confirm == name => {}
        Some(confirm) => {
            bail!("--confirm {confirm} does not match the app {name}; nothing was destroyed")
        }
        None => bail!(
            "this permanently destroys {name} with its config and releases. To proceed, run:\n\n    \
             paas apps:destroy -a {name} --confirm {name}"
        ),
    }
    let client = client()?;
    let url = path(&["apps", &name])?;
    progress(&format!("Destroying {name}"), client.delete(&url), nothing).await?;
    println!("Destroyed {name}");
    let remote_app = git::remote_url(&arg.remote).and_then(|url| git::app_from_remote_url(&url));
    if remote_app.as_deref() == Some(name.as_str()) && git::remove_remote(&arg.remote) {
        println!("Git remote {} removed", arg.remote);
    }
    Ok(())
}
