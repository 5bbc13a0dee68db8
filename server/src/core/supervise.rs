//! Supervision of running processes: what runs is adopted when paas starts, and routing
//! follows crashes and restarts that Docker reports.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use paas_builder::BuildLog;
use paas_runner::{Process, Runner};

use super::Paas;
use super::error::Result;
use super::paas::Served;
use super::rollout::served_backends;

/// How often routing looks at Swarm's tasks: well within the seconds Swarm waits between
/// taking a replaced task out of its desired state and stopping it.
const TASK_POLL: Duration = Duration::from_millis(250);

impl Paas {
    /// On start-up: adopt the containers of each app's current release (healthy apps are not
    /// restarted), mark rollouts cut short by the stop as failed, remove strays, and rebuild
    /// the routing table.
    pub async fn adopt_running(&self) -> Result<()> {
        let interrupted = self.store().fail_pending_releases().await?;
        if interrupted > 0 {
            tracing::warn!(
                releases = interrupted,
                "marked rollouts interrupted by the last stop as failed"
            );
        }
        let Ok(runner) = self.runner() else { return Ok(()) };
        if runner.orchestrates_rollouts() {
            return self.adopt_swarm(runner).await;
        }
        let mut keep = HashSet::new();
        for app in self.store().apps().await? {
            let Some(current) = self.store().current_release(&app).await? else { continue };
            let processes = runner.list(Some(&app.name)).await?;
            let mine: Vec<&Process> =
                processes.iter().filter(|p| p.release == current.version && !p.one_off).collect();
            keep.extend(mine.iter().map(|p| p.container_id.clone()));
            let served = served_backends(mine.iter().copied());
            tracing::info!(app = %app.name, release = current.version, processes = mine.len(), "adopted");
            self.set_backends(&app.name, None, served);
        }
        let removed = runner.remove_strays(None, &keep).await?;
        if !removed.is_empty() {
            tracing::info!(containers = ?removed, "removed containers of no current release");
        }
        self.sync_routes().await
    }
}

impl Paas {
    /// `adopt_running` under Swarm: services of destroyed apps and one-off containers left
    /// over are removed; each app's services are brought back to its current release in the
    /// background (a no-op when they run it; an update cut short by the stop is rolled back),
    /// while the router already follows the tasks that run.
    async fn adopt_swarm(&self, runner: &Runner) -> Result<()> {
        let apps = self.store().apps().await?;
        let names: Vec<String> = apps.iter().map(|a| a.name.clone()).collect();
        let removed = runner.remove_stray_formations(&names).await?;
        if !removed.is_empty() {
            tracing::info!(services = ?removed, "removed services of apps that no longer exist");
        }
        let removed = runner.remove_strays(None, &HashSet::new()).await?;
        if !removed.is_empty() {
            tracing::info!(containers = ?removed, "removed one-off containers left over");
        }
        for app in apps {
            let Some(current) = self.store().current_release(&app).await? else { continue };
            let Some(image) = current.image.clone() else { continue };
            let (paas, runner) = (self.clone(), runner.clone());
            tokio::spawn(async move {
                let log = BuildLog::new();
                let Ok(_lock) = paas.lock_deploys(&app, &log).await else { return };
                match paas.hand_over(&runner, &app, &current, &image, |_| false, &log).await {
                    Ok(()) => tracing::info!(app = %app.name, release = current.version, "adopted"),
                    Err(err) => {
                        tracing::warn!(app = %app.name, error = %err, "services not back to the current release")
                    }
                }
            });
        }
        let running = runner.tasks(None).await?;
        for app in &names {
            let mine = running.iter().filter(|p| &p.app == app);
            self.set_backends(app, None, served_backends(mine));
        }
        self.sync_routes().await
    }

