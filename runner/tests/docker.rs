//! The runner against the real Docker engine, on the offline `paas/python:bookworm` image
//! (`bash deploy/stack/build.sh` makes it): processes start with their environment and
//! security settings, pass or fail health checks, stop gracefully or get killed, are restarted
//! when they crash, and are found again from their labels; one-off runs stream their output
//! and leave nothing behind.
//!
//! Tests run in parallel: each uses its own app name and removes every container (and image,
//! and network) it made, even when it fails. They share one network, `paas-runner-test`, so
//! that a real paas on this machine (network `paas`) never sees them.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::RestartPolicyNameEnum;
use futures_util::StreamExt;
use paas_runner::{
    HealthCheck, LogStream, Process, ProcessEventKind, ProcessSpec, ProcessState, RunError, Runner,
    RunnerConfig, StdinStream,
};

const NETWORK: &str = "paas-runner-test";
const BASE: &str = "paas/python:bookworm";
const PORT: u16 = 5000;

fn unique_app(what: &str) -> String {
    format!("t-{what}-{:08x}", rand::random::<u32>())
}

async fn runner() -> Runner {
    let config = RunnerConfig { network: NETWORK.into(), ..Default::default() };
    Runner::connect(config).await.unwrap()
}

async fn docker() -> Docker {
    Docker::connect_with_defaults().unwrap().negotiate_version().await.unwrap()
}

/// Removes what a test made when it goes out of scope, also on panic: every container
/// labelled with its app, its images and networks. Uses the docker CLI, since Drop cannot
/// await.
struct Cleanup {
    app: String,
    images: Vec<String>,
    networks: Vec<String>,
}

impl Cleanup {
    fn new(app: &str) -> Cleanup {
        Cleanup { app: app.to_string(), images: Vec::new(), networks: Vec::new() }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let left = containers_of(&self.app);
        if !left.is_empty() {
            let mut args = vec!["rm", "--force", "--volumes"];
            args.extend(left.iter().map(String::as_str));
            docker_cli(&args);
        }
        for image in &self.images {
            docker_cli(&["rmi", image]);
        }
        for network in &self.networks {
            docker_cli(&["network", "rm", network]);
        }
    }
}

