//! The routing table: plain data handed to the router, compiled into host lookups.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::metrics::AppMetrics;

/// What the router serves: for each app, its hostnames and live `web` backends. Plain,
/// serialisable data, so a router in another process can be fed the same table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    pub routes: Vec<Route>,
}

/// The routing table as a file, for a router in another process (`paas router --table`):
/// the table and its generation. The router says which generation it serves by writing it to
/// [`loaded_path`], so the control plane knows when an old backend no longer gets requests.
/// A file without a generation (written by hand) loads as generation 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFile {
    #[serde(default)]
    pub generation: u64,
    #[serde(flatten)]
    pub table: RouteTable,
    /// Certificates and ACME answers: the file holds private keys, so it is written
    /// readable by its owner only.
    #[serde(default)]
    pub tls: crate::TlsTable,
}

/// Where the router acknowledges a table file: `TABLE.loaded` beside it, holding the
/// generation it serves.
pub fn loaded_path(table: &std::path::Path) -> std::path::PathBuf {
    let mut name = table.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".loaded");
    table.with_file_name(name)
}

/// Replaces `path` with `bytes` so a reader sees the old file or the new one, never half of
/// either: written beside it, flushed to disk, then renamed over it.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    let temporary = path.with_file_name(name);
    // A leftover from a crashed write would keep its old mode: start afresh.
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub app: String,
    /// Hostnames, matched case-insensitively without the port. `*.example.com` matches any
    /// single label in front of `example.com`.
    pub hosts: Vec<String>,
    /// Where the app's `web` processes listen. Empty: the app is down (503).
    pub backends: Vec<SocketAddr>,
    /// Paths served by another process type (`/ws/` → `channels`): the longest prefix that
    /// starts the request's path wins; everything else goes to `backends`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathRoute>,
    /// Plain HTTP requests are redirected to HTTPS (308) when the router has a certificate
    /// for the host they name.
    #[serde(default)]
    pub https_redirect: bool,
    /// HTTPS responses carry `Strict-Transport-Security`.
    #[serde(default)]
    pub hsts: bool,
}

/// Requests whose path starts with `prefix` go to these backends instead of `web`'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRoute {
    /// `/ws/`: matched against the path as sent, byte for byte.
    pub prefix: String,
    /// The process type serving it, for pages and logs.
    pub process_type: String,
    /// Empty: that process type is down (503), even if `web` is up.
    pub backends: Vec<SocketAddr>,
}

/// One app as the proxy sees it.
pub(crate) struct LiveRoute {
    pub app: String,
    pub backends: Vec<Arc<Backend>>,
    /// Longest prefix first.
    pub paths: Vec<LivePath>,
    pub metrics: Arc<AppMetrics>,
    pub https_redirect: bool,
    pub hsts: bool,
}

pub(crate) struct LivePath {
    pub prefix: String,
    pub process_type: String,
    pub backends: Vec<Arc<Backend>>,
}

impl LiveRoute {
    /// The process type and backends serving `path`: the longest matching prefix's, else
    /// `web`'s.
    pub(crate) fn serving(&self, path: &str) -> (&str, &[Arc<Backend>]) {
        match self.paths.iter().find(|p| path.starts_with(&p.prefix)) {
            Some(route) => (&route.process_type, &route.backends),
            None => ("web", &self.backends),
        }
    }
}

/// A routing table ready for lookups.
#[derive(Default)]
pub(crate) struct CompiledTable {
    exact: HashMap<String, Arc<LiveRoute>>,
    /// `*.example.com` stored as `example.com`.
    wildcard: HashMap<String, Arc<LiveRoute>>,
}

impl CompiledTable {
    pub(crate) fn insert(&mut self, host: &str, route: Arc<LiveRoute>) {
        let host = host_key(host);
        match host.strip_prefix("*.") {
            Some(parent) => self.wildcard.insert(parent.to_string(), route),
            None => self.exact.insert(host, route),
        };
    }

    /// The route for a Host header value (any port stripped, any case).
    pub(crate) fn lookup(&self, host: &str) -> Option<&Arc<LiveRoute>> {
        let host = strip_port(host).trim_end_matches('.');
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            host
        };
        if let Some(route) = self.exact.get(host) {
            return Some(route);
        }
        let (_, parent) = host.split_once('.')?;
        self.wildcard.get(parent)
    }
}

/// A hostname as tables key it: trimmed, lower case, no trailing dot.
pub(crate) fn host_key(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `example.com:8000` → `example.com`; `[::1]:80` → `[::1]`.
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(app: &str) -> Arc<LiveRoute> {
        Arc::new(LiveRoute {
            app: app.into(),
            backends: vec![],
            paths: vec![],
            metrics: Arc::new(AppMetrics::default()),
            https_redirect: false,
            hsts: false,
        })
    }

    #[test]
    fn host_lookup() {
        let mut table = CompiledTable::default();
        table.insert("shop.localhost", route("shop"));
        table.insert("WWW.Shop.Example", route("custom"));
        table.insert("*.apps.example.com", route("wild"));
        let app = |host: &str| table.lookup(host).map(|r| r.app.clone());
        assert_eq!(app("shop.localhost").as_deref(), Some("shop"));
        assert_eq!(app("SHOP.localhost:8000").as_deref(), Some("shop"));
        assert_eq!(app("shop.localhost.").as_deref(), Some("shop"));
        assert_eq!(app("www.shop.example").as_deref(), Some("custom"));
        assert_eq!(app("x.apps.example.com").as_deref(), Some("wild"));
        assert_eq!(app("a.b.apps.example.com"), None, "a wildcard covers one label");
        assert_eq!(app("apps.example.com"), None);
        assert_eq!(app("other.localhost"), None);
        assert_eq!(app(""), None);
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.b:8000"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