    /// Under Swarm, routing follows the tasks: a task that runs (healthy, when it has a
    /// health check) gets traffic, one Swarm wants stopped (replaced by an update, scaled
    /// away, or on a lost node) leaves the router at once, before Swarm stops it.
    pub fn follow_tasks(&self) -> Option<tokio::task::JoinHandle<()>> {
        let runner = self.runner.clone().filter(Runner::orchestrates_rollouts)?;
        let paas = self.clone();
        Some(tokio::spawn(async move {
            let mut routed: HashMap<String, BTreeMap<String, Served>> = HashMap::new();
            loop {
                tokio::time::sleep(TASK_POLL).await;
                let processes = match runner.tasks(None).await {
                    Ok(processes) => processes,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot list Swarm's tasks");
                        continue;
                    }
                };
                let mut now: HashMap<String, BTreeMap<String, Served>> = HashMap::new();
                for process in &processes {
                    now.entry(process.app.clone()).or_default().extend(served_backends([process]));
                }
                if now == routed {
                    continue;
                }
                let apps: HashSet<&String> = routed.keys().chain(now.keys()).collect();
                for app in apps {
                    paas.set_backends(app, None, now.get(app).cloned().unwrap_or_default());
                }
                routed = now;
                if let Err(err) = paas.sync_routes().await {
                    tracing::warn!(error = %err, "routing table not rebuilt");
                }
            }
        }))
    }

    /// Follows Docker's events so routing follows crashes: a `web` process that dies leaves
    /// the router at once; when Docker has restarted it, it is health-checked and put back.
    /// Exits, out-of-memory kills and restarts of every process go to the app's feed.
    pub fn watch_crashes(&self) -> Option<tokio::task::JoinHandle<()>> {
        let runner = self.runner.clone()?;
        let paas = self.clone();
        Some(tokio::spawn(async move {
            use futures_util::StreamExt;
            let events = runner.events();
            futures_util::pin_mut!(events);
            while let Some(event) = events.next().await {
                if event.one_off {
                    continue;
                }
                paas.record_process_event(&event);
                let paas = paas.clone();
                let runner = runner.clone();
                tokio::spawn(async move { paas.on_web_event(&runner, event).await });
            }
        }))
    }

    /// Heroku's `heroku[web.1]: Process exited with status 3`, as `paas[web.1]: …`.
    fn record_process_event(&self, event: &paas_runner::ProcessEvent) {
        use paas_runner::ProcessEventKind;
        let text = match event.kind {
            ProcessEventKind::Died { exit_code: Some(code) } => {
                format!("Process of v{} exited with code {code}", event.release)
            }
            ProcessEventKind::Died { exit_code: None } => {
                format!("Process of v{} exited", event.release)
            }
            ProcessEventKind::OutOfMemory => {
                format!("Process of v{} was killed for going over its memory limit", event.release)
            }
            ProcessEventKind::Started => format!("Process of v{} started", event.release),
            _ => return,
        };
        let name = format!("{}.{}", event.process_type, event.index);
        self.events().emit(&event.app, &name, text);
    }

    async fn on_web_event(&self, runner: &Runner, event: paas_runner::ProcessEvent) {
        use paas_runner::ProcessEventKind;
        let name = format!("{}.{}", event.process_type, event.index);
        match event.kind {
            ProcessEventKind::Died { exit_code }
                if self.update_backend(&event.app, &event.container_id, None) =>
            {
                tracing::warn!(app = %event.app, process = %name, ?exit_code, "web process crashed; out of the router until it is healthy again");
                let text = "Out of the router until it is healthy again";
                self.events().emit(&event.app, &name, text);
                let _ = self.sync_routes().await;
            }
            ProcessEventKind::Started => {
                // Only restarts after a crash: new processes of a rollout are routed by it.
                let Ok(Some(process)) = runner.process(&event.container_id).await else { return };
                if process.restart_count == 0 {
                    return;
                }
                let Ok(app) = self.store().app(&event.app).await else { return };
                let Ok(Some(current)) = self.store().current_release(&app).await else { return };
                if current.version != process.release {
                    return;
                }
                // Only processes that serve HTTP (they have an address) go back to the router.
                let Some(addr) = process.addr else { return };
                let health = super::rollout::Health::new(self.health_check(&app, &current));
                let served = Some((process.process_type.clone(), addr));
                if runner.wait_healthy(&process, health.of(&process.process_type)).await.is_ok()
                    && self.update_backend(&app.name, &process.container_id, served)
                {
                    tracing::info!(app = %app.name, process = %name, restarts = process.restart_count, "restarted web process is healthy; back in the router");
                    self.events().emit(
                        &app.name,
                        &name,
                        format!(
                            "Healthy again (restart {}); back in the router",
                            process.restart_count
                        ),
                    );
                    let _ = self.sync_routes().await;
                }
            }
            _ => {}
        }
    }
}
