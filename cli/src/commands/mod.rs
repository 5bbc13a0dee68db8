//! One module per group of commands. Each prints what a person reads on stdout and
//! progress ("Creating app… done") on stderr, as the Heroku CLI does.

pub(crate) mod accounts;
pub(crate) mod addons;
pub(crate) mod apps;
pub(crate) mod build;
pub(crate) mod builds;
pub(crate) mod config;
pub(crate) mod cron;
pub(crate) mod domains;
pub(crate) mod github;
pub(crate) mod pipelines;
pub(crate) mod ps;
pub(crate) mod push;
pub(crate) mod releases;
pub(crate) mod router;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod session;
pub(crate) mod volumes;

use anyhow::{Result, bail};

use crate::client::Client;
use crate::{AppArg, credentials, git};

/// A client for the logged-in server.
pub(crate) fn client() -> Result<Client> {
    Client::new(&credentials::load()?)
}

/// The app a command acts on: `-a APP`, else the app the checkout's git remote points at;
/// checked as the server checks app names, before it goes into any URL.
pub(crate) fn app_name(arg: &AppArg) -> Result<String> {
    if let Some(app) = &arg.app {
        return checked(app);
    }
    match git::remote_url(&arg.remote).and_then(|url| git::app_from_remote_url(&url)) {
        Some(app) => checked(&app),
        None => bail!(
            "no app given: pass -a APP, or run this inside a checkout with a `{}` git remote \
             (paas apps:create adds one)",
            arg.remote
        ),
    }
}

/// `name` if it is a valid app name (the server's own rule), else why not.
pub(crate) fn checked(name: &str) -> Result<String> {
    paas_server::core::validate::app_name(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(name.to_string())
}

/// Heroku-style progress on stderr around `work`: `MESSAGE... done` (followed by what
/// `outcome` says of the result, e.g. `, v4`) or `MESSAGE... failed`.
pub(crate) async fn progress<T>(
    message: &str,
    work: impl Future<Output = Result<T>>,
    outcome: impl FnOnce(&T) -> String,
) -> Result<T> {
    eprint!("{message}... ");
    let result = work.await;
    match &result {
        Ok(value) => eprintln!("done{}", outcome(value)),
        Err(_) => eprintln!("failed"),
    }
    result
}

/// No detail after `done`.
pub(crate) fn nothing<T>(_: &T) -> String {
    String::new()
}

/// Left-aligned columns, two spaces apart.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
