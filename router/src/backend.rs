//! One backend (an app container's address): its in-flight count, its idle keep-alive
//! connections (kept per worker thread, so a connection is only used on the thread that
//! runs it), and the signals draining needs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Limited;
use hyper::body::Incoming;
use tokio::sync::{Notify, watch};

use crate::upstream::{ConnectError, Connection};

/// The body type sent to backends: the client's body, capped at the configured limit.
pub(crate) type BackendBody = Limited<Incoming>;

/// Idle keep-alive connections kept per backend and worker.
const MAX_IDLE: usize = 256;

pub(crate) struct Backend {
    pub addr: SocketAddr,
    inflight: AtomicUsize,
    /// One pool per worker thread, indexed by `workers::current()`: a connection's task runs
    /// on the worker that opened it, and waking it from another would cost a hop.
    idle: Box<[Mutex<Vec<Connection>>]>,
    /// Woken whenever the in-flight count drops to zero.
    idle_notify: Notify,
    /// Set when the backend left the routing table: stop pooling its connections.
    retired: AtomicBool,
    /// Flipped to true at a drain deadline: upgraded tunnels to this backend close.
    closing: watch::Sender<bool>,
}

impl Backend {
    pub(crate) fn new(addr: SocketAddr, workers: usize) -> Backend {
        Backend {
            addr,
            inflight: AtomicUsize::new(0),
            idle: (0..workers.max(1)).map(|_| Mutex::new(Vec::new())).collect(),
            idle_notify: Notify::new(),
            retired: AtomicBool::new(false),
            closing: watch::Sender::new(false),
        }
    }

    pub(crate) fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Counts one request (or tunnel) in flight until the guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard { backend: self.clone() }
    }

    /// An idle keep-alive connection from the pool, or a new one.
    pub(crate) async fn connection(
        &self,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        loop {
            let pooled = self.pool().lock().map(|mut idle| idle.pop()).unwrap_or(None);
            let Some(mut connection) = pooled else { break };
            if connection.still_idle().await {
                connection.reused = true;
                return Ok(connection);
            }
        }
        self.connect(connect_timeout).await
    }

    /// A new connection (one that may become a WebSocket tunnel is never pooled).
    pub(crate) async fn connect(
        &self,
        connect_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        Connection::open(self.addr, connect_timeout).await
    }

    /// Returns a connection whose answer was read to its end to the pool.
    pub(crate) fn release(&self, connection: Connection) {
        if self.retired.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut idle) = self.pool().lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(connection);
        }
    }

    /// The backend left the routing table: close its idle connections, pool no more.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        for pool in &self.idle {
            if let Ok(mut idle) = pool.lock() {
                idle.clear();
            }
        }
    }

    /// The calling worker's idle connections.
    fn pool(&self) -> &Mutex<Vec<Connection>> {
        &self.idle[crate::workers::current() % self.idle.len()]
    }

    /// Back in a routing table before its drain ended.
    pub(crate) fn unretire(&self) {
        self.retired.store(false, Ordering::Relaxed);
        self.closing.send_replace(false);
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// Resolves once nothing is in flight.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.idle_notify.notified();
            if self.inflight() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Closes upgraded tunnels to this backend (at a drain deadline).
    pub(crate) fn close_tunnels(&self) {
        self.closing.send_replace(true);
    }

    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

pub(crate) struct InflightGuard {
    backend: Arc<Backend>,
}

impl InflightGuard {
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.backend.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.backend.idle_notify.notify_waiters();
        }
    }
}
