//! `paas logs`: the app's process output (`app[web.1]: …`) and what paas did to the app
//! (`paas[deploy]: …`, `paas[web.1]: …`), Heroku style. History comes in time order; with
//! `tail`, new lines follow as they come, from processes that start later too (a deploy's new
//! release, a scale-up, a restart after a crash).
//!
//! Every line starts with its timestamp, RFC 3339 with nine fractional digits in UTC (Docker's
//! form, and [`super::events`]'s), so lines sort by time as text, and a follower that attaches
//! again skips what it sent already by comparing timestamps.

use std::collections::{HashMap, HashSet};

use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use paas_runner::{Process, ProcessEvent, ProcessEventKind, Runner};
use paas_store::App;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use super::Paas;
use super::error::Result;
use super::events::AppEvent;

/// What `paas logs` asks for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LogQuery {
    /// Keep streaming new lines.
    #[serde(default)]
    pub tail: bool,
    /// Only this process type (`web`) or process (`web.1`).
    pub ps: Option<String>,
    /// Lines of history per process, and of paas's own lines (default 100).
    pub num: Option<usize>,
}

/// Lines a follower re-reads when it attaches, to find where the history it continues ended.
const OVERLAP: usize = 1000;

/// Which lines `ps` keeps, by the process they are about; without `ps`, everything, paas's
/// `deploy` lines included.
#[derive(Clone)]
struct Filter(Option<String>);

impl Filter {
    fn keeps(&self, name: &str) -> bool {
        match self.0.as_deref() {
            None => true,
            Some(ps) if ps.contains('.') => name == ps,
            Some(ps) => name.split_once('.').is_some_and(|(process_type, _)| process_type == ps),
        }
    }
}

/// The timestamp a log line starts with.
fn timestamp_of(line: &str) -> &str {
    line.split(' ').next().unwrap_or_default()
}

impl Paas {
    /// The app's log, one line per item: the last `num` lines of each process and of paas's
    /// own lines, in time order; then, with `tail`, new lines until the receiver goes away.
    pub async fn logs(&self, app: &App, query: &LogQuery) -> Result<BoxStream<'static, String>> {
        let runner = self.runner()?.clone();
        let filter = Filter(query.ps.clone());
        let num = query.num.unwrap_or(100).min(10_000);
        let asked_at = super::events::now();
        // Listening starts before the processes are listed, so that one starting in between
        // is not missed.
        let live = query.tail.then(|| (runner.events(), self.events().subscribe()));
        let processes: Vec<Process> = runner
            .list(Some(&app.name))
            .await?
            .into_iter()
            .filter(|p| !p.one_off && filter.keeps(&p.process_name()))
            .collect();
        let recent = self.events().recent(&app.name, num, |e| filter.keeps(&e.source));

        let mut history = Vec::new();
        let mut followed = Vec::new();
        for process in processes {
            let name = process.process_name();
            let lines: Vec<String> =
                process_lines(&runner, &process.container_id, &name, false, Some(num), None)
                    .collect()
                    .await;
            // Following continues after the last line of history, or after the request when
            // there was none.
            let after = lines.last().map_or(asked_at.clone(), |l| timestamp_of(l).to_string());
            history.extend(lines);
            followed.push((process.container_id, name, after));
        }
        history.extend(recent.iter().map(AppEvent::line));
        history.sort();

        let Some((started, events)) = live else {
            return Ok(futures_util::stream::iter(history).boxed());
        };
        let (out, receiver) = mpsc::channel::<String>(256);
        let follow = Follow {
            runner,
            app: app.name.clone(),
            filter,
            out,
            followers: JoinSet::new(),
            following: HashSet::new(),
            restarted: HashSet::new(),
            seen: HashMap::new(),
        };
        let events_after = recent.last().map_or(asked_at, |e| e.timestamp.clone());
        tokio::spawn(follow.run(history, followed, Box::pin(started), events, events_after));
        let lines = futures_util::stream::unfold(receiver, |mut receiver| async move {
            let line = receiver.recv().await?;
            Some((line, receiver))
        });
        Ok(lines.boxed())
    }
}

/// `app[web.1]: …` lines of one container: the last `tail` (all with `None`), then with
/// `follow` new ones until it stops; only those later than `after`.
fn process_lines(
    runner: &Runner,
    container_id: &str,
    name: &str,
    follow: bool,
    tail: Option<usize>,
    after: Option<String>,
) -> impl Stream<Item = String> + Send + 'static + use<> {
    let prefix = format!("app[{name}]");
    runner.logs(container_id, follow, tail).filter_map(move |line| {
        let line = line
            .ok()
            .filter(|l| after.as_ref().is_none_or(|after| &l.timestamp > after))
            .map(|l| format!("{} {prefix}: {}\n", l.timestamp, l.line));
        std::future::ready(line)
    })
}

