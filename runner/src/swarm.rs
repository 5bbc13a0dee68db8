//! The Swarm scheduler: each process type of an app is a Swarm service with its scale as
//! replicas, and Swarm does the rolling update (start-first, gated on the health check,
//! rolled back on failure) that the single-machine scheduler does itself.
//!
//! Tasks publish their `PORT` in host mode on a node port Swarm picks: the router (a host
//! process on the manager) reaches each task at its node's address and that port. Swarm's
//! routing mesh and service VIPs are not used: they need IPVS in the kernel, and the router
//! must see every task anyway to drain it on its own. `docs/scaling.md` explains the setup.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, HealthConfig, Limit, LocalNodeState, Mount, MountType, NetworkAttachmentConfig,
    Service, ServiceSpec as SwarmServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum,
    ServiceUpdateStatusStateEnum, Task, TaskSpec, TaskSpecContainerSpec, TaskSpecLogDriver,
    TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListNodesOptions, ListServicesOptionsBuilder, ListTasksOptions, ListTasksOptionsBuilder,
    LogsOptionsBuilder, UpdateServiceOptions,
};
use futures_util::{Stream, StreamExt};

use crate::docker::{DROPPED_CAPABILITIES, LOG_DRIVER, log_options};
use crate::error::is_not_found;
use crate::process::parse_time;
use crate::spec::{
    LABEL_APP, LABEL_MANAGED, LABEL_NETWORK, LABEL_PORT, LABEL_PROCESS, LABEL_RELEASE,
};
use crate::{
    HealthCheck, LogLine, Process, ProcessEvent, ProcessEventKind, ProcessSpec, ProcessState,
    RunError, Runner,
};

/// On a service and its tasks' containers: a hash of everything a task runs with, so that
/// re-applying an unchanged formation (paas restarting) replaces nothing, and so that the
/// tasks of the wanted version can be told from the old ones during an update.
const LABEL_SPEC: &str = "io.paas.spec";

/// How often the state of an update is read while waiting for it.
const POLL: Duration = Duration::from_millis(250);
/// How long Swarm watches a task after it was updated for it to fail: a worker that crashes
/// within this rolls the update back.
const MONITOR: Duration = Duration::from_secs(3);
/// How often tasks are read for [`Runner::task_events`].
const EVENT_POLL: Duration = Duration::from_secs(1);
/// Swarm's pause before it restarts a task that exited.
const RESTART_DELAY: Duration = Duration::from_secs(2);

/// Which engine schedules the formation's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheduler {
    /// Containers on this Docker engine, rolled out by paas (one machine).
    #[default]
    Docker,
    /// Services on the Docker Swarm this engine manages, rolled out by Swarm.
    Swarm,
}

impl std::str::FromStr for Scheduler {
    type Err = String;
    fn from_str(text: &str) -> Result<Scheduler, String> {
        match text {
            "docker" => Ok(Scheduler::Docker),
            "swarm" => Ok(Scheduler::Swarm),
            other => Err(format!("unknown scheduler {other:?}: use `docker` or `swarm`")),
        }
    }
}

/// One process type as the formation wants it.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// What each replica runs (its `index` is ignored: Swarm numbers the tasks).
    pub spec: ProcessSpec,
    pub replicas: u32,
    /// The check a new task must pass before it replaces an old one; `None` for types that
    /// do not listen (they must keep running for a few seconds instead).
    pub health: Option<HealthCheck>,
    /// Replace the running tasks even if nothing changed (`paas ps:restart`).
    pub restart: bool,
}

impl Runner {
    /// Fails unless this engine is an active Swarm manager.
    pub(crate) async fn check_swarm_manager(docker: &bollard::Docker) -> Result<(), RunError> {
        let swarm = docker.info().await?.swarm.unwrap_or_default();
        let active = swarm.local_node_state == Some(LocalNodeState::ACTIVE);
        if active && swarm.control_available == Some(true) {
            return Ok(());
        }
        let why = if active { "it is a worker, not a manager" } else { "it is not in a swarm" };
        Err(RunError::Swarm(format!(
            "the Swarm scheduler needs a Docker engine that manages a swarm, and {why}: run \
             `docker swarm init` here (or start paas on a manager), or use --scheduler docker"
        )))
    }

