//! The build log: every line kept, and any number of listeners that each get the lines so far
//! and then the live ones.
//!
//! Lines live in one `Vec`; a `watch` channel only says "there is more". A listener keeps its
//! own position in the `Vec`, so a slow one never loses lines (as it could with a bounded
//! broadcast channel) and a late one replays from the start.

use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::Stream;
use tokio::sync::watch;

/// A cloneable handle to one build's log. Whoever created it closes it when the build (or
/// the whole deploy, if later steps add lines) is over; listeners end then.
#[derive(Clone)]
pub struct BuildLog {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    changed: watch::Sender<()>,
}

#[derive(Default)]
struct State {
    lines: Vec<String>,
    closed: bool,
}

impl Default for BuildLog {
    fn default() -> BuildLog {
        BuildLog::new()
    }
}

impl std::fmt::Debug for BuildLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("BuildLog")
            .field("lines", &state.lines.len())
            .field("closed", &state.closed)
            .finish()
    }
}

impl BuildLog {
    pub fn new() -> BuildLog {
        BuildLog {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changed: watch::channel(()).0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the Vec half-written; keep going.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `text`, one line per `\n`-separated part, as is.
    pub fn push(&self, text: impl AsRef<str>) {
        {
            let mut state = self.state();
            state.lines.extend(text.as_ref().lines().map(|l| l.trim_end().to_string()));
        }
        self.inner.changed.send_replace(());
    }

    /// A Heroku-style step header: `-----> Installing dependencies`.
    pub fn step(&self, text: impl AsRef<str>) {
        self.push(format!("-----> {}", text.as_ref()));
    }

    /// Detail under a step, indented to line up with the step's text.
    pub fn info(&self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            self.push(format!("       {line}"));
        }
    }

    /// An error or warning, Heroku's ` !     ` prefix.
    pub fn error(&self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            self.push(format!(" !     {line}"));
        }
    }

    /// Marks the end: listeners finish once they have every line.
    pub fn close(&self) {
        self.state().closed = true;
        self.inner.changed.send_replace(());
    }

    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.state().lines.clone()
    }

    /// The whole log as text, one `\n` after each line: what the server stores.
    pub fn text(&self) -> String {
        let state = self.state();
        let mut text = String::with_capacity(state.lines.iter().map(|l| l.len() + 1).sum());
        for line in &state.lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// The last `n` lines, joined: for error reports.
    pub fn tail(&self, n: usize) -> String {
        let state = self.state();
        let start = state.lines.len().saturating_sub(n);
        state.lines[start..].join("\n")
    }

    /// A listener: every line from the first, then live lines until the log is closed.
    pub fn subscribe(&self) -> LogSubscription {
        LogSubscription { log: self.clone(), next: 0, changed: self.inner.changed.subscribe() }
    }
}

/// One listener's position in a [`BuildLog`].
pub struct LogSubscription {
    log: BuildLog,
    next: usize,
    changed: watch::Receiver<()>,
}

impl LogSubscription {
    /// The next line, waiting for it if need be; `None` once the log is closed and read.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            // Mark the current version seen *before* looking, so a push after the look
            // wakes the wait below.
            self.changed.borrow_and_update();
            {
                let state = self.log.state();
                if let Some(line) = state.lines.get(self.next) {
                    self.next += 1;
                    return Some(line.clone());
                }
                if state.closed {
                    return None;
                }
            }
            // The sender lives in the log this subscription holds, so this cannot fail;
            // if it somehow did, end rather than spin.
            self.changed.changed().await.ok()?;
        }
    }

    /// The lines as a `Stream`, e.g. for a chunked HTTP response.
    pub fn into_stream(self) -> impl Stream<Item = String> + Send + 'static {
        futures_util::stream::unfold(self, |mut sub| async move {
            let line = sub.next().await?;
            Some((line, sub))
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn late_and_early_listeners_get_every_line() {
        let log = BuildLog::new();
        log.step("Python app detected");
        let mut early = log.subscribe();
        assert_eq!(early.next().await.as_deref(), Some("-----> Python app detected"));

        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    log.info(format!("line {i}"));
                    if i % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                log.error("done\nreally");
                log.close();
            })
        };
        let mut seen = Vec::new();
        while let Some(line) = early.next().await {
            seen.push(line);
        }
        writer.await.unwrap();
        assert_eq!(seen.len(), 202);
        assert_eq!(seen[0], "       line 0");
        assert_eq!(seen[201], " !     really");

        let late: Vec<String> = log.subscribe().into_stream().collect().await;
        assert_eq!(late, log.lines());
        assert_eq!(log.text().lines().count(), 203);
        assert_eq!(log.tail(2), " !     done\n !     really");
        assert!(log.is_closed());
    }
}
