//! Rolling a release out with no downtime: release phase → start the new processes →
//! health-check `web` → switch the router → drain → stop the old processes. Any failure
//! before the switch stops what was started and leaves the old release serving untouched.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use paas_builder::BuildLog;
use paas_runner::{
    HealthCheck, LogStream, OutputChunk, Process, ProcessSpec, RunError, Runner, Wanted,
};
use paas_store::{App, Release, ReleaseStatus};

use super::Paas;
use super::audit::Actor;
use super::error::{Error, Result};
use super::validate;

/// The port every `web` process is told to listen on; each container has its own IP.
pub(super) const WEB_PORT: u16 = 5000;
/// How long old processes may finish their in-flight requests after the switch.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// Chunks (as Docker frames them, tens of KiB) that may wait between a one-off container
/// and its reader, per channel: enough to keep the stream flowing, little enough that a
/// reader who stops holds the command up rather than paas's memory.
pub(crate) const OUTPUT_CHUNKS: usize = 16;
/// Longest a release phase (`release:` in the Procfile) may run.
const RELEASE_PHASE_LIMIT: Duration = Duration::from_secs(15 * 60);
/// How long a process with no port must keep running after `ps:scale` starts it: it has no
/// health check, and one that crashes at once would otherwise be reported as scaled.
const SETTLE: Duration = Duration::from_secs(5);

impl Paas {
    pub(crate) fn runner(&self) -> Result<&Runner> {
        self.runner.as_ref().ok_or_else(|| Error::docker_unavailable("running apps"))
    }

    /// Rolls `release` out. The caller holds the app's deploy lock. On success the release is
    /// marked `succeeded` and serves; on failure it is marked `failed`, with the reason in
    /// `log` and in the error, and the previous release keeps serving.
    pub async fn roll_out(&self, app: &App, release: &Release, log: &BuildLog) -> Result<()> {
        let Some(image) = release.image.clone() else {
            // Nothing built yet: a config-only release has nothing to run.
            self.store().set_release_status(release, ReleaseStatus::Succeeded).await?;
            return Ok(());
        };
        let runner = self.runner()?.clone();
        self.events().emit(&app.name, "deploy", format!("Rolling out v{}", release.version));
        match self.try_roll_out(&runner, app, release, &image, None, log).await {
            Ok(()) => {
                log.step(format!("Released v{}", release.version));
                self.events().emit(&app.name, "deploy", format!("v{} is live", release.version));
                self.prune_images(app, self.keep_release_images).await?;
                tracing::info!(app = %app.name, release = release.version, "release serving");
                Ok(())
            }
            Err(err) => {
                self.store().set_release_status(release, ReleaseStatus::Failed).await?;
                let reason = err.public_message();
                log.error(format!("Release v{} failed: {reason}", release.version));
                self.events().emit(
                    &app.name,
                    "deploy",
                    format!("Release v{} failed: {reason}", release.version),
                );
                tracing::warn!(app = %app.name, release = release.version, error = %err, "rollout failed");
                Err(err)
            }
        }
    }

    /// The rollout's steps: release phase → start new → wait healthy → switch → drain and
    /// stop old. From the switch on, the new release is the one serving (and marked so
    /// first): a paas killed while the old processes stop comes back to the new release,
    /// never to one whose processes are gone.
    async fn try_roll_out(
        &self,
        runner: &Runner,
        app: &App,
        release: &Release,
        image: &str,
        // A restart of one process type (`paas ps:restart web`): no release phase, and only
        // that type's processes are replaced.
        only: Option<&str>,
        log: &BuildLog,
    ) -> Result<()> {
        let command = release.process_types.get("release").filter(|c| !c.is_empty());
        if let (Some(command), None) = (command, only) {
            self.release_phase(runner, app, release, image, command, log).await?;
        }
        if runner.orchestrates_rollouts() {
            self.hand_over(runner, app, release, image, |_| false, log).await?;
            self.store().set_release_status(release, ReleaseStatus::Succeeded).await?;
            return Ok(());
        }
        let mut formation = self.formation_for(app, release).await?;
        formation.retain(|t, _| only.is_none_or(|only| only == t));
        let old: Vec<Process> = runner
            .list(Some(&app.name))
            .await?
            .into_iter()
            .filter(|p| !p.one_off && only.is_none_or(|only| only == p.process_type))
            .collect();

        let started = self.start_healthy(runner, app, release, image, &formation, log).await?;
        if only.is_none()
            && let Err(err) =
                self.store().set_release_status(release, ReleaseStatus::Succeeded).await
        {
            stop_quickly(runner, &started).await;
            return Err(err.into());
        }
        let draining = self.switch(app, &started, only).await;
        log.info("Switched the router to the new processes; draining the old ones");
        self.drain_and_stop(runner, app, &old, draining, log).await;
        Ok(())
    }

