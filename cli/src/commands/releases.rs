//! `paas releases`, `releases:info`.

use anyhow::Result;
use paas_server::wire::ReleaseView as Release;
use paas_store::ReleaseStatus;

use super::{app_name, client, nothing, table};
use crate::AppArg;
use crate::client::path;

pub(crate) async fn list(arg: &AppArg, num: usize) -> Result<()> {
    let name = app_name(arg)?;
    let releases: Vec<Release> = client()?.get(&path(&["apps", &name, "releases"])?).await?;
    // Current is the newest release that serves; newer ones may have failed or be rolling out.
    match releases.iter().find(|r| r.status == ReleaseStatus::Succeeded) {
        Some(current) => println!("=== {name} Releases - Current: v{}", current.version),
        None => println!("=== {name} Releases"),
    }
    let rows: Vec<Vec<String>> = releases
        .iter()
        .take(num)
        .map(|r| {
            // Succeeded is the usual case and goes unsaid; the others are what to act on.
            let status = match r.status {
                ReleaseStatus::Succeeded => String::new(),
                ReleaseStatus::Waiting => "waiting for approval".into(),
                other => other.as_str().to_string(),
            };
            vec![
                format!("v{}", r.version),
                shortened(&r.description, DESCRIPTION_WIDTH),
                status,
                r.created_by.clone(),
                r.created_at.clone(),
            ]
        })
        .collect();
    print!("{}", table(&rows));
    Ok(())
}

/// Widest description in the `paas releases` table; `releases:info` shows all of it.
const DESCRIPTION_WIDTH: usize = 60;

/// `text` cut to `width` characters, ending in "…" when it was longer.
fn shortened(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

pub(crate) async fn info(arg: &AppArg, version: Option<String>) -> Result<()> {
    let name = app_name(arg)?;
    let client = client()?;
    let release: Release = match version {
        Some(version) => client.get(&path(&["apps", &name, "releases", &version])?).await?,
        None => {
            let releases: Vec<Release> = client.get(&path(&["apps", &name, "releases"])?).await?;
            match releases.into_iter().next() {
                Some(release) => release,
                None => anyhow::bail!("{name} has no releases"),
            }
        }
    };
    let types = release
        .process_types
        .iter()
        .map(|(t, cmd)| format!("{t}: {cmd}"))
        .collect::<Vec<_>>()
        .join("; ");
    println!("=== Release v{}", release.version);
    print!(
        "{}",
        table(&[
            vec!["By:".into(), release.created_by],
            vec!["Change:".into(), release.description],
            vec!["Status:".into(), release.status.to_string()],
            vec!["When:".into(), release.created_at],
            vec!["Image:".into(), release.image.unwrap_or_else(|| "none (not built yet)".into())],
            vec!["Processes:".into(), types],
        ])
    );
    Ok(())
}

pub(crate) async fn rollback(arg: &AppArg, version: Option<String>) -> Result<()> {
    let name = app_name(arg)?;
    let target = version.clone().unwrap_or_else(|| "the previous release".into());
    let body = paas_server::wire::Rollback { version };
    let client = client()?;
    let path = path(&["apps", &name, "rollback"])?;
    let work = client.post::<Release>(&path, &body);
    let message = format!("Rolling back {name} to {target}");
    let release = super::progress(&message, work, |r| format!(", v{}", r.version)).await?;
    println!("{}", release.description);
    Ok(())
}

/// `releases:approve` and `releases:reject` of a waiting release (`decision` is the route).
pub(crate) async fn decide(arg: &AppArg, version: &str, decision: &str) -> Result<()> {
    let name = app_name(arg)?;
    let number = version.trim_start_matches('v');
    let path = path(&["apps", &name, "releases", number, decision])?;
    let verb = if decision == "approve" { "Approving" } else { "Rejecting" };
    let (client, body) = (client()?, serde_json::json!({}));
    let work = client.post::<Release>(&path, &body);
    let release = super::progress(&format!("{verb} {version} of {name}"), work, nothing).await?;
    match decision {
        "approve" => println!("{name} runs v{}: {}", release.version, release.description),
        _ => println!("{version} of {name} is rejected; the running release serves on"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_descriptions_are_cut() {
        assert_eq!(super::shortened("Deploy 0123abc", 60), "Deploy 0123abc");
        let long = format!("Set {} config vars", vec!["KEY"; 5000].join(", "));
        let short = super::shortened(&long, 60);
        assert_eq!(short.chars().count(), 60);
        assert!(short.starts_with("Set KEY, KEY") && short.ends_with('…'), "{short}");
        assert_eq!(super::shortened("ünïcödé", 4), "ünï…");
    }
}
