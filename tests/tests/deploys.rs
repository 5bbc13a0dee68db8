//! The deploy pipeline through the server's operations, with the real Docker engine: a build
//! is recorded with its log, a good one makes a release, a bad one makes none.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::PathBuf;

use paas_builder::BuildLog;
use paas_server::core::SourceTree;
use paas_tests::{Db, TestServer, both_databases};
use reqwest::Method;
use serde_json::{Value, json};

both_databases!(builds_are_recorded_and_released);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn tree(dir: PathBuf, sha: Option<&str>) -> SourceTree {
    SourceTree {
        dir,
        source: paas_store::DeploySource::Api,
        commit_sha: sha.map(str::to_string),
        commit_message: sha.map(|_| "Add the app".to_string()),
        git_tag: None,
    }
}

async fn builds_are_recorded_and_released(db: Db) {
    let server = TestServer::start(db).await;
    let paas = &server.server.paas;
    let admin = server.admin().await;
    let name = format!("deploy-{}", if db == Db::Sqlite { "sqlite" } else { "pg" });
    server.api(Method::POST, "/apps").json(&json!({ "name": name })).send().await.unwrap();
    server
        .api(Method::PATCH, &format!("/apps/{name}/config"))
        .json(&json!({"GREETING": "hi"}))
        .send()
        .await
        .unwrap();
    let app = paas.store().app(&name).await.unwrap();

    // A good build: recorded with its log, released with its image and process types.
    let log = BuildLog::new();
    let _lock = paas.lock_deploys(&app, &log).await.unwrap();
    let release = paas
        .build_and_release(
            &admin,
            &app,
            &tree(fixture("python-stdlib"), Some("0123456789abcdef")),
            &log,
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_eq!(release.version, 3);
    assert_eq!(release.description, "Deploy 0123456");
    let repository = format!("paas/{}/app-{name}:b", server.docker_network());
    assert!(release.image.as_deref().unwrap().starts_with(&repository));
    assert!(release.process_types.contains_key("web"), "{:?}", release.process_types);
    assert_eq!(release.config.get("GREETING").map(String::as_str), Some("hi"));
    assert!(log.text().contains("Python app detected"), "{}", log.text());

    let builds: Value = server.get_json(&format!("/apps/{name}/builds")).await;
    let first = &builds[0];
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["kind"], "python");
    assert_eq!(first["commit_sha"], "0123456789abcdef");
    assert!(first.get("log").is_none(), "listings leave the log out");
    let id = first["id"].as_i64().unwrap();
    let build: Value = server.get_json(&format!("/apps/{name}/builds/{id}")).await;
    assert!(build["log"].as_str().unwrap().contains("Python app detected"));
    assert!(build["finished_at"].is_string());

    // A tree with nothing to build: a failed build with the reason, and no release.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("README.md"), "nothing to run here\n").unwrap();
    let log = BuildLog::new();
    let err = paas
        .build_and_release(
            &admin,
            &app,
            &tree(empty.path().into(), None),
            &log,
            std::future::pending(),
        )
        .await;
    let err = err.unwrap_err();
    assert_eq!(err.code(), "no_app_detected", "{err}");
    let builds = paas.store().builds(&app).await.unwrap();
    assert_eq!(builds[0].status, paas_store::BuildStatus::Failed);
    let failed = paas.store().build(&app, builds[0].id).await.unwrap();
    assert!(failed.error.as_deref().unwrap_or_default().contains("Procfile"), "{failed:?}");
    assert!(!failed.log.is_empty());
    assert_eq!(paas.store().latest_release(&app).await.unwrap().unwrap().version, 3);

    if let Some(image) = &release.image {
        let docker = bollard::Docker::connect_with_local_defaults().unwrap();
        let _ = docker
            .remove_image(image, None::<bollard::query_parameters::RemoveImageOptions>, None)
            .await;
    }
}

