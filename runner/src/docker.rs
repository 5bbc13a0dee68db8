//! The runner proper: processes as containers through the Docker Engine API (20.10, API 1.41
//! here: no feature newer than that is used).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bollard::Docker;
use bollard::container::{AttachContainerResults, LogOutput};
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, EventMessage, HostConfig, HostConfigLogConfig,
    Mount, MountType, NetworkCreateRequest, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, EventsOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptions, StopContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use time::OffsetDateTime;
use tokio::sync::mpsc::Sender;

use crate::error::{is_not_found, status};
use crate::health::probe_until_healthy;
use crate::process::{Labels, docker_since, from_inspect, parse_time};
use crate::spec::{LABEL_APP, LABEL_MANAGED, LABEL_NETWORK};
use crate::swarm::Scheduler;
use crate::{
    HealthCheck, LogLine, LogStream, OutputChunk, Process, ProcessEvent, ProcessEventKind,
    ProcessSpec, RunError,
};

/// Lines of a container's log kept in an error's `log_tail`.
pub(crate) const TAIL: usize = 30;

/// Where a container's output goes: Docker's json-file driver (what `docker logs` and paas's
/// log stream read), rotated at three files of 10 MB, so a chatty app cannot fill the disk.
pub(crate) const LOG_DRIVER: &str = "json-file";

/// The rotation options of [`LOG_DRIVER`], for containers and Swarm tasks alike.
pub(crate) fn log_options() -> HashMap<String, String> {
    HashMap::from([
        ("max-size".to_string(), "10m".to_string()),
        ("max-file".to_string(), "3".to_string()),
    ])
}

/// Capabilities taken from Docker's default set. Kept: CHOWN, DAC_OVERRIDE, FOWNER, FSETID,
/// KILL, SETUID, SETGID, NET_BIND_SERVICE, which images that start as root and switch user
/// (gosu, su-exec, nginx's workers) or bind port 80 need. Dropped:
/// - NET_RAW: raw sockets would let one app spoof packets (ARP, DNS) to its neighbours on the
///   shared paas network; the price is no `ping` in containers;
/// - MKNOD: no device nodes;
/// - AUDIT_WRITE: no writes to the host's audit log;
/// - SETFCAP, SETPCAP: no granting file capabilities or changing capability sets;
/// - SYS_CHROOT: no chroot (a step of several escape techniques; apps do not need it).
pub const DROPPED_CAPABILITIES: [&str; 6] =
    ["NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP", "SETPCAP", "SYS_CHROOT"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    /// The Docker bridge network every process joins; the router reaches `web` processes
    /// at their IP on it. Runners on different networks ignore each other's containers.
    pub network: String,
    /// Memory limit of a process whose spec sets none.
    pub default_memory_mb: u64,
    /// Time between SIGTERM and SIGKILL when paas (or anyone) stops a process.
    pub stop_grace: Duration,
    /// Most processes and threads one container may have (a fork bomb stays inside).
    pub pids_limit: i64,
    /// Who runs the formation: this engine's containers, or Swarm's services.
    pub scheduler: Scheduler,
}

impl Default for RunnerConfig {
    fn default() -> RunnerConfig {
        RunnerConfig {
            network: "paas".to_string(),
            default_memory_mb: 512,
            stop_grace: Duration::from_secs(10),
            pids_limit: 4096,
            scheduler: Scheduler::Docker,
        }
    }
}

/// Runs processes on one Docker engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Runner {
    pub(crate) docker: Docker,
    pub(crate) config: RunnerConfig,
    /// The paas network's id: containers join it by id, so a name that Docker 20.10 let two
    /// racing creators register twice is never ambiguous. Shared by clones, and looked up
    /// again when the network went away (a duplicate removed by another runner, an operator's
    /// `docker network rm`).
    network_id: Arc<RwLock<String>>,
}

impl Runner {
    /// Connects to the engine `DOCKER_HOST` names (the local socket by default), agrees on an
    /// API version it speaks, and creates the paas network if it is missing.
    pub async fn connect(config: RunnerConfig) -> Result<Runner, RunError> {
        let docker = Docker::connect_with_defaults()?;
        Runner::with_docker(docker, config).await
    }

    /// Uses an existing client (its API version is negotiated again).
    pub async fn with_docker(docker: Docker, config: RunnerConfig) -> Result<Runner, RunError> {
        let docker = docker.negotiate_version().await?;
        if config.scheduler == Scheduler::Swarm {
            Runner::check_swarm_manager(&docker).await?;
        }
        let network_id = ensure_network(&docker, &config.network, NetworkKind::Paas).await?;
        Ok(Runner { docker, config, network_id: Arc::new(RwLock::new(network_id)) })
    }

