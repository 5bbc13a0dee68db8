//! The paas control plane: it owns the store and exposes the operations over HTTP.

pub mod backup;
pub mod config;
pub mod core;
pub mod http;
pub mod wire;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use paas_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{BuildSettings, DEFAULT_NETWORK, RouterSettings, ServerConfig, TlsSettings};
pub use core::Paas;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the database: {0}")]
    Store(#[from] paas_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("invalid setting: {0}")]
    Settings(String),
    #[error("cannot build the routing table: {0}")]
    Routes(String),
    #[error("cannot run apps: {0}")]
    Docker(String),
    #[error("cannot write the initial token to {path}: {source}")]
    TokenFile { path: PathBuf, source: std::io::Error },
}

/// A started server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    /// Where the control plane actually listens (useful with port 0).
    pub addr: SocketAddr,
    /// Where the router (the apps' entry point) actually listens.
    pub router_addr: SocketAddr,
    /// Where it serves HTTPS, when it does.
    pub router_https_addr: Option<SocketAddr>,
    /// The admin token minted on the first start with an empty store, when it was not written
    /// to `--init-token-file`. Shown once; only its hash is kept.
    pub initial_token: Option<String>,
    pub paas: Paas,
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    crash_watch: Option<JoinHandle<()>>,
    task_follower: Option<JoinHandle<()>>,
    scheduler: JoinHandle<()>,
    certificates: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting connections, lets in-flight requests finish, closes the store.
    pub async fn shutdown(self) -> std::io::Result<()> {
        // Pushes in flight learn it first, so their connections end and the API can stop.
        self.paas.stop_deploys();
        let _ = self.stop.send(true);
        for watch in self.crash_watch.iter().chain(&self.task_follower) {
            watch.abort();
        }
        self.scheduler.abort();
        if let Some(certificates) = &self.certificates {
            certificates.abort();
        }
        let result = self.task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.paas.store().close().await;
        result
    }

    /// Runs until `signal` resolves, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        signal.await;
        self.shutdown().await
    }
}

/// Opens the store, runs migrations, bootstraps the admin on an empty store, and starts
/// serving.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    start_with(config, &[]).await
}

/// Routes a front end adds to the control plane's (the dashboard): `server` cannot name
/// the crates that build on it, so the binary hands them in.
pub type FrontEndRoutes = fn() -> axum::Router<Paas>;

