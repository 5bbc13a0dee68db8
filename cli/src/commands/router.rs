//! `paas router`: the router on its own, serving a routing table from a JSON file.
//!
//! `paas server` runs the router in-process; this runs it as a separate process, so that a
//! restart of the control plane drops no app traffic, and so it can be measured alone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use paas_router::{RouteTable, Router};
use paas_server::RouterSettings;

#[derive(clap::Args)]
pub(crate) struct RouterArgs {
    #[command(flatten)]
    settings: RouterSettings,
    /// The routing table, as JSON: {"routes": [{"app": "shop", "hosts": ["shop.example.com"],
    /// "backends": ["10.0.0.5:5000"]}]}. Sent SIGHUP, the router reloads it.
    #[arg(long, env = "PAAS_ROUTER_TABLE")]
    table: PathBuf,
    /// Log format: `human` or `json`.
    #[arg(long, env = "PAAS_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
}

pub(crate) async fn run(args: RouterArgs) -> Result<()> {
    super::server::init_tracing(&args.log_format);
    let router = Router::new(args.settings.router_config());
    let table = load(&args.table)?;
    let _ = router.set_table(&table);
    tracing::info!(routes = table.routes.len(), path = %args.table.display(), "routing table loaded");
    let listener = tokio::net::TcpListener::bind(args.settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.settings.listen))?;
    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(router.clone(), args.table.clone()));
    router.serve(listener, super::server::shutdown_signal()).await?;
    Ok(())
}

fn load(path: &Path) -> Result<RouteTable> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the routing table {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid routing table", path.display()))
}

/// Reloads the table on SIGHUP; a bad file is logged and the current table kept.
#[cfg(unix)]
async fn reload_on_hangup(router: Router, path: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else { return };
    while hangups.recv().await.is_some() {
        match load(&path) {
            Ok(table) => {
                let draining = router.set_table(&table);
                tracing::info!(routes = table.routes.len(), "routing table reloaded");
                tokio::spawn(draining.wait(std::time::Duration::from_secs(30)));
            }
            Err(err) => tracing::error!(error = %format!("{err:#}"), "routing table not reloaded"),
        }
    }
}