    /// A runner that has not talked to Docker: for tests of what it would send.
    #[cfg(test)]
    pub(crate) fn unconnected(config: RunnerConfig) -> Runner {
        let docker = Docker::connect_with_defaults().expect("a Docker client");
        Runner { docker, config, network_id: Arc::new(RwLock::new(String::new())) }
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// The id of the network processes join.
    pub fn network_id(&self) -> String {
        self.network_id.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Creates and starts one container for `spec`, restarted by Docker when it exits.
    /// Returns it running, with its address; it is not health-checked yet.
    pub async fn start(&self, spec: &ProcessSpec) -> Result<Process, RunError> {
        spec.check()?;
        let (id, _) = self.launch(spec, &spec.container_name(), Launch::Formation).await?;
        let process = self.process(&id).await?.ok_or(RunError::NotFound { container: id })?;
        tracing::info!(
            app = %spec.app,
            release = spec.release,
            process = %spec.process_name(),
            container = %process.name,
            "process started"
        );
        Ok(process)
    }

    /// The container `container_id` as a process; `None` when it is gone or not paas's.
    pub async fn process(&self, container_id: &str) -> Result<Option<Process>, RunError> {
        match self.docker.inspect_container(container_id, None).await {
            Ok(inspect) => Ok(from_inspect(inspect, &self.config.network, &self.network_id())),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Waits until `process` passes `check` (see [`HealthCheck`]). Fails at once, with its
    /// exit code and last log lines, if the container exits meanwhile, and with the last
    /// probe's failure and the log lines when the budget runs out. A process without a port
    /// passes if it is still running after `check.wait`. Either way the container is left as
    /// it is: stopping a failed one is the caller's decision.
    pub async fn wait_healthy(
        &self,
        process: &Process,
        check: &HealthCheck,
    ) -> Result<(), RunError> {
        check.check()?;
        let name = process.process_name();
        let started = process.started_at.as_deref().and_then(parse_time);
        let exited = self.next_exit(&process.container_id, started, process.restart_count);
        let healthy = async {
            match (process.addr, process.port) {
                (Some(addr), _) => probe_until_healthy(addr, check).await,
                // Not running when it was looked up: the exit watch has the answer.
                (None, Some(port)) => {
                    tokio::time::sleep(check.timeout).await;
                    Err(format!("it was not running, so nothing listened on port {port}"))
                }
                (None, None) => {
                    tokio::time::sleep(check.wait.min(check.timeout)).await;
                    Ok(())
                }
            }
        };
        let error = tokio::select! {
            biased;
            (exit_code, oom_killed) = exited => RunError::Exited {
                process: name,
                exit_code,
                oom_killed,
                log_tail: self.log_tail(&process.container_id).await,
            },
            healthy = healthy => match healthy {
                Ok(()) => {
                    tracing::info!(app = %process.app, process = %name, "process healthy");
                    return Ok(());
                }
                Err(reason) => RunError::Unhealthy {
                    process: name,
                    reason,
                    log_tail: self.log_tail(&process.container_id).await,
                },
            },
        };
        tracing::info!(app = %process.app, code = error.code(), "health check failed: {error}");
        Err(error)
    }

    /// Resolves when the container has exited since `started` (also before this call), with
    /// its exit code when Docker still knows it; never resolves if it keeps running or Docker
    /// cannot be asked.
    async fn next_exit(
        &self,
        id: &str,
        started: Option<OffsetDateTime>,
        restart_count: i64,
    ) -> (Option<i64>, bool) {
        let filters = HashMap::from([
            ("type", vec!["container"]),
            ("container", vec![id]),
            ("event", vec!["die"]),
        ]);
        let since = docker_since(started.unwrap_or_else(OffsetDateTime::now_utc));
        let options = EventsOptionsBuilder::default().filters(&filters).since(&since).build();
        // Docker replays the buffered events since `since` first: an exit between the start
        // and this call is not missed.
        let mut deaths = self.docker.events(Some(options));
        let state = match self.docker.inspect_container(id, None).await {
            Ok(inspect) => {
                let restarts = inspect.restart_count.unwrap_or(0);
                inspect.state.map(|state| (state, restarts))
            }
            Err(error) if is_not_found(&error) => return (None, false),
            Err(_) => None,
        };
        if let Some((state, restarts)) = &state {
            let oom = state.oom_killed.unwrap_or(false);
            match state.status {
                // Restarting keeps the last exit code until the next start.
                Some(
                    ContainerStateStatusEnum::EXITED
                    | ContainerStateStatusEnum::DEAD
                    | ContainerStateStatusEnum::RESTARTING,
                ) => return (state.exit_code, oom),
                // Already restarted: the code is in the replayed `die` event.
                _ if *restarts > restart_count => {
                    let code =
                        tokio::time::timeout(Duration::from_secs(2), deaths.next()).await.ok();
                    return (code.flatten().and_then(|e| e.ok()).and_then(|e| exit_code(&e)), oom);
                }
                _ => {}
            }
        }
        match deaths.next().await {
            Some(Ok(event)) => {
                let code = exit_code(&event);
                let oom = match self.docker.inspect_container(id, None).await {
                    Ok(inspect) => inspect.state.and_then(|s| s.oom_killed).unwrap_or(false),
                    Err(_) => false,
                };
                (code, oom)
            }
            // The event stream failed: the probes alone decide.
            _ => std::future::pending().await,
        }
    }

    /// Stops a container: SIGTERM (or the image's STOPSIGNAL), `grace` to exit, then SIGKILL;
    /// then removes it with its anonymous volumes. A container that is already stopped or
    /// gone is fine.
    pub async fn stop(&self, container_id: &str, grace: Duration) -> Result<(), RunError> {
        let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let options =
            StopContainerOptionsBuilder::default().t(i32::try_from(seconds).unwrap_or(i32::MAX));
        // Docker answers only once the container is down; bollard's request timeout must not
        // cut a long grace short.
        let docker = self.docker.clone().with_timeout(grace + Duration::from_secs(60));
        match docker.stop_container(container_id, Some(options.build())).await {
            Ok(()) => {}
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        self.remove(container_id).await?;
        tracing::info!(container = container_id, "process stopped and removed");
        Ok(())
    }

    /// Every container of this runner's network (of one app, if given), rebuilt from its
    /// labels and state: what `paas ps` shows, and what a restarted paas adopts. With the
    /// Swarm scheduler, the formation's tasks (which carry their node) and this engine's
    /// one-off containers.
    pub async fn list(&self, app: Option<&str>) -> Result<Vec<Process>, RunError> {
        let ids = self.container_ids(app).await?;
        let found = futures_util::future::join_all(ids.iter().map(|id| self.process(id))).await;
        let mut processes = Vec::with_capacity(found.len());
        for process in found {
            if let Some(process) = process? {
                processes.push(process);
            }
        }
        processes.extend(self.tasks(app).await?);
        processes.sort_by(|a, b| {
            (&a.app, &a.process_type, a.index, a.release, &a.name).cmp(&(
                &b.app,
                &b.process_type,
                b.index,
                b.release,
                &b.name,
            ))
        });
        Ok(processes)
    }

    /// Stops and removes every container of this runner's network (of one app, if given)
    /// whose id is not in `keep`: leftovers of an interrupted deploy or one-off run, found
    /// when paas boots. Returns the names of those removed.
    pub async fn remove_strays(
        &self,
        app: Option<&str>,
        keep: &HashSet<String>,
    ) -> Result<Vec<String>, RunError> {
        let strays: Vec<Process> =
            self.list(app).await?.into_iter().filter(|p| !keep.contains(&p.container_id)).collect();
        let grace = self.config.stop_grace;
        let stopped = futures_util::future::join_all(
            strays.iter().map(|p| self.stop(&p.container_id, grace)),
        )
        .await;
        let mut removed = Vec::new();
        for (process, result) in strays.into_iter().zip(stopped) {
            result?;
            tracing::info!(app = %process.app, container = %process.name, "stray removed");
            removed.push(process.name);
        }
        Ok(removed)
    }

    /// Runs `spec` once in a fresh container (release phase, `paas run`): sends its stdout
    /// and stderr to `output` as they come, byte for byte, returns its exit code once all of
    /// it is sent, and removes the container — also when it runs past `timeout` (killed,
    /// `TimedOut`), on any error, and when this future is dropped.
    ///
    /// Read `output` while this runs: each send waits for room in it, and meanwhile the
    /// process waits on its full pipe. That is the point (a slow reader slows the process
    /// down instead of filling memory), but a caller that reads only afterwards waits forever.
    /// A receiver that is dropped does not stop the process; its output is then discarded.
    pub async fn run_once(
        &self,
        spec: &ProcessSpec,
        output: Sender<OutputChunk>,
        timeout: Duration,
    ) -> Result<i64, RunError> {
        self.run_once_with_input(spec, None, output, timeout).await
    }

    /// [`Runner::run_once`], with `input` (if any) as the process's standard input, which is
    /// closed when `input` ends (`paas run … < dump.sql`). An error in `input` (the upload
    /// broke off) kills the process: half a dump must not run as if it were all of it.
    pub async fn run_once_with_input(
        &self,
        spec: &ProcessSpec,
        input: Option<StdinStream>,
        output: Sender<OutputChunk>,
        timeout: Duration,
    ) -> Result<i64, RunError> {
        spec.check()?;
        // Armed before the container exists: a caller that goes away during the create
        // request must not leave it behind either. Names are unique, so it works by name.
        let name = spec.container_name();
        let guard = RemoveOnDrop { docker: Some(self.docker.clone()), container: name.clone() };
        let run = async {
            let launch = Launch::OneOff { stdin: input.is_some() };
            let (id, attached) = self.launch(spec, &name, launch).await?;
            // `launch` attaches to every one-off before its start, so this is always there.
            let Some(AttachContainerResults { output: streams, input: stdin }) = attached else {
                return Err(RunError::NotFound { container: id });
            };
            // Beside the output (a process may answer before it has read all its input), and
            // stopped with the run however it ends.
            let _feeding = input.map(|input| {
                let feed = feed_stdin(self.docker.clone(), Some(id.clone()), stdin, input);
                AbortOnDrop(tokio::spawn(feed))
            });
            self.output_and_exit(&id, streams, output).await
        };
        let result = tokio::time::timeout(timeout, run).await;
        self.remove_quietly(&name).await;
        guard.disarm();
        let process = spec.process_name();
        let result = result.unwrap_or(Err(RunError::TimedOut { process, limit: timeout }));
        match &result {
            Ok(code) => {
                tracing::info!(app = %spec.app, process = %spec.process_name(), code, "one-off process exited")
            }
            Err(error) => {
                tracing::info!(app = %spec.app, process = %spec.process_name(), "one-off process failed: {error}")
            }
        }
        result
    }

    /// Passes a started one-off container's attached output on until it ends; returns the
    /// exit code. Not its log, which Docker splits into lines, cuts at 16 KiB, rotates and
    /// reads back at its own pace.
    async fn output_and_exit(
        &self,
        id: &str,
        mut streams: BoxStream<'static, Result<LogOutput, DockerError>>,
        output: Sender<OutputChunk>,
    ) -> Result<i64, RunError> {
        while let Some(frame) = streams.next().await {
            let (stream, bytes) = match frame? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    (LogStream::Stdout, message)
                }
                LogOutput::StdErr { message } => (LogStream::Stderr, message),
                LogOutput::StdIn { .. } => continue,
            };
            if !bytes.is_empty() {
                // Awaited: while the reader is behind, this socket is not read, and Docker
                // stops reading the process's pipe. A reader that went away gets nothing more.
                let _ = output.send(OutputChunk { stream, bytes }).await;
            }
        }
        let options = WaitContainerOptionsBuilder::default().condition("not-running").build();
        let code = match self.docker.wait_container(id, Some(options)).next().await {
            Some(Ok(response)) => response.status_code,
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(error)) => return Err(error.into()),
            None => {
                let inspect = self.docker.inspect_container(id, None).await?;
                inspect.state.and_then(|s| s.exit_code).unwrap_or(-1)
            }
        };
        let inspect = self.docker.inspect_container(id, None).await?;
        if inspect.state.and_then(|s| s.oom_killed).unwrap_or(false) {
            let limit = inspect.host_config.and_then(|h| h.memory).unwrap_or(0) >> 20;
            let text = format!("paas: the process was killed: out of memory ({limit} MB)\n");
            let bytes = bytes::Bytes::from(text);
            let _ = output.send(OutputChunk { stream: LogStream::Stderr, bytes }).await;
        }
        Ok(code)
    }

    /// A container's stdout and stderr lines with their timestamps: the last `tail` lines (all
    /// when `None`), then, with `follow`, new lines as they come until the container stops.
    /// Docker ends a follow when the process exits, also when it then restarts the container:
    /// to keep following a crashed process, follow again (`tail: Some(0)`) on its
    /// [`ProcessEventKind::Started`] event.
    pub fn logs(
        &self,
        container_id: &str,
        follow: bool,
        tail: Option<usize>,
    ) -> BoxStream<'static, Result<LogLine, RunError>> {
        if !self.orchestrates_rollouts() {
            return self.log_lines(container_id, follow, tail, true).boxed();
        }
        // A Swarm task's id or a container's: the task's log when Swarm knows it.
        let runner = self.clone();
        let id = container_id.to_string();
        futures_util::stream::once(async move {
            match runner.docker.inspect_task(&id).await {
                Ok(_) => runner.task_logs(&id, follow, tail).boxed(),
                Err(_) => runner.log_lines(&id, follow, tail, true).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    fn log_lines(
        &self,
        container_id: &str,
        follow: bool,
        tail: Option<usize>,
        timestamps: bool,
    ) -> impl Stream<Item = Result<LogLine, RunError>> + Send + 'static + use<> {
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .timestamps(timestamps)
            .tail(&tail)
            .build();
        let id = container_id.to_string();
        self.docker.logs(container_id, Some(options)).filter_map(move |item| {
            let line = match item {
                Ok(output) => log_line(output, timestamps).map(Ok),
                Err(error) if is_not_found(&error) => {
                    Some(Err(RunError::NotFound { container: id.clone() }))
                }
                Err(error) => Some(Err(error.into())),
            };
            std::future::ready(line)
        })
    }

    /// The Docker volume behind an app's volume `name`: `paas-app-APP.NAME` (a `.` cannot
    /// be in an app's name or a volume's, so two apps never share one).
    pub fn app_volume(&self, app: &str, name: &str) -> String {
        format!("{}-app-{app}.{name}", self.config.network)
    }

    /// Creates an app's volume unless it exists, labelled as paas's.
    async fn ensure_app_volume(&self, app: &str, name: &str) -> Result<(), DockerError> {
        let labels = HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_NETWORK.to_string(), self.config.network.clone()),
            (LABEL_APP.to_string(), app.to_string()),
        ]);
        let request = VolumeCreateRequest {
            name: Some(self.app_volume(app, name)),
            labels: Some(labels),
            ..Default::default()
        };
        self.docker.create_volume(request).await.map(drop)
    }

    /// Removes an app's volume and its data; gone already is fine. Fails while a container
    /// still uses it.
    pub async fn remove_app_volume(&self, app: &str, name: &str) -> Result<(), RunError> {
        let volume = self.app_volume(app, name);
        match self.docker.remove_volume(&volume, None::<RemoveVolumeOptions>).await {
            Ok(()) => {
                tracing::info!(%volume, "app volume removed");
                Ok(())
            }
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The last lines of a service's log, for error reports.
    pub async fn service_log_tail(&self, name: &str) -> String {
        self.log_tail(&self.service_container(name)).await
    }

    /// The last lines of a container's log as one text, for error reports.
    async fn log_tail(&self, container_id: &str) -> String {
        let lines: Vec<Result<LogLine, RunError>> =
            self.log_lines(container_id, false, Some(TAIL), false).collect().await;
        lines.into_iter().filter_map(Result::ok).map(|l| l.line).collect::<Vec<_>>().join("\n")
    }

    /// Starts, exits, OOM kills, image health changes and removals of this runner's
    /// containers, from the moment this is called. The stream never ends: when Docker's event
    /// stream breaks it reconnects with backoff and replays what it missed from Docker's
    /// buffer.
    ///
    /// With the Swarm scheduler, the formation's tasks on every node are followed too: a
    /// task that starts running is `Started`, one that fails `Died`.
    pub fn events(&self) -> BoxStream<'static, ProcessEvent> {
        let labels = vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_NETWORK}={}", self.config.network),
        ];
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), labels),
            (
                "event".to_string(),
                ["start", "die", "oom", "destroy", "health_status"].map(String::from).to_vec(),
            ),
        ]);
        let state = EventState {
            docker: self.docker.clone(),
            filters,
            since: OffsetDateTime::now_utc(),
            last: None,
            stream: None,
            backoff: MIN_BACKOFF,
        };
        let containers = futures_util::stream::unfold(state, |mut state| async move {
            let event = state.next().await;
            Some((event, state))
        });
        if self.orchestrates_rollouts() {
            futures_util::stream::select(containers, self.task_events()).boxed()
        } else {
            containers.boxed()
        }
    }

    /// Creates and starts the container for `spec` (checked) under `name`; returns its id.
    /// A container that cannot start is removed. If the network went away, or its name is
    /// ambiguous (two runners created it at once, and Docker resolves it by name at start), it
    /// is looked up again, which removes duplicates, and the launch retried.
    async fn launch(
        &self,
        spec: &ProcessSpec,
        name: &str,
        launch: Launch,
    ) -> Result<(String, Option<AttachContainerResults>), RunError> {
        let mut tries = 0;
        let result = loop {
            tries += 1;
            match self.create_and_start(spec, name, launch).await {
                Err(DockerError::DockerResponseServerError { status_code, message })
                    if tries < 4
                        && message.contains("network")
                        // An engine in a swarm answers 500 "… NotFound desc = network … not
                        // found" where a lone one answers 404.
                        && (status_code == 404
                            || message.contains("not found")
                            || message.contains("ambiguous")) =>
                {
                    tracing::warn!(network = %self.config.network, "{message}: looking it up again");
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                    let id = ensure_network(&self.docker, &self.config.network, NetworkKind::Paas)
                        .await?;
                    *self.network_id.write().unwrap_or_else(|p| p.into_inner()) = id;
                }
                result => break result,
            }
        };
        result.map_err(|error| match error {
            DockerError::DockerResponseServerError { status_code: 404, message }
                if message.contains("image") =>
            {
                RunError::ImageMissing { image: spec.image.clone() }
            }
            error => error.into(),
        })
    }

    async fn create_and_start(
        &self,
        spec: &ProcessSpec,
        name: &str,
        launch: Launch,
    ) -> Result<(String, Option<AttachContainerResults>), DockerError> {
        for volume in &spec.volumes {
            self.ensure_app_volume(&spec.app, &volume.name).await?;
        }
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let body = self.container_body(spec, launch);
        let id = self.docker.create_container(Some(options), body).await?.id;
        if let Err(error) = self.join_networks(&id, &spec.networks).await {
            self.remove_quietly(&id).await;
            return Err(error);
        }
        // A one-off's output is read from its attached streams, attached before the start as
        // `docker run` does: no output is missed, and no early look at stdin finds it empty.
        let attached = match launch {
            Launch::OneOff { stdin } => {
                let options = AttachContainerOptionsBuilder::default()
                    .stdin(stdin)
                    .stdout(true)
                    .stderr(true)
                    .stream(true)
                    .build();
                match self.docker.attach_container(&id, Some(options)).await {
                    Ok(attached) => Some(attached),
                    Err(error) => {
                        self.remove_quietly(&id).await;
                        return Err(error);
                    }
                }
            }
            _ => None,
        };
        if let Err(error) = self.docker.start_container(&id, None).await {
            self.remove_quietly(&id).await;
            return Err(error);
        }
        Ok((id, attached))
    }

    /// The container for `spec`, with paas's security settings: no host network, no
    /// privileges, no mounts of the Docker socket (none at all), no new privileges through
    /// setuid binaries, fewer capabilities, memory and process limits, rotated logs.
    fn container_body(&self, spec: &ProcessSpec, launch: Launch) -> ContainerCreateBody {
        let one_off = launch != Launch::Formation;
        let stdin = launch == Launch::OneOff { stdin: true };
        let memory_mb = spec.memory_mb.unwrap_or(self.config.default_memory_mb);
        let memory = i64::try_from(memory_mb.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
        let restart = if one_off {
            RestartPolicyNameEnum::NO
        } else {
            // Restart whatever the exit code (a web process that exits 0 is still down), with
            // Docker's backoff (100 ms doubling to 1 min, reset after 10 s up); also after a
            // reboot of the Docker daemon. `docker stop` (and so `Runner::stop`) ends it.
            RestartPolicyNameEnum::UNLESS_STOPPED
        };
        let grace = i64::try_from(self.config.stop_grace.as_secs()).unwrap_or(i64::MAX);
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.cmd(),
            env: Some(spec.env()),
            labels: Some(spec.labels(&self.config.network, one_off)),
            // Input to write, for the one attach that feeds it; closed when that ends.
            open_stdin: Some(stdin),
            stdin_once: Some(stdin),
            attach_stdin: Some(stdin),
            // `docker stop` from anyone (or the daemon shutting down) gives the same grace.
            stop_timeout: Some(grace),
            host_config: Some(HostConfig {
                mounts: (!spec.volumes.is_empty()).then(|| {
                    let mount = |v: &crate::VolumeMount| Mount {
                        target: Some(v.path.clone()),
                        source: Some(self.app_volume(&spec.app, &v.name)),
                        typ: Some(MountType::VOLUME),
                        ..Default::default()
                    };
                    spec.volumes.iter().map(mount).collect()
                }),
                // The name Docker Desktop gives the host, for services the server runs
                // itself (`DATABASE_URL=postgres://…@host.docker.internal/…`): the default
                // bridge's gateway, which containers could reach by address anyway.
                extra_hosts: Some(vec![format!("{HOST_ALIAS}:host-gateway")]),
                ..self.locked_down(restart, memory)
            }),
            ..Default::default()
        }
    }

    /// What every container paas starts has: on the paas network, restarted as `restart`
    /// says, memory and process limits, no privileges or new ones through setuid binaries,
    /// fewer capabilities, rotated logs.
    pub(crate) fn locked_down(&self, restart: RestartPolicyNameEnum, memory: i64) -> HostConfig {
        HostConfig {
            network_mode: Some(self.network_id()),
            restart_policy: Some(RestartPolicy { name: Some(restart), maximum_retry_count: None }),
            memory: Some(memory),
            // No swap beyond the limit: over it, the process is OOM-killed and restarted.
            memory_swap: Some(memory),
            pids_limit: Some(self.config.pids_limit),
            // A tiny init as PID 1 forwards signals to the app and reaps zombies.
            init: Some(true),
            privileged: Some(false),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            cap_drop: Some(DROPPED_CAPABILITIES.map(String::from).to_vec()),
            log_config: Some(HostConfigLogConfig {
                typ: Some(LOG_DRIVER.to_string()),
                config: Some(log_options()),
            }),
            ..Default::default()
        }
    }

    /// The label filter that finds what this runner made (of one app, if given): its
    /// containers, and with Swarm its services.
    pub(crate) fn label_filters(&self, app: Option<&str>) -> HashMap<&'static str, Vec<String>> {
        let mut labels = vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_NETWORK}={}", self.config.network),
        ];
        if let Some(app) = app {
            labels.push(format!("{LABEL_APP}={app}"));
        }
        HashMap::from([("label", labels)])
    }

    async fn container_ids(&self, app: Option<&str>) -> Result<Vec<String>, RunError> {
        let filters = self.label_filters(app);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let containers = self.docker.list_containers(Some(options)).await?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    async fn remove(&self, id: &str) -> Result<(), RunError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 409: a removal is already in progress.
            Err(error) if is_not_found(&error) || status(&error) == Some(409) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn remove_quietly(&self, id: &str) {
        if let Err(error) = self.remove(id).await {
            tracing::warn!(container = id, "cannot remove container: {error}");
        }
    }
}

