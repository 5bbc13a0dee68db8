//! The HTTP edge every app request goes through.
//!
//! The router knows nothing of apps, Docker or the store: it is handed a [`RouteTable`]
//! (hostnames → backend addresses) and swaps it in atomically. Requests are matched on the
//! Host header, balanced over the app's backends (least outstanding requests), and streamed
//! both ways over pooled keep-alive connections; WebSockets are tunnelled byte for byte.
//! Backends that leave the table are drained: no new requests, in-flight ones finish, and
//! the caller can await that (see [`Draining`]).
//!
//! HTTPS is terminated here too, with certificates handed over as data ([`TlsTable`]) and
//! picked by SNI; HTTP/2 and HTTP/1.1 are offered by ALPN. The router answers ACME
//! challenges from that table but never calls out itself.

mod backend;
mod h1;
mod metrics;
mod pages;
mod proxy;
mod table;
mod tls;
mod trust;
mod upstream;
mod workers;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU16;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

pub use table::{PathRoute, Route, RouteTable, TableFile, loaded_path, write_atomically};
pub use tls::{CertificatePem, TlsError, TlsTable};
pub use trust::TrustedProxies;

use backend::Backend;
use metrics::AppMetrics;
use table::{CompiledTable, LivePath, LiveRoute};
use tls::CompiledTls;
use workers::Workers;

#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Time allowed to open a connection to a backend.
    pub connect_timeout: Duration,
    /// Time allowed between sending a request and the backend's first response byte.
    pub first_byte_timeout: Duration,
    /// A client keep-alive connection with no new request for this long is closed.
    pub idle_timeout: Duration,
    /// Largest request body accepted; larger declared bodies get 413.
    pub max_body_bytes: u64,
    /// Clients whose own `X-Forwarded-Proto` and `X-Forwarded-Port` are passed on (a
    /// TLS-terminating proxy in front); everyone else's are replaced, and their `Forwarded`
    /// and `X-Real-IP` dropped.
    pub trusted_proxies: TrustedProxies,
    /// Most client connections open at once, WebSocket tunnels included (0 counts as 1). At
    /// the cap the router stops accepting, and new clients wait in the kernel's listen queue.
    pub max_connections: usize,
    /// Threads serving clients, each with its own accept loop and backend connections (0:
    /// one per core).
    pub workers: usize,
}

impl Default for RouterConfig {
    fn default() -> RouterConfig {
        RouterConfig {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(55),
            max_body_bytes: 100 * 1024 * 1024,
            trusted_proxies: TrustedProxies::default(),
            max_connections: 10_000,
            workers: 0,
        }
    }
}

/// The `tracing` target of the access log, a line per request.
pub const ACCESS_LOG_TARGET: &str = "paas_router::access";

/// State shared by every connection.
pub(crate) struct Shared {
    config: RouterConfig,
    table: RwLock<Arc<CompiledTable>>,
    /// Every backend in the current table, so a backend keeps its identity (in-flight count,
    /// pooled connections) across table swaps.
    backends: Mutex<HashMap<SocketAddr, Arc<Backend>>>,
    /// Per-app counters, kept across swaps so they only ever grow.
    metrics: Mutex<BTreeMap<String, Arc<AppMetrics>>>,
    /// The ports clients connect to, for `X-Forwarded-Port` and redirects to HTTPS (0: not
    /// listening).
    http_port: AtomicU16,
    https_port: AtomicU16,
    tls: RwLock<Arc<CompiledTls>>,
    /// One slot per open client connection, over every listener: the connection cap.
    slots: Arc<Semaphore>,
    /// How many worker threads serve clients, and those threads once the first listener
    /// starts; every listener is served by all of them.
    worker_count: usize,
    workers: Mutex<Option<Arc<Workers>>>,
}

