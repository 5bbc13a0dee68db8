//! `paas pipelines…`: apps in stages, and promoting the image one stage runs to the next.

use anyhow::{Result, bail};
use paas_server::core::{PipelineStatus, ReviewApps};
use paas_server::wire::{AddToPipeline, CreatePipeline, Promote, Promoted};

use super::{app_name, client, nothing, progress, table};
use crate::AppArg;
use crate::client::{encode, path};

pub(crate) async fn list() -> Result<()> {
    let names: Vec<String> = client()?.get("/pipelines").await?;
    if names.is_empty() {
        println!("No pipelines yet: `paas pipelines:create NAME`.");
    }
    for name in names {
        println!("{name}");
    }
    Ok(())
}

pub(crate) async fn show(name: &str) -> Result<()> {
    let status: PipelineStatus = client()?.get(&path(&["pipelines", name])?).await?;
    print_status(&status);
    Ok(())
}

fn print_status(status: &PipelineStatus) {
    println!("=== {}", status.name);
    if status.apps.is_empty() {
        println!(
            "No apps yet: `paas pipelines:add {} -a APP --stage staging` (development, staging, \
             production).",
            status.name
        );
        return;
    }
    let mut rows = vec![["STAGE", "APP", "RELEASE", "COMMIT", "BEHIND"].map(String::from).to_vec()];
    for app in &status.apps {
        rows.push(vec![
            app.stage.clone(),
            app.app.clone(),
            app.runs(),
            app.short_commit(),
            app.behind_words(),
        ]);
    }
    print!("{}", table(&rows));
    if let Some(review) = &status.review {
        let mut line = format!(
            "Review apps: each pull request on {}'s GitHub repository gets {}-pr-N",
            review.app, status.name
        );
        if !review.copy_config.is_empty() {
            line.push_str(&format!(", with {} copied", review.copy_config.join(", ")));
        }
        if !review.addons.is_empty() {
            line.push_str(&format!(" and its own {}", review.addons.join(", ")));
        }
        if review.forks {
            line.push_str("; forks' too");
        }
        println!("{line}");
    }
}

pub(crate) async fn create(name: &str) -> Result<()> {
    let body = CreatePipeline { name: name.to_string() };
    let message = format!("Creating pipeline {name}");
    let _: PipelineStatus =
        progress(&message, client()?.post("/pipelines", &body), nothing).await?;
    println!("Add apps with `paas pipelines:add {name} -a APP --stage staging`.");
    Ok(())
}

pub(crate) async fn add(name: &str, arg: &AppArg, stage: &str) -> Result<()> {
    let app = app_name(arg)?;
    let body = AddToPipeline { app: app.clone(), stage: stage.to_string() };
    let url = path(&["pipelines", name, "apps"])?;
    let message = format!("Adding {app} to {name} at stage {stage}");
    let status: PipelineStatus = progress(&message, client()?.post(&url, &body), nothing).await?;
    print_status(&status);
    Ok(())
}

pub(crate) async fn review_apps(name: &str, settings: Option<ReviewApps>) -> Result<()> {
    let url = path(&["pipelines", name, "review-apps"])?;
    let client = client()?;
    match settings {
        Some(settings) => {
            let message = format!("Turning review apps of {name} on");
            let status: PipelineStatus =
                progress(&message, client.put(&url, &settings), nothing).await?;
            print_status(&status);
        }
        None => {
            let message = format!("Turning review apps of {name} off");
            progress(&message, client.delete(&url), nothing).await?;
        }
    }
    Ok(())
}

pub(crate) async fn remove(arg: &AppArg) -> Result<()> {
    let app = app_name(arg)?;
    let url = path(&["apps", &app, "pipeline"])?;
    progress(&format!("Removing {app} from its pipeline"), client()?.delete(&url), nothing).await
}

pub(crate) async fn destroy(name: &str, confirm: Option<String>) -> Result<()> {
    match confirm {
        Some(confirm) if confirm == name => {}
        Some(confirm) => bail!("--confirm {confirm} does not match {name}; nothing was destroyed"),
        None => bail!(
            "this deletes pipeline {name} (its apps stay, in no pipeline). To proceed, run:\n\n    \
             paas pipelines:destroy {name} --confirm {name}"
        ),
    }
    let url = format!("{}?confirm={}", path(&["pipelines", name])?, encode(name));
    progress(&format!("Destroying pipeline {name}"), client()?.delete(&url), nothing).await
}

pub(crate) async fn promote(arg: &AppArg, to: Vec<String>) -> Result<()> {
    let app = app_name(arg)?;
    let url = path(&["apps", &app, "promote"])?;
    let message = format!("Promoting {app}");
    let made: Vec<Promoted> =
        progress(&message, client()?.post(&url, &Promote { to }), nothing).await?;
    for promoted in made {
        println!(
            "{} is now v{}: {} (no build; its own config and release phase)",
            promoted.app, promoted.release.version, promoted.release.description
        );
    }
    Ok(())
}
