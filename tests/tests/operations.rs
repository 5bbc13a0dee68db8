//! paas on a server: the router as a process of its own (`paas router --table`) keeps every
//! app serving while the control plane deploys, restarts and is gone.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use paas_tests::developer::Developer;
use paas_tests::{Db, TestServer, free_port, paas_bin, wait_until};

/// `paas router` in a process of its own; killed when dropped.
struct RouterProcess(std::process::Child);

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_router_serves_through_deploys_restarts_and_a_stopped_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("routes.json");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // The router first, with no table yet: it waits for the control plane to write one.
    let log = std::fs::File::create(dir.path().join("router.log")).unwrap();
    let _router = RouterProcess(
        Command::new(paas_bin())
            .args(["router", "--router-listen", &addr.to_string(), "--table"])
            .arg(&table)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let listening = || async { tokio::net::TcpStream::connect(addr).await.is_ok() };
    wait_until("the router listens", Duration::from_secs(20), listening).await;

    let (mode, file) = ("external".to_string(), table.clone());
    let server = TestServer::start_with(Db::Sqlite, move |config| {
        config.router_mode = mode;
        config.router_table = Some(file);
    })
    .await;
    let dev = Developer::new(&server, "python-stdlib");
    dev.paas(&["apps:create", "steady"]).success();
    dev.git(&["push", "paas", "main"]).success();
    let http = reqwest::Client::new();
    let get = move |http: reqwest::Client| async move {
        http.get(format!("http://{addr}/")).header("host", "steady.localhost").send().await
    };
    let serving = || async { get(http.clone()).await.is_ok_and(|r| r.status() == 200) };
    wait_until("the external router serves the app", Duration::from_secs(20), serving).await;

    // Steady load through the router, from here to the end.
    let (failed, done, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (failed, done, stop, http) = (failed.clone(), done.clone(), stop.clone(), http.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match get(http.clone()).await {
                    Ok(r) if r.status() == 200 => done.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }

    // A rollout: the old process stops only once the router has moved to the new one.
    dev.paas(&["config:set", "ROLLOUT=1"]).success();
    // The control plane restarts: the router serves on from its last table.
    let server = server.restart().await;
    let dev = dev.logged_in_to(&server);
    dev.paas(&["config:set", "ROLLOUT=2"]).success();
    // And the control plane gone altogether: still served.
    let served_before = done.load(Ordering::Relaxed);
    server.server.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (failed, done) = (failed.load(Ordering::Relaxed), done.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "of {done} requests");
    assert!(
        done > served_before + 20,
        "served while paas server was down: {served_before} → {done}"
    );
    let acked = std::fs::read_to_string(dir.path().join("routes.json.loaded")).unwrap();
    assert!(acked.trim().parse::<u64>().unwrap() > 0, "{acked}");

    // A table that cannot be read leaves the last one serving.
    std::fs::write(&table, "{ not json").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(get(http.clone()).await.is_ok_and(|r| r.status() == 200));
}

/// `paas server backup DIR` while paas runs, restored into a fresh data directory: the
/// restored server has the same apps, config, releases, tokens and git history, and serves
/// the app again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_fresh_data_dir_serving_the_same_apps() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "python-stdlib");
    dev.paas(&["apps:create", "kept"]).success();
    dev.paas(&["config:set", "GREETING=from before the backup"]).success();
    dev.git(&["push", "paas", "main"]).success();
    let pushed = dev.head();

    let out = tempfile::tempdir().unwrap();
    let backup = out.path().join("backup");
    let run_backup = || {
        Command::new(paas_bin())
            .args(["server", "--data-dir"])
            .arg(&server.config().data_dir)
            .arg("backup")
            .arg(&backup)
            .env("DATABASE_URL", server.config().database_url())
            .output()
            .unwrap()
    };
    let made = run_backup();
    let said =
        String::from_utf8_lossy(&made.stdout).into_owned() + &String::from_utf8_lossy(&made.stderr);
    assert!(made.status.success(), "{said}");
    assert!(said.contains("the sqlite database") && said.contains("1 git repository"), "{said}");
    let summary = std::fs::read_to_string(backup.join("paas-backup.json")).unwrap();
    assert!(summary.contains("\"kept\""), "{summary}");
    // A backup never mixes with another.
    let again = run_backup();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));

    // Restore: the database file and the repositories into a new data directory.
    let fresh = tempfile::tempdir().unwrap();
    let data = fresh.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(backup.join("paas.db"), data.join("paas.db")).unwrap();
    let copied = Command::new("cp").arg("-a").arg(backup.join("repos")).arg(&data).status();
    assert!(copied.unwrap().success());
    let url = format!("sqlite://{}?mode=rwc", data.join("paas.db").display());
    let restored =
        paas_tests::ServerProcess::start(fresh.path(), &url, &paas_tests::test_network(), None)
            .await;

    // The same token, app, config and releases; the app runs again once started here.
    let dev = Developer::of(&restored.url, &server.token, "python-stdlib");
    let config = dev.paas(&["config", "-a", "kept"]).success();
    assert!(config.contains("from before the backup"), "{config}");
    let releases = dev.paas(&["releases", "-a", "kept"]).success();
    assert!(releases.contains("Current: v3"), "{releases}");
    dev.paas(&["ps:restart", "-a", "kept"]).success();
    let page = reqwest::Client::new()
        .get(format!("http://{}/", restored.router))
        .header("host", "kept.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let head = Command::new("git")
        .arg("--git-dir")
        .arg(data.join("repos").join("kept.git"))
        .args(["rev-parse", "main"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), pushed);
}

