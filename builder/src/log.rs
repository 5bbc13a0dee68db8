//! The build log: what a build printed, bounded, and any number of listeners that each get
//! the lines so far and then the live ones.
//!
//! A build may print gigabytes (a runaway loop, a chatty compiler) while the log lives in the
//! server's memory, and the log is then stored with the build. So a log keeps only:
//!
//! - the head: the first [`HEAD_LINES`] lines (or [`HEAD_BYTES`]), which say what was built
//!   and how;
//! - the tail: the last [`TAIL_LINES`] lines (or [`TAIL_BYTES`]), which say how it ended;
//! - once lines are dropped between them, one marker line in their place:
//!   `… 123456 lines cut from this log …`.
//!
//! A line is cut at [`MAX_LINE`] bytes and says so. A log so holds about 10 MiB at most,
//! whatever the build prints.
//!
//! Every line has a number. A `watch` channel only says "there is more"; each listener keeps
//! the number of the next line it wants, so a slow listener never holds the build up. One
//! that falls behind the tail gets a marker saying how many lines it missed and goes on from
//! the oldest line still kept; it loses nothing that is still there, and a late listener
//! replays the whole kept log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::Stream;
use tokio::sync::watch;

/// Lines kept from the start of a build.
const HEAD_LINES: usize = 2_000;
/// Bytes the head may hold, should its lines be long.
const HEAD_BYTES: usize = 2 * 1024 * 1024;
/// Lines kept from the end of a build.
const TAIL_LINES: usize = 8_000;
/// Bytes the tail may hold.
const TAIL_BYTES: usize = 8 * 1024 * 1024;
/// The longest line kept; a longer one is cut here (at a character boundary) and marked.
pub(crate) const MAX_LINE: usize = 16 * 1024;

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

/// Lines are numbered from 0: the head holds `0..head.len()`, then `cut` lines are gone, and
/// the tail holds the rest.
#[derive(Default)]
struct State {
    head: Vec<String>,
    head_bytes: usize,
    /// Set once a line did not fit in the head; from then on lines go to the tail.
    head_full: bool,
    cut: u64,
    tail: VecDeque<String>,
    tail_bytes: usize,
    closed: bool,
}

impl State {
    fn add(&mut self, line: String) {
        let line = cap(line);
        if !self.head_full
            && self.head.len() < HEAD_LINES
            && self.head_bytes + line.len() <= HEAD_BYTES
        {
            self.head_bytes += line.len();
            self.head.push(line);
            return;
        }
        self.head_full = true;
        self.tail_bytes += line.len();
        self.tail.push_back(line);
        while self.tail.len() > TAIL_LINES || self.tail_bytes > TAIL_BYTES {
            let Some(old) = self.tail.pop_front() else { break };
            self.tail_bytes -= old.len();
            self.cut += 1;
        }
    }

    /// The number of the first line in the tail.
    fn tail_start(&self) -> u64 {
        self.head.len() as u64 + self.cut
    }

    /// What is kept, in order: head, the marker if lines were cut, tail.
    fn snapshot(&self) -> impl DoubleEndedIterator<Item = String> + '_ {
        let marker = (self.cut > 0).then(|| marker(self.cut));
        self.head.iter().cloned().chain(marker).chain(self.tail.iter().cloned())
    }
}

/// `line`, cut at [`MAX_LINE`] bytes with a note saying so.
fn cap(mut line: String) -> String {
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str(&format!(" … [line cut at {} KiB]", MAX_LINE / 1024));
    }
    line
}

