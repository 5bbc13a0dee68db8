//! `paas volumes`, `volumes:add`, `volumes:remove`: persistent folders of an app.

use anyhow::{Result, bail};
use paas_server::core::Volume;
use paas_server::wire::AddVolume;

use super::{app_name, client, nothing, progress, table};
use crate::AppArg;
use crate::client::{encode, path};

pub(crate) async fn list(arg: &AppArg) -> Result<()> {
    let app = app_name(arg)?;
    let volumes: Vec<Volume> = client()?.get(&path(&["apps", &app, "volumes"])?).await?;
    if volumes.is_empty() {
        println!("{app} has no volumes. Add one with `paas volumes:add media /app/media`.");
        return Ok(());
    }
    let mut rows = vec![["VOLUME", "MOUNTED AT", "ADDED"].map(String::from).to_vec()];
    for v in volumes {
        rows.push(vec![v.name, v.path, format!("{} by {}", v.created_at, v.created_by)]);
    }
    print!("{}", table(&rows));
    Ok(())
}

pub(crate) async fn add(arg: &AppArg, name: &str, mount: &str) -> Result<()> {
    let app = app_name(arg)?;
    let client = client()?;
    let url = path(&["apps", &app, "volumes"])?;
    let body = AddVolume { name: name.to_string(), path: mount.to_string() };
    let message = format!("Adding volume {name} at {mount} to {app} (restarting its processes)");
    let volume: Volume = progress(&message, client.post(&url, &body), nothing).await?;
    println!(
        "Every process of {app} now has {} at {}; it is kept across deploys.",
        volume.name, volume.path
    );
    Ok(())
}

pub(crate) async fn remove(arg: &AppArg, name: &str, confirm: Option<String>) -> Result<()> {
    let app = app_name(arg)?;
    match confirm {
        Some(confirm) if confirm == name => {}
        Some(confirm) => bail!("--confirm {confirm} does not match {name}; nothing was removed"),
        None => bail!(
            "this deletes volume {name} of {app} and every file in it. To proceed, run:\n\n    \
             paas volumes:remove {name} -a {app} --confirm {name}"
        ),
    }
    let client = client()?;
    let url = format!("{}?confirm={}", path(&["apps", &app, "volumes", name])?, encode(name));
    progress(&format!("Removing volume {name} of {app}"), client.delete(&url), nothing).await
}