/// `deploy/install.sh` into a scratch root: the binary, a config paas reads as it should, and
/// two systemd units that `systemd-analyze verify` passes without a word; running it again
/// keeps the config; `uninstall.sh` keeps the state unless told.
#[test]
fn the_install_script_lays_out_units_systemd_accepts_and_a_config_paas_reads() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let root = tempfile::tempdir().unwrap();
    let install = || {
        Command::new("bash")
            .arg(deploy.join("install.sh"))
            .arg("--root")
            .arg(root.path())
            .arg("--binary")
            .arg(paas_bin())
            .output()
            .unwrap()
    };
    let first = install();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    for file in [
        "usr/local/bin/paas",
        "etc/paas/paas.toml",
        "etc/systemd/system/paas.service",
        "etc/systemd/system/paas-router.service",
        "var/lib/paas/router",
    ] {
        assert!(root.path().join(file).exists(), "{file}");
    }
    std::fs::write(root.path().join("etc/paas/paas.toml"), "domain = \"mine.example\"\n").unwrap();
    let again = install();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("keeping"),
        "an upgrade keeps the config"
    );
    assert!(
        std::fs::read_to_string(root.path().join("etc/paas/paas.toml"))
            .unwrap()
            .contains("mine.example")
    );
    std::fs::remove_file(root.path().join("etc/paas/paas.toml")).unwrap();
    assert!(install().status.success());

    // The config file is one paas reads, with the router on its own.
    let printed = Command::new(paas_bin())
        .args(["server", "--config"])
        .arg(root.path().join("etc/paas/paas.toml"))
        .arg("--print-config")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("router_mode = \"external\"  # config file"), "{printed}");
    assert!(printed.contains("data_dir = \"/var/lib/paas\"  # config file"), "{printed}");

    // systemd's own check, against the host's units for the targets they name.
    let units = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&units).unwrap();
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg("/usr/lib/systemd/system")
            .arg(&units)
            .status()
            .unwrap()
            .success()
    );
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg(root.path().join("etc/systemd/system/paas.service"))
        .arg(root.path().join("etc/systemd/system/paas-router.service"))
        .output()
        .expect("systemd-analyze (Debian's systemd package; .ci/run installs it)");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success() && said.trim().is_empty(), "{said}");

    let uninstall = |purge: bool| {
        let mut command = Command::new("bash");
        command.arg(deploy.join("uninstall.sh")).arg("--root").arg(root.path());
        if purge {
            command.arg("--purge");
        }
        assert!(command.status().unwrap().success());
    };
    uninstall(false);
    assert!(!root.path().join("usr/local/bin/paas").exists());
    assert!(!root.path().join("etc/systemd/system/paas.service").exists());
    assert!(root.path().join("etc/paas/paas.toml").exists(), "state stays");
    uninstall(true);
    assert!(!root.path().join("etc/paas").exists() && !root.path().join("var/lib/paas").exists());
}

