//! The Swarm scheduler (`paas server --scheduler swarm`) on the single-node swarm `.ci/run`
//! makes (`docker swarm init --advertise-addr 127.0.0.1`): each process type a service,
//! rolled out by Swarm (start-first, health-gated, rolled back on failure), and the router
//! following the tasks.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, Instant};

use paas_builder::BuildLog;
use paas_runner::Scheduler;
use paas_server::core::SourceTree;
use paas_tests::{Db, Load, TestServer, wait_until};
use reqwest::Method;
use serde_json::{Value, json};

async fn swarm_server() -> TestServer {
    TestServer::start_with(Db::Sqlite, |config| config.scheduler = Scheduler::Swarm).await
}

/// A web app that shows its release and process, answers 500 on `/health` when `BROKEN` is
/// set (a release that never becomes healthy), and a worker that only sleeps, or exits at
/// once when `BROKEN_WORKER` is set.
fn swarm_app(dir: &Path) {
    std::fs::write(dir.join("requirements.txt"), "").unwrap();
    let worker = "test -z \"$BROKEN_WORKER\" && exec sleep infinity";
    std::fs::write(dir.join("Procfile"), format!("web: python3 app.py\nworker: {worker}\n"))
        .unwrap();
    std::fs::write(
        dir.join("app.py"),
        r#"import json, os, socket, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health" and os.environ.get("BROKEN"):
            self.send_response(500)
            self.end_headers()
            return
        if self.path == "/db":
            url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
            socket.create_connection((url.hostname, url.port), 5).close()
            body = f"{url.hostname} reached".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        keys = ("GREETING", "PAAS_RELEASE", "PAAS_PROCESS", "PORT")
        body = json.dumps({k: os.environ.get(k) for k in keys}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

print("listening on", os.environ["PORT"], "as", os.environ["PAAS_RELEASE"], flush=True)
ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#,
    )
    .unwrap();
}

fn tree(dir: &Path) -> SourceTree {
    SourceTree {
        dir: dir.to_path_buf(),
        source: paas_store::DeploySource::Api,
        commit_sha: None,
        commit_message: None,
        git_tag: None,
    }
}

/// Creates `name` with `config` and deploys [`swarm_app`] to it.
async fn deploy(server: &TestServer, name: &str, config: Value) -> tempfile::TempDir {
    let paas = &server.server.paas;
    let created = server.api(Method::POST, "/apps").json(&json!({ "name": name })).send().await;
    assert_eq!(created.unwrap().status(), 201);
    let set = server.api(Method::PATCH, &format!("/apps/{name}/config")).json(&config).send();
    assert_eq!(set.await.unwrap().status(), 200);
    let source = tempfile::tempdir().unwrap();
    swarm_app(source.path());
    let app = paas.store().app(name).await.unwrap();
    let log = BuildLog::new();
    let deployed = paas.deploy(&server.admin().await, &app, &tree(source.path()), &log).await;
    assert!(deployed.is_ok(), "{:?}\n{}", deployed.err(), log.text());
    source
}

async fn page(server: &TestServer, name: &str) -> Value {
    let response = server.app_request(&format!("{name}.localhost"), "/").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The Swarm services of this server's network, by name, with their replica counts.
fn services(server: &TestServer) -> Vec<(String, String)> {
    let label = format!("label=io.paas.network={}", server.docker_network());
    let out = std::process::Command::new("docker")
        .args(["service", "ls", "--filter", &label, "--format", "{{.Name}} {{.Replicas}}"])
        .output()
        .unwrap();
    let mut services: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(n, r)| (n.to_string(), r.to_string())))
        .collect();
    services.sort();
    services
}