/// Removes a one-off container if its `run_once` future is dropped half-way.
struct RemoveOnDrop {
    docker: Option<Docker>,
    /// Its name or id.
    container: String,
}

impl RemoveOnDrop {
    /// The run ended normally and its container was removed: nothing left to do.
    fn disarm(mut self) {
        self.docker = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let (Some(docker), Ok(runtime)) =
            (self.docker.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let container = std::mem::take(&mut self.container);
        runtime.spawn(async move {
            // Not there yet may mean a create request still in flight: look once more later.
            for delay in [Duration::ZERO, Duration::from_secs(2)] {
                tokio::time::sleep(delay).await;
                let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
                match docker.remove_container(&container, Some(options)).await {
                    Ok(()) => {
                        tracing::info!(%container, "abandoned one-off container removed");
                        return;
                    }
                    Err(error) if is_not_found(&error) => {}
                    Err(error) => {
                        tracing::warn!(%container, "cannot remove abandoned one-off container: {error}");
                        return;
                    }
                }
            }
        });
    }
}

/// One log record → one line; `None` for stdin echoes.
pub(crate) fn log_line(output: LogOutput, timestamps: bool) -> Option<LogLine> {
    let (stream, message) = match output {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            (LogStream::Stdout, message)
        }
        LogOutput::StdErr { message } => (LogStream::Stderr, message),
        LogOutput::StdIn { .. } => return None,
    };
    let text = String::from_utf8_lossy(&message);
    let text = text.trim_end_matches(['\n', '\r']);
    let (timestamp, line) = match text.split_once(' ') {
        Some((timestamp, line)) if timestamps => (timestamp.to_string(), line),
        _ if timestamps => (text.to_string(), ""),
        _ => (String::new(), text),
    };
    Some(LogLine { timestamp, stream, line: line.to_string() })
}

