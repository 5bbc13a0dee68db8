//! The log of `paas server` and `paas router`: tracing to standard error, the router's access
//! log buffered.
//!
//! Written as it comes, the access log costs a `write` on the path of every response
//! (docs/benchmarks.md). Its lines are gathered in memory instead and written together every
//! 50 ms by a thread of their own, so a slow standard error (a busy journald) never holds a
//! request up: past 4 MiB waiting, lines are dropped and counted. Every other line is
//! written at once. The access lines are also formatted here, by hand, in the same shape as
//! tracing's formatter makes the others: its general machinery was a fifth of the router's
//! own instructions per request.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// How often the gathered access-log lines are written out.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Most access-log bytes held back; more are dropped until the next write.
const MAX_WAITING: usize = 4 * 1024 * 1024;
/// About how much is written at once.
const CHUNK: usize = 64 * 1024;

/// Sets up the process's log (`human` or `json`, filtered by `PAAS_LOG`). Keep the guard
/// until the process ends: dropping it writes the access-log lines still waiting.
pub(crate) fn init(format: &str) -> LogGuard {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PAAS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let access = Arc::new(AccessLines::default());
    let json = format == "json";
    let not_access = tracing_subscriber::filter::filter_fn(|meta| {
        meta.target() != paas_router::ACCESS_LOG_TARGET
    });
    let others = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let others = match json {
        true => others.json().with_filter(not_access).boxed(),
        false => others.with_filter(not_access).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(AccessLayer { lines: access.clone(), json })
        .with(others)
        .try_init();
    let flushing = access.clone();
    let _ = std::thread::Builder::new().name("paas-access-log".into()).spawn(move || {
        loop {
            std::thread::sleep(FLUSH_EVERY);
            flushing.flush();
        }
    });
    LogGuard { access }
}

/// Writes what the access log still holds when dropped.
pub(crate) struct LogGuard {
    access: Arc<AccessLines>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.access.flush();
    }
}

#[derive(Default)]
struct AccessLines {
    /// The lines waiting, and how many were dropped since the last write.
    waiting: Mutex<(Vec<u8>, u64)>,
}

impl AccessLines {
    fn push(&self, line: &[u8]) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.0.len() + line.len() > MAX_WAITING {
            waiting.1 += 1;
        } else {
            waiting.0.extend_from_slice(line);
        }
    }

    fn flush(&self) {
        let dropped = self.flush_to(std::io::stderr);
        if dropped > 0 {
            // Through the log, so that it has the log's format (JSON too).
            tracing::warn!(dropped, "access log lines dropped: standard error did not keep up");
        }
    }

    /// Writes the waiting lines to what `out` opens, whole lines at a time, a chunk per
    /// call: a worker logging a warning meanwhile waits for one chunk at most, never for all
    /// of them. Returns how many lines were dropped since the last flush.
    fn flush_to<W: Write>(&self, mut out: impl FnMut() -> W) -> u64 {
        let (lines, dropped) = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            let lines = std::mem::replace(&mut waiting.0, Vec::with_capacity(64 * 1024));
            (lines, std::mem::take(&mut waiting.1))
        };
        let mut rest = &lines[..];
        while !rest.is_empty() {
            let end =
                match rest.get(CHUNK..).and_then(|after| after.iter().position(|&b| b == b'\n')) {
                    Some(newline) => CHUNK + newline + 1,
                    None => rest.len(),
                };
            let _ = out().write_all(&rest[..end]);
            rest = &rest[end..];
        }
        dropped
    }
}

/// Formats the router's access events into [`AccessLines`], as tracing's `human` or `json`
/// formatter would (`TIMESTAMP  INFO paas_router::access: app="shop" method=GET …`).
struct AccessLayer {
    lines: Arc<AccessLines>,
    json: bool,
}

impl<S: tracing::Subscriber> Layer<S> for AccessLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != paas_router::ACCESS_LOG_TARGET {
            return;
        }
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            access_line(line, event, SystemTime::now(), self.json);
            self.lines.push(line.as_bytes());
        });
    }
}