/// Deploy, config change, scale to 3, restart, rollback, destroy: each through Swarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_run_as_swarm_services() {
    let server = swarm_server().await;
    let net = server.docker_network().to_string();
    let _source = deploy(&server, "fleet", json!({"GREETING": "one"})).await;
    let answer = page(&server, "fleet").await;
    assert_eq!(
        (answer["GREETING"].as_str(), answer["PAAS_RELEASE"].as_str()),
        (Some("one"), Some("v3"))
    );
    assert_eq!(answer["PAAS_PROCESS"], "web.1", "Swarm's slot numbers the process");
    assert_eq!(services(&server), [(format!("{net}-fleet-web"), "1/1".to_string())]);
    // `paas ps` lists tasks with their node.
    let ps = server.get_json("/apps/fleet/ps").await;
    let ps = ps.as_array().unwrap();
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(ps.iter().all(|p| p["node"].is_string() && p["state"] == "running"), "{ps:?}");

    // A config change is a rolling update to a new release; a tail of the log follows the
    // new task, and the app's feed says it started.
    let mut tail =
        server.api(Method::GET, "/apps/fleet/logs?tail=true&num=0").send().await.unwrap();
    let set = server.api(Method::PATCH, "/apps/fleet/config").json(&json!({"GREETING": "two"}));
    assert_eq!(set.send().await.unwrap().status(), 200);
    let mut followed = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(followed.contains("listening on 5000 as v4")
        && followed.contains("Process of v4 started"))
    {
        assert!(Instant::now() < deadline, "the tail did not follow the new task:\n{followed}");
        let chunk = tokio::time::timeout(Duration::from_secs(30), tail.chunk()).await;
        followed.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap().unwrap()));
    }
    drop(tail);
    let answer = page(&server, "fleet").await;
    assert_eq!(
        (answer["GREETING"].as_str(), answer["PAAS_RELEASE"].as_str()),
        (Some("two"), Some("v4"))
    );

    // Scale to 3, and a worker: three web tasks, all routed, and a service for the worker.
    let scaled =
        server.api(Method::PATCH, "/apps/fleet/formation").json(&json!({"web": 3, "worker": 1}));
    let scaled = scaled.send().await.unwrap();
    assert_eq!(scaled.status(), 200, "{}", scaled.text().await.unwrap());
    let ps = server.get_json("/apps/fleet/ps").await;
    let web: Vec<&Value> =
        ps.as_array().unwrap().iter().filter(|p| p["process_type"] == "web").collect();
    assert_eq!(web.len(), 3, "{ps}");
    assert_eq!(
        services(&server),
        [
            (format!("{net}-fleet-web"), "3/3".to_string()),
            (format!("{net}-fleet-worker"), "1/1".to_string())
        ]
    );
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        seen.insert(page(&server, "fleet").await["PAAS_PROCESS"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 3, "requests reach all three tasks: {seen:?}");

    // A restart replaces the tasks (new ids) with the same release.
    let before: Vec<String> =
        web.iter().map(|p| p["container_id"].as_str().unwrap().to_string()).collect();
    let restarted =
        server.api(Method::POST, "/apps/fleet/ps/restart").json(&json!({"process_type": "web"}));
    let restarted = restarted.send().await.unwrap();
    assert_eq!(restarted.status(), 200, "{}", restarted.text().await.unwrap());
    let ps = server.get_json("/apps/fleet/ps").await;
    let after: Vec<&Value> =
        ps.as_array().unwrap().iter().filter(|p| p["process_type"] == "web").collect();
    assert_eq!(after.len(), 3, "{ps}");
    assert!(
        after.iter().all(|p| !before.contains(&p["container_id"].as_str().unwrap().to_string())),
        "{ps}"
    );

    // Rollback: v5 runs v3's config.
    let back = server.api(Method::POST, "/apps/fleet/rollback").json(&json!({"version": "v3"}));
    let back = back.send().await.unwrap();
    assert_eq!(back.status(), 200, "{}", back.text().await.unwrap());
    let answer = page(&server, "fleet").await;
    assert_eq!(
        (answer["GREETING"].as_str(), answer["PAAS_RELEASE"].as_str()),
        (Some("one"), Some("v5"))
    );

    // Logs come from the tasks.
    let logs = server.api(Method::GET, "/apps/fleet/logs?num=50").send().await.unwrap();
    let logs = logs.text().await.unwrap();
    assert!(logs.contains("app[web."), "{logs}");

    // Destroying the app removes its services.
    let destroyed = server.api(Method::DELETE, "/apps/fleet").send().await.unwrap();
    assert_eq!(destroyed.status(), 204);
    assert_eq!(services(&server), []);
}