impl Shared {
    fn table(&self) -> Arc<CompiledTable> {
        match self.table.read() {
            Ok(table) => table.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn tls(&self) -> Arc<CompiledTls> {
        match self.tls.read() {
            Ok(tls) => tls.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn workers(&self) -> std::io::Result<Arc<Workers>> {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = workers.as_ref() {
            return Ok(running.clone());
        }
        let running = Workers::start(self.worker_count)?;
        *workers = Some(running.clone());
        Ok(running)
    }
}

/// How a client reached the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A cheap handle to one router; clones share the table.
#[derive(Clone)]
pub struct Router {
    shared: Arc<Shared>,
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        let max = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        let worker_count = workers::count(config.workers);
        Router {
            shared: Arc::new(Shared {
                config,
                table: RwLock::new(Arc::new(CompiledTable::default())),
                backends: Mutex::new(HashMap::new()),
                metrics: Mutex::new(BTreeMap::new()),
                http_port: AtomicU16::new(0),
                https_port: AtomicU16::new(0),
                tls: RwLock::new(Arc::new(CompiledTls::default())),
                slots: Arc::new(Semaphore::new(max)),
                worker_count,
                workers: Mutex::new(None),
            }),
        }
    }

    /// Swaps in new certificates and ACME answers. Handshakes already done keep their
    /// certificate; new ones see only the new table. Certificates that cannot be used are
    /// left out and returned, each with the reason.
    pub fn set_tls(&self, table: &TlsTable) -> Vec<TlsError> {
        let (compiled, errors) = CompiledTls::compile(table);
        *self.shared.tls.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(compiled);
        errors
    }

    /// Swaps in a new table. Requests already routed keep going; new requests see only the
    /// new table. Returns the backends that left it, to be drained.
    pub fn set_table(&self, table: &RouteTable) -> Draining {
        let shared = &self.shared;
        let mut backends = shared.backends.lock().unwrap_or_else(|p| p.into_inner());
        let mut metrics = shared.metrics.lock().unwrap_or_else(|p| p.into_inner());
        let mut next_backends: HashMap<SocketAddr, Arc<Backend>> = HashMap::new();
        let mut compiled = CompiledTable::default();
        for route in &table.routes {
            // A backend in this table and the last keeps its state (connections, pool).
            let mut live_backends = |addrs: &[SocketAddr]| -> Vec<Arc<Backend>> {
                addrs
                    .iter()
                    .map(|addr| {
                        let backend = next_backends
                            .entry(*addr)
                            .or_insert_with(|| {
                                backends.get(addr).cloned().unwrap_or_else(|| {
                                    Arc::new(Backend::new(*addr, shared.worker_count))
                                })
                            })
                            .clone();
                        if backend.is_retired() {
                            backend.unretire();
                        }
                        backend
                    })
                    .collect()
            };
            let web = live_backends(&route.backends);
            let mut paths: Vec<LivePath> = route
                .paths
                .iter()
                .map(|p| LivePath {
                    prefix: p.prefix.clone(),
                    process_type: p.process_type.clone(),
                    backends: live_backends(&p.backends),
                })
                .collect();
            paths.sort_by_key(|p| std::cmp::Reverse(p.prefix.len()));
            let app_metrics = metrics.entry(route.app.clone()).or_default().clone();
            let live = Arc::new(LiveRoute {
                app: route.app.clone(),
                backends: web,
                paths,
                metrics: app_metrics,
                https_redirect: route.https_redirect,
                hsts: route.hsts,
            });
            for host in &route.hosts {
                compiled.insert(host, live.clone());
            }
        }
        let removed: Vec<Arc<Backend>> = backends
            .drain()
            .filter(|(addr, _)| !next_backends.contains_key(addr))
            .map(|(_, backend)| backend)
            .collect();
        *backends = next_backends;
        *shared.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(compiled);
        for backend in &removed {
            backend.retire();
        }
        Draining { backends: removed }
    }

    /// Serves plain HTTP clients from `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.accept(listener, shutdown, None).await
    }

    /// Serves HTTPS clients from `listener` until `shutdown` resolves: TLS with the
    /// certificates of [`Router::set_tls`], then HTTP/2 or HTTP/1.1 as ALPN settled.
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let resolver = tls::Resolver { shared: self.shared.clone() };
        let config = tls::server_config(resolver).map_err(std::io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        self.accept(listener, shutdown, Some(acceptor)).await
    }

    /// Hands `listener` to every worker thread, each accepting from it on its own, until
    /// `shutdown` resolves; connections already accepted then go on to their end.
    async fn accept(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<()> {
        let local = listener.local_addr()?;
        let (port, scheme) = match tls {
            Some(_) => (&self.shared.https_port, Scheme::Https),
            None => (&self.shared.http_port, Scheme::Http),
        };
        port.store(local.port(), std::sync::atomic::Ordering::Relaxed);
        let workers = self.shared.workers()?;
        let count = workers.handles().len();
        tracing::info!(addr = %local, scheme = scheme.as_str(), workers = count, "router listening");
        // One listening socket, registered with each worker's own event loop: a new
        // connection wakes them all and one of them takes it (the busiest ones hold back).
        let listener = listener.into_std()?;
        let (stop, stopped) = watch::channel(false);
        let mut loops = tokio::task::JoinSet::new();
        for handle in workers.handles() {
            let listener = listener.try_clone()?;
            let (shared, stopped) = (self.shared.clone(), stopped.clone());
            let listening = Listening { local, scheme, tls: tls.clone(), workers: workers.clone() };
            let accepting = async move {
                let listener = TcpListener::from_std(listener)?;
                accept_loop(shared, listener, listening, stopped).await;
                Ok::<(), std::io::Error>(())
            };
            loops.spawn_on(accepting, handle);
        }
        drop(listener);
        tokio::pin!(shutdown);
        // A worker that could not listen ends the whole listener at once, not at shutdown.
        let failed = tokio::select! {
            () = &mut shutdown => None,
            Some(ended) = loops.join_next() => Some(ended),
        };
        let _ = stop.send(true);
        if let Some(ended) = failed {
            ended.map_err(std::io::Error::other)??;
        }
        while let Some(ended) = loops.join_next().await {
            ended.map_err(std::io::Error::other)??;
        }
        Ok(())
    }

    /// Per-app request counters in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        let metrics = self.shared.metrics.lock().unwrap_or_else(|p| p.into_inner());
        metrics::render(metrics.iter().map(|(app, m)| (app.as_str(), m.as_ref())))
    }

    /// Requests answered for `app` so far (all statuses).
    pub fn requests_for(&self, app: &str) -> u64 {
        let metrics = self.shared.metrics.lock().unwrap_or_else(|p| p.into_inner());
        metrics.get(app).map(|m| m.requests()).unwrap_or(0)
    }
}

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one listener serves, as each worker sees it.
struct Listening {
    local: SocketAddr,
    scheme: Scheme,
    tls: Option<tokio_rustls::TlsAcceptor>,
    workers: Arc<Workers>,
}

/// One worker's accept loop over a listener, until `stopped` turns true. Each connection
/// runs as a task on this worker's thread.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    listening: Listening,
    mut stopped: watch::Receiver<bool>,
) {
    let Listening { local, scheme, tls, workers } = listening;
    let shutdown = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    tokio::pin!(shutdown);
    // A slot is taken before accepting, so at the cap new clients wait in the kernel's
    // listen queue (as with HAProxy's maxconn), costing the router nothing, instead of
    // being accepted only to be closed. Workers waiting for a slot do not accept.
    let slots = shared.slots.clone();
    let mut warned: Option<Instant> = None;
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.ok(), // `slots` is never closed
            _ = &mut shutdown => None,
        };
        let Some(slot) = slot else { return };
        // Once a minute at most: a router at its cap tends to stay there a while.
        if slots.available_permits() == 0
            && warned.is_none_or(|at| at.elapsed() > Duration::from_secs(60))
        {
            let max = shared.config.max_connections;
            tracing::warn!(max_connections = max, "connection limit reached, new clients wait");
            warned = Some(Instant::now());
        }
        // Left to a less busy worker while one can take it.
        while workers.busier_than_others() && slots.available_permits() > 0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(1)) => {}
                _ = &mut shutdown => return,
            }
        }
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        let open = workers.opened();
        let shared = shared.clone();
        // Shared with any tunnel the connection becomes, which outlives this task.
        let slot = Arc::new(slot);
        let edge = proxy::Edge::new(client, scheme, local.port());
        let Some(acceptor) = tls.clone() else {
            tokio::spawn(async move {
                h1::serve(shared, stream, edge, slot).await;
                drop(open);
            });
            continue;
        };
        tokio::spawn(async move {
            let _open = open;
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(%client, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%client, "TLS handshake timed out");
                    return;
                }
            };
            match stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => serve_http2(shared, stream, edge, slot).await,
                // The ACME server saw the challenge certificate: nothing more to say.
                Some(protocol) if protocol == tls::ACME_TLS_ALPN => {}
                _ => h1::serve(shared, stream, edge, slot).await,
            }
        });
    }
}

