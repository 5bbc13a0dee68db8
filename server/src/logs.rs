//! `paas logs`: the app's process output (`app[web.1]: …`) and what paas did to the app
//! (`paas[deploy]: …`, `paas[web.1]: …`), Heroku style. History comes in time order; with
//! `tail`, new lines follow as they come, from processes that start later too (a deploy's new
//! release, a scale-up, a restart after a crash).

use std::collections::{HashMap, HashSet};

use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use paas_runner::{Process, ProcessEvent, ProcessEventKind, Runner};
use paas_store::App;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use crate::error::Result;
use crate::events::AppEvent;
use crate::ops::Paas;
use crate::rollout::deploy_error;

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

impl Paas {
    /// The app's log, one line per item: the last `num` lines of each process and of paas's
    /// own lines; then, with `tail`, new lines until the receiver goes away.
    pub async fn logs(&self, app: &App, query: &LogQuery) -> Result<BoxStream<'static, String>> {
        let runner = self.runner()?.clone();
        let filter = Filter(query.ps.clone());
        let num = query.num.unwrap_or(100).min(10_000);
        // Listening starts before the processes are listed, so that one starting in between
        // is not missed.
        let live = query.tail.then(|| (runner.events(), self.events().subscribe()));
        let processes: Vec<Process> = runner
            .list(Some(&app.name))
            .await
            .map_err(deploy_error)?
            .into_iter()
            .filter(|p| filter.keeps(&p.process_name()))
            .collect();
        let recent: Vec<AppEvent> = self
            .events()
            .recent(&app.name, num)
            .into_iter()
            .filter(|e| filter.keeps(&e.source))
            .collect();

        let Some((started, events)) = live else {
            // History only: every process's lines and paas's in time order (RFC 3339 with
            // nine fractional digits sorts as text).
            let streams = processes.iter().map(|p| {
                process_lines(&runner, &p.container_id, &p.process_name(), false, Some(num)).boxed()
            });
            let mut lines: Vec<String> = futures_util::stream::select_all(streams).collect().await;
            lines.extend(recent.iter().map(AppEvent::line));
            lines.sort();
            return Ok(futures_util::stream::iter(lines).boxed());
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
        let after = recent.last().map(|e| e.timestamp.clone());
        let history: Vec<String> = recent.iter().map(AppEvent::line).collect();
        tokio::spawn(follow.run(history, processes, num, Box::pin(started), events, after));
        let lines = futures_util::stream::unfold(receiver, |mut receiver| async move {
            let line = receiver.recv().await?;
            Some((line, receiver))
        });
        Ok(lines.boxed())
    }
}

/// `app[web.1]: …` lines of one container; `tail` lines of history (all with `None`).
fn process_lines(
    runner: &Runner,
    container_id: &str,
    name: &str,
    follow: bool,
    tail: Option<usize>,
) -> impl Stream<Item = String> + Send + 'static + use<> {
    let prefix = format!("app[{name}]");
    runner.logs(container_id, follow, tail).filter_map(move |line| {
        let line = line.ok().map(|l| format!("{} {prefix}: {}\n", l.timestamp, l.line));
        std::future::ready(line)
    })
}

/// A `tail` under way: one task per followed container, all writing to `out`.
struct Follow {
    runner: Runner,
    app: String,
    filter: Filter,
    out: mpsc::Sender<String>,
    /// Each follower ends with its container's id, when the container stops.
    followers: JoinSet<String>,
    following: HashSet<String>,
    /// Followed containers Docker started again before their follower noticed the stop.
    restarted: HashSet<String>,
    /// Every container followed so far, and its process name: a restarted one gets only
    /// its new lines.
    seen: HashMap<String, String>,
}

impl Follow {
    async fn run(
        mut self,
        history: Vec<String>,
        processes: Vec<Process>,
        num: usize,
        mut started: std::pin::Pin<Box<dyn Stream<Item = ProcessEvent> + Send>>,
        mut events: broadcast::Receiver<AppEvent>,
        after: Option<String>,
    ) {
        for line in history {
            if self.out.send(line).await.is_err() {
                return;
            }
        }
        for process in &processes {
            self.follow(&process.container_id, &process.process_name(), Some(num));
        }
        loop {
            tokio::select! {
                () = self.out.closed() => return,
                Some(event) = started.next() => self.on_started(event),
                event = events.recv() => match event {
                    Ok(event) if event.app == self.app
                        && self.filter.keeps(&event.source)
                        && after.as_ref().is_none_or(|after| &event.timestamp > after) =>
                    {
                        if self.out.send(event.line()).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(Ok(id)) = self.followers.join_next() => {
                    self.following.remove(&id);
                    if self.restarted.remove(&id) && let Some(name) = self.seen.get(&id).cloned() {
                        self.follow(&id, &name, Some(0));
                    }
                }
            }
        }
    }

    fn on_started(&mut self, event: ProcessEvent) {
        if event.app != self.app || event.kind != ProcessEventKind::Started {
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
        // A container seen before was restarted: its earlier lines went out already.
        let tail = self.seen.contains_key(&event.container_id).then_some(0);
        self.follow(&event.container_id, &name, tail);
    }

    fn follow(&mut self, container_id: &str, name: &str, tail: Option<usize>) {
        let id = container_id.to_string();
        self.following.insert(id.clone());
        self.seen.insert(id.clone(), name.to_string());
        let lines = process_lines(&self.runner, &id, name, true, tail);
        let out = self.out.clone();
        self.followers.spawn(async move {
            futures_util::pin_mut!(lines);
            while let Some(line) = lines.next().await {
                if out.send(line).await.is_err() {
                    break;
                }
            }
            id
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
}