    /// With a scheduler that rolls out itself (Swarm): hands it the release's whole
    /// formation, each type health-checked as here, and routes to what runs once it has
    /// converged. `restart` names the types whose processes are replaced even if unchanged.
    pub(super) async fn hand_over(
        &self,
        runner: &Runner,
        app: &App,
        release: &Release,
        image: &str,
        restart: impl Fn(&str) -> bool,
        log: &BuildLog,
    ) -> Result<()> {
        let formation = self.formation_for(app, release).await?;
        let health = Health::new(self.health_check(app, release));
        let mut wanted = Vec::new();
        for (process_type, replicas) in &formation {
            let spec = self.process_spec(app, release, image, process_type, 1).await?;
            wanted.push(Wanted {
                health: spec.port.is_some().then(|| health.of(process_type).clone()),
                restart: restart(process_type),
                replicas: *replicas,
                spec,
            });
        }
        let listed = formation.iter().map(|(t, n)| format!("{t}={n}")).collect::<Vec<_>>();
        log.step(format!(
            "Updating {} on Swarm (new tasks first, each healthy before an old one stops)",
            listed.join(" ")
        ));
        let running =
            runner.apply_formation(&app.name, &wanted).await.map_err(|err| match err {
                RunError::Exited { .. } => crashing(err),
                err => unhealthy(err, log),
            })?;
        self.set_backends(&app.name, None, served_backends(running.iter()));
        self.sync_routes().await
    }

    /// Starts the formation's processes and waits until every `web` one answers; on any
    /// failure stops what it started and says why.
    async fn start_healthy(
        &self,
        runner: &Runner,
        app: &App,
        release: &Release,
        image: &str,
        formation: &BTreeMap<String, u32>,
        log: &BuildLog,
    ) -> Result<Vec<Process>> {
        log.step(format!(
            "Starting {}",
            formation.iter().map(|(t, n)| format!("{t}={n}")).collect::<Vec<_>>().join(" ")
        ));
        let mut started: Vec<Process> = Vec::new();
        let health = Health::new(self.health_check(app, release));
        let outcome = async {
            for (process_type, quantity) in formation {
                for index in 1..=*quantity {
                    let spec = self.process_spec(app, release, image, process_type, index).await?;
                    let process = runner.start(&spec).await?;
                    started.push(process);
                }
            }
            // Every process that serves HTTP (web, and the types routes send paths to) is
            // checked, all at once: a deploy of web=4 takes as long as one.
            let served: Vec<&Process> = started.iter().filter(|p| p.port.is_some()).collect();
            for process in &served {
                let name = process.process_name();
                log.info(format!("Waiting for {name} to answer on port {WEB_PORT}"));
            }
            let checks = served.iter().map(|p| runner.wait_healthy(p, health.of(&p.process_type)));
            futures_util::future::try_join_all(checks).await.map_err(|e| unhealthy(e, log))?;
            Ok::<(), Error>(())
        }
        .await;
        match outcome {
            Ok(()) => Ok(started),
            Err(err) => {
                stop_quickly(runner, &started).await;
                Err(err)
            }
        }
    }

