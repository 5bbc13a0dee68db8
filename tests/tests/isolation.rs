//! What one app's code can reach: not another app's containers (only the router, on the
//! host, reaches them), and not Docker.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use paas_tests::developer::Developer;
use paas_tests::{Db, TestServer};

/// A Python one-liner that connects to `addr` and prints `CONNECTED` or `NO-CONNECTION`
/// (built from pieces, since `paas run` echoes the command).
fn connect_to(addr: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    format!(
        "python -c \"import socket\ntry:\n socket.create_connection(('{host}', {port}), \
         timeout=3); print('CONN' + 'ECTED')\nexcept OSError as e: print('NO-' + 'CONNECTION', e)\""
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_cannot_reach_each_other_or_docker() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "python-stdlib");
    for app in ["alice", "mallory"] {
        dev.git(&["remote", "remove", "paas"]).text();
        dev.paas(&["apps:create", app]).success();
        dev.git(&["push", "paas", "main"]).success();
    }
    let ps = server.get_json("/apps/alice/ps").await;
    let alice = ps[0]["addr"].as_str().unwrap().to_string();
    // The router's way in: the host reaches the container.
    let direct =
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(&alice));
    assert!(matches!(direct.await, Ok(Ok(_))), "the host reaches {alice}");

    // Another app's code does not.
    let out = dev.paas(&["run", "-a", "mallory", &connect_to(&alice)]).text();
    assert!(out.contains("NO-CONNECTION"), "mallory reached alice at {alice}:\n{out}");

    // No Docker socket inside.
    let out =
        dev.paas(&["run", "-a", "mallory", "test -e /var/run/docker.sock || echo NO-S''OCKET"]);
    assert!(out.text().contains("NO-SOCKET"), "{}", out.text());

    for app in ["alice", "mallory"] {
        server.api(reqwest::Method::DELETE, &format!("/apps/{app}")).send().await.unwrap();
    }
}
