//! `paas addons*` and `paas pg:*`: databases and caches paas runs for apps, their backups,
//! and psql.

use anyhow::{Result, bail};
use paas_server::wire::{
    AddonAttached, AddonView, AttachAddon, BackupSchedule, BackupView, CreateAddon, Psql,
};

use super::ps::{relay, stdin_chunks};
use super::{app_name, client, nothing, progress, table};
use crate::client::{Client, path};
use crate::{AppArg, git};

/// `paas addons`: the app's add-ons, or with no app (no -a, no remote) all you can see.
pub(crate) async fn list(arg: &AppArg, all: bool) -> Result<()> {
    let client = client()?;
    let from_remote = git::remote_url(&arg.remote).and_then(|u| git::app_from_remote_url(&u));
    let addons: Vec<AddonView> = match (&arg.app, from_remote, all) {
        (None, None, _) | (_, _, true) => client.get(&path(&["addons"])?).await?,
        _ => client.get(&path(&["apps", &app_name(arg)?, "addons"])?).await?,
    };
    if addons.is_empty() {
        println!("No add-ons. Create one with `paas addons:create postgres` (or redis).");
        return Ok(());
    }
    let mut rows = vec![["ADD-ON", "SERVICE", "STATE", "ATTACHED AS"].map(String::from).to_vec()];
    for addon in addons {
        let attached: Vec<String> =
            addon.attachments.iter().map(|t| format!("{}::{}", t.app, t.name)).collect();
        rows.push(vec![
            addon.name,
            format!("{} {}", addon.service, addon.major),
            addon.state,
            attached.join(", "),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

pub(crate) async fn create(
    arg: &AppArg,
    service: &str,
    attach_as: Option<String>,
    name: Option<String>,
) -> Result<()> {
    let app = app_name(arg)?;
    let client = client()?;
    let body = CreateAddon { service: service.to_string(), attach_as, name };
    let url = path(&["apps", &app, "addons"])?;
    let work = client.post::<AddonAttached>(&url, &body);
    let message = format!("Creating a {service} add-on for {app} (waits until it is ready)");
    let done: AddonAttached = progress(&message, work, nothing).await?;
    println!(
        "Created {} ({} {}) and attached it to {} as {}: release v{}.",
        done.addon.name,
        done.addon.service,
        done.addon.major,
        done.app,
        done.config_var,
        done.release
    );
    if done.addon.service == "postgres" {
        println!(
            "Back it up with `paas pg:backups:capture -a {app}`, or every night with \
             `paas pg:backups:schedule \"0 3 * * *\" -a {app}`."
        );
    }
    Ok(())
}

pub(crate) async fn info(name: &str) -> Result<()> {
    let addon: AddonView = client()?.get(&path(&["addons", &checked_addon(name)?])?).await?;
    println!("=== {}", addon.name);
    let attached: Vec<String> = addon
        .attachments
        .iter()
        .map(|t| format!("{} as {} ({})", t.app, t.name, t.config_var))
        .collect();
    let rows = [
        ("Service", format!("{} {} ({})", addon.service, addon.major, addon.image)),
        ("State", addon.state),
        ("Created for", addon.app.unwrap_or_else(|| "(an app since destroyed)".into())),
        ("Attached to", attached.join("\n             ")),
        (
            "Backups",
            match (addon.backup_schedule, addon.next_backup) {
                (Some(s), Some(next)) => format!("\"{s}\" UTC, next at {next}"),
                (Some(s), None) => format!("\"{s}\" UTC"),
                _ if addon.service == "postgres" => "on demand (pg:backups:schedule)".into(),
                _ => "-".into(),
            },
        ),
        ("Created", format!("{} by {}", addon.created_at, addon.created_by)),
    ];
    for (label, value) in rows {
        println!("{label:<12} {value}");
    }
    Ok(())
}

pub(crate) async fn attach(name: &str, arg: &AppArg, attach_as: Option<String>) -> Result<()> {
    let name = checked_addon(name)?;
    let app = app_name(arg)?;
    let client = client()?;
    let body = AttachAddon { app: app.clone(), attach_as };
    let url = path(&["addons", &name, "attachments"])?;
    let work = client.post::<AddonAttached>(&url, &body);
    let done = progress(&format!("Attaching {name} to {app}"), work, nothing).await?;
    println!("{app} has {} now: release v{}.", done.config_var, done.release);
    Ok(())
}

pub(crate) async fn detach(name: &str, arg: &AppArg) -> Result<()> {
    let name = checked_addon(name)?;
    let app = app_name(arg)?;
    let client = client()?;
    let url = path(&["addons", &name, "attachments", &app])?;
    let work = client.delete(&url);
    progress(&format!("Detaching {name} from {app}"), work, nothing).await
}

pub(crate) async fn destroy(name: &str, confirm: Option<String>) -> Result<()> {
    let name = checked_addon(name)?;
    match confirm {
        Some(confirm) if confirm == name => {}
        Some(confirm) => bail!("--confirm {confirm} does not match {name}; nothing was destroyed"),
        None => bail!(
            "this permanently deletes {name} and its data (its backups stay on the server). \
             To proceed, run:\n\n    paas addons:destroy {name} --confirm {name}"
        ),
    }
    let client = client()?;
    let url = format!("{}?confirm={}", path(&["addons", &name])?, crate::client::encode(&name));
    progress(&format!("Destroying {name}"), client.delete(&url), nothing).await
}

/// The PostgreSQL add-on a `pg:` command means: the one named, else the app's (attached
/// as DATABASE, or its only one).
async fn postgres_addon(client: &Client, addon: Option<&str>, arg: &AppArg) -> Result<String> {
    if let Some(addon) = addon {
        return checked_addon(addon);
    }
    let app = app_name(arg)?;
    let addons: Vec<AddonView> = client.get(&path(&["apps", &app, "addons"])?).await?;
    let postgres: Vec<&AddonView> = addons.iter().filter(|a| a.service == "postgres").collect();
    let attached_as =
        |a: &AddonView, name: &str| a.attachments.iter().any(|t| t.app == app && t.name == name);
    match &postgres[..] {
        [] => {
            bail!("{app} has no PostgreSQL add-on; create one with `paas addons:create postgres`")
        }
        [only] => Ok(only.name.clone()),
        several => match several.iter().find(|a| attached_as(a, "DATABASE")) {
            Some(addon) => Ok(addon.name.clone()),
            None => bail!(
                "{app} has several PostgreSQL add-ons; name one: {}",
                several.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        },
    }
}

pub(crate) async fn backups(addon: Option<&str>, arg: &AppArg) -> Result<()> {
    let client = client()?;
    let addon = postgres_addon(&client, addon, arg).await?;
    let backups: Vec<BackupView> = client.get(&path(&["addons", &addon, "backups"])?).await?;
    println!("=== Backups of {addon}");
    if backups.is_empty() {
        println!("None yet: `paas pg:backups:capture {addon}` takes one.");
        return Ok(());
    }
    let mut rows = vec![["ID", "STARTED", "STATUS", "SIZE", "BY"].map(String::from).to_vec()];
    for backup in backups {
        let status = match (&backup.status[..], &backup.error) {
            ("failed", Some(error)) => {
                format!("failed: {}", error.lines().next().unwrap_or_default())
            }
            (status, _) => status.to_string(),
        };
        let size = backup.size_bytes.map(paas_server::core::human_size).unwrap_or_default();
        rows.push(vec![backup.id, backup.started_at, status, size, backup.created_by]);
    }
    print!("{}", table(&rows));
    Ok(())
}

pub(crate) async fn capture(addon: Option<&str>, arg: &AppArg) -> Result<()> {
    let client = client()?;
    let addon = postgres_addon(&client, addon, arg).await?;
    let url = path(&["addons", &addon, "backups"])?;
    let empty = serde_json::json!({});
    let work = client.post::<BackupView>(&url, &empty);
    let backup = progress(&format!("Backing up {addon}"), work, nothing).await?;
    let size = backup.size_bytes.map(paas_server::core::human_size).unwrap_or_default();
    println!(
        "Backup {} of {addon}: {size}, at {} on the server.\nRestore it with `paas \
         pg:backups:restore {} {addon} --confirm {addon}`.",
        backup.id,
        backup.file.unwrap_or_default(),
        backup.id
    );
    Ok(())
}

pub(crate) async fn restore(
    id: &str,
    addon: Option<&str>,
    arg: &AppArg,
    confirm: Option<String>,
) -> Result<()> {
    let client = client()?;
    let addon = postgres_addon(&client, addon, arg).await?;
    match confirm {
        Some(confirm) if confirm == addon => {}
        Some(confirm) => bail!("--confirm {confirm} does not match {addon}; nothing was restored"),
        None => bail!(
            "this replaces everything in {addon} with backup {id}. To proceed, run:\n\n    \
             paas pg:backups:restore {id} {addon} --confirm {addon}"
        ),
    }
    let url = path(&["addons", &addon, "backups", id, "restore"])?;
    let empty = serde_json::json!({});
    let work = client.post::<BackupView>(&url, &empty);
    progress(&format!("Restoring {id} into {addon}"), work, nothing).await?;
    Ok(())
}

pub(crate) async fn schedule(
    schedule: Option<&str>,
    addon: Option<&str>,
    arg: &AppArg,
) -> Result<()> {
    let client = client()?;
    let addon = postgres_addon(&client, addon, arg).await?;
    let url = path(&["addons", &addon, "backups", "schedule"])?;
    let body = BackupSchedule { schedule: schedule.map(str::to_string) };
    let request = client.put::<AddonView>(&url, &body);
    let message = match schedule {
        Some(s) => format!("Scheduling backups of {addon} at \"{s}\" (UTC)"),
        None => format!("Stopping scheduled backups of {addon}"),
    };
    let view = progress(&message, request, nothing).await?;
    if let Some(next) = view.next_backup {
        println!("The next one is at {next}.");
    }
    Ok(())
}

/// `paas pg:psql`: psql in a one-off container beside the app, fed this program's input.
pub(crate) async fn psql(addon: Option<String>, arg: &AppArg) -> Result<()> {
    let app = app_name(arg)?;
    let mut line = serde_json::to_vec(&Psql { addon })?;
    line.push(b'\n');
    let first = futures_util::stream::iter([Ok(line)]);
    let input = futures_util::StreamExt::chain(first, stdin_chunks());
    let url = path(&["apps", &app, "psql"])?;
    let response = client()?.post_bytes_stream(&url, reqwest::Body::wrap_stream(input)).await?;
    let code =
        relay(response.bytes_stream(), &mut std::io::stdout(), &mut std::io::stderr()).await?;
    if code != 0 {
        std::process::exit(u8::try_from(code).map_or(1, i32::from));
    }
    Ok(())
}

/// An add-on's name, checked as the server checks it, before it goes into a URL.
fn checked_addon(name: &str) -> Result<String> {
    paas_server::core::validate::addon_name(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(name.to_string())
}