fn exit_code(event: &EventMessage) -> Option<i64> {
    event.actor.as_ref()?.attributes.as_ref()?.get("exitCode")?.parse().ok()
}

/// The host name app containers reach the Docker host by.
const HOST_ALIAS: &str = "host.docker.internal";

/// What a container is started as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launch {
    /// Part of the formation: restarted by Docker when it exits.
    Formation,
    /// Run once (release phase, `paas run`), with its stdin open for input or not.
    OneOff { stdin: bool },
}

/// A process's standard input as it arrives; an error means it broke off.
pub type StdinStream = BoxStream<'static, std::io::Result<Vec<u8>>>;

/// Writes `input` to a container's attached `stdin`, then closes it. A process that has
/// exited, or stops reading, just gets no more. Input that breaks off kills the container
/// `kill` names (a one-off's own); without one (a command run inside a service, whose
/// container must live on), the input is cut without its end, and the command fails on it.
pub(crate) async fn feed_stdin(
    docker: Docker,
    kill: Option<String>,
    mut stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    mut input: StdinStream,
) {
    use tokio::io::AsyncWriteExt;
    while let Some(chunk) = input.next().await {
        match chunk {
            Ok(chunk) => {
                if stdin.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::info!(%error, "input broke off; stopping the process");
                if let Some(id) = kill {
                    let _ = docker.kill_container(&id, None).await;
                }
                return;
            }
        }
    }
    let _ = stdin.shutdown().await;
}

