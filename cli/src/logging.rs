//! The log of `paas server` and `paas router`: tracing to standard error, the router's access
//! log buffered.
//!
//! Written as it comes, the access log costs a `write` on the path of every response
//! (docs/benchmarks.md). Its lines are gathered in memory instead and written together every
//! 50 ms by a thread of their own, so a slow standard error (a busy journald) never holds a
//! request up: past 4 MiB waiting, lines are dropped and counted. Every other line is
//! written at once.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

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
    let writer = Writers { access: access.clone() };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = match format {
        "json" => builder.json().try_init(),
        _ => builder.try_init(),
    };
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

/// Picks where each event goes: the access log's lines to the buffer, the rest to stderr.
struct Writers {
    access: Arc<AccessLines>,
}

enum Writer<'a> {
    /// Locked for the whole event, which may come in several writes.
    Stderr(std::io::StderrLock<'static>),
    Access(&'a AccessLines),
}

impl Write for Writer<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Writer::Stderr(stderr) => stderr.write(bytes),
            // tracing's formatter hands over each event whole, in one call.
            Writer::Access(lines) => {
                lines.push(bytes);
                Ok(bytes.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Writer::Stderr(stderr) => stderr.flush(),
            Writer::Access(_) => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for Writers {
    type Writer = Writer<'a>;

    fn make_writer(&'a self) -> Writer<'a> {
        Writer::Stderr(std::io::stderr().lock())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Writer<'a> {
        if meta.target() == paas_router::ACCESS_LOG_TARGET {
            Writer::Access(&self.access)
        } else {
            Writer::Stderr(std::io::stderr().lock())
        }
    }
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
    fn only_the_access_log_is_held_back() {
        use tracing_subscriber::fmt::MakeWriter;
        let writers = Writers { access: Arc::new(AccessLines::default()) };
        let event = |target: &'static str| {
            let fields =
                tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CALLSITE));
            let (level, kind) = (tracing::Level::INFO, tracing::metadata::Kind::EVENT);
            tracing::Metadata::new("event", target, level, None, None, None, fields, kind)
        };
        let access = event(paas_router::ACCESS_LOG_TARGET);
        assert!(matches!(writers.make_writer_for(&access), Writer::Access(_)));
        let other = event("paas_server");
        assert!(matches!(writers.make_writer_for(&other), Writer::Stderr(_)));
    }

    struct Callsite;
    static CALLSITE: Callsite = Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!("not registered")
        }
    }
}