/// [`start`], serving `front_ends`' routes beside the API's and git's.
pub async fn start_with(
    config: ServerConfig,
    front_ends: &[FrontEndRoutes],
) -> Result<RunningServer, StartError> {
    let config = config
        .with_absolute_paths()
        .map_err(|e| StartError::Settings(format!("cannot resolve the working directory: {e}")))?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| StartError::DataDir { path: config.data_dir.clone(), source })?;
    let url = config.database_url();
    tracing::info!(database = %paas_store::redact_url(&url), "opening store");
    let store = Store::connect(&url).await?;
    let initial_token = bootstrap_admin(&store, config.init_token_file.as_deref()).await?;

    let (listener, addr) = bind(config.listen).await?;
    // With an external router, it listens: this server only writes its table.
    let external = config.external_router_table().map(std::path::Path::to_path_buf);
    let (router_listener, router_addr) = match &external {
        Some(_) => (None, config.router.listen),
        None => {
            let (listener, addr) = bind(config.router.listen).await?;
            (Some(listener), addr)
        }
    };
    let (acme, given) = https_settings(&config, router_addr.port())?;
    let https_listen = config
        .router
        .https_listen
        .or_else(|| config.https.enabled().then(|| SocketAddr::from(([0, 0, 0, 0], 443))));
    let (https_listener, router_https_addr) = match (&external, https_listen) {
        (None, Some(addr)) => {
            let (listener, addr) = bind(addr).await?;
            (Some(listener), Some(addr))
        }
        (Some(_), addr) => (None, addr),
        (None, None) => (None, None),
    };
    let router = paas_router::Router::new(config.router.router_config());
    let lost = store.mark_lost_deliveries().await?;
    if lost > 0 {
        tracing::warn!(
            deliveries = lost,
            "GitHub pushes queued at the last stop were not deployed"
        );
    }
    let interrupted = store.fail_unfinished_builds().await?;
    if interrupted > 0 {
        tracing::warn!(
            builds = interrupted,
            "marked builds interrupted by the last stop as failed"
        );
    }
    let builder = connect_builder(&config.build).await?;
    let runner_config = paas_runner::RunnerConfig {
        network: config.docker_network.clone(),
        scheduler: config.scheduler,
        ..paas_runner::RunnerConfig::default()
    };
    let runner = match paas_runner::Runner::connect(runner_config).await {
        Ok(runner) => Some(runner),
        // Asked for Swarm on an engine that is not a manager: nothing would ever run.
        Err(err @ paas_runner::RunError::Swarm(_)) => {
            return Err(StartError::Docker(err.to_string()));
        }
        Err(err) => {
            tracing::warn!(error = %err, "Docker is not reachable; apps will not run until it is");
            None
        }
    };
    let git = core::Git::new(
        &config.data_dir,
        hook_bin(&config)?,
        format!("http://{}/internal/git-hook", loopback(addr)),
        config.git.max_push_mb.saturating_mul(1024 * 1024),
        usize::from(config.git.git_max_requests),
        std::time::Duration::from_secs(config.git.git_queue_wait),
    );
    let mut paas = Paas::new(store, router.clone(), &config.domain, router_addr.port())
        .with_docker(builder, runner)
        .with_git(git)
        .with_trusted_proxies(config.trusted_proxies.clone())
        .with_github(core::GithubSettings {
            web_url: config.git.github_url.clone(),
            api_url: config.git.github_api_url.clone(),
        })
        .with_image_namespace(
            (config.docker_network != DEFAULT_NETWORK).then(|| config.docker_network.clone()),
        )
        .with_registry(config.registry.clone())
        .with_backup_dir(config.backup_dir())
        .with_https(acme, given)
        .keeping_release_images(usize::from(config.keep_releases));
    if let Some(table) = external {
        tracing::info!(table = %table.display(), "the router runs on its own (paas router --table); writing its routing table");
        paas = paas.with_router_file(table);
    }
    // The certificates kept from before serve at once, and an external router's first
    // table written by this server carries them.
    paas.publish_tls().await.map_err(|e| StartError::Routes(e.to_string()))?;
    // Add-ons first, so the apps adopted next find their databases up; but one that takes
    // long to come up (a big recovery) must not keep every app off the air: after a while
    // the rest of the start goes on, and the add-ons come up beside it.
    let addons = paas.clone();
    let mut addons = tokio::spawn(async move {
        if let Err(err) = addons.start_addons().await {
            tracing::error!(error = %err, "add-ons could not be started");
        }
    });
    if tokio::time::timeout(ADDONS_WAIT, &mut addons).await.is_err() {
        tracing::warn!("add-ons still starting; starting the apps meanwhile");
    }
    paas.adopt_running().await.map_err(|e| StartError::Routes(e.to_string()))?;
    paas.router_file_ready().await.map_err(|e| StartError::Routes(e.to_string()))?;
    let certificates = paas.certificate_loop();
    let crash_watch = paas.watch_crashes();
    let task_follower = paas.follow_tasks();
    let scheduler = paas.schedule_loop();

    let app = http::router(paas.clone(), front_ends);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut api_stopped = stopped.clone();
    let api = async move {
        // The peer address reaches handlers: the audit log and sign-in limits use it.
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = api_stopped.wait_for(|stop| *stop).await;
            })
            .await
    };
    let edge_stopped = stopped;
    let stopped = move || {
        let mut stopped = edge_stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let (https_router, https_stopped) = (router.clone(), stopped());
    let edge = async move {
        match router_listener {
            Some(listener) => router.serve(listener, stopped()).await,
            None => Ok(()),
        }
    };
    let secure_edge = async move {
        match https_listener {
            Some(listener) => https_router.serve_tls(listener, https_stopped).await,
            None => Ok(()),
        }
    };
    let task = tokio::spawn(async move {
        let (api, edge, secure_edge) = tokio::join!(api, edge, secure_edge);
        api.and(edge).and(secure_edge)
    });
    tracing::info!(%addr, "control plane listening");
    Ok(RunningServer {
        addr,
        router_addr,
        router_https_addr,
        initial_token,
        paas,
        stop,
        task,
        crash_watch,
        task_follower,
        scheduler,
        certificates,
    })
}