/// A task that ends with its handle.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The reconnecting event stream behind `Runner::events`.
struct EventState {
    docker: Docker,
    filters: HashMap<String, Vec<String>>,
    /// Where a (re)connection resumes: the last event seen, or the subscription time.
    since: OffsetDateTime,
    /// (time, container, action) of the last event passed on: resuming replays it.
    last: Option<(i64, String, String)>,
    stream: Option<BoxStream<'static, Result<EventMessage, DockerError>>>,
    backoff: Duration,
}

impl EventState {
    async fn next(&mut self) -> ProcessEvent {
        loop {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let options = EventsOptionsBuilder::default()
                        .filters(&self.filters)
                        .since(&docker_since(self.since))
                        .build();
                    self.stream.insert(self.docker.events(Some(options)).boxed())
                }
            };
            match stream.next().await {
                Some(Ok(message)) => {
                    self.backoff = MIN_BACKOFF;
                    if let Some(event) = self.accept(message) {
                        return event;
                    }
                }
                end => {
                    if let Some(Err(error)) = end {
                        tracing::warn!("Docker event stream failed, reconnecting: {error}");
                    }
                    self.stream = None;
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The event for `message`, unless it is a replay of one already passed on or not one
    /// paas follows.
    fn accept(&mut self, message: EventMessage) -> Option<ProcessEvent> {
        let time_nano = message.time_nano.unwrap_or_default();
        let actor = message.actor?;
        let id = actor.id?;
        let action = message.action?;
        let key = (time_nano, id.clone(), action.clone());
        if let Some(last) = &self.last
            && (time_nano < last.0 || key == *last)
        {
            return None;
        }
        if let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_nano)) {
            self.since = at;
        }
        self.last = Some(key);
        let attributes = actor.attributes.unwrap_or_default();
        let kind = ProcessEventKind::parse(&action, &attributes)?;
        let labels = Labels::parse(&attributes)?;
        Some(ProcessEvent {
            container_id: id,
            name: attributes.get("name").cloned().unwrap_or_default(),
            app: labels.app,
            release: labels.release,
            process_type: labels.process_type,
            index: labels.index,
            one_off: labels.one_off,
            kind,
            time_nano,
        })
    }
}

