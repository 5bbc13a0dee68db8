//! `paas github:link`, `github:unlink`, `github`: GitHub auto-deploy.

use anyhow::Result;
use paas_server::wire::{GithubLinked, GithubView, LinkGithub};

use super::session::read_stdin_line;
use super::{app_name, client, nothing, progress, table};
use crate::AppArg;
use crate::client::path;

pub(crate) async fn link(
    app: &AppArg,
    repository: &str,
    branch: &str,
    secret: Option<String>,
    token_stdin: bool,
) -> Result<()> {
    let app = app_name(app)?;
    let token = token_stdin.then(read_stdin_line).transpose()?;
    let client = client()?;
    let body =
        LinkGithub { repository: repository.into(), branch: Some(branch.into()), secret, token };
    let url = path(&["apps", &app, "github"])?;
    let linked: GithubLinked =
        progress(&format!("Linking {app} to {repository}"), client.post(&url, &body), nothing)
            .await?;
    println!(
        "Pushes to {} of {} now deploy {app}. In GitHub, open the repository's\n\
         Settings → Webhooks → Add webhook, and fill in:\n\n  \
         Payload URL:   {}{}\n  \
         Content type:  {}\n  \
         Secret:        {}\n  \
         Events:        Just the push event (add Pull requests for review apps)\n\n\
         The secret is shown this once.",
        linked.branch,
        linked.repository,
        client.base_url(),
        linked.webhook_path,
        linked.content_type,
        linked.secret,
    );
    Ok(())
}

pub(crate) async fn unlink(app: &AppArg) -> Result<()> {
    let app = app_name(app)?;
    let client = client()?;
    let url = path(&["apps", &app, "github"])?;
    progress(&format!("Unlinking {app} from GitHub"), client.delete(&url), nothing).await
}

pub(crate) async fn show(app: &AppArg) -> Result<()> {
    let app = app_name(app)?;
    let view: GithubView = client()?.get(&path(&["apps", &app, "github"])?).await?;
    let token = if view.token_set { "set" } else { "none (public repository, no statuses)" };
    println!(
        "=== {app} deploys pushes to {} of {}\nLinked by {} at {}; token: {token}\n",
        view.branch, view.repository, view.created_by, view.created_at
    );
    let mut rows =
        vec![["WHEN", "DELIVERY", "EVENT", "COMMIT", "OUTCOME"].map(String::from).to_vec()];
    for d in view.deliveries {
        let commit = d.commit_sha.map(|s| s.chars().take(7).collect()).unwrap_or_default();
        rows.push(vec![d.created_at, d.delivery, d.event, commit, d.outcome]);
    }
    print!("{}", table(&rows));
    Ok(())
}