    /// True when the engine rolls releases out itself (Swarm): the server hands it the
    /// whole formation through [`Runner::apply_formation`] instead of starting, checking
    /// and stopping processes one by one.
    pub fn orchestrates_rollouts(&self) -> bool {
        self.config.scheduler == Scheduler::Swarm
    }

    /// Makes the app's services match `wanted` and waits until they do: creates the missing,
    /// updates the changed (a rolling update, new tasks first, each healthy before an old one
    /// goes), removes those of types no longer wanted. Returns the app's tasks then running.
    ///
    /// A failed update is rolled back by Swarm to the spec before it, which keeps serving;
    /// the error says why, with the failed task's last lines. A service this call created
    /// whose first tasks fail is removed again.
    pub async fn apply_formation(
        &self,
        app: &str,
        wanted: &[Wanted],
    ) -> Result<Vec<Process>, RunError> {
        for want in wanted {
            want.spec.check()?;
            if let Some(health) = &want.health {
                health.check()?;
            }
        }
        let existing = self.services(Some(app)).await?;
        let wanted: Vec<&Wanted> = wanted.iter().filter(|w| w.replicas > 0).collect();
        let keep: Vec<String> =
            wanted.iter().map(|w| self.service_name(app, &w.spec.process_type)).collect();
        let applies = wanted.iter().zip(&keep).map(|(want, name)| {
            let current = existing
                .iter()
                .find(|s| s.spec.as_ref().and_then(|s| s.name.as_ref()) == Some(name));
            self.apply_service(name, current, want)
        });
        let results = futures_util::future::join_all(applies).await;
        if results.iter().any(Result::is_err) {
            // One type failed: the others go back too, so that the app runs one release,
            // the one before, as when a rollout fails on one machine.
            for (name, result) in keep.iter().zip(&results) {
                let undone = match result {
                    Ok(Applied::Created) => self.delete_service(name).await,
                    Ok(Applied::Updated) => self.roll_back(name).await,
                    _ => Ok(()),
                };
                if let Err(error) = undone {
                    tracing::warn!(%app, service = %name, %error, "could not undo the update");
                }
            }
            for result in results {
                result?;
            }
        }
        for service in &existing {
            let Some(name) = service.spec.as_ref().and_then(|s| s.name.clone()) else { continue };
            if !keep.contains(&name) {
                self.delete_service(&name).await?;
                tracing::info!(%app, service = %name, "service of a type no longer run removed");
            }
        }
        self.tasks(Some(app)).await
    }

    /// Removes every service of `app` (it is being destroyed); its tasks stop with them.
    pub async fn remove_formation(&self, app: &str) -> Result<(), RunError> {
        if !self.orchestrates_rollouts() {
            return Ok(());
        }
        for service in self.services(Some(app)).await? {
            if let Some(name) = service.spec.and_then(|s| s.name) {
                self.delete_service(&name).await?;
            }
        }
        Ok(())
    }