/// One client connection speaking HTTP/1.1 (upgrades included) until it closes, through
/// hyper's server: what [`h1::serve`] hands on.
async fn serve_http1<S>(
    shared: Arc<Shared>,
    stream: S,
    edge: proxy::Edge,
    slot: Arc<OwnedSemaphorePermit>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle = shared.config.idle_timeout;
    let client = edge.client;
    let service = service_fn(move |request| {
        proxy::handle(shared.clone(), request, edge.clone(), slot.clone())
    });
    let result = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(err) = result {
        tracing::debug!(%client, error = %err, "client connection ended");
    }
}

/// One client connection speaking HTTP/2 until it closes.
async fn serve_http2<S>(
    shared: Arc<Shared>,
    stream: S,
    edge: proxy::Edge,
    slot: Arc<OwnedSemaphorePermit>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle = shared.config.idle_timeout;
    let client = edge.client;
    // When the last request came (ms after `opened`), for closing a connection left idle:
    // HTTP/2 has no header-read timeout to do it.
    let opened = Instant::now();
    let last_request = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = last_request.clone();
    let since_open = move || u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX);
    let service = service_fn(move |request| {
        seen.store(since_open(), std::sync::atomic::Ordering::Relaxed);
        proxy::handle(shared.clone(), request, edge.clone(), slot.clone())
    });
    let connection = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // A client that stops answering pings is gone; its streams are freed.
        .keep_alive_interval(Some(idle / 2))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(250)
        // WebSockets over HTTP/2 (RFC 8441).
        .enable_connect_protocol()
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = false;
    let result = loop {
        let last = Duration::from_millis(last_request.load(std::sync::atomic::Ordering::Relaxed));
        let idle_at = tokio::time::Instant::from_std(opened + last + idle);
        tokio::select! {
            result = connection.as_mut() => break result,
            () = tokio::time::sleep_until(idle_at), if !closing => {
                let last = last_request.load(std::sync::atomic::Ordering::Relaxed);
                if Duration::from_millis(last) + idle <= opened.elapsed() {
                    // GOAWAY: streams still open (a download, a WebSocket) run to their end.
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    };
    if let Err(err) = result {
        tracing::debug!(%client, error = %err, "client connection ended");
    }
}

/// Backends removed by a table swap, on their way out.
#[must_use = "await `wait` to know when the removed backends are idle"]
pub struct Draining {
    backends: Vec<Arc<Backend>>,
}

impl Draining {
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.backends.iter().map(|b| b.addr).collect()
    }

    /// Waits until the removed backends have nothing in flight, or `deadline` passes; at the
    /// deadline, upgraded connections (WebSockets) to them are closed. True if everything
    /// finished before the deadline.
    pub async fn wait(self, deadline: Duration) -> bool {
        let all = async {
            for backend in &self.backends {
                backend.drained().await;
            }
        };
        if tokio::time::timeout(deadline, all).await.is_ok() {
            return true;
        }
        for backend in self.backends.iter().filter(|b| b.is_retired()) {
            backend.close_tunnels();
        }
        false
    }
}
