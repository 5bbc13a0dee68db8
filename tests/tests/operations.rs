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