    /// Removes the services of apps not in `apps`: leftovers of an app destroyed while paas
    /// was down. Returns their names.
    pub async fn remove_stray_formations(&self, apps: &[String]) -> Result<Vec<String>, RunError> {
        if !self.orchestrates_rollouts() {
            return Ok(Vec::new());
        }
        let mut removed = Vec::new();
        for service in self.services(None).await? {
            let Some(spec) = service.spec else { continue };
            let app = spec.labels.as_ref().and_then(|l| l.get(LABEL_APP));
            if app.is_some_and(|app| !apps.contains(app))
                && let Some(name) = spec.name
            {
                self.delete_service(&name).await?;
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// `paas-shop-web`; names longer than Swarm's 63 characters are cut and end in a hash of
    /// the whole, so they stay unique.
    fn service_name(&self, app: &str, process_type: &str) -> String {
        let name = format!("{}-{app}-{process_type}", self.config.network);
        if name.len() <= 63 {
            return name;
        }
        let hash = format!("{:016x}", fnv1a(name.as_bytes()));
        format!("{}-{hash}", name[..63 - 17].trim_end_matches('-'))
    }

    /// The services of this runner's network (of one app, if given).
    async fn services(&self, app: Option<&str>) -> Result<Vec<Service>, RunError> {
        let filters = self.label_filters(app);
        let options = ListServicesOptionsBuilder::default().filters(&filters).build();
        Ok(self.docker.list_services(Some(options)).await?)
    }

    async fn delete_service(&self, name: &str) -> Result<(), RunError> {
        match self.docker.delete_service(name).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Creates or updates one service and waits until it runs as wanted.
    async fn apply_service(
        &self,
        name: &str,
        current: Option<&Service>,
        want: &Wanted,
    ) -> Result<Applied, RunError> {
        for network in &want.spec.networks {
            self.ensure_app_network(network).await?;
        }
        let mut spec = self.service_spec(name, want);
        if !want.spec.volumes.is_empty() {
            // A named volume lives on one node: the tasks that mount it stay on this one,
            // beside the add-ons, rather than start empty elsewhere.
            let node = self.docker.info().await?.swarm.and_then(|s| s.node_id).unwrap_or_default();
            if let Some(template) = spec.task_template.as_mut() {
                template.placement = Some(TaskSpecPlacement {
                    constraints: Some(vec![format!("node.id=={node}")]),
                    ..Default::default()
                });
            }
        }
        let hash = spec_hash(&spec);
        label(&mut spec, &hash);
        let process = want.spec.process_type.clone();
        let Some(current) = current else {
            self.docker.create_service(spec, None).await?;
            tracing::info!(app = %want.spec.app, service = %name, replicas = want.replicas, "service created");
            return match self.converge(name, &hash, want, None).await {
                Ok(()) => Ok(Applied::Created),
                Err(error) => {
                    // Nothing served from it before: leave nothing behind.
                    let _ = self.delete_service(name).await;
                    Err(error)
                }
            };
        };
        let old = current.spec.clone().unwrap_or_default();
        let old_hash = old.labels.as_ref().and_then(|l| l.get(LABEL_SPEC)).cloned();
        let old_replicas =
            old.mode.as_ref().and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas);
        let old_force = old.task_template.as_ref().and_then(|t| t.force_update).unwrap_or(0);
        if old_hash.as_deref() == Some(hash.as_str())
            && old_replicas == Some(i64::from(want.replicas))
            && !want.restart
        {
            // Unchanged, but an update paas was waiting on when it stopped may still run.
            return self.converge(name, &hash, want, None).await.map(|()| Applied::Unchanged);
        }
        if let Some(template) = spec.task_template.as_mut() {
            template.force_update = Some(old_force + u64::from(want.restart));
        }
        let version = current.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        let started = current.update_status.as_ref().and_then(|u| u.started_at.clone());
        let options = UpdateServiceOptions {
            version: i32::try_from(version).unwrap_or(i32::MAX),
            ..Default::default()
        };
        self.docker.update_service(name, spec, options, None).await?;
        tracing::info!(app = %want.spec.app, service = %name, %process, replicas = want.replicas, "service updated");
        self.converge(name, &hash, want, Some(started)).await.map(|()| Applied::Updated)
    }

    /// Waits until `want.replicas` tasks of spec `hash` run and no other task of the service
    /// does. Fails when Swarm rolls the update back or pauses it, when a task of the new spec
    /// fails (a new service, or new replicas), or when it takes longer than the health check
    /// allows plus a margin.
    async fn converge(
        &self,
        name: &str,
        hash: &str,
        want: &Wanted,
        // For an update: when the previous update started, to tell it from this one.
        updated: Option<Option<String>>,
    ) -> Result<(), RunError> {
        let process = want.spec.process_type.clone();
        let budget = want.health.as_ref().map_or(Duration::ZERO, |h| h.timeout)
            + MONITOR
            + Duration::from_secs(60) * want.replicas.max(1);
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            let service = self.docker.inspect_service(name, None).await?;
            let status = service.update_status.unwrap_or_default();
            let this_update = updated.as_ref().is_some_and(|before| *before != status.started_at);
            let state = status.state.filter(|_| this_update);
            if let Some(
                ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
                | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
                | ServiceUpdateStatusStateEnum::PAUSED,
            ) = state
            {
                let failed = self.failed_task(name, hash).await;
                let reason = status.message.unwrap_or_default();
                return Err(self.task_error(&process, failed, &reason, true).await);
            }
            let tasks = self.service_tasks(name).await?;
            let wanted_running = |t: &&Task| t.desired_state == Some(TaskState::RUNNING);
            let ours = |t: &&Task| task_label(t, LABEL_SPEC) == Some(hash);
            let running = tasks
                .iter()
                .filter(wanted_running)
                .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
                .collect::<Vec<_>>();
            let updating = state == Some(ServiceUpdateStatusStateEnum::UPDATING);
            // A restart keeps the spec, so the old tasks look like the wanted ones until
            // Swarm has started replacing them: only its own finished update ends it. With
            // no replicas Swarm replaces nothing and reports no update.
            let restarted = !want.restart
                || updated.is_none()
                || want.replicas == 0
                || state == Some(ServiceUpdateStatusStateEnum::COMPLETED);
            let starting = tasks.iter().filter(wanted_running).count() > running.len();
            if !updating
                && restarted
                && !starting
                && running.len() == want.replicas as usize
                && running.iter().all(ours)
            {
                return Ok(());
            }
            if !updating && let Some(failed) = tasks.iter().filter(ours).find(|t| task_failed(t)) {
                return Err(self.task_error(&process, Some(failed.clone()), "", false).await);
            }
            if tokio::time::Instant::now() > deadline {
                let reason = format!(
                    "{} of {} running after {}s",
                    running.iter().filter(|t| ours(t)).count(),
                    want.replicas,
                    budget.as_secs()
                );
                if updated.is_some() {
                    let _ = self.roll_back(name).await;
                }
                return Err(RunError::Unhealthy { process, reason, log_tail: String::new() });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Asks Swarm to go back to the service's previous spec.
    async fn roll_back(&self, name: &str) -> Result<(), RunError> {
        let service = self.docker.inspect_service(name, None).await?;
        let Some(spec) = service.spec else { return Ok(()) };
        // The spec sent is ignored: Swarm goes back to the one it keeps.
        let options = UpdateServiceOptions {
            version: i32::try_from(service.version.and_then(|v| v.index).unwrap_or(0))
                .unwrap_or(i32::MAX),
            rollback: Some("previous".to_string()),
            ..Default::default()
        };
        self.docker.update_service(name, spec, options, None).await?;
        Ok(())
    }

    /// The newest failed task of spec `hash`, if any.
    async fn failed_task(&self, name: &str, hash: &str) -> Option<Task> {
        let tasks = self.service_tasks(name).await.ok()?;
        tasks
            .into_iter()
            .filter(|t| task_label(t, LABEL_SPEC) == Some(hash) && task_failed(t))
            .max_by(|a, b| a.updated_at.cmp(&b.updated_at))
    }

    /// Why a task failed, with its last log lines.
    async fn task_error(
        &self,
        process: &str,
        task: Option<Task>,
        reason: &str,
        rolled_back: bool,
    ) -> RunError {
        let status = task.as_ref().and_then(|t| t.status.clone()).unwrap_or_default();
        let exit_code = status.container_status.as_ref().and_then(|c| c.exit_code);
        let mut why = status.err.or(status.message).unwrap_or_default();
        if why.is_empty() {
            why = reason.to_string();
        }
        if rolled_back {
            why = format!("{why}; Swarm rolled the service back to the release before");
        }
        let log_tail = match task.and_then(|t| t.id) {
            Some(id) => self.task_log_tail(&id).await,
            None => String::new(),
        };
        if why.contains("unhealthy") || rolled_back {
            return RunError::Unhealthy { process: process.to_string(), reason: why, log_tail };
        }
        RunError::Exited { process: process.to_string(), exit_code, oom_killed: false, log_tail }
    }

    async fn task_log_tail(&self, task: &str) -> String {
        let lines: Vec<String> = self
            .task_logs(task, false, Some(crate::docker::TAIL))
            .filter_map(|l| std::future::ready(l.ok().map(|l| l.line)))
            .collect()
            .await;
        lines.join("\n")
    }

    /// A task's lines, as [`Runner::logs`] gives a container's.
    pub(crate) fn task_logs(
        &self,
        task: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> impl Stream<Item = Result<LogLine, RunError>> + Send + 'static + use<> {
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .tail(&tail)
            .build();
        self.docker.task_logs(task, Some(options)).filter_map(|item| {
            std::future::ready(match item {
                Ok(output) => crate::docker::log_line(output, true).map(Ok),
                Err(error) => Some(Err(error.into())),
            })
        })
    }

    /// Tasks of this runner's network that start running or fail from now on, found by
    /// reading Swarm's tasks every second (Swarm has no event stream for tasks on API 1.41).
    pub(crate) fn task_events(&self) -> impl Stream<Item = ProcessEvent> + Send + 'static {
        struct Watch {
            runner: Runner,
            /// Each known task's state, as last read; `None` before the first read.
            seen: Option<HashMap<String, TaskState>>,
            ready: VecDeque<ProcessEvent>,
        }
        let watch = Watch { runner: self.clone(), seen: None, ready: VecDeque::new() };
        futures_util::stream::unfold(watch, |mut watch| async move {
            loop {
                if let Some(event) = watch.ready.pop_front() {
                    return Some((event, watch));
                }
                if watch.seen.is_some() {
                    tokio::time::sleep(EVENT_POLL).await;
                }
                let Ok(tasks) = watch.runner.docker.list_tasks(None::<ListTasksOptions>).await
                else {
                    continue;
                };
                let network = watch.runner.config.network.as_str();
                let first = watch.seen.is_none();
                let seen = watch.seen.get_or_insert_default();
                let mut now = HashMap::new();
                for task in tasks.iter().filter(|t| task_label(t, LABEL_NETWORK) == Some(network)) {
                    let (Some(id), Some(state)) =
                        (task.id.clone(), task.status.as_ref().and_then(|s| s.state))
                    else {
                        continue;
                    };
                    let before = seen.get(&id).copied();
                    let kind = match state {
                        TaskState::RUNNING if before != Some(TaskState::RUNNING) => {
                            Some(ProcessEventKind::Started)
                        }
                        TaskState::FAILED if before != Some(TaskState::FAILED) => {
                            let status = task.status.as_ref();
                            let exit_code = status
                                .and_then(|s| s.container_status.as_ref())
                                .and_then(|c| c.exit_code);
                            Some(ProcessEventKind::Died { exit_code })
                        }
                        _ => None,
                    };
                    if let (Some(kind), false) = (kind, first)
                        && let Some(event) = task_event(task, kind)
                    {
                        watch.ready.push_back(event);
                    }
                    now.insert(id, state);
                }
                *seen = now;
            }
        })
    }

    async fn service_tasks(&self, name: &str) -> Result<Vec<Task>, RunError> {
        let filters = HashMap::from([("service", vec![name])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        Ok(self.docker.list_tasks(Some(options)).await?)
    }

    /// The tasks Swarm wants running for this runner's network (of one app, if given), as
    /// processes: what the router follows (`list` adds the one-off containers for `paas
    /// ps`). Empty with the container scheduler.
    pub async fn tasks(&self, app: Option<&str>) -> Result<Vec<Process>, RunError> {
        if !self.orchestrates_rollouts() {
            return Ok(Vec::new());
        }
        let filters = HashMap::from([("desired-state", vec!["running"])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        let tasks = self.docker.list_tasks(Some(options)).await?;
        let tasks: Vec<Task> = tasks
            .into_iter()
            .filter(|t| task_label(t, LABEL_NETWORK) == Some(self.config.network.as_str()))
            .filter(|t| app.is_none_or(|app| task_label(t, LABEL_APP) == Some(app)))
            .collect();
        let nodes = if tasks.is_empty() { HashMap::new() } else { self.nodes().await? };
        Ok(tasks.iter().filter_map(|t| task_process(t, &nodes)).collect())
    }

    /// Each node's hostname and address, by id.
    async fn nodes(&self) -> Result<HashMap<String, (String, Option<IpAddr>)>, RunError> {
        let nodes = self.docker.list_nodes(None::<ListNodesOptions>).await?;
        Ok(nodes
            .into_iter()
            .filter_map(|node| {
                let hostname = node.description.and_then(|d| d.hostname).unwrap_or_default();
                // A manager that listens on every interface reports 0.0.0.0 as its status
                // address; its manager address names the one it advertises.
                let addr = node
                    .status
                    .and_then(|s| s.addr)
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .filter(|a| !a.is_unspecified())
                    .or_else(|| {
                        let manager = node.manager_status?.addr?;
                        manager.rsplit_once(':')?.0.parse().ok()
                    });
                Some((node.id?, (hostname, addr)))
            })
            .collect())
    }

    /// The service for one process type.
    fn service_spec(&self, name: &str, want: &Wanted) -> SwarmServiceSpec {
        let spec = &want.spec;
        let memory_mb = spec.memory_mb.unwrap_or(self.config.default_memory_mb);
        let memory = i64::try_from(memory_mb.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let mut labels = spec.labels(&self.config.network, false);
        labels.remove(crate::spec::LABEL_INDEX);
        // The containers carry who they are, but not `io.paas.managed`: they are Swarm's to
        // restart and remove, never the container scheduler's.
        let mut container_labels = labels.clone();
        container_labels.remove(LABEL_MANAGED);
        // Swarm numbers the replicas: `web.{{.Task.Slot}}` becomes web.1, web.2, …
        let env = spec
            .env()
            .into_iter()
            .map(|pair| match pair.split_once('=') {
                Some(("PAAS_PROCESS", _)) => {
                    format!("PAAS_PROCESS={}.{{{{.Task.Slot}}}}", spec.process_type)
                }
                _ => pair,
            })
            .collect();
        let health = match (&want.health, spec.port) {
            (Some(check), Some(port)) => HealthConfig {
                test: Some(vec!["CMD-SHELL".to_string(), health_command(check, port)]),
                interval: Some(nanos(Duration::from_secs(1))),
                timeout: Some(nanos(check.attempt_timeout)),
                retries: Some(3),
                start_period: Some(nanos(check.timeout)),
                ..Default::default()
            },
            // The image's own HEALTHCHECK would gate the update on something paas did not ask.
            _ => HealthConfig { test: Some(vec!["NONE".to_string()]), ..Default::default() },
        };
        let mounts = spec
            .volumes
            .iter()
            .map(|v| Mount {
                target: Some(v.path.clone()),
                source: Some(self.app_volume(&spec.app, &v.name)),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            })
            .collect::<Vec<_>>();
        SwarmServiceSpec {
            name: Some(name.to_string()),
            labels: Some(labels),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(spec.image.clone()),
                    labels: Some(container_labels),
                    args: spec.cmd(),
                    env: Some(env),
                    mounts: (!mounts.is_empty()).then_some(mounts),
                    stop_grace_period: Some(nanos(self.config.stop_grace)),
                    health_check: Some(health),
                    init: Some(true),
                    capability_drop: Some(DROPPED_CAPABILITIES.map(String::from).to_vec()),
                    ..Default::default()
                }),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        memory_bytes: Some(memory),
                        pids: Some(self.config.pids_limit),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    delay: Some(nanos(RESTART_DELAY)),
                    ..Default::default()
                }),
                networks: Some(
                    spec.networks
                        .iter()
                        .map(|n| NetworkAttachmentConfig {
                            target: Some(n.clone()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                log_driver: Some(TaskSpecLogDriver {
                    name: Some(LOG_DRIVER.to_string()),
                    options: Some(log_options()),
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(i64::from(want.replicas)),
                }),
                ..Default::default()
            }),
            update_config: Some(ServiceSpecUpdateConfig {
                parallelism: Some(1),
                order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
                failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
                monitor: Some(nanos(MONITOR)),
                max_failure_ratio: Some(0.0),
                ..Default::default()
            }),
            rollback_config: Some(ServiceSpecRollbackConfig {
                parallelism: Some(1),
                order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
                failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
                monitor: Some(nanos(MONITOR)),
                ..Default::default()
            }),
            // No fixed node port: each task gets its own, so old and new tasks of a
            // start-first update can run side by side on one node.
            endpoint_spec: spec.port.map(|port| EndpointSpec {
                ports: Some(vec![EndpointPortConfig {
                    protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                    target_port: Some(i64::from(port)),
                    publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// What [`Runner::apply_formation`] did to one service.
enum Applied {
    Created,
    Updated,
    Unchanged,
}

/// Puts the spec's hash on the service and on its tasks' containers.
fn label(spec: &mut SwarmServiceSpec, hash: &str) {
    spec.labels.get_or_insert_default().insert(LABEL_SPEC.to_string(), hash.to_string());
    if let Some(container) = spec.task_template.as_mut().and_then(|t| t.container_spec.as_mut()) {
        container.labels.get_or_insert_default().insert(LABEL_SPEC.to_string(), hash.to_string());
    }
}

/// A hash of what the tasks run (not of the replica count, which scales without replacing
/// tasks). Stable across paas versions as long as the spec's JSON is: the spec's maps are
/// `HashMap`s, so it is hashed as a `serde_json::Value`, whose objects keep keys sorted.
fn spec_hash(spec: &SwarmServiceSpec) -> String {
    let value = serde_json::to_value(&spec.task_template).unwrap_or_default();
    let json = value.to_string();
    format!("{:016x}", fnv1a(json.as_bytes()))
}

/// 64-bit FNV-1a: short, stable, no dependency; collisions only cost a needless update.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn task_label<'a>(task: &'a Task, key: &str) -> Option<&'a str> {
    let labels = task.spec.as_ref()?.container_spec.as_ref()?.labels.as_ref()?;
    labels.get(key).map(String::as_str)
}

fn task_failed(task: &Task) -> bool {
    matches!(
        task.status.as_ref().and_then(|s| s.state),
        Some(TaskState::FAILED | TaskState::REJECTED)
    )
}

/// Something that happened to a task, as the container scheduler reports it of containers.
fn task_event(task: &Task, kind: ProcessEventKind) -> Option<ProcessEvent> {
    let who = TaskIdentity::of(task)?;
    let at = task.status.as_ref().and_then(|s| s.timestamp.as_deref()).and_then(parse_time);
    let at = at.unwrap_or_else(time::OffsetDateTime::now_utc);
    Some(ProcessEvent {
        container_id: who.id,
        name: who.name,
        app: who.app,
        release: who.release,
        process_type: who.process_type,
        index: who.index,
        one_off: false,
        kind,
        time_nano: i64::try_from(at.unix_timestamp_nanos()).unwrap_or(i64::MAX),
    })
}

/// Who a task is, from its containers' labels and its slot; `None` when it is not paas's.
struct TaskIdentity {
    id: String,
    /// `paas-shop-web.2`.
    name: String,
    app: String,
    release: i64,
    process_type: String,
    index: u32,
}

impl TaskIdentity {
    fn of(task: &Task) -> Option<TaskIdentity> {
        let app = task_label(task, LABEL_APP)?.to_string();
        let process_type = task_label(task, LABEL_PROCESS)?.to_string();
        let index = u32::try_from(task.slot.unwrap_or(0)).unwrap_or(0);
        let network = task_label(task, LABEL_NETWORK)?;
        Some(TaskIdentity {
            id: task.id.clone()?,
            name: format!("{network}-{app}-{process_type}.{index}"),
            release: task_label(task, LABEL_RELEASE)?.parse().ok()?,
            app,
            process_type,
            index,
        })
    }
}

/// A task as a process: its id stands for the container id, its slot for the index, and its
/// address is its node's with the port Swarm published.
fn task_process(task: &Task, nodes: &HashMap<String, (String, Option<IpAddr>)>) -> Option<Process> {
    let status = task.status.clone().unwrap_or_default();
    let state = match status.state? {
        TaskState::RUNNING => ProcessState::Running,
        TaskState::FAILED | TaskState::REJECTED | TaskState::ORPHANED => ProcessState::Exited,
        TaskState::COMPLETE | TaskState::SHUTDOWN | TaskState::REMOVE => ProcessState::Exited,
        _ => ProcessState::Created,
    };
    let port = task_label(task, LABEL_PORT).and_then(|p| p.parse::<u16>().ok());
    let node = task.node_id.as_ref().and_then(|id| nodes.get(id));
    let published = status
        .port_status
        .and_then(|p| p.ports)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.target_port.and_then(|t| u16::try_from(t).ok()) == port)
        .and_then(|p| p.published_port)
        .and_then(|p| u16::try_from(p).ok());
    let addr = match (state, node.and_then(|(_, addr)| *addr), published) {
        (ProcessState::Running, Some(ip), Some(published)) => Some(SocketAddr::new(ip, published)),
        _ => None,
    };
    let who = TaskIdentity::of(task)?;
    let running = state == ProcessState::Running;
    Some(Process {
        container_id: who.id,
        name: who.name,
        app: who.app,
        release: who.release,
        process_type: who.process_type,
        index: who.index,
        one_off: false,
        image: task.spec.as_ref()?.container_spec.as_ref()?.image.clone().unwrap_or_default(),
        state,
        addr,
        port,
        restart_count: 0,
        started_at: running.then(|| status.timestamp.clone()).flatten(),
        exit_code: if running { None } else { status.container_status.and_then(|c| c.exit_code) },
        oom_killed: false,
        node: node.map(|(hostname, _)| hostname.clone()),
    })
}

/// The shell command of a task's health check, as the runner's own probe does it: `GET`
/// the path with the app's host name (any answer below 400 passes), or only a TCP connect.
/// It runs inside the app's image, so it tries what images tend to have: python3 (every
/// image paas builds), then curl, wget, bash.
fn health_command(check: &HealthCheck, port: u16) -> String {
    let seconds = check.attempt_timeout.as_secs().max(1);
    match &check.path {
        Some(path) => {
            let host = check.host.clone().unwrap_or_else(|| format!("127.0.0.1:{port}"));
            let url = format!("http://127.0.0.1:{port}{path}");
            let python = "import http.client as h,sys;c=h.HTTPConnection('127.0.0.1',int(sys.argv[1]),timeout=int(sys.argv[4]));c.request('GET',sys.argv[2],headers={'Host':sys.argv[3]});sys.exit(c.getresponse().status>=400)";
            format!(
                "python3 -c {} {port} {} {} {seconds} 2>/dev/null || curl -fsS -o /dev/null -m {seconds} -H {} {} 2>/dev/null || wget -q -O /dev/null -T {seconds} --header {} {}",
                sh_quote(python),
                sh_quote(path),
                sh_quote(&host),
                sh_quote(&format!("Host: {host}")),
                sh_quote(&url),
                sh_quote(&format!("Host: {host}")),
                sh_quote(&url),
            )
        }
        None => {
            let python = "import socket,sys;socket.create_connection(('127.0.0.1',int(sys.argv[1])),int(sys.argv[2]))";
            format!(
                "python3 -c {} {port} {seconds} 2>/dev/null || bash -c {} 2>/dev/null",
                sh_quote(python),
                sh_quote(&format!("exec 3<>/dev/tcp/127.0.0.1/{port}")),
            )
        }
    }
}

/// `text` as one word for `sh`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_commands_quote_what_the_app_chose() {
        let check = HealthCheck {
            path: Some("/it's".into()),
            host: Some("shop.example.com".into()),
            ..HealthCheck::default()
        };
        let command = health_command(&check, 5000);
        assert!(command.starts_with("python3 -c 'import http.client"), "{command}");
        assert!(command.contains(r"'/it'\''s'"), "{command}");
        assert!(command.contains("-H 'Host: shop.example.com' 'http://127.0.0.1:5000/it'\\''s'"));
        let tcp = health_command(&HealthCheck::default(), 5000);
        assert!(tcp.ends_with("bash -c 'exec 3<>/dev/tcp/127.0.0.1/5000' 2>/dev/null"), "{tcp}");
    }

    #[test]
    fn scheduler_names() {
        assert_eq!("swarm".parse::<Scheduler>(), Ok(Scheduler::Swarm));
        assert!("k8s".parse::<Scheduler>().unwrap_err().contains("docker"));
    }

    #[test]
    fn spec_hash_ignores_the_replica_count() {
        let runner_config = crate::RunnerConfig::default();
        let want = |replicas| Wanted {
            spec: ProcessSpec::new("shop", 3, "web", 1, "img"),
            replicas,
            health: None,
            restart: false,
        };
        let spec = |w: &Wanted| service_spec_for_test(&runner_config, w);
        assert_eq!(spec_hash(&spec(&want(1))), spec_hash(&spec(&want(3))));
        let mut other = want(1);
        other.spec.env.insert("A".into(), "1".into());
        assert_ne!(spec_hash(&spec(&want(1))), spec_hash(&spec(&other)));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn tasks_keep_their_logs_as_containers_do() {
        let want = Wanted {
            spec: ProcessSpec::new("shop", 3, "web", 1, "img"),
            replicas: 1,
            health: None,
            restart: false,
        };
        let spec = service_spec_for_test(&crate::RunnerConfig::default(), &want);
        let driver = spec.task_template.and_then(|t| t.log_driver).expect("a log driver");
        assert_eq!(driver.name.as_deref(), Some("json-file"), "docker logs must read it");
        assert_eq!(driver.options.expect("rotation")["max-size"], "10m");
    }

    fn service_spec_for_test(config: &crate::RunnerConfig, want: &Wanted) -> SwarmServiceSpec {
        Runner::unconnected(config.clone()).service_spec("paas-shop-web", want)
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let runner = Runner::unconnected(crate::RunnerConfig::default());
        assert_eq!(runner.service_name("shop", "web"), "paas-shop-web");
        let long = runner.service_name(&"a".repeat(60), "worker");
        assert_eq!(long.len(), 63, "{long}");
        assert_ne!(long, runner.service_name(&"a".repeat(60), "worker2"));
    }
}