/// The bridge option that stops containers on the network from reaching each other: apps
/// talk to one another only through the router, and the router (on the host) still reaches
/// every container.
const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";

/// What a network paas creates is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetworkKind {
    /// The paas bridge: every container, with traffic between them off.
    Paas,
    /// An app's own bridge, where its processes meet its add-ons.
    App,
    /// An app's own network under Swarm: an overlay across the nodes, which the add-ons'
    /// and one-off containers on the manager join too (attachable).
    SwarmApp,
}

impl NetworkKind {
    fn driver(self) -> &'static str {
        if self == NetworkKind::SwarmApp { "overlay" } else { "bridge" }
    }
}

/// The id of the network `name`, created if missing. Safe against other runners doing
/// the same at the same time: Docker 20.10 lets two racing creates of one name both succeed,
/// so every runner then keeps the oldest and removes the others.
pub(crate) async fn ensure_network(
    docker: &Docker,
    name: &str,
    kind: NetworkKind,
) -> Result<String, RunError> {
    // Docker 20.10 lets two racing creates of one name both succeed, and a runner that looked
    // before the other created would keep a different one. Runners on this host take turns
    // through a lock file; the duplicate clean-up below covers runners on other hosts.
    let lock_path = std::env::temp_dir().join(format!("paas-network-{name}.lock"));
    let lock = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&lock_path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| RunError::Network { name: name.to_string(), message: e.to_string() })?
    .map_err(|e| RunError::Network {
        name: name.to_string(),
        message: format!("cannot take the network lock: {e}"),
    })?;
    let result = find_or_create_network(docker, name, kind).await;
    drop(lock);
    result
}