    /// Points the router at the `started` processes that serve HTTP (of `only` that type,
    /// when given); returns the backends it replaced, to be drained.
    async fn switch(
        &self,
        app: &App,
        started: &[Process],
        only: Option<&str>,
    ) -> Option<paas_router::Draining> {
        self.set_backends(&app.name, only, served_backends(started.iter()));
        match self.apply_routes().await {
            Ok(draining) => Some(draining),
            Err(err) => {
                // The backends are set; the next table sync (any app change) routes them.
                tracing::warn!(app = %app.name, error = %err, "routing table not rebuilt");
                None
            }
        }
    }

    /// Lets the old processes finish their requests, then stops them.
    async fn drain_and_stop(
        &self,
        runner: &Runner,
        app: &App,
        old: &[Process],
        draining: Option<paas_router::Draining>,
        log: &BuildLog,
    ) {
        if let Some(draining) = draining
            && !draining.wait(DRAIN_DEADLINE).await
        {
            log.info("Old processes still busy at the drain deadline; stopping them anyway");
        }
        let grace = runner.config().stop_grace;
        let stops = old.iter().map(|p| runner.stop(&p.container_id, grace));
        for (process, result) in old.iter().zip(futures_util::future::join_all(stops).await) {
            if let Err(err) = result {
                tracing::warn!(app = %app.name, container = %process.name, error = %err, "stopping an old process failed");
            }
        }
    }

    async fn release_phase(
        &self,
        runner: &Runner,
        app: &App,
        release: &Release,
        image: &str,
        command: &str,
        log: &BuildLog,
    ) -> Result<()> {
        log.step(format!("Running release command: {command}"));
        self.events().emit(&app.name, "deploy", format!("Running release command: {command}"));
        let spec = self.process_spec(app, release, image, "release", 1).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(OUTPUT_CHUNKS);
        let run = runner.run_once(&spec, sender, RELEASE_PHASE_LIMIT);
        let (exit, ()) = tokio::join!(run, log_output(receiver, log));
        match exit? {
            0 => Ok(()),
            code => {
                let text = format!("Release command exited with code {code}");
                self.events().emit(&app.name, "deploy", text);
                Err(Error::invalid(
                    "release_phase_failed",
                    format!("the release command exited with code {code}; nothing was changed"),
                ))
            }
        }
    }