/// A small app that answers with the config it runs with.
fn env_app(dir: &std::path::Path, web: &str) {
    std::fs::write(dir.join("requirements.txt"), "").unwrap();
    std::fs::write(dir.join("Procfile"), format!("web: {web}\n")).unwrap();
    std::fs::write(
        dir.join("app.py"),
        r#"import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            os._exit(3)
        keys = ("GREETING", "PAAS_RELEASE", "PAAS_PROCESS", "PORT")
        body = json.dumps({k: os.environ.get(k) for k in keys}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#,
    )
    .unwrap();
}

async fn app_json(server: &TestServer, host: &str) -> Value {
    let response = server.app_request(host, "/").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A one-off run's answer (JSON lines): its stdout, its stderr, its exit code.
fn run_output(answer: &str) -> (String, String, i64) {
    use paas_server::wire::RunEvent;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for line in answer.lines() {
        match serde_json::from_str(line).unwrap() {
            RunEvent::Stdout(bytes) => stdout.extend_from_slice(&bytes),
            RunEvent::Stderr(bytes) => stderr.extend_from_slice(&bytes),
            RunEvent::Exit(code) => {
                let text = |bytes| String::from_utf8(bytes).unwrap();
                return (text(stdout), text(stderr), code);
            }
            RunEvent::Error(message) => panic!("{message}"),
        }
    }
    panic!("no exit code in {answer}")
}

/// Reads a streaming response until `needle` appears (at most 15 s); what was read.
async fn read_until(response: &mut reqwest::Response, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut streamed = String::new();
    while !streamed.contains(needle) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk()).await;
        let chunk = chunk.unwrap_or_else(|_| panic!("no {needle:?} in time in:\n{streamed}"));
        streamed.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("stream open")));
    }
    streamed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_roll_out_and_failures_keep_the_old_release() {
    let server = TestServer::start(Db::Sqlite).await;
    let paas = &server.server.paas;
    let admin = server.admin().await;
    server.api(Method::POST, "/apps").json(&json!({"name": "rollout"})).send().await.unwrap();
    server
        .api(Method::PATCH, "/apps/rollout/config")
        .json(&json!({"GREETING": "hi", "PAAS_HEALTHCHECK_TIMEOUT": "8", "PAAS_MEMORY_MB_WEB": "256"}))
        .send()
        .await
        .unwrap();
    let app = paas.store().app("rollout").await.unwrap();
    let source = tempfile::tempdir().unwrap();
    env_app(source.path(), "python3 app.py");

    // Nothing to run a command in before the first deploy.
    let response = server
        .api(Method::POST, "/apps/rollout/run")
        .json(&json!({"command": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);

    // First deploy: built, released, web=1 started, health-checked, routed.
    let log = BuildLog::new();
    let release = paas.deploy(&admin, &app, &tree(source.path().into(), None), &log).await.unwrap();
    assert_eq!(release.version, 3);
    let seen = app_json(&server, "rollout.localhost").await;
    assert_eq!(
        seen,
        json!({"GREETING": "hi", "PAAS_RELEASE": "v3", "PAAS_PROCESS": "web.1", "PORT": "5000"})
    );
    assert!(log.text().contains("Released v3"), "{}", log.text());
    let formation = paas.formation(&app).await.unwrap();
    assert_eq!(formation.get("web"), Some(&1));
    // The memory limit the config asks for.
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let web = paas.processes(&app).await.unwrap().remove(0);
    let inspect = docker.inspect_container(&web.container_id, None).await.unwrap();
    assert_eq!(inspect.host_config.unwrap().memory, Some(256 << 20));

    // A config change rolls out a new release with no build.
    let response = server
        .api(Method::PATCH, "/apps/rollout/config")
        .json(&json!({"GREETING": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = app_json(&server, "rollout.localhost").await;
    assert_eq!(seen["GREETING"], "hello");
    assert_eq!(seen["PAAS_RELEASE"], "v4");

    // Logs: history, then new lines live with tail=true.
    let history = server
        .api(Method::GET, "/apps/rollout/logs?num=50")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(history.contains("app[web.1]: ") && history.contains("GET / HTTP/1.1"), "{history}");
    // paas's own lines are there too, in time order with the app's.
    for expected in [
        "paas[deploy]: Build 1 started by admin (api)",
        "paas[deploy]: Release v3 created by admin: Deploy build 1",
        "paas[deploy]: v3 is live",
        "paas[deploy]: Release v4 created by admin: Set GREETING config vars",
    ] {
        assert!(history.contains(expected), "no {expected:?} in\n{history}");
    }
    let times: Vec<&str> = history.lines().filter_map(|l| l.split(' ').next()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "history in time order:\n{history}");
    let mut live =
        server.api(Method::GET, "/apps/rollout/logs?tail=true&num=0&ps=web").send().await.unwrap();
    assert_eq!(live.status(), 200);
    server.app_request("rollout.localhost", "/?marker=live-line").await;
    read_until(&mut live, "marker=live-line").await;
    drop(live);
    let web_only = server.api(Method::GET, "/apps/rollout/logs?num=50&ps=web").send().await;
    let web_only = web_only.unwrap().text().await.unwrap();
    assert!(web_only.contains("app[web.1]: "), "{web_only}");
    assert!(!web_only.contains("paas[deploy]"), "--ps web leaves the deploy lines out: {web_only}");

    // A one-off command: the release's config, its output, its exit code, no container left.
    let output = server
        .api(Method::POST, "/apps/rollout/run")
        .json(&json!({"command": "echo \"$GREETING from $PAAS_PROCESS\"; exit 3"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(run_output(&output), ("hello from run.1\n".into(), String::new(), 3), "{output}");
    // A caller that hangs up (Ctrl-C of `paas run`) takes its one-off container along.
    let running = server
        .api(Method::POST, "/apps/rollout/run")
        .json(&json!({"command": "sleep 600"}))
        .send()
        .await
        .unwrap();
    let one_app = &app;
    let count = |n| async move { paas.processes(one_app).await.unwrap().len() == n };
    let limit = std::time::Duration::from_secs(15);
    paas_tests::wait_until("the one-off starts", limit, || count(2)).await;
    drop(running);
    paas_tests::wait_until("the abandoned one-off goes", limit, || count(1)).await;

    // As bytes, the body is the command (a JSON line), then its standard input.
    let output = server
        .api(Method::POST, "/apps/rollout/run")
        .header("content-type", "application/octet-stream")
        .body("{\"command\": \"tr a-z A-Z\"}\nfed through stdin\n")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(run_output(&output), ("FED THROUGH STDIN\n".into(), String::new(), 0), "{output}");
    assert_eq!(paas.processes(&app).await.unwrap().len(), 1, "the one-off container is gone");

    // A release whose web process never listens fails its health check; v4 keeps serving.
    env_app(source.path(), "sleep 600");
    let log = BuildLog::new();
    let err = paas.deploy(&admin, &app, &tree(source.path().into(), None), &log).await.unwrap_err();
    assert!(err.to_string().contains("healthy"), "{err}");
    assert!(log.text().contains("Release v5 failed"), "{}", log.text());
    let v5 = paas.release(&app, 5).await.unwrap();
    assert_eq!(v5.status, paas_store::ReleaseStatus::Failed);
    assert_eq!(app_json(&server, "rollout.localhost").await["PAAS_RELEASE"], "v4");

    let processes = paas.processes(&app).await.unwrap();
    assert_eq!(processes.len(), 1, "{processes:?}");
    assert_eq!((processes[0].release, processes[0].process_type.as_str()), (4, "web"));

    // paas restarts: it adopts v4's container as it is (no restart) and routes to it again.
    let server = server.restart().await;
    let paas = &server.server.paas;
    assert_eq!(app_json(&server, "rollout.localhost").await["PAAS_RELEASE"], "v4");
    let adopted = paas.processes(&app).await.unwrap();
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0].container_id, processes[0].container_id, "the same container");

    // Scale up: a second web process joins without touching the first; both get traffic, and
    // a tail started before it follows it too.
    let mut live =
        server.api(Method::GET, "/apps/rollout/logs?tail=true&num=0").send().await.unwrap();
    let response = server
        .api(Method::PATCH, "/apps/rollout/formation")
        .json(&json!({"web": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let two = paas.processes(&app).await.unwrap();
    assert_eq!(two.len(), 2, "{two:?}");
    assert!(two.iter().any(|p| p.container_id == adopted[0].container_id), "web.1 untouched");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        seen.insert(app_json(&server, "rollout.localhost").await["PAAS_PROCESS"].clone());
    }
    assert_eq!(seen.len(), 2, "both web processes answer: {seen:?}");
    let streamed = read_until(&mut live, "app[web.2]: ").await;
    assert!(streamed.contains("paas[deploy]: Scaling to web=2"), "{streamed}");
    drop(live);
    server
        .api(Method::PATCH, "/apps/rollout/formation")
        .json(&json!({"web": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(paas.processes(&app).await.unwrap().len(), 1);

    // A restart replaces the process with a fresh one, same release, no downtime.
    let before = paas.processes(&app).await.unwrap();
    let response = server
        .api(Method::POST, "/apps/rollout/ps/restart")
        .json(&json!({"process_type": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let after = paas.processes(&app).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].container_id, before[0].container_id);
    assert_eq!(app_json(&server, "rollout.localhost").await["PAAS_RELEASE"], "v4");
    let response = server
        .api(Method::POST, "/apps/rollout/ps/restart")
        .json(&json!({"process_type": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);

    // Roll back to v3: its code and config, as a new release, with no build.
    let response = server
        .api(Method::POST, "/apps/rollout/rollback")
        .json(&json!({"version": "v3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rolled: Value = response.json().await.unwrap();
    assert_eq!(rolled["version"], 6);
    assert_eq!(rolled["description"], "Rollback to v3");
    let seen = app_json(&server, "rollout.localhost").await;
    assert_eq!(
        (seen["GREETING"].as_str(), seen["PAAS_RELEASE"].as_str()),
        (Some("hi"), Some("v6"))
    );
    let config: Value = server.get_json("/apps/rollout/config").await;
    assert_eq!(config["GREETING"], "hi", "the config is back to v3's");

    // Pruning keeps the newest releases' images and the running one: v5's failed build goes.
    let v5_image = paas.release(&app, 5).await.unwrap().image.unwrap();
    let v6_image = paas.release(&app, 6).await.unwrap().image.unwrap();
    paas.prune_images(&app, 1).await.unwrap();
    assert!(docker.inspect_image(&v5_image).await.is_err(), "{v5_image} pruned");
    assert!(docker.inspect_image(&v6_image).await.is_ok(), "the running image stays");

    // A crash: Docker restarts the process, paas routes to it again once it is healthy.
    let before = paas.processes(&app).await.unwrap();
    let _ = server.app_request("rollout.localhost", "/crash").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let restarted = paas.processes(&app).await.unwrap();
        let restarts = restarted.first().map(|p| p.restart_count).unwrap_or(0);
        let response = server.app_request("rollout.localhost", "/").await;
        if restarts > before[0].restart_count && response.status() == 200 {
            let seen: Value = response.json().await.unwrap();
            assert_eq!(seen["PAAS_RELEASE"], "v6");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not serving again after a crash");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let history = server.api(Method::GET, "/apps/rollout/logs").send().await.unwrap();
    let history = history.text().await.unwrap();
    for expected in [
        "paas[web.1]: Process of v6 exited with code 3",
        "paas[web.1]: Out of the router until it is healthy again",
        "paas[web.1]: Healthy again (restart 1); back in the router",
    ] {
        assert!(history.contains(expected), "no {expected:?} in\n{history}");
    }

    // Destroying the app stops its processes; the router forgets it.
    let response = server.api(Method::DELETE, "/apps/rollout").send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(server.app_request("rollout.localhost", "/").await.status(), 404);
    assert!(paas.processes(&app).await.unwrap().is_empty());
}

/// Scaling up a process type that crashes says so, with its last lines; a deploy that runs
/// no web process says the app will answer 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_reports_crashes_and_web_at_zero() {
    let server = TestServer::start(Db::Sqlite).await;
    let paas = &server.server.paas;
    let admin = server.admin().await;
    server.api(Method::POST, "/apps").json(&json!({"name": "scaler"})).send().await.unwrap();
    let app = paas.store().app("scaler").await.unwrap();
    let source = tempfile::tempdir().unwrap();
    env_app(source.path(), "python3 app.py");
    let procfile = "web: python3 app.py\n\
                    crashy: echo \"boom in $PAAS_PROCESS\"; exit 2\n\
                    steady: sleep 600\n";
    std::fs::write(source.path().join("Procfile"), procfile).unwrap();
    let log = BuildLog::new();
    paas.deploy(&admin, &app, &tree(source.path().into(), None), &log).await.unwrap();
    assert!(!log.text().contains("scaled to 0"), "{}", log.text());

    let server = &server;
    let scale = |changes: Value| async move {
        let response = server
            .api(Method::PATCH, "/apps/scaler/formation")
            .json(&changes)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json::<Value>().await.unwrap())
    };
    let started = std::time::Instant::now();
    let (status, body) = scale(json!({"crashy": 1})).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("crashy.1") && message.contains("crash"), "{message}");
    assert!(message.contains("boom in crashy.1"), "the last lines: {message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(40), "bounded");
    let (status, body) = scale(json!({"crashy": 0, "steady": 1})).await;
    assert_eq!(status, 200, "a process that keeps running is fine: {body}");
    assert_eq!(body, json!({"crashy": 0, "steady": 1, "web": 1}));

    // web=0: the deploy goes through and says the app answers 503 until web is scaled up.
    let (status, body) = scale(json!({"web": 0})).await;
    assert_eq!(status, 200, "{body}");
    let log = BuildLog::new();
    paas.deploy(&admin, &app, &tree(source.path().into(), None), &log).await.unwrap();
    let text = log.text();
    assert!(
        text.contains("web is scaled to 0: the app will answer 503 until `paas ps:scale web=1`"),
        "{text}"
    );
    assert_eq!(server.app_request("scaler.localhost", "/").await.status(), 503);
    server.api(Method::DELETE, "/apps/scaler").send().await.unwrap();
}

/// The zero-downtime proof: steady load through the router across 10 consecutive rollouts,
/// and not one failed request. Prints deploy-to-live and rollback-to-live times, which
/// `bench/deploys.sh` collects for docs/benchmarks.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_rollouts_under_load_fail_no_request() {
    use std::time::{Duration, Instant};

    let server = TestServer::start(Db::Sqlite).await;
    let paas = &server.server.paas;
    let admin = server.admin().await;
    server.api(Method::POST, "/apps").json(&json!({"name": "steady"})).send().await.unwrap();
    let app = paas.store().app("steady").await.unwrap();
    let source = tempfile::tempdir().unwrap();
    env_app(source.path(), "python3 app.py");
    let started = Instant::now();
    paas.deploy(&admin, &app, &tree(source.path().into(), None), &BuildLog::new()).await.unwrap();
    let first_deploy = started.elapsed();

    let load = paas_tests::Load::start(server.router, "steady.localhost", 4);

    let mut rollouts = Vec::new();
    for round in 0..10 {
        let started = Instant::now();
        let response = server
            .api(Method::PATCH, "/apps/steady/config")
            .json(&json!({ "ROUND": round.to_string() }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        rollouts.push(started.elapsed());
    }
    let started = Instant::now();
    let response =
        server.api(Method::POST, "/apps/steady/rollback").json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let rollback = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed) = load.stop().await;
    rollouts.sort();
    eprintln!(
        "BENCH requests={ok} failed={failed} first_deploy_s={:.1} rollout_median_s={:.1} \
         rollout_max_s={:.1} rollback_s={:.1}",
        first_deploy.as_secs_f64(),
        rollouts[rollouts.len() / 2].as_secs_f64(),
        rollouts[rollouts.len() - 1].as_secs_f64(),
        rollback.as_secs_f64()
    );
    assert_eq!(failed, 0, "{failed} of {} requests failed during 11 rollouts", ok + failed);
    assert!(ok > 200, "the load kept going: {ok} requests");
    server.api(Method::DELETE, "/apps/steady").send().await.unwrap();
}