/// One access line for `event` logged at `now`, newline included.
fn access_line(line: &mut String, event: &tracing::Event<'_>, now: SystemTime, json: bool) {
    let target = event.metadata().target();
    let level = event.metadata().level().as_str();
    if json {
        line.push_str("{\"timestamp\":\"");
        timestamp(line, now);
        line.push_str("\",\"level\":\"");
        line.push_str(level);
        line.push_str("\",\"fields\":{");
    } else {
        timestamp(line, now);
        // Right-aligned in five columns, as `{level:>5}`.
        line.push_str(&"      "[..6 - level.len().min(5)]);
        line.push_str(level);
        line.push(' ');
        line.push_str(target);
        line.push(':');
    }
    event.record(&mut Fields { line, json, first: true });
    if json {
        line.push_str("},\"target\":\"");
        line.push_str(target);
        line.push_str("\"}");
    }
    line.push('\n');
}

/// An event's fields, `name=value` (strings quoted) or as JSON members.
struct Fields<'a> {
    line: &'a mut String,
    json: bool,
    first: bool,
}

impl Fields<'_> {
    fn name(&mut self, field: &Field) {
        match (self.json, self.first) {
            (true, first) => {
                self.line.push_str(if first { "\"" } else { ",\"" });
                self.line.push_str(field.name());
                self.line.push_str("\":");
            }
            (false, _) => {
                self.line.push(' ');
                self.line.push_str(field.name());
                self.line.push('=');
            }
        }
        self.first = false;
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        let plain = value.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
        if plain {
            self.line.push('"');
            self.line.push_str(value);
            self.line.push('"');
        } else if self.json {
            self.line.push_str(&serde_json::Value::from(value).to_string());
        } else {
            let _ = write!(self.line, "{value:?}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        digits(self.line, value, 1);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.name(field);
        let _ = write!(self.line, "{value}");
    }

    /// As tracing's formatter: as it comes (`%display` included), quoted only in JSON.
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.json {
            self.record_str(field, &format!("{value:?}"));
        } else {
            self.name(field);
            let _ = write!(self.line, "{value:?}");
        }
    }
}

/// `2026-12-03T10:26:06.532432Z`, as tracing's formatter writes its time.
fn timestamp(line: &mut String, now: SystemTime) {
    thread_local! {
        /// The last second written, up to its `.`: a second has many lines.
        static SECOND: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != since.as_secs() {
            text.clear();
            date_and_time(text, since.as_secs());
            *second = since.as_secs();
        }
        line.push_str(text);
    });
    digits(line, u64::from(since.subsec_micros()), 6);
    line.push('Z');
}