/// A release whose health check fails: Swarm rolls its update back, the old release serves
/// every request meanwhile, and the release is marked failed with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_rolls_back_a_release_that_fails_its_health_check() {
    let server = swarm_server().await;
    let config = json!({"PAAS_HEALTHCHECK_PATH": "/health", "PAAS_HEALTHCHECK_TIMEOUT": "3"});
    let _source = deploy(&server, "careful", config).await;
    assert_eq!(page(&server, "careful").await["PAAS_RELEASE"], "v3");

    let load = Load::start(server.router, "careful.localhost", 4);
    let broken = server.api(Method::PATCH, "/apps/careful/config").json(&json!({"BROKEN": "1"}));
    let broken = broken.send().await.unwrap();
    let status = broken.status();
    let body = broken.text().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("rolled the service back"), "{body}");
    let (ok, failed) = load.stop().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed while the update was rolled back",
        ok + failed
    );
    assert!(ok > 10, "{ok}");

    let releases = server.get_json("/apps/careful/releases").await;
    assert_eq!(
        (releases[0]["version"].as_i64(), releases[0]["status"].as_str()),
        (Some(4), Some("failed"))
    );
    // Swarm finished going back: v3 serves, and only v3 runs.
    wait_until("only v3 runs", Duration::from_secs(60), || async {
        let ps = server.get_json("/apps/careful/ps").await;
        ps.as_array().unwrap().iter().all(|p| p["release"] == 3)
    })
    .await;
    assert_eq!(page(&server, "careful").await["PAAS_RELEASE"], "v3");

    // A release whose worker crashes at once: Swarm rolls the worker back, and paas the web
    // service it had already updated, so the app runs one release, the one before.
    let scaled = server.api(Method::PATCH, "/apps/careful/formation").json(&json!({"worker": 1}));
    assert_eq!(scaled.send().await.unwrap().status(), 200);
    let broken =
        server.api(Method::PATCH, "/apps/careful/config").json(&json!({"BROKEN_WORKER": "1"}));
    let broken = broken.send().await.unwrap();
    assert_eq!(broken.status(), 422, "{}", broken.text().await.unwrap());
    wait_until("web and worker back on v3", Duration::from_secs(90), || async {
        let ps = server.get_json("/apps/careful/ps").await;
        let ps = ps.as_array().unwrap();
        ps.len() == 2 && ps.iter().all(|p| p["release"] == 3 && p["state"] == "running")
    })
    .await;
    assert_eq!(page(&server, "careful").await["PAAS_RELEASE"], "v3");
    server.api(Method::DELETE, "/apps/careful").send().await.unwrap();
}

/// Ten rolling updates by Swarm under steady load: not one failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_swarm_rolling_updates_under_load_fail_no_request() {
    let server = swarm_server().await;
    let _source = deploy(&server, "steady", json!({"PAAS_HEALTHCHECK_PATH": "/health"})).await;
    let load = Load::start(server.router, "steady.localhost", 4);
    let mut rollouts = Vec::new();
    for round in 0..10 {
        let started = Instant::now();
        let set = server
            .api(Method::PATCH, "/apps/steady/config")
            .json(&json!({"ROUND": round.to_string()}));
        let response = set.send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        rollouts.push(started.elapsed());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed) = load.stop().await;
    rollouts.sort();
    eprintln!(
        "BENCH swarm requests={ok} failed={failed} rollout_median_s={:.1} rollout_max_s={:.1}",
        rollouts[rollouts.len() / 2].as_secs_f64(),
        rollouts[rollouts.len() - 1].as_secs_f64(),
    );
    assert_eq!(failed, 0, "{failed} of {} requests failed during 10 rolling updates", ok + failed);
    assert!(ok > 200, "the load kept going: {ok} requests");
    assert_eq!(page(&server, "steady").await["PAAS_RELEASE"], "v13");
    server.api(Method::DELETE, "/apps/steady").send().await.unwrap();
}

