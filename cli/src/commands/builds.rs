//! `paas builds`, `builds:info`.

use anyhow::{Result, bail};
use paas_server::wire::BuildView as Build;

use super::{app_name, client, table};
use crate::AppArg;
use crate::client::path;

pub(crate) async fn list(arg: &AppArg) -> Result<()> {
    let name = app_name(arg)?;
    let builds: Vec<Build> = client()?.get(&path(&["apps", &name, "builds"])?).await?;
    println!("=== {name} Builds");
    if builds.is_empty() {
        println!("none yet; deploy with `git push paas main`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = builds
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                b.status.to_string(),
                b.kind.clone().unwrap_or_default(),
                b.commit_sha
                    .as_deref()
                    .map(|s| s[..s.len().min(7)].to_string())
                    .unwrap_or_default(),
                b.created_by.clone(),
                b.created_at.clone(),
            ]
        })
        .collect();
    print!("{}", table(&rows));
    Ok(())
}

pub(crate) async fn info(arg: &AppArg, id: Option<i64>) -> Result<()> {
    let name = app_name(arg)?;
    let client = client()?;
    let id = match id {
        Some(id) => id,
        None => match client.get::<Vec<Build>>(&path(&["apps", &name, "builds"])?).await?.first() {
            Some(latest) => latest.id,
            None => bail!("{name} has no builds yet"),
        },
    };
    let build: Build = client.get(&path(&["apps", &name, "builds", &id.to_string()])?).await?;
    println!("=== Build {} of {name}: {}", build.id, build.status);
    print!(
        "{}",
        table(&[
            vec!["Detected:".into(), build.kind.unwrap_or_default()],
            vec!["Commit:".into(), build.commit_sha.unwrap_or_default()],
            vec!["Image:".into(), build.image.unwrap_or_default()],
            vec!["By:".into(), format!("{} via {}", build.created_by, build.source)],
            vec!["Started:".into(), build.created_at],
            vec!["Finished:".into(), build.finished_at.unwrap_or_default()],
        ])
    );
    if let Some(error) = build.error {
        println!("Error:     {error}");
    }
    println!();
    print!("{}", build.log);
    Ok(())
}