/// `2026-12-03T10:26:06.` for a time in seconds since the epoch.
fn date_and_time(line: &mut String, since: u64) {
    let (days, secs) = (since / 86_400, since % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm, years from March).
    let z = days + 719_468;
    let (era, day_of_era) = (z / 146_097, z % 146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    for (value, width, then) in [
        (year, 4, '-'),
        (month, 2, '-'),
        (day, 2, 'T'),
        (hour, 2, ':'),
        (minute, 2, ':'),
        (second, 2, '.'),
    ] {
        digits(line, value, width);
        line.push(then);
    }
}

/// `value` in decimal, zero-padded to `width` digits, without `fmt`'s general machinery.
fn digits(line: &mut String, mut value: u64, width: usize) {
    let mut buffer = [b'0'; 20];
    let mut start = buffer.len();
    while value > 0 || start == buffer.len() {
        start -= 1;
        buffer[start] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    start = start.min(buffer.len() - width.min(buffer.len()));
    line.push_str(std::str::from_utf8(&buffer[start..]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_wait_for_the_flush_and_overflow_is_counted() {
        let lines = AccessLines::default();
        lines.push(b"one\n");
        lines.push(b"two\n");
        let flush = |lines: &AccessLines| {
            let out = std::cell::RefCell::new(Vec::new());
            let dropped = lines.flush_to(|| Chunk(&out));
            (out.into_inner(), dropped)
        };
        let (out, dropped) = flush(&lines);
        assert_eq!((out, dropped), (vec![b"one\ntwo\n".to_vec()], 0));
        assert_eq!(flush(&lines), (vec![], 0), "nothing is written twice");

        // Many lines go out in chunks of whole lines; past the limit lines are counted.
        let line = [b"x".repeat(99), b"\n".to_vec()].concat();
        for _ in 0..(MAX_WAITING / line.len()) {
            lines.push(&line);
        }
        lines.push(&line);
        lines.push(&line);
        let (out, dropped) = flush(&lines);
        assert!(out.len() > 1, "in chunks");
        for chunk in &out {
            assert!(chunk.len() <= CHUNK + line.len() && chunk.ends_with(b"\n"));
            assert_eq!(chunk.len() % line.len(), 0, "whole lines only");
        }
        let total: usize = out.iter().map(Vec::len).sum();
        assert_eq!(total, MAX_WAITING / line.len() * line.len());
        assert_eq!(dropped, 2);
    }

    /// A writer that records each write call.
    struct Chunk<'a>(&'a std::cell::RefCell<Vec<Vec<u8>>>);

    impl Write for Chunk<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().push(bytes.to_vec());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn timestamps_are_rfc_3339_in_utc() {
        let at = |secs: u64, micros: u64| {
            let mut line = String::new();
            let time = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            timestamp(&mut line, time);
            line
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_796_293_566, 532_432), "2026-12-03T10:26:06.532432Z");
        assert_eq!(at(1_709_251_199, 7), "2024-02-29T23:59:59.000007Z");
        assert_eq!(at(951_868_800, 0), "2000-03-01T00:00:00.000000Z");
    }

    /// The access lines logged while `log` runs, in `json` or not, the timestamps cut off.
    fn access_lines(json: bool, log: impl FnOnce()) -> Vec<String> {
        let lines = Arc::new(AccessLines::default());
        let subscriber =
            tracing_subscriber::registry().with(AccessLayer { lines: lines.clone(), json });
        tracing::subscriber::with_default(subscriber, log);
        let out = std::cell::RefCell::new(Vec::new());
        lines.flush_to(|| Chunk(&out));
        let text = String::from_utf8(out.into_inner().concat()).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    }

    fn log_one_request() {
        tracing::info!(target: paas_router::ACCESS_LOG_TARGET, app = "shop", method = "GET",
            path = "/a \"b\"\u{7}", status = 200u16, ms = 1.5, bytes = 23u64, request_id = "r1");
        tracing::info!(target: "paas_server", "not an access line");
    }

    #[test]
    fn access_lines_are_shaped_as_tracing_s_own() {
        let human = access_lines(false, log_one_request);
        assert_eq!(human.len(), 1, "{human:?}");
        let (time, rest) = human[0].split_at(27);
        assert!(time.starts_with("20") && time.ends_with('Z'), "{time}");
        assert_eq!(
            rest,
            "  INFO paas_router::access: app=\"shop\" method=\"GET\" path=\"/a \\\"b\\\"\\u{7}\" \
             status=200 ms=1.5 bytes=23 request_id=\"r1\""
        );

        let json = access_lines(true, log_one_request);
        assert_eq!(json.len(), 1, "{json:?}");
        let line: serde_json::Value = serde_json::from_str(&json[0]).unwrap_or_default();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], paas_router::ACCESS_LOG_TARGET);
        assert_eq!(line["fields"]["path"], "/a \"b\"\u{7}");
        assert_eq!(line["fields"]["status"], 200);
        assert_eq!(line["fields"]["ms"], 1.5);
        assert_eq!(line["fields"]["request_id"], "r1");
        assert!(line["timestamp"].as_str().is_some_and(|t| t.len() == 27), "{line}");
    }
}