    /// What to run for `release`: the stored formation, restricted to the release's process
    /// types. The first release with a `web` type gets `web=1`, as on Heroku.
    async fn formation_for(&self, app: &App, release: &Release) -> Result<BTreeMap<String, u32>> {
        let mut formation = self.store().formation(app).await?;
        if release.process_types.contains_key("web") && !formation.contains_key("web") {
            let web = BTreeMap::from([("web".to_string(), 1)]);
            self.store().scale(app, &web).await?;
            formation.extend(web);
        }
        Ok(formation
            .into_iter()
            .filter(|(t, n)| *n > 0 && t != "release" && release.process_types.contains_key(t))
            .map(|(t, n)| (t, u32::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// The `web` health check: a TCP connect, then `GET $PAAS_HEALTHCHECK_PATH` if the app
    /// sets that config var, with the app's own hostname (Django checks ALLOWED_HOSTS).
    pub(super) fn health_check(&self, app: &App, release: &Release) -> HealthCheck {
        let mut check = HealthCheck {
            path: release.config.get("PAAS_HEALTHCHECK_PATH").filter(|p| !p.is_empty()).cloned(),
            host: Some(format!("{}.{}", app.name, self.domain())),
            ..HealthCheck::default()
        };
        if let Some(seconds) =
            release.config.get("PAAS_HEALTHCHECK_TIMEOUT").and_then(|s| s.parse::<u64>().ok())
        {
            check.timeout = Duration::from_secs(seconds.clamp(1, 600));
        }
        check
    }

    /// The app's containers as Docker sees them: what `paas ps` shows.
    pub async fn processes(&self, app: &App) -> Result<Vec<Process>> {
        self.runner()?.list(Some(&app.name)).await.map_err(Error::from)
    }

    /// Stops every process of an app (when it is destroyed).
    pub(crate) async fn stop_all(&self, app: &str) -> Result<()> {
        let Ok(runner) = self.runner() else { return Ok(()) };
        self.set_backends(app, None, BTreeMap::new());
        runner.remove_formation(app).await?;
        // One-off containers (Swarm's tasks went with their services).
        for process in runner.list(Some(app)).await?.into_iter().filter(|p| p.node.is_none()) {
            runner.stop(&process.container_id, Duration::from_secs(5)).await?;
        }
        Ok(())
    }
}

/// Stops processes that never served (a rollout that failed before its switch).
async fn stop_quickly(runner: &Runner, processes: &[Process]) {
    for process in processes {
        let _ = runner.stop(&process.container_id, Duration::from_secs(2)).await;
    }
}

/// Writes a release command's output to the deploy log line by line as it comes. stdout
/// and stderr each keep their unfinished last line until the rest of it arrives, or the end.
async fn log_output(mut output: tokio::sync::mpsc::Receiver<OutputChunk>, log: &BuildLog) {
    let mut stdout = LineSplitter::default();
    let mut stderr = LineSplitter::default();
    while let Some(chunk) = output.recv().await {
        let lines = match chunk.stream {
            LogStream::Stdout => &mut stdout,
            LogStream::Stderr => &mut stderr,
        };
        lines.push(&chunk.bytes, |line| log.info(line));
    }
    for rest in [stdout.finish(), stderr.finish()].into_iter().flatten() {
        log.info(rest);
    }
}

/// Bytes in, whole lines out; what follows the last newline waits for more.
#[derive(Debug, Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Passes each line that `bytes` completes to `line`, without its line break.
    fn push(&mut self, mut bytes: &[u8], mut line: impl FnMut(String)) {
        // Only the new bytes are searched: a long line in many chunks stays linear.
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&bytes[..end]);
            line(line_text(&self.partial));
            self.partial.clear();
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
    }

    /// The last line, if the output did not end with a line break.
    fn finish(self) -> Option<String> {
        (!self.partial.is_empty()).then(|| line_text(&self.partial))
    }
}

fn line_text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

/// The processes among `processes` that serve HTTP and have an address (running, with a
/// port), as router backends.
pub(super) fn served_backends<'a>(
    processes: impl IntoIterator<Item = &'a Process>,
) -> BTreeMap<String, super::paas::Served> {
    processes
        .into_iter()
        .filter_map(|p| Some((p.container_id.clone(), (p.process_type.clone(), p.addr?))))
        .collect()
}

/// The health check of each process type: `web`'s may GET a path of the app's; the others a
/// route sends paths to (daphne's `/ws/`) need only accept connections.
pub(super) struct Health {
    web: HealthCheck,
    others: HealthCheck,
}

impl Health {
    pub(super) fn new(web: HealthCheck) -> Health {
        let others = HealthCheck { path: None, ..web.clone() };
        Health { web, others }
    }

