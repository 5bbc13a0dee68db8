//! Per-app request counters, rendered in Prometheus' text format. Atomics only: the hot path
//! never takes a lock to count.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub(crate) struct AppMetrics {
    /// Responses by status class: 1xx … 5xx.
    responses: [AtomicU64; 5],
    response_bytes: AtomicU64,
    duration_micros: AtomicU64,
}

impl AppMetrics {
    pub(crate) fn record(&self, status: u16, bytes: u64, micros: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        self.response_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn requests(&self) -> u64 {
        self.responses.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Prometheus text exposition for a set of apps.
pub(crate) fn render<'a>(apps: impl Iterator<Item = (&'a str, &'a AppMetrics)>) -> String {
    let apps: Vec<_> = apps.collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP paas_router_requests_total Requests answered, by app and status class."
    );
    let _ = writeln!(out, "# TYPE paas_router_requests_total counter");
    for (app, m) in &apps {
        for (i, count) in m.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "paas_router_requests_total{{app=\"{app}\",code=\"{}xx\"}} {}",
                i + 1,
                count.load(Ordering::Relaxed)
            );
        }
    }
    let _ =
        writeln!(out, "# HELP paas_router_response_bytes_total Response body bytes sent, by app.");
    let _ = writeln!(out, "# TYPE paas_router_response_bytes_total counter");
    for (app, m) in &apps {
        let bytes = m.response_bytes.load(Ordering::Relaxed);
        let _ = writeln!(out, "paas_router_response_bytes_total{{app=\"{app}\"}} {bytes}");
    }
    let _ = writeln!(
        out,
        "# HELP paas_router_request_duration_seconds_total Time spent answering requests, by app."
    );
    let _ = writeln!(out, "# TYPE paas_router_request_duration_seconds_total counter");
    for (app, m) in &apps {
        let seconds = m.duration_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ =
            writeln!(out, "paas_router_request_duration_seconds_total{{app=\"{app}\"}} {seconds}");
    }
    out
}