/// `kill -9` of `paas server` while Swarm updates an app to a release that never becomes
/// healthy; the tasks keep running without it. Started again on the same data, the server
/// marks the interrupted release failed, routes to the release that served at once, brings
/// the service back to it (Swarm may replace its task, new first), and the next push deploys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paas_killed_mid_update_comes_back_to_the_serving_release() {
    use paas_tests::ServerProcess;
    use paas_tests::developer::Developer;
    let dir = tempfile::tempdir().unwrap();
    let database = paas_tests::database_url(Db::Sqlite, &dir).await;
    let network = paas_tests::test_network();
    let swarm = [("PAAS_SCHEDULER", "swarm")];
    let server = ServerProcess::start_with_env(dir.path(), &database, &network, None, &swarm).await;
    let (url, router) = (server.url.clone(), server.router);
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap().trim().to_string();
    let dev = Developer::of(&url, &token, "python-stdlib");
    let http = reqwest::Client::new();
    let api = |path: &str| {
        let request = http.get(format!("{url}/api/v1/apps/survivor{path}")).bearer_auth(&token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let page = || async {
        let request = http.get(format!("http://{router}/")).header("host", "survivor.localhost");
        request.send().await.unwrap().text().await.unwrap()
    };

    dev.paas(&["apps:create", "survivor"]).success();
    dev.paas(&["config:set", "PAAS_HEALTHCHECK_TIMEOUT=300"]).success();
    let out = dev.git(&["push", "paas", "main"]).success();
    assert!(out.contains("Released v3"), "{out}");
    assert!(page().await.contains("\"app\": \"python-stdlib\""));
    let before = api("/ps").await;
    assert!(before[0]["node"].is_string(), "{before}");

    dev.write("Procfile", "web: sleep 600\n");
    dev.commit("Never listens");
    let pusher = dev.git_spawn(&["push", "paas", "main"]);
    let v4_started =
        || async { api("/ps").await.as_array().unwrap().iter().any(|p| p["release"] == 4) };
    wait_until("v4 starts a task", Duration::from_secs(120), v4_started).await;
    server.kill();
    let pushed = pusher.wait_with_output().unwrap();
    assert!(!pushed.status.success(), "the push cannot succeed without its server");

    let server = ServerProcess::start_with_env(
        dir.path(),
        &database,
        &network,
        Some((&url, router)),
        &swarm,
    )
    .await;
    let releases = api("/releases").await;
    assert_eq!(
        (releases[0]["version"].as_i64(), releases[0]["status"].as_str()),
        (Some(4), Some("failed"))
    );
    assert!(page().await.contains("\"app\": \"python-stdlib\""), "v3 serves at once");
    wait_until("only v3's task runs", Duration::from_secs(60), || async {
        let ps = api("/ps").await;
        ps.as_array().unwrap().iter().all(|p| p["release"] == 3)
    })
    .await;
    let after = api("/ps").await;
    assert_eq!(after.as_array().unwrap().len(), 1, "{after}");

    dev.write("Procfile", "web: python app.py\n");
    dev.commit("Listen again");
    let out = dev.git(&["push", "paas", "main"]).success();
    assert!(out.contains("Released v5"), "{out}");
    let destroyed = http.delete(format!("{url}/api/v1/apps/survivor")).bearer_auth(&token);
    assert_eq!(destroyed.send().await.unwrap().status(), 204);
    drop(server);
}

/// A registry the nodes pull from (Debian's docker-registry): each release's image is pushed
/// there and the release runs it by digest. With the local copy removed, Swarm pulls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_images_reach_the_nodes_through_a_registry() {
    let registry = Registry::start();
    let address = registry.address.clone();
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.scheduler = Scheduler::Swarm;
        config.registry = Some(address);
    })
    .await;
    let _source = deploy(&server, "pulled", json!({"GREETING": "pulled"})).await;
    let releases = server.get_json("/apps/pulled/releases").await;
    let image = releases[0]["image"].as_str().unwrap().to_string();
    assert!(image.starts_with(&format!("{}/paas/", registry.address)), "{image}");
    assert!(image.contains("@sha256:"), "run by digest: {image}");
    assert_eq!(page(&server, "pulled").await["PAAS_RELEASE"], "v3");

    // Gone from this engine: the restart's new task must pull it from the registry.
    let removed =
        std::process::Command::new("docker").args(["rmi", "-f", &image]).output().unwrap();
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let restarted = server.api(Method::POST, "/apps/pulled/ps/restart").json(&json!({}));
    let restarted = restarted.send().await.unwrap();
    assert_eq!(restarted.status(), 200, "{}", restarted.text().await.unwrap());
    assert_eq!(page(&server, "pulled").await["PAAS_RELEASE"], "v3");
    server.api(Method::DELETE, "/apps/pulled").send().await.unwrap();
}