    pub(super) fn of(&self, process_type: &str) -> &HealthCheck {
        if process_type == "web" { &self.web } else { &self.others }
    }
}

impl Paas {
    /// What to run for one process of `release`, on the app's network when it has add-ons.
    pub(crate) async fn process_spec(
        &self,
        app: &App,
        release: &Release,
        image: &str,
        process_type: &str,
        index: u32,
    ) -> Result<ProcessSpec> {
        let mut spec = spec_for(app, release, image, process_type, index);
        // The commit it runs, as Heroku names it (a promoted release's is its build's), and
        // the tag a tag deploy was made of.
        if let Some(build) = release.build_id {
            let (commit, tag) = self.store().build_source(build).await?;
            if let Some(commit) = commit {
                spec.env.insert("SOURCE_VERSION".into(), commit);
            }
            if let Some(tag) = tag {
                spec.env.insert("SOURCE_TAG".into(), tag);
            }
        }
        // A type a route sends paths to listens on PORT like web, and is health-checked.
        let routed = self.store().routes(Some(app)).await?;
        if routed.iter().any(|r| r.process_type == process_type) {
            spec.port = Some(WEB_PORT);
        }
        spec.networks = self.app_networks(app).await?;
        spec.volumes = self.volume_mounts(app).await?;
        Ok(spec)
    }
}

fn spec_for(
    app: &App,
    release: &Release,
    image: &str,
    process_type: &str,
    index: u32,
) -> ProcessSpec {
    let mut spec = ProcessSpec::new(&app.name, release.version, process_type, index, image);
    spec.command = release.process_types.get(process_type).filter(|c| !c.is_empty()).cloned();
    spec.env = release.config.clone();
    spec.port = (process_type == "web").then_some(WEB_PORT);
    spec.memory_mb = memory_limit(&release.config, process_type);
    spec
}

/// The memory limit the app's config asks for: `PAAS_MEMORY_MB_WEB` for `web`, else
/// `PAAS_MEMORY_MB`, else the runner's default.
fn memory_limit(config: &BTreeMap<String, String>, process_type: &str) -> Option<u64> {
    let own =
        format!("{}_{}", validate::MEMORY_KEY, process_type.to_ascii_uppercase().replace('-', "_"));
    [own.as_str(), validate::MEMORY_KEY]
        .into_iter()
        .find_map(|key| config.get(key).and_then(|v| validate::memory_mb(v)))
}

/// A process `ps:scale` started that exited within [`SETTLE`]: Docker keeps restarting it
/// (a crash loop, left running as Heroku leaves crashed dynos); its last lines say why.
fn crashing(err: RunError) -> Error {
    let RunError::Exited { process, exit_code, oom_killed, log_tail } = &err else {
        return Error::from(err);
    };
    let how = match (exit_code, oom_killed) {
        (_, true) => " (killed: out of memory)".to_string(),
        (Some(code), false) => format!(" with code {code}"),
        (None, false) => String::new(),
    };
    let process_type = process.split('.').next().unwrap_or(process);
    let tail = if log_tail.trim().is_empty() { "(no output)" } else { log_tail.as_str() };
    Error::invalid(
        "process_crashing",
        format!(
            "{process} is crashing: it exited{how} within {}s of its start, and is restarted \
             again and again (`paas ps:scale {process_type}=0` stops it). Its last lines:\n{tail}",
            SETTLE.as_secs()
        ),
    )
}

/// A failed health check, with the process's last lines shown in the deploy log.
fn unhealthy(err: RunError, log: &BuildLog) -> Error {
    if let Some(tail) = err.log_tail().filter(|t| !t.trim().is_empty()) {
        log.error("Last lines of the process's output:");
        for line in tail.lines() {
            log.info(line);
        }
    }
    Error::from(err)
}

impl Paas {
    /// Makes a new release from `version`'s image and config (the previous release when
    /// `None`) and rolls it out, with no build.
    pub async fn rollback(
        &self,
        actor: &Actor,
        app: &App,
        version: Option<i64>,
        log: &BuildLog,
    ) -> Result<Release> {
        let _lock = self.lock_deploys(app, log).await?;
        let target = match version {
            Some(version) => self.store().release(app, version).await?,
            None => {
                let current = self.store().current_release(app).await?;
                let releases = self.store().releases(app).await?;
                releases
                    .into_iter()
                    .filter(|r| r.image.is_some() && r.status == ReleaseStatus::Succeeded)
                    .find(|r| current.as_ref().is_some_and(|c| r.version < c.version))
                    .ok_or_else(|| {
                        Error::invalid(
                            "nothing_to_roll_back",
                            "there is no earlier deployed release to roll back to",
                        )
                    })?
            }
        };
        // A tag deploy that waits, or was turned down or replaced, goes out by approval only.
        if [ReleaseStatus::Waiting, ReleaseStatus::Rejected, ReleaseStatus::Superseded]
            .contains(&target.status)
        {
            return Err(Error::invalid(
                "nothing_to_roll_back",
                format!(
                    "v{} is {} and never ran: approve a waiting release with `paas \
                     releases:approve`",
                    target.version,
                    target.status.as_str()
                ),
            ));
        }
        if target.image.is_none() {
            return Err(Error::invalid(
                "nothing_to_roll_back",
                format!(
                    "v{} has no build to run; roll back to a release made by a deploy",
                    target.version
                ),
            ));
        }
        // Add-ons stay as they are: today's URLs, none of a destroyed one.
        let (config, notes) = self.config_for_rollback(app, &target).await?;
        let mut description = format!("Rollback to v{}", target.version);
        if !notes.is_empty() {
            description = format!("{description} ({})", notes.join("; "));
        }
        let release = self
            .store()
            .create_rollback_release(app, &target, &config, &description, actor.email())
            .await?;
        self.announce_release(app, &release);
        log.step(format!("Rolling back to v{} as v{}", target.version, release.version));
        let rolled_out = self.roll_out(app, &release, log).await;
        let outcome = if rolled_out.is_ok() { "" } else { ", which failed to roll out" };
        let detail = format!("rolled back to v{} as v{}{outcome}", target.version, release.version);
        self.audit(actor, Some(app), "rollback", detail).await;
        rolled_out?;
        Ok(release)
    }

