//! `paas router`: the router on its own, serving a routing table from a JSON file.
//!
//! `paas server` runs the router in-process; this runs it as a separate process, so that a
//! restart of the control plane drops no app traffic, and so it can be measured alone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use paas_router::{Router, TableFile, loaded_path, write_atomically};
use paas_server::RouterSettings;

#[derive(clap::Args)]
pub(crate) struct RouterArgs {
    #[command(flatten)]
    settings: RouterSettings,
    /// The routing table, as JSON: {"routes": [{"app": "shop", "hosts": ["shop.example.com"],
    /// "backends": ["10.0.0.5:5000"]}]}, as `paas server --router external` writes it. Each
    /// new version is picked up within a tenth of a second (SIGHUP forces a reload); one that
    /// cannot be read leaves the last table serving.
    #[arg(long, env = "PAAS_ROUTER_TABLE")]
    table: PathBuf,
    /// Log format: `human` or `json`.
    #[arg(long, env = "PAAS_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
}

pub(crate) async fn run(args: RouterArgs) -> Result<()> {
    let _logs = crate::logging::init(&args.log_format);
    let router = Router::new(args.settings.router_config());
    // No table yet (paas server writes it at its start): serve 404s until there is one.
    let acks = Acks::new(&args.table);
    let mut seen = None;
    if args.table.exists() {
        seen = reload(&router, &args.table, &seen, &acks, false);
    } else {
        tracing::warn!(path = %args.table.display(), "no routing table yet; waiting for paas server to write it");
    }
    let listener = tokio::net::TcpListener::bind(args.settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.settings.listen))?;
    // HTTPS with the certificates paas server writes into the table file.
    let secure = match args.settings.https_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?,
        ),
        None => None,
    };
    tokio::spawn(follow(router.clone(), args.table.clone(), seen, acks));
    let plain = router.serve(listener, super::server::shutdown_signal());
    let secure = async {
        match secure {
            Some(listener) => router.serve_tls(listener, super::server::shutdown_signal()).await,
            None => Ok(()),
        }
    };
    let (plain, secure) = tokio::join!(plain, secure);
    plain?;
    secure?;
    Ok(())
}

/// How often the table file is looked at: a deploy's switch waits at most this long for the
/// router, beside the time to read it.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Follows the table file: each new version (or a SIGHUP) is loaded, and its generation
/// written to `TABLE.loaded`. A file that cannot be read or parsed is logged and the table
/// served so far kept: the router never depends on the control plane being up.
async fn follow(router: Router, path: PathBuf, mut seen: Option<Stamp>, acks: Acks) {
    #[cfg(unix)]
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let forced = match hangups.as_mut() {
            Some(signal) => tokio::select! {
                _ = signal.recv() => true,
                () = tokio::time::sleep(POLL) => false,
            },
            None => {
                tokio::time::sleep(POLL).await;
                false
            }
        };
        #[cfg(not(unix))]
        let forced = {
            tokio::time::sleep(POLL).await;
            false
        };
        if forced || stamp(&path) != seen {
            seen = reload(&router, &path, &seen, &acks, true);
        }
    }
}

/// A file's identity for change detection: modification time, length, and (on Unix) inode,
/// which an atomic replacement always changes, even within the clock's resolution.
type Stamp = (std::time::SystemTime, u64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

/// The generations loaded and not yet drained. A generation is acknowledged (written to
/// `TABLE.loaded`) once the requests in flight to the backends it removed are done, and only
/// when every older one is too: the control plane stops an old process after its ack.
#[derive(Clone)]
struct Acks {
    path: PathBuf,
    state: std::sync::Arc<std::sync::Mutex<(std::collections::BTreeSet<u64>, u64)>>,
}

impl Acks {
    fn new(table: &Path) -> Acks {
        Acks { path: loaded_path(table), state: Default::default() }
    }

    fn loaded(&self, generation: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0.insert(generation);
        state.1 = state.1.max(generation);
    }

    fn drained(&self, generation: u64) {
        let acked = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.0.remove(&generation);
            match state.0.first() {
                Some(oldest) => oldest.saturating_sub(1),
                None => state.1,
            }
        };
        if let Err(err) = write_atomically(&self.path, acked.to_string().as_bytes()) {
            tracing::warn!(error = %err, "cannot acknowledge the routing table");
        }
    }
}

/// Loads the table at `path` into `router`, and acknowledges its generation once what it
/// took out is drained; on failure keeps what it serves. Returns the stamp to compare with
/// next.
fn reload(
    router: &Router,
    path: &Path,
    before: &Option<Stamp>,
    acks: &Acks,
    logged: bool,
) -> Option<Stamp> {
    let now = stamp(path);
    match load(path) {
        Ok(file) => {
            for err in router.set_tls(&file.tls) {
                tracing::error!(error = %err, "certificate left out");
            }
            let draining = router.set_table(&file.table);
            acks.loaded(file.generation);
            let (acks, generation) = (acks.clone(), file.generation);
            tokio::spawn(async move {
                draining.wait(std::time::Duration::from_secs(30)).await;
                acks.drained(generation);
            });
            if logged {
                tracing::info!(
                    routes = file.table.routes.len(),
                    generation = file.generation,
                    "routing table reloaded"
                );
            } else {
                tracing::info!(routes = file.table.routes.len(), path = %path.display(), "routing table loaded");
            }
            now
        }
        Err(err) => {
            // Logged once per version of the file, not every poll.
            if now != *before {
                tracing::error!(error = %format!("{err:#}"), "routing table not reloaded; serving the last one");
            }
            now
        }
    }
}

fn load(path: &Path) -> Result<TableFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the routing table {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid routing table", path.display()))
}