fn docker_cli(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).stderr(Stdio::null()).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Ids of every container, running or not, labelled with `app`.
fn containers_of(app: &str) -> Vec<String> {
    let filter = format!("label=io.paas.app={app}");
    docker_cli(&["ps", "--all", "--quiet", "--no-trunc", "--filter", &filter])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Builds the `envserver` fixture into an image of the test's own (cleaned up with it).
fn build_envserver(cleanup: &mut Cleanup) -> String {
    let tag = format!("paas-runner-test/envserver:{}", cleanup.app);
    cleanup.images.push(tag.clone());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/envserver");
    let output = Command::new("docker")
        .args(["build", "--quiet", "--tag", &tag])
        .arg(&dir)
        // The classic builder: Docker 20.10, no BuildKit frontend to pull.
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(output.status.success(), "docker build: {}", String::from_utf8_lossy(&output.stderr));
    tag
}

fn spec(app: &str, process_type: &str, index: u32, image: &str, command: &str) -> ProcessSpec {
    let mut spec = ProcessSpec::new(app, 3, process_type, index, image);
    spec.command = (!command.is_empty()).then(|| command.to_string());
    if process_type == "web" {
        spec.port = Some(PORT);
    }
    spec
}

/// Polls `check` every 100 ms until it yields a value, or panics after `limit`.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every line the container has logged so far.
async fn log_text(runner: &Runner, id: &str) -> String {
    let lines: Vec<_> = runner.logs(id, false, None).collect().await;
    lines.into_iter().map(|l| l.unwrap().line).collect::<Vec<_>>().join("\n")
}

async fn get_env(addr: SocketAddr) -> BTreeMap<String, String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let response = client.get(format!("http://{addr}/")).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// Stops `process` while following its log; returns how long the stop took and the lines
/// the process wrote meanwhile.
async fn stop_following(runner: &Runner, process: &Process, grace: Duration) -> (Duration, String) {
    let follow = runner.logs(&process.container_id, true, Some(0));
    let lines = tokio::spawn(async move {
        let lines: Vec<_> = follow.collect().await;
        lines.into_iter().filter_map(Result::ok).map(|l| l.line).collect::<Vec<_>>().join("\n")
    });
    // The follow request must be in place before the signal.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    runner.stop(&process.container_id, grace).await.unwrap();
    let took = started.elapsed();
    let lines = tokio::time::timeout(Duration::from_secs(5), lines).await.unwrap().unwrap();
    (took, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_processes_get_their_env_pass_the_check_and_stop_gracefully() {
    let app = unique_app("web");
    let mut cleanup = Cleanup::new(&app);
    let image = build_envserver(&mut cleanup);
    let runner = runner().await;

    // web.1 runs the image's CMD, web.2 a command (through the shell, exec'd).
    let mut one = spec(&app, "web", 1, &image, "");
    one.env.insert("GREETING".into(), "hello from config".into());
    one.memory_mb = Some(128);
    let mut two = spec(&app, "web", 2, &image, "python3 /app/app.py");
    two.env = one.env.clone();
    let (one, two) = tokio::join!(runner.start(&one), runner.start(&two));
    let (one, two) = (one.unwrap(), two.unwrap());
    assert!(one.name.starts_with(&format!("paas-{app}-web.1-v3-")), "{}", one.name);
    assert_eq!((one.state, one.restart_count, one.release), (ProcessState::Running, 0, 3));
    assert_eq!(one.addr.unwrap().port(), PORT);

    let check = HealthCheck { path: Some("/health".into()), ..Default::default() };
    let started = Instant::now();
    let (a, b) = tokio::join!(runner.wait_healthy(&one, &check), runner.wait_healthy(&two, &check));
    a.unwrap();
    b.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));

    for (process, name) in [(&one, "web.1"), (&two, "web.2")] {
        let env = get_env(process.addr.unwrap()).await;
        assert_eq!(env["PORT"], "5000");
        assert_eq!(env["PAAS_APP"], app);
        assert_eq!(env["PAAS_RELEASE"], "v3");
        assert_eq!(env["PAAS_PROCESS"], name);
        assert_eq!(env["GREETING"], "hello from config");
    }

    // Security settings, as Docker reports them.
    let inspect = docker().await.inspect_container(&one.container_id, None).await.unwrap();
    let host = inspect.host_config.unwrap();
    assert_eq!(host.privileged, Some(false));
    assert_eq!(host.network_mode.as_deref(), Some(runner.network_id().as_str()));
    assert_eq!(host.memory, Some(128 << 20));
    assert_eq!(host.memory_swap, Some(128 << 20));
    assert!(host.binds.unwrap_or_default().is_empty());
    assert!(
        inspect
            .mounts
            .unwrap_or_default()
            .iter()
            .all(|m| { !m.source.as_deref().unwrap_or_default().contains("docker.sock") })
    );
    assert!(host.port_bindings.unwrap_or_default().is_empty(), "no host ports");
    assert_eq!(host.security_opt.unwrap(), ["no-new-privileges"]);
    assert!(host.cap_drop.unwrap().contains(&"NET_RAW".to_string()));
    assert_eq!(host.init, Some(true));
    assert_eq!(host.restart_policy.unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
    let log_config = host.log_config.unwrap();
    assert_eq!(log_config.typ.as_deref(), Some("json-file"));
    assert_eq!(log_config.config.unwrap()["max-file"], "3");
    assert!(inspect.network_settings.unwrap().networks.unwrap().contains_key(NETWORK));
    let labels = inspect.config.unwrap().labels.unwrap();
    assert_eq!(labels["io.paas.managed"], "true");
    assert_eq!(labels["io.paas.process"], "web");
    assert_eq!(labels["io.paas.index"], "1");

    // Logs: stdout and stderr, timestamped, including the health check's request.
    let lines: Vec<_> = runner.logs(&one.container_id, false, None).collect().await;
    let lines: Vec<_> = lines.into_iter().map(Result::unwrap).collect();
    let said = |text: &str, stream: LogStream| {
        lines.iter().any(|l| l.line == text && l.stream == stream && l.timestamp.ends_with('Z'))
    };
    assert!(said("listening on 5000", LogStream::Stdout), "{lines:?}");
    assert!(said("ready", LogStream::Stderr), "{lines:?}");
    assert!(said("request /health", LogStream::Stdout), "{lines:?}");
    let last: Vec<_> = runner.logs(&one.container_id, false, Some(1)).collect().await;
    assert_eq!(last.len(), 1);

    // Graceful stop: the app hears SIGTERM and exits well within the grace period.
    for process in [&one, &two] {
        let (took, said) = stop_following(&runner, process, Duration::from_secs(10)).await;
        assert!(said.contains("got SIGTERM, shutting down"), "{}: {said:?}", process.name);
        assert!(took < Duration::from_secs(5), "{}: stop took {took:?}", process.name);
        assert_eq!(runner.process(&process.container_id).await.unwrap(), None);
    }
    // Stopping what is gone is fine.
    runner.stop(&one.container_id, Duration::from_secs(1)).await.unwrap();
    assert!(containers_of(&app).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_ignores_sigterm_is_killed_after_the_grace() {
    let app = unique_app("term");
    let _cleanup = Cleanup::new(&app);
    let runner = runner().await;
    let stubborn = spec(&app, "worker", 1, BASE, "trap '' TERM; echo ignoring SIGTERM; sleep 60");
    let process = runner.start(&stubborn).await.unwrap();
    eventually("the trap", Duration::from_secs(10), || async {
        log_text(&runner, &process.container_id).await.contains("ignoring SIGTERM").then_some(())
    })
    .await;
    let grace = Duration::from_secs(1);
    let started = Instant::now();
    runner.stop(&process.container_id, grace).await.unwrap();
    let took = started.elapsed();
    assert!(took >= grace && took < Duration::from_secs(6), "stop took {took:?}");
    assert!(containers_of(&app).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_never_listens_fails_its_check_within_the_budget() {
    let app = unique_app("deaf");
    let _cleanup = Cleanup::new(&app);
    let runner = runner().await;
    let deaf = spec(
        &app,
        "web",
        1,
        BASE,
        "echo booting but never listening; python3 -c 'import time; time.sleep(60)'",
    );
    let process = runner.start(&deaf).await.unwrap();
    let check = HealthCheck {
        path: Some("/".into()),
        timeout: Duration::from_secs(2),
        wait: Duration::from_millis(200),
        ..Default::default()
    };
    let started = Instant::now();
    let error = runner.wait_healthy(&process, &check).await.unwrap_err();
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(4), "{took:?}");
    match &error {
        RunError::Unhealthy { process, reason, log_tail } => {
            assert_eq!(process, "web.1");
            assert!(reason.starts_with("not healthy within 2s"), "{reason}");
            assert!(reason.contains("cannot connect"), "{reason}");
            assert!(log_tail.contains("booting but never listening"), "{log_tail:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.code(), "process_unhealthy");
    // The check leaves the container to the caller.
    let still = runner.process(&process.container_id).await.unwrap().unwrap();
    assert_eq!(still.state, ProcessState::Running);
    runner.stop(&process.container_id, Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_process_fails_its_check_at_once_and_docker_restarts_it() {
    let app = unique_app("crash");
    let _cleanup = Cleanup::new(&app);
    let mine = app.clone();
    let runner = runner().await;
    let mut events = Box::pin(runner.events().filter(move |e| std::future::ready(e.app == mine)));
    let crashing = spec(&app, "web", 1, BASE, "echo crashing on purpose >&2; exit 3");
    let process = runner.start(&crashing).await.unwrap();

    let started = Instant::now();
    let error = runner.wait_healthy(&process, &HealthCheck::default()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    match &error {
        RunError::Exited { process, exit_code, oom_killed, log_tail } => {
            assert_eq!((process.as_str(), *exit_code, *oom_killed), ("web.1", Some(3), false));
            assert!(log_tail.contains("crashing on purpose"), "{log_tail:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.to_string(), "web.1 exited with code 3 before it became healthy");

    // Docker restarts it with backoff; paas sees the crash loop in list() and in events.
    let looping = eventually("restarts", Duration::from_secs(15), || async {
        let list = runner.list(Some(&app)).await.unwrap();
        list.into_iter().find(|p| p.restart_count >= 2)
    })
    .await;
    assert_eq!(looping.container_id, process.container_id);
    let mine: Vec<_> = events.as_mut().take(4).collect().await;
    let kinds: Vec<_> = mine.iter().map(|e| e.kind).collect();
    let died = ProcessEventKind::Died { exit_code: Some(3) };
    assert_eq!(
        kinds,
        [ProcessEventKind::Started, died, ProcessEventKind::Started, died],
        "{mine:?}"
    );
    assert!(mine.iter().all(|e| e.container_id == process.container_id
        && e.process_type == "web"
        && e.index == 1
        && e.release == 3
        && e.name == process.name));

    // A crash-looping container stops like any other.
    runner.stop(&process.container_id, Duration::from_secs(1)).await.unwrap();
    assert!(containers_of(&app).is_empty());
    let removed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            if event.kind == ProcessEventKind::Removed {
                return event;
            }
        }
        unreachable!("the event stream never ends")
    })
    .await
    .unwrap();
    assert_eq!(removed.container_id, process.container_id);
}

/// What a one-off run gave: its exit code (or error), its stdout and its stderr.
struct Ran {
    result: Result<i64, RunError>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `spec` once with `input`, reading its output while it runs, as callers must.
async fn run_once(
    runner: &Runner,
    spec: &ProcessSpec,
    input: Option<StdinStream>,
    limit: Duration,
) -> Ran {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let run = runner.run_once_with_input(spec, input, tx, limit);
    let read = async {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = rx.recv().await {
            match chunk.stream {
                LogStream::Stdout => stdout.extend_from_slice(&chunk.bytes),
                LogStream::Stderr => stderr.extend_from_slice(&chunk.bytes),
            }
        }
        (stdout, stderr)
    };
    let (result, (stdout, stderr)) = tokio::join!(run, read);
    Ran { result, stdout, stderr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_off_runs_stream_output_return_the_exit_code_and_leave_nothing() {
    let app = unique_app("once");
    let _cleanup = Cleanup::new(&app);
    let runner = runner().await;
    let limit = Duration::from_secs(30);

    let mut release = spec(
        &app,
        "release",
        1,
        BASE,
        "echo \"migrating on $PAAS_RELEASE as $PAAS_PROCESS\"; echo to stderr >&2; echo \"$GREETING\"",
    );
    release.env.insert("GREETING".into(), "config reaches one-offs".into());
    let ran = run_once(&runner, &release, None, limit).await;
    assert_eq!(ran.result.unwrap(), 0);
    // stdout and stderr are two pipes, kept apart.
    assert_eq!(ran.stdout, b"migrating on v3 as release.1\nconfig reaches one-offs\n");
    assert_eq!(ran.stderr, b"to stderr\n");

    // Bytes as written: a line longer than Docker's 16 KiB log records, not text, and no
    // newline at the end.
    let bytes = spec(&app, "run", 1, BASE, "head -c 40000 /dev/zero | tr '\\0' x; printf '\\377'");
    let ran = run_once(&runner, &bytes, None, limit).await;
    assert_eq!(ran.result.unwrap(), 0);
    assert!(ran.stdout.len() == 40_001 && ran.stdout[..40_000].iter().all(|b| *b == b'x'));
    assert_eq!(ran.stdout.last(), Some(&0xff));

    // Input for the process (`paas run … < dump.sql`): all of it, then end of file. 300 KB,
    // more than a pipe holds, so it really streams while the process reads.
    let reader = spec(&app, "run", 1, BASE, "wc -c; head -c 3 /dev/stdin; echo done");
    let chunks: Vec<std::io::Result<Vec<u8>>> = (0..300).map(|_| Ok(vec![b'x'; 1000])).collect();
    let input = futures_util::stream::iter(chunks).boxed();
    let ran = run_once(&runner, &reader, Some(input), limit).await;
    assert_eq!(ran.result.unwrap(), 0);
    assert_eq!(ran.stdout, b"300000\ndone\n", "every byte, then end of file");

    // Input that breaks off (the uploader went away) is not an end of file: the process is
    // killed before it acts on half of it.
    let careful = spec(&app, "run", 1, BASE, "cat >/dev/null && echo acted on all of it");
    let broken = vec![Ok(b"half a dump".to_vec()), Err(std::io::Error::other("connection reset"))];
    let input = futures_util::stream::iter(broken).boxed();
    let ran = run_once(&runner, &careful, Some(input), limit).await;
    assert_eq!(ran.result.unwrap(), 137);
    assert_eq!(ran.stdout, b"", "it never acted");

    let failing = spec(&app, "release", 1, BASE, "echo nope; exit 7");
    assert_eq!(run_once(&runner, &failing, None, limit).await.result.unwrap(), 7);

    // Over its memory limit: killed, and the output says why.
    let mut greedy = spec(&app, "run", 1, BASE, "python3 -c 'x = bytearray(200 << 20)'");
    greedy.memory_mb = Some(32);
    let ran = run_once(&runner, &greedy, None, limit).await;
    assert_eq!(ran.result.unwrap(), 137);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(stderr.ends_with("paas: the process was killed: out of memory (32 MB)\n"), "{stderr}");

    let slow = spec(&app, "run", 1, BASE, "sleep 30");
    let started = Instant::now();
    let error = run_once(&runner, &slow, None, Duration::from_secs(1)).await.result.unwrap_err();
    assert!(matches!(error, RunError::TimedOut { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(containers_of(&app).is_empty(), "one-off containers are removed");

    // A caller that goes away (a `paas run` client hanging up) takes its container along.
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let abandoned = {
        let runner = runner.clone();
        let tx = tx.clone();
        tokio::spawn(async move { runner.run_once(&slow, tx, limit).await })
    };
    eventually("the one-off container", Duration::from_secs(10), || async {
        (!containers_of(&app).is_empty()).then_some(())
    })
    .await;
    abandoned.abort();
    eventually("its removal", Duration::from_secs(10), || async {
        containers_of(&app).is_empty().then_some(())
    })
    .await;

    let missing = spec(&app, "run", 1, "paas-runner-test/missing:nope", "true");
    let error = runner.run_once(&missing, tx, limit).await.unwrap_err();
    assert!(matches!(&error, RunError::ImageMissing { image } if image.ends_with("missing:nope")));
}

/// A reader that falls behind holds the process up: what it has not read waits in the
/// process's pipe, not in paas. The process counts the 64 KB blocks it has written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_off_output_waits_for_its_reader() {
    let app = unique_app("slow");
    let _cleanup = Cleanup::new(&app);
    let runner = runner().await;
    let producer = "i=0; while [ $i -lt 1000 ]; do head -c 65536 /dev/zero; i=$((i+1)); \
                    echo $i > /tmp/blocks; done";
    let spec = spec(&app, "run", 1, BASE, producer);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let run = tokio::spawn({
        let runner = runner.clone();
        async move { runner.run_once(&spec, tx, Duration::from_secs(60)).await }
    });
    let blocks = || {
        let ids = containers_of(&app);
        let count = ids.first().map(|id| docker_cli(&["exec", id, "cat", "/tmp/blocks"]));
        count.unwrap_or_default().trim().parse::<u64>().unwrap_or(0)
    };
    eventually("the first blocks", Duration::from_secs(15), || async {
        (blocks() > 0).then_some(())
    })
    .await;
    // Nobody reads: Docker's and the sockets' buffers fill, then the process waits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = blocks();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(blocks(), stalled, "it went on writing with nobody reading");
    assert!(stalled < 1000, "all of it was taken while nobody read");
    assert!(!run.is_finished());

    // Reading again, all of it arrives, and the process ends.
    let mut read = 0;
    while let Some(chunk) = rx.recv().await {
        read += chunk.bytes.len();
    }
    assert_eq!(run.await.unwrap().unwrap(), 0);
    assert_eq!(read, 1000 * 65536);
    eprintln!("stalled after {stalled} of 1000 blocks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_rebuilds_processes_from_labels_and_strays_are_removed() {
    let app = unique_app("list");
    let _cleanup = Cleanup::new(&app);
    let first = runner().await;
    let web =
        first.start(&spec(&app, "web", 1, BASE, "python3 -m http.server $PORT")).await.unwrap();
    let worker = first.start(&spec(&app, "worker", 1, BASE, "sleep 60")).await.unwrap();
    first.wait_healthy(&web, &HealthCheck::default()).await.unwrap();
    // No port: passes when it is still running after `wait`.
    first.wait_healthy(&worker, &HealthCheck::default()).await.unwrap();

    // A new runner (paas restarted) knows nothing but what Docker's labels say.
    let second = runner().await;
    let listed = second.list(Some(&app)).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (listed_web, listed_worker) = (&listed[0], &listed[1]);
    assert_eq!(listed_web, &second.process(&web.container_id).await.unwrap().unwrap());
    assert_eq!(
        (listed_web.app.as_str(), listed_web.release, listed_web.process_type.as_str()),
        (app.as_str(), 3, "web")
    );
    assert_eq!((listed_web.index, listed_web.one_off), (1, false));
    assert_eq!((listed_web.addr, listed_web.port), (web.addr, Some(PORT)));
    assert_eq!(listed_web.name, web.name);
    assert_eq!(listed_web.image, BASE);
    assert_eq!(listed_web.state, ProcessState::Running);
    assert!(listed_web.uptime().is_some() && listed_web.started_at.is_some());
    assert_eq!(listed_web.exit_code, None);
    assert_eq!(listed_worker.container_id, worker.container_id);
    assert_eq!(
        (listed_worker.process_type.as_str(), listed_worker.addr, listed_worker.port),
        ("worker", None, None)
    );

    let everything = second.list(None).await.unwrap();
    assert!(everything.iter().any(|p| p.container_id == worker.container_id));
    // Another network's runner does not see them.
    let elsewhere = Cleanup {
        app: format!("{app}-elsewhere"),
        images: Vec::new(),
        networks: vec![format!("{NETWORK}-{app}")],
    };
    let other = Runner::connect(RunnerConfig {
        network: elsewhere.networks[0].clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(other.list(Some(&app)).await.unwrap().is_empty());
    drop(elsewhere);

    let keep = HashSet::from([web.container_id.clone()]);
    let removed = second.remove_strays(Some(&app), &keep).await.unwrap();
    assert_eq!(removed, [worker.name.as_str()]);
    let left = second.list(Some(&app)).await.unwrap();
    assert_eq!(
        left.iter().map(|p| p.container_id.as_str()).collect::<Vec<_>>(),
        [web.container_id.as_str()]
    );
    second.stop(&web.container_id, Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_creates_the_network_once_even_when_racing() {
    let app = unique_app("net");
    let mut cleanup = Cleanup::new(&app);
    let network = format!("{NETWORK}-{app}");
    cleanup.networks.push(network.clone());
    let config = RunnerConfig { network: network.clone(), ..Default::default() };
    let runners = futures_util::future::join_all((0..4).map(|_| Runner::connect(config.clone())))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect::<Vec<_>>();
    let ids: HashSet<_> = runners.iter().map(|r| r.network_id().to_string()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let again = Runner::connect(config).await.unwrap();
    assert!(ids.contains(&again.network_id()));
    let named = docker_cli(&[
        "network",
        "ls",
        "--quiet",
        "--no-trunc",
        "--filter",
        &format!("name=^{network}$"),
    ]);
    assert_eq!(named.lines().collect::<Vec<_>>(), [again.network_id().as_str()]);
    let driver = docker_cli(&["network", "inspect", "--format", "{{.Driver}}", &network]);
    assert_eq!(driver.trim(), "bridge");

    // A network removed behind the runner's back is made again on the next start.
    let old_id = again.network_id();
    let twin = again.clone();
    docker_cli(&["network", "rm", &network]);
    let process = again.start(&spec(&app, "worker", 1, BASE, "sleep 60")).await.unwrap();
    assert_ne!(again.network_id(), old_id);
    assert_eq!(twin.network_id(), again.network_id(), "clones share it");
    assert_eq!(process.state, ProcessState::Running);
    again.stop(&process.container_id, Duration::from_secs(5)).await.unwrap();

    // Invalid specs fail before Docker is asked.
    let bad = spec("Not_An_App", "web", 1, BASE, "");
    assert!(matches!(again.start(&bad).await, Err(RunError::InvalidSpec(_))));
}