    /// Brings the running processes of the current release in line with the formation:
    /// starts what is missing (health-checked before it gets traffic), stops what is extra
    /// (taken out of the router and drained first). Processes that stay are not touched.
    pub async fn reconcile_formation(&self, app: &App) -> Result<()> {
        let log = BuildLog::new();
        let _lock = self.lock_deploys(app, &log).await?;
        let Some(release) = self.store().current_release(app).await? else { return Ok(()) };
        let Some(image) = release.image.clone() else { return Ok(()) };
        let runner = self.runner()?.clone();
        if runner.orchestrates_rollouts() {
            return self.hand_over(&runner, app, &release, &image, |_| false, &log).await;
        }
        let formation = self.formation_for(app, &release).await?;
        let running: Vec<Process> = runner
            .list(Some(&app.name))
            .await?
            .into_iter()
            .filter(|p| !p.one_off && p.release == release.version)
            .collect();

        let mut extra: Vec<&Process> = Vec::new();
        let mut missing: Vec<(String, u32)> = Vec::new();
        let types: HashSet<&String> =
            formation.keys().chain(running.iter().map(|p| &p.process_type)).collect();
        for process_type in types {
            let wanted = formation.get(process_type).copied().unwrap_or(0);
            let have: HashSet<u32> = running
                .iter()
                .filter(|p| &p.process_type == process_type)
                .map(|p| p.index)
                .collect();
            extra.extend(
                running.iter().filter(|p| &p.process_type == process_type && p.index > wanted),
            );
            missing.extend(
                (1..=wanted).filter(|i| !have.contains(i)).map(|i| (process_type.clone(), i)),
            );
        }

        let health = Health::new(self.health_check(app, &release));
        let mut served = served_backends(
            running.iter().filter(|p| !extra.iter().any(|e| e.container_id == p.container_id)),
        );
        let mut others = Vec::new();
        for (process_type, index) in missing {
            let spec = self.process_spec(app, &release, &image, &process_type, index).await?;
            let process = runner.start(&spec).await?;
            if process.port.is_some() {
                if let Err(err) = runner.wait_healthy(&process, health.of(&process_type)).await {
                    let _ = runner.stop(&process.container_id, Duration::from_secs(2)).await;
                    return Err(unhealthy(err, &log));
                }
                served.extend(served_backends([&process]));
            } else {
                others.push(process);
            }
        }
        self.set_backends(&app.name, None, served);
        let draining = self.apply_routes().await?;
        draining.wait(DRAIN_DEADLINE).await;
        let grace = runner.config().stop_grace;
        for process in extra {
            runner.stop(&process.container_id, grace).await?;
        }
        // Checked last, so the rest of the formation is in place whatever this finds. A
        // process with no port "passes" when it still runs after the wait.
        let settle = HealthCheck { wait: SETTLE, timeout: SETTLE, ..HealthCheck::default() };
        let checks = others.iter().map(|p| runner.wait_healthy(p, &settle));
        futures_util::future::try_join_all(checks).await.map_err(crashing)?;
        Ok(())
    }
}

impl Paas {
    /// Replaces the current release's processes (of one type, or all) with fresh ones, with
    /// the same zero-downtime steps as a deploy and no release phase (`paas ps:restart`).
    pub async fn restart(
        &self,
        actor: &Actor,
        app: &App,
        process_type: Option<&str>,
        log: &BuildLog,
    ) -> Result<()> {
        let _lock = self.lock_deploys(app, log).await?;
        let runner = self.runner()?.clone();
        let current = self.store().current_release(app).await?;
        let Some((release, image)) = current.and_then(|r| r.image.clone().map(|i| (r, i))) else {
            return Err(Error::invalid(
                "not_deployed",
                format!("{} has nothing running to restart", app.name),
            ));
        };
        if let Some(process_type) = process_type
            && !release.process_types.contains_key(process_type)
        {
            return Err(Error::invalid(
                "unknown_process_type",
                format!("{} has no process type {process_type:?}", app.name),
            ));
        }
        let which = process_type.unwrap_or("all");
        self.events().emit(&app.name, "deploy", format!("Restarting {which} processes"));
        let restarted = if runner.orchestrates_rollouts() {
            let restart = |t: &str| process_type.is_none_or(|only| only == t);
            self.hand_over(&runner, app, &release, &image, restart, log).await
        } else {
            self.try_roll_out(&runner, app, &release, &image, process_type, log).await
        };
        let outcome = if restarted.is_ok() { "" } else { ", which failed" };
        let detail = format!("restarted {which} processes{outcome}");
        self.audit(actor, Some(app), "restart", detail).await;
        restarted?;
        self.events().emit(&app.name, "deploy", format!("Restarted {which} processes"));
        Ok(())
    }