/// SIGTERM while a push builds: the pusher is told paas is stopping and nothing deploys, the
/// server exits, the app's containers run on, and after the restart the release before
/// serves and the build is recorded as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_under_a_push_tells_the_pusher_and_leaves_the_apps_running() {
    let dir = tempfile::tempdir().unwrap();
    let database = paas_tests::database_url(Db::Sqlite, &dir).await;
    let network = paas_tests::test_network();
    let server = paas_tests::ServerProcess::start(dir.path(), &database, &network, None).await;
    let (url, router) = (server.url.clone(), server.router);
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap().trim().to_string();
    let dev = Developer::of(&url, &token, "python-stdlib");
    dev.paas(&["apps:create", "calm"]).success();
    dev.git(&["push", "paas", "main"]).success();

    // A build that takes its time.
    dev.write("paas.toml", "[build]\ncommand = \"sleep 120\"\n");
    dev.commit("A slow build");
    let pusher = dev.git_spawn(&["push", "paas", "main"]);
    let http = reqwest::Client::new();
    let building = || async {
        let builds =
            http.get(format!("{url}/api/v1/apps/calm/builds")).bearer_auth(&token).send().await;
        let Ok(builds) = builds else { return false };
        let builds: serde_json::Value = builds.json().await.unwrap_or_default();
        builds[0]["status"] == "building"
    };
    wait_until("the slow build starts", Duration::from_secs(60), building).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let status = server.terminate();
    assert!(status.success(), "paas server exits cleanly on SIGTERM: {status}");
    let pushed = pusher.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&pushed.stdout).into_owned()
        + &String::from_utf8_lossy(&pushed.stderr);
    assert!(!pushed.status.success(), "{said}");
    assert!(
        said.contains("paas is stopping (a restart or an upgrade): this push was not deployed"),
        "{said}"
    );
    let running = Command::new("docker")
        .args(["ps", "-q", "--filter", "label=io.paas.app=calm"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&running.stdout).trim().is_empty(), "the app runs on");

    let server =
        paas_tests::ServerProcess::start(dir.path(), &database, &network, Some((&url, router)))
            .await;
    let page = http
        .get(format!("http://{}/", server.router))
        .header("host", "calm.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let builds: serde_json::Value = http
        .get(format!("{url}/api/v1/apps/calm/builds"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(builds[0]["status"], "failed", "{builds}");
    let releases: serde_json::Value = http
        .get(format!("{url}/api/v1/apps/calm/releases"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(releases[0]["version"], 2, "nothing released: {releases}");
}

/// `kill -9` of a `paas server` process whose router runs on its own, under steady load
/// through that router: no request fails, before, during or after its restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_control_plane_fails_no_request_through_an_external_router() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("routes.json");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(dir.path().join("router.log")).unwrap();
    let _router = RouterProcess(
        Command::new(paas_bin())
            .args(["router", "--router-listen", &addr.to_string(), "--table"])
            .arg(&table)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let database = paas_tests::database_url(Db::Sqlite, &dir).await;
    let network = paas_tests::test_network();
    let table_text = table.to_string_lossy().into_owned();
    let env = [("PAAS_ROUTER", "external"), ("PAAS_ROUTER_TABLE", table_text.as_str())];
    let server =
        paas_tests::ServerProcess::start_with_env(dir.path(), &database, &network, None, &env)
            .await;
    let (url, router_port) = (server.url.clone(), server.router);
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap().trim().to_string();
    let dev = Developer::of(&url, &token, "python-stdlib");
    dev.paas(&["apps:create", "sturdy"]).success();
    dev.git(&["push", "paas", "main"]).success();
    let http = reqwest::Client::new();
    let get = move |http: reqwest::Client| async move {
        http.get(format!("http://{addr}/")).header("host", "sturdy.localhost").send().await
    };
    let serving = || async { get(http.clone()).await.is_ok_and(|r| r.status() == 200) };
    wait_until("the external router serves the app", Duration::from_secs(20), serving).await;

    let (failed, done, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (failed, done, stop, http) = (failed.clone(), done.clone(), stop.clone(), http.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match get(http.clone()).await {
                    Ok(r) if r.status() == 200 => done.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = paas_tests::ServerProcess::start_with_env(
        dir.path(),
        &database,
        &network,
        Some((&url, router_port)),
        &env,
    )
    .await;
    // Back, it deploys again, still with nothing failed.
    dev.paas(&["config:set", "AFTER=kill"]).success();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let (failed, done) = (failed.load(Ordering::Relaxed), done.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "of {done} requests");
    assert!(done > 50, "{done}");
    drop(server);
}