/// The ACME settings and the operator's certificate, checked: a bad file stops the start
/// with the reason rather than leaving HTTPS broken.
fn https_settings(
    config: &ServerConfig,
    http_port: u16,
) -> Result<(Option<core::AcmeSettings>, Option<paas_router::CertificatePem>), StartError> {
    let tls = &config.https;
    let acme = match &tls.acme_email {
        Some(email) if !email.contains('@') || email.trim() != email => {
            return Err(StartError::Settings(format!(
                "--acme-email {email:?} is not an email address"
            )));
        }
        Some(email) => {
            let challenge = tls.challenge(http_port);
            let https_port = config.router.https_listen.map_or(443, |addr| addr.port());
            if challenge == core::Challenge::Http01 && http_port != 80 {
                tracing::warn!(
                    port = http_port,
                    "HTTP-01 validation comes to port 80; forward it to the router's port"
                );
            }
            if challenge == core::Challenge::TlsAlpn01 && https_port != 443 {
                tracing::warn!(
                    port = https_port,
                    "TLS-ALPN-01 validation comes to port 443; forward it to the router's HTTPS port"
                );
            }
            Some(core::AcmeSettings {
                email: email.clone(),
                directory: tls.directory_url(),
                ca_file: tls.acme_ca_file.clone(),
                challenge,
                renew_before: std::time::Duration::from_secs(
                    u64::from(tls.acme_renew_days) * 86_400,
                ),
            })
        }
        None => None,
    };
    let given = match (&tls.tls_cert, &tls.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path).map_err(|e| {
                    StartError::Settings(format!("cannot read {}: {e}", path.display()))
                })
            };
            let domain = config.domain.to_ascii_lowercase();
            let pem = core::given_certificate(&domain, read(cert)?, read(key)?)
                .map_err(|e| StartError::Settings(format!("--tls-cert: {e}")))?;
            Some(pem)
        }
        _ => None,
    };
    Ok((acme, given))
}

/// Longest the start waits for add-ons before it starts the apps anyway.
const ADDONS_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The builder, or `None` when Docker is not reachable: the control plane still serves, and
/// builds fail with the reason. Bad build settings stop the start.
async fn connect_builder(
    settings: &config::BuildSettings,
) -> Result<Option<paas_builder::Builder>, StartError> {
    let config = settings.builder_config().map_err(|e| StartError::Settings(e.to_string()))?;
    match paas_builder::Builder::connect(config).await {
        Ok(builder) => Ok(Some(builder)),
        Err(err) => {
            tracing::warn!(error = %err, "Docker is not reachable; builds will fail until it is");
            Ok(None)
        }
    }
}

/// The binary git hooks run: the configured one, else this very program.
fn hook_bin(config: &ServerConfig) -> Result<PathBuf, StartError> {
    match &config.git.hook_bin {
        Some(path) => Ok(path.clone()),
        None => std::env::current_exe()
            .map_err(|e| StartError::Settings(format!("cannot find the paas binary: {e}"))),
    }
}

/// Where a process on this host reaches a listener bound to `addr` (`0.0.0.0` → loopback).
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() && addr.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener =
        TcpListener::bind(addr).await.map_err(|source| StartError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen { addr, source })?;
    Ok((listener, local))
}

/// On an empty store, creates the admin and its token; the token goes to `token_file` if
/// given, else back to the caller to show once.
async fn bootstrap_admin(
    store: &Store,
    token_file: Option<&Path>,
) -> Result<Option<String>, StartError> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let token = core::auth::generate_token();
    if store.bootstrap_admin("admin", &core::auth::hash_token(&token)).await?.is_none() {
        return Ok(None);
    }
    tracing::info!("created the admin user and its first API token");
    match token_file {
        Some(path) => {
            write_private_file(path, &format!("{token}\n"))
                .map_err(|source| StartError::TokenFile { path: path.to_path_buf(), source })?;
            Ok(None)
        }
        None => Ok(Some(token)),
    }
}

/// Writes a file only its owner can read.
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())
}
