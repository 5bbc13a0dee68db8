//! What paas does to an app, as log lines: builds, releases, rollouts, scaling, restarts and
//! crashes, shown by `paas logs` as `paas[deploy]:` and `paas[web.1]:` lines beside the app's
//! own `app[web.1]:` output, the way Heroku mixes `heroku[…]` and `app[…]` lines.
//!
//! Kept in memory, the newest [`KEEP_PER_APP`] per app, like Heroku's log buffer: the releases
//! and builds in the store are the lasting record; this is the live view.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

/// Lines kept per app for `paas logs` without `--tail`.
const KEEP_PER_APP: usize = 500;

/// One thing that happened to an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEvent {
    pub app: String,
    /// RFC 3339 with nine fractional digits in UTC, the form Docker gives process output,
    /// so the two sort together as text.
    pub timestamp: String,
    /// `deploy` for the control plane's work, or the process (`web.1`) it is about.
    pub source: String,
    pub text: String,
    /// A line the app's own process wrote (a scheduled job's output, whose container is
    /// gone once it ends), shown as `app[…]` rather than `paas[…]`.
    pub from_app: bool,
}

impl AppEvent {
    /// `2026-12-01T12:00:00.000000000Z paas[deploy]: Release v3 created by admin`
    pub fn line(&self) -> String {
        let who = if self.from_app { "app" } else { "paas" };
        format!("{} {who}[{}]: {}\n", self.timestamp, self.source, self.text)
    }
}

/// The feed: recent events per app, and a live channel every `paas logs --tail` listens to.
#[derive(Clone)]
pub struct AppEvents {
    recent: Arc<Mutex<HashMap<String, VecDeque<AppEvent>>>>,
    live: broadcast::Sender<AppEvent>,
}

impl Default for AppEvents {
    fn default() -> AppEvents {
        AppEvents { recent: Arc::default(), live: broadcast::channel(1024).0 }
    }
}

impl AppEvents {
    /// Records `text` about `app`, from `source`.
    pub fn emit(&self, app: &str, source: &str, text: impl Into<String>) {
        self.record(app, source, text.into(), false);
    }

    /// Records a line `process` of `app` wrote, for processes whose own log goes with their
    /// container (scheduled jobs).
    pub fn output(&self, app: &str, process: &str, line: impl Into<String>) {
        self.record(app, process, line.into(), true);
    }

    fn record(&self, app: &str, source: &str, text: String, from_app: bool) {
        // Stamped, stored and sent under the lock, so that listeners get events in the order
        // of their timestamps, which is what they skip history by.
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let event = AppEvent {
            app: app.to_string(),
            timestamp: now(),
            source: source.to_string(),
            text,
            from_app,
        };
        let lines = recent.entry(app.to_string()).or_default();
        if lines.len() == KEEP_PER_APP {
            lines.pop_front();
        }
        lines.push_back(event.clone());
        // No listener is not an error: nobody is tailing right now.
        let _ = self.live.send(event);
    }

    /// The newest `n` events of `app` that `keep` keeps, oldest first.
    pub fn recent(&self, app: &str, n: usize, keep: impl Fn(&AppEvent) -> bool) -> Vec<AppEvent> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let Some(lines) = recent.get(app) else { return Vec::new() };
        let mut kept: Vec<AppEvent> =
            lines.iter().rev().filter(|e| keep(e)).take(n).cloned().collect();
        kept.reverse();
        kept
    }

    /// Every event from now on, of every app.
    pub fn subscribe(&self) -> broadcast::Receiver<AppEvent> {
        self.live.subscribe()
    }

    /// Drops an app's history: a new app of that name starts with none.
    pub fn forget(&self, app: &str) {
        self.recent.lock().unwrap_or_else(|p| p.into_inner()).remove(app);
    }
}

/// Now, in the form of Docker's log timestamps: `2026-12-01T12:00:00.123456789Z`.
pub(crate) fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_lines_per_app_in_order() {
        let events = AppEvents::default();
        for i in 0..(KEEP_PER_APP + 3) {
            events.emit("shop", "deploy", format!("step {i}"));
        }
        events.emit("other", "web.1", "Process exited with code 3");
        let recent = events.recent("shop", KEEP_PER_APP + 10, |_| true);
        assert_eq!(recent.len(), KEEP_PER_APP);
        assert_eq!(recent[0].text, "step 3");
        assert_eq!(
            events.recent("shop", 2, |_| true)[1].text,
            format!("step {}", KEEP_PER_APP + 2)
        );
        // The newest that match, not the matches among the newest.
        let odd = events.recent("shop", 2, |e| e.text.ends_with(['1', '3', '5', '7', '9']));
        assert_eq!(odd.len(), 2);
        assert_eq!(odd[1].text, format!("step {}", KEEP_PER_APP + 1));
        assert!(recent.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));

        let line = events.recent("other", 1, |_| true)[0].line();
        assert!(line.ends_with(" paas[web.1]: Process exited with code 3\n"), "{line}");
        // The same shape as Docker's timestamps: 2026-12-01T12:00:00.123456789Z
        let timestamp = line.split(' ').next().unwrap();
        assert_eq!((timestamp.len(), &timestamp[10..11], &timestamp[29..]), (30, "T", "Z"));

        events.forget("shop");
        assert!(events.recent("shop", 10, |_| true).is_empty());
    }

    #[tokio::test]
    async fn listeners_get_new_events() {
        let events = AppEvents::default();
        let mut live = events.subscribe();
        events.emit("shop", "deploy", "Release v2 created by admin");
        let event = live.recv().await.unwrap();
        assert_eq!(
            (event.app.as_str(), event.text.as_str()),
            ("shop", "Release v2 created by admin")
        );
    }
}