/// `isolated`: with traffic between its containers off (the paas network); an app's own
/// network, where its processes meet its add-ons, has it on.
async fn find_or_create_network(
    docker: &Docker,
    name: &str,
    kind: NetworkKind,
) -> Result<String, RunError> {
    let isolated = kind == NetworkKind::Paas;
    for _ in 0..5 {
        let filters = HashMap::from([("name", vec![name])]);
        let options = ListNetworksOptionsBuilder::default().filters(&filters).build();
        // The name filter matches substrings.
        let mut found: Vec<_> = docker
            .list_networks(Some(options))
            .await?
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .collect();
        if found.is_empty() {
            let request = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some(kind.driver().to_string()),
                attachable: Some(kind == NetworkKind::SwarmApp),
                labels: Some(HashMap::from([(LABEL_MANAGED.to_string(), "true".to_string())])),
                options: isolated
                    .then(|| HashMap::from([(ICC_OPTION.to_string(), "false".to_string())])),
                ..Default::default()
            };
            match docker.create_network(request).await {
                Ok(created) => tracing::info!(network = name, id = %created.id, "network created"),
                Err(error) if status(&error) == Some(409) => {}
                Err(error) => return Err(error.into()),
            }
            continue;
        }
        found.sort_by_key(|n| {
            let created = n.created.as_deref().and_then(parse_time);
            (created, n.id.clone())
        });
        let keep = found.remove(0);
        for duplicate in found {
            let ours = duplicate.labels.as_ref().and_then(|l| l.get(LABEL_MANAGED))
                == Some(&"true".to_string());
            if let (true, Some(id)) = (ours, &duplicate.id) {
                // Another runner may be removing it too, or using it for a moment: best effort.
                let _ = docker.remove_network(id).await;
            }
        }
        if isolated
            && keep.options.as_ref().and_then(|o| o.get(ICC_OPTION)).map(String::as_str)
                != Some("false")
        {
            tracing::warn!(
                network = name,
                "containers on this network can reach each other directly: it was made by an \
                 older paas or by hand. Stop paas, remove the network and its containers, and \
                 start paas again to isolate apps"
            );
        }
        let mut driver = keep.driver.clone().unwrap_or_default();
        if driver.is_empty()
            && let Some(id) = &keep.id
        {
            // A swarm-scoped network is listed without its driver until the swarm's allocator
            // has set it up, a moment after it was created: ask again until it has one.
            for _ in 0..40 {
                driver = docker.inspect_network(id, None).await?.driver.unwrap_or_default();
                if !driver.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        if driver.is_empty() {
            return Err(RunError::Network {
                name: name.to_string(),
                message: "Docker has not finished setting it up (it has no driver yet): try again"
                    .to_string(),
            });
        }
        if driver != kind.driver() {
            return Err(RunError::Network {
                name: name.to_string(),
                message: format!(
                    "it is a {driver:?} network, and paas needs one of the {} driver here: \
                     remove it or choose another network name",
                    kind.driver()
                ),
            });
        }
        return keep.id.ok_or_else(|| RunError::Network {
            name: name.to_string(),
            message: "Docker reported it without an id".to_string(),
        });
    }
    Err(RunError::Network {
        name: name.to_string(),
        message: "it could not be created (it kept disappearing)".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn log_records_become_lines() {
        let out = LogOutput::StdOut {
            message: Bytes::from_static(b"2024-05-01T12:00:00.123456789Z listening on 5000\n"),
        };
        assert_eq!(
            log_line(out, true),
            Some(LogLine {
                timestamp: "2024-05-01T12:00:00.123456789Z".into(),
                stream: LogStream::Stdout,
                line: "listening on 5000".into(),
            })
        );
        let err = LogOutput::StdErr { message: Bytes::from_static(b"boom\r\n") };
        let line = log_line(err, false).unwrap();
        assert_eq!(
            (line.stream, line.line.as_str(), line.timestamp.as_str()),
            (LogStream::Stderr, "boom", "")
        );
        assert_eq!(log_line(LogOutput::StdIn { message: Bytes::new() }, true), None);
    }

    #[test]
    fn containers_are_locked_down() {
        let runner = Runner {
            docker: Docker::connect_with_defaults().unwrap(),
            config: RunnerConfig::default(),
            network_id: Arc::new(RwLock::new("net123".into())),
        };
        let mut spec = ProcessSpec::new("shop", 3, "web", 1, "paas/app-shop:b1");
        let body = runner.container_body(&spec, Launch::Formation);
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("net123"));
        assert_eq!(host.memory, Some(512 << 20));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.privileged, Some(false));
        assert_eq!(host.binds, None);
        assert_eq!(host.mounts, None);
        assert_eq!(host.security_opt.unwrap(), ["no-new-privileges"]);
        assert!(host.cap_drop.unwrap().contains(&"NET_RAW".to_string()));
        assert_eq!(host.restart_policy.unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
        assert_eq!(host.log_config.unwrap().config.unwrap()["max-size"], "10m");
        assert_eq!(host.extra_hosts.unwrap(), ["host.docker.internal:host-gateway"]);
        assert_eq!(body.stop_timeout, Some(10));

        spec.memory_mb = Some(u64::MAX);
        let body = runner.container_body(&spec, Launch::OneOff { stdin: false });
        let host = body.host_config.unwrap();
        assert_eq!(host.memory, Some(i64::MAX), "saturates rather than wraps");
        assert_eq!(host.restart_policy.unwrap().name, Some(RestartPolicyNameEnum::NO));
        assert_eq!(body.labels.unwrap()[crate::spec::LABEL_ONE_OFF], "true");
    }
}
