//! The HTTP edge every app request goes through.
//!
//! The router knows nothing of apps, Docker or the store: it is handed a [`RouteTable`]
//! (hostnames → backend addresses) and swaps it in atomically. Requests are matched on the
//! Host header, balanced over the app's backends (least outstanding requests), and streamed
//! both ways over pooled keep-alive connections; WebSockets are tunnelled byte for byte.
//! Backends that leave the table are drained: no new requests, in-flight ones finish, and
//! the caller can await that (see [`Draining`]).

mod backend;
mod metrics;
mod pages;
mod proxy;
mod table;
mod trust;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use table::{PathRoute, Route, RouteTable, TableFile, loaded_path, write_atomically};
pub use trust::TrustedProxies;

use backend::Backend;
use metrics::AppMetrics;
use table::{CompiledTable, LivePath, LiveRoute};

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
    /// `X-Forwarded-Proto` sent to apps (`https` once TLS terminates here).
    pub forwarded_proto: &'static str,
    /// Clients whose own `X-Forwarded-Proto` and `X-Forwarded-Port` are passed on (a
    /// TLS-terminating proxy in front); everyone else's are replaced, and their `Forwarded`
    /// and `X-Real-IP` dropped.
    pub trusted_proxies: TrustedProxies,
    /// Most client connections open at once, WebSocket tunnels included (0 counts as 1). At
    /// the cap the router stops accepting, and new clients wait in the kernel's listen queue.
    pub max_connections: usize,
}

impl Default for RouterConfig {
    fn default() -> RouterConfig {
        RouterConfig {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(55),
            max_body_bytes: 100 * 1024 * 1024,
            forwarded_proto: "http",
            trusted_proxies: TrustedProxies::default(),
            max_connections: 10_000,
        }
    }
}

/// State shared by every connection.
pub(crate) struct Shared {
    config: RouterConfig,
    table: RwLock<Arc<CompiledTable>>,
    /// Every backend in the current table, so a backend keeps its identity (in-flight count,
    /// pooled connections) across table swaps.
    backends: Mutex<HashMap<SocketAddr, Arc<Backend>>>,
    /// Per-app counters, kept across swaps so they only ever grow.
    metrics: Mutex<BTreeMap<String, Arc<AppMetrics>>>,
    round_robin: AtomicUsize,
    /// The port clients connect to, for `X-Forwarded-Port`.
    port: AtomicU16,
}

impl Shared {
    fn table(&self) -> Arc<CompiledTable> {
        match self.table.read() {
            Ok(table) => table.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
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
        Router {
            shared: Arc::new(Shared {
                config,
                table: RwLock::new(Arc::new(CompiledTable::default())),
                backends: Mutex::new(HashMap::new()),
                metrics: Mutex::new(BTreeMap::new()),
                round_robin: AtomicUsize::new(0),
                port: AtomicU16::new(0),
            }),
        }
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
                                backends
                                    .get(addr)
                                    .cloned()
                                    .unwrap_or_else(|| Arc::new(Backend::new(*addr)))
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

    /// Serves clients from `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let local = listener.local_addr()?;
        self.shared.port.store(local.port(), std::sync::atomic::Ordering::Relaxed);
        tracing::info!(addr = %local, "router listening");
        tokio::pin!(shutdown);
        // A slot is taken before accepting, so at the cap new clients wait in the kernel's
        // listen queue (as with HAProxy's maxconn), costing the router nothing, instead of
        // being accepted only to be closed.
        let max = self.shared.config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        let slots = Arc::new(Semaphore::new(max));
        let mut warned: Option<Instant> = None;
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.ok(), // `slots` is never closed
                _ = &mut shutdown => None,
            };
            let Some(slot) = slot else { return Ok(()) };
            // Once a minute at most: a router at its cap tends to stay there a while.
            if slots.available_permits() == 0
                && warned.is_none_or(|at| at.elapsed() > Duration::from_secs(60))
            {
                tracing::warn!(max_connections = max, "connection limit reached, new clients wait");
                warned = Some(Instant::now());
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
                _ = &mut shutdown => return Ok(()),
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            // Shared with any tunnel the connection becomes, which outlives this task.
            let slot = Arc::new(slot);
            tokio::spawn(async move {
                let idle = shared.config.idle_timeout;
                let service = service_fn(move |request| {
                    proxy::handle(shared.clone(), request, client, slot.clone())
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
            });
        }
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