    /// Removes the images of all but the newest `keep` releases (never the current one), so
    /// the disk does not fill with old builds; rollback works within those kept.
    pub async fn prune_images(&self, app: &App, keep: usize) -> Result<()> {
        let Some(builder) = &self.builder else { return Ok(()) };
        let current = self.store().current_release(app).await?.and_then(|r| r.image);
        let mut seen = HashSet::new();
        let images: Vec<String> = self
            .store()
            .releases(app)
            .await?
            .into_iter()
            .filter_map(|r| r.image)
            .filter(|image| seen.insert(image.clone()))
            .collect();
        for image in images.into_iter().skip(keep) {
            if Some(&image) == current.as_ref() {
                continue;
            }
            match builder.remove_image(&image).await {
                Ok(()) => tracing::info!(app = %app.name, %image, "pruned an old release's image"),
                Err(err) => {
                    tracing::debug!(app = %app.name, %image, error = %err, "image not pruned")
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_come_from_config_per_process_type() {
        let config = BTreeMap::from([
            ("PAAS_MEMORY_MB".to_string(), "1024".to_string()),
            ("PAAS_MEMORY_MB_CLOCK_WORKER".to_string(), "256".to_string()),
        ]);
        assert_eq!(memory_limit(&config, "web"), Some(1024));
        assert_eq!(memory_limit(&config, "clock-worker"), Some(256));
        assert_eq!(memory_limit(&BTreeMap::new(), "web"), None, "the runner's default");
    }

    #[test]
    fn output_becomes_lines_across_chunks() {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        for chunk in [&b"Apply"[..], b"ing 0001\r\nApplying 0002\n\nOK", b" (done)"] {
            splitter.push(chunk, |line| lines.push(line));
        }
        assert_eq!(lines, ["Applying 0001", "Applying 0002", ""]);
        assert_eq!(splitter.finish().as_deref(), Some("OK (done)"), "the last line, unfinished");
        assert_eq!(LineSplitter::default().finish(), None);
    }
}