/// The line that stands for `n` lines no longer kept.
fn marker(n: u64) -> String {
    let lines = if n == 1 { "line" } else { "lines" };
    format!("… {n} {lines} cut from this log …")
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
            .field("lines", &(state.head.len() + state.tail.len()))
            .field("cut", &state.cut)
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
        // A panic while holding the lock cannot leave a line half-written; keep going.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `text`, one line per `\n`-separated part, as is (but cut at 16 KiB).
    pub fn push(&self, text: impl AsRef<str>) {
        {
            let mut state = self.state();
            for line in text.as_ref().lines() {
                state.add(line.trim_end().to_string());
            }
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

    /// Every line kept: the head, a marker if lines were cut, the tail.
    pub fn lines(&self) -> Vec<String> {
        self.state().snapshot().collect()
    }

    /// The kept log as text, one `\n` after each line: what the server stores.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for line in self.state().snapshot() {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    /// The last `n` lines, joined: for error reports.
    pub fn tail(&self, n: usize) -> String {
        let state = self.state();
        let mut last: Vec<String> = state.snapshot().rev().take(n).collect();
        last.reverse();
        last.join("\n")
    }

    /// A listener: every line kept from the first, then live lines until the log is closed.
    pub fn subscribe(&self) -> LogSubscription {
        self.subscribe_from(0)
    }

    /// A listener that starts at line number `next` (a viewer coming back where it left).
    pub fn subscribe_from(&self, next: u64) -> LogSubscription {
        LogSubscription { log: self.clone(), next, changed: self.inner.changed.subscribe() }
    }

    /// The log so far, and the number of the next line: where a listener that has shown
    /// this text goes on from.
    pub fn text_and_position(&self) -> (String, u64) {
        let state = self.state();
        let text = state.snapshot().map(|line| line + "\n").collect();
        (text, state.tail_start() + state.tail.len() as u64)
    }
}

/// One listener's position in a [`BuildLog`].
pub struct LogSubscription {
    log: BuildLog,
    /// The number of the next line to hand out.
    next: u64,
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
                if let Some(line) = state.head.get(self.next as usize) {
                    self.next += 1;
                    return Some(line.clone());
                }
                let tail_start = state.tail_start();
                if self.next < tail_start {
                    // Fell behind the tail: say how much is gone, go on from what is kept.
                    let missed = tail_start - self.next;
                    self.next = tail_start;
                    return Some(marker(missed));
                }
                if let Some(line) = state.tail.get((self.next - tail_start) as usize) {
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

    /// The number of the next line this listener will get.
    pub fn position(&self) -> u64 {
        self.next
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

    #[test]
    fn a_flood_keeps_the_head_a_marker_and_the_tail() {
        let log = BuildLog::new();
        let total = 1_000_000;
        for i in 0..total {
            log.push(format!("line {i}"));
        }
        {
            let state = log.state();
            assert_eq!(state.head.len() + state.tail.len(), HEAD_LINES + TAIL_LINES);
            let bytes: usize = state.head.iter().chain(&state.tail).map(String::len).sum();
            assert_eq!(bytes, state.head_bytes + state.tail_bytes);
            assert!(bytes <= HEAD_BYTES + TAIL_BYTES, "{bytes}");
        }
        let lines = log.lines();
        assert_eq!(lines.len(), HEAD_LINES + 1 + TAIL_LINES);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[HEAD_LINES - 1], format!("line {}", HEAD_LINES - 1));
        let cut = total - HEAD_LINES - TAIL_LINES;
        assert_eq!(lines[HEAD_LINES], format!("… {cut} lines cut from this log …"));
        assert_eq!(lines[HEAD_LINES + 1], format!("line {}", total - TAIL_LINES));
        assert_eq!(lines.last().unwrap(), &format!("line {}", total - 1));
        assert_eq!(log.text().lines().count(), lines.len());
        assert_eq!(log.tail(2), format!("line {}\nline {}", total - 2, total - 1));
    }

    #[test]
    fn long_lines_are_cut_and_say_so() {
        let log = BuildLog::new();
        // Multi-byte characters, so the cut must find a character boundary.
        log.push("é".repeat(MAX_LINE));
        let line = &log.lines()[0];
        assert!(line.len() < MAX_LINE + 64, "{}", line.len());
        assert!(line.ends_with(" … [line cut at 16 KiB]"), "{}", &line[line.len() - 40..]);

        // Long lines fill the byte budgets before the line counts.
        for _ in 0..10_000 {
            log.push("x".repeat(4 * MAX_LINE));
        }
        let state = log.state();
        assert!(state.head_bytes <= HEAD_BYTES && state.tail_bytes <= TAIL_BYTES);
        assert!(state.head.len() < HEAD_LINES && state.tail.len() < TAIL_LINES);
    }

    #[tokio::test]
    async fn a_slow_listener_gets_a_marker_and_goes_on_from_the_oldest_kept_line() {
        let log = BuildLog::new();
        let mut slow = log.subscribe();
        for i in 0..HEAD_LINES + 10 {
            log.push(format!("line {i}"));
        }
        // Into the tail, then left behind by the build.
        for _ in 0..HEAD_LINES + 5 {
            slow.next().await.unwrap();
        }
        for i in HEAD_LINES + 10..HEAD_LINES + TAIL_LINES + 100 {
            log.push(format!("line {i}"));
        }
        log.close();
        // The 100 lines after the head are gone; it had read 5 of them.
        assert_eq!(slow.next().await.unwrap(), "… 95 lines cut from this log …");
        let rest: Vec<String> = slow.into_stream().collect().await;
        assert_eq!(rest.len(), TAIL_LINES);
        assert_eq!(rest[0], format!("line {}", HEAD_LINES + 100));

        // A listener that comes late replays what the server stores.
        let late: Vec<String> = log.subscribe().into_stream().collect().await;
        assert_eq!(late, log.lines());
    }
}
