//! The routing table written for a router in another process (`paas server --router
//! external` beside `paas router --table FILE`), which keeps serving its last table while the
//! control plane restarts. Each table gets a generation; the router writes the generation it
//! serves beside the file once the requests in flight to the backends it took out are done,
//! and a switch waits for it, so old processes are stopped only once the router is done with
//! them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paas_router::{RouteTable, TableFile, TlsTable, loaded_path, write_atomically};

/// Longest a switch waits for the external router to load a table and drain what it took
/// out: requests in flight longer than this to an old process may be cut when it stops.
const LOAD_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct RouterFile {
    path: PathBuf,
    /// The last generation written. Generations are milliseconds since the epoch (or one
    /// more than the last), so a restarted server's tables are always newer than the ones
    /// before it.
    generation: AtomicU64,
    /// Nothing is written before the running containers are adopted at start: an empty
    /// table would take every app off the air for the router that kept serving them.
    ready: AtomicBool,
    /// One write at a time, in generation order.
    writing: tokio::sync::Mutex<()>,
    /// Certificates and challenge answers, written with every table.
    tls: std::sync::Mutex<TlsTable>,
}

impl RouterFile {
    pub(crate) fn new(path: PathBuf) -> RouterFile {
        RouterFile {
            path,
            generation: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            writing: tokio::sync::Mutex::new(()),
            tls: Default::default(),
        }
    }

    /// The certificates the next table written carries.
    pub(crate) fn set_tls(&self, tls: TlsTable) {
        *self.tls.lock().unwrap_or_else(|p| p.into_inner()) = tls;
    }

    /// From now on, tables are written (the server has adopted what runs).
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Writes `table` for the router and waits until it serves it (up to a few seconds: a
    /// router that is down must not stall the control plane).
    pub(crate) async fn publish(&self, table: &RouteTable) {
        if !self.ready.load(Ordering::SeqCst) {
            return;
        }
        let generation = {
            let _turn = self.writing.lock().await;
            let now =
                SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let last = self.generation.load(Ordering::SeqCst);
            let generation = now.max(last + 1);
            let tls = self.tls.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let file = TableFile { generation, table: table.clone(), tls };
            let path = self.path.clone();
            let written = tokio::task::spawn_blocking(move || {
                let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
                write_atomically(&path, &bytes)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(err) = written {
                tracing::error!(path = %self.path.display(), error = %err, "cannot write the routing table for the router");
                return;
            }
            self.generation.store(generation, Ordering::SeqCst);
            generation
        };
        let loaded = loaded_path(&self.path);
        let deadline = Instant::now() + LOAD_WAIT;
        loop {
            let served = std::fs::read_to_string(&loaded)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if served >= generation {
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(path = %self.path.display(), generation, "the router has not loaded the new routing table; is `paas router` running?");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