/// Debian's `docker-registry` on a free loopback port (Docker trusts 127.0.0.0/8 without
/// TLS), its storage in a temporary directory; stopped when dropped.
struct Registry {
    address: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", paas_tests::free_port());
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("storage");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
                storage.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's package) runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen on {address}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry { address, child, _dir: dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL add-on under Swarm: its container stays on the manager with its volume, and
/// joins the app's overlay network, where the app's tasks and `paas run` reach it by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addons_are_reached_from_tasks_and_one_off_runs() {
    use paas_tests::developer::Developer;
    let server = swarm_server().await;
    let dev = Developer::new(&server, "python-stdlib");
    swarm_app(&dev.checkout);
    dev.commit("The swarm app");
    dev.paas(&["apps:create", "stocked"]).success();
    let pushed = dev.git(&["push", "paas", "main"]).success();
    assert!(pushed.contains("Released v"), "{pushed}");

    let created = dev.paas(&["addons:create", "postgres"]).success();
    assert!(created.contains("attached it to stocked as DATABASE_URL"), "{created}");
    let response = server.app_request("stocked.localhost", "/db").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "stocked-postgres reached");
    let probe = "import os,socket,urllib.parse as u; d=u.urlsplit(os.environ['DATABASE_URL']); \
                 socket.create_connection((d.hostname, d.port), 5); print('one-off reached')";
    let ran = dev.paas(&["run", "python3", "-c", &format!("\"{probe}\"")]).success();
    assert!(ran.contains("one-off reached"), "{ran}");

    // A volume lives on one node: the tasks that mount it are pinned to this one.
    dev.paas(&["volumes:add", "media", "/app/media"]).success();
    let service = format!("{}-stocked-web", server.docker_network());
    let inspect = std::process::Command::new("docker")
        .args(["service", "inspect", &service, "--format", "{{json .Spec.TaskTemplate}}"])
        .output()
        .unwrap();
    let template: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let constraint = template["Placement"]["Constraints"][0].as_str().unwrap_or_default();
    assert!(constraint.starts_with("node.id=="), "{template}");
    assert_eq!(template["ContainerSpec"]["Mounts"][0]["Target"], "/app/media", "{template}");
    let response = server.app_request("stocked.localhost", "/db").await;
    assert_eq!(response.status(), 200);
}