/// A `tail` under way: one task per followed container, all writing to `out`.
struct Follow {
    runner: Runner,
    app: String,
    filter: Filter,
    out: mpsc::Sender<String>,
    /// Each follower ends, when its container stops, with the container's id and the
    /// timestamp of the last line it sent.
    followers: JoinSet<(String, Option<String>)>,
    following: HashSet<String>,
    /// Followed containers Docker started again before their follower noticed the stop.
    restarted: HashSet<String>,
    /// Every container followed so far: its process name and the last line's timestamp, so
    /// that a restarted one continues where it was.
    seen: HashMap<String, (String, Option<String>)>,
}

impl Follow {
    async fn run(
        mut self,
        history: Vec<String>,
        processes: Vec<(String, String, String)>,
        mut started: std::pin::Pin<Box<dyn Stream<Item = ProcessEvent> + Send>>,
        mut events: broadcast::Receiver<AppEvent>,
        events_after: String,
    ) {
        for line in history {
            if self.out.send(line).await.is_err() {
                return;
            }
        }
        for (container_id, name, after) in processes {
            self.follow(&container_id, &name, Some(after));
        }
        loop {
            let line = tokio::select! {
                () = self.out.closed() => return,
                Some(event) = started.next() => {
                    self.on_started(event);
                    continue;
                }
                event = events.recv() => match event {
                    Ok(event) if event.app == self.app
                        && self.filter.keeps(&event.source)
                        && event.timestamp > events_after => event.line(),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        format!("{} paas[logs]: {skipped} of paas's lines skipped: this \
                                 client read too slowly\n", super::events::now())
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(Ok((id, last))) = self.followers.join_next() => {
                    self.following.remove(&id);
                    let Some((name, seen_last)) = self.seen.get_mut(&id) else { continue };
                    if last.is_some() {
                        *seen_last = last;
                    }
                    if self.restarted.remove(&id) {
                        let (name, after) = (name.clone(), seen_last.clone());
                        self.follow(&id, &name, after);
                    }
                    continue;
                }
            };
            if self.out.send(line).await.is_err() {
                return;
            }
        }
    }

    fn on_started(&mut self, event: ProcessEvent) {
        if event.app != self.app || event.one_off || event.kind != ProcessEventKind::Started {
            return;
        }
        let name = format!("{}.{}", event.process_type, event.index);
        if !self.filter.keeps(&name) {
            return;
        }
        if self.following.contains(&event.container_id) {
            self.restarted.insert(event.container_id);
            return;
        }
        // A container seen before was restarted: it continues after its last line sent.
        let after = self.seen.get(&event.container_id).and_then(|(_, last)| last.clone());
        self.follow(&event.container_id, &name, after);
    }

    /// Follows a container from the first line after `after` (all its lines with `None`).
    fn follow(&mut self, container_id: &str, name: &str, after: Option<String>) {
        let id = container_id.to_string();
        self.following.insert(id.clone());
        let seen = self.seen.entry(id.clone()).or_insert_with(|| (name.to_string(), None));
        if seen.1.is_none() {
            seen.1.clone_from(&after);
        }
        let tail = after.is_some().then_some(OVERLAP);
        let lines = process_lines(&self.runner, &id, name, true, tail, after);
        let out = self.out.clone();
        self.followers.spawn(async move {
            futures_util::pin_mut!(lines);
            let mut last = None;
            while let Some(line) = lines.next().await {
                let timestamp = timestamp_of(&line).to_string();
                if out.send(line).await.is_err() {
                    break;
                }
                last = Some(timestamp);
            }
            (id, last)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_picks_a_type_or_one_process() {
        let all = Filter(None);
        assert!(all.keeps("web.1") && all.keeps("deploy"));
        let web = Filter(Some("web".into()));
        assert!(web.keeps("web.1") && web.keeps("web.2"));
        assert!(!web.keeps("worker.1") && !web.keeps("deploy") && !web.keeps("webby.1"));
        let one = Filter(Some("web.2".into()));
        assert!(one.keeps("web.2") && !one.keeps("web.1") && !one.keeps("web.20"));
    }

    #[test]
    fn lines_sort_and_resume_by_their_timestamp() {
        let line = "2026-12-01T12:00:00.000000010Z app[web.1]: hello world\n";
        assert_eq!(timestamp_of(line), "2026-12-01T12:00:00.000000010Z");
        assert!(timestamp_of(line) > "2026-12-01T12:00:00.000000009Z");
    }
}
