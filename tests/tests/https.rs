//! HTTPS end to end against a real ACME server (pebble) on loopback: certificates for an
//! app's own name and its custom domain, served over HTTP/2 to curl trusting only pebble's
//! root; plain HTTP redirected; nothing issued for names nobody registered; certificates
//! kept across a restart and dropped with their domain; renewals swapped in under load
//! with no failed request; a failed validation shown with its reason and retried later; an
//! external router fed challenges and certificates through its table file.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use paas_server::ServerConfig;
use paas_tests::developer::Developer;
use paas_tests::pebble::Pebble;
use paas_tests::{Db, TestServer, free_port, wait_until};

/// Answers every GET with the scheme the router says the client used.
const PROTO_APP: &str = r#"
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.headers.get("X-Forwarded-Proto", "-").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "5000"))), Handler).serve_forever()
"#;

/// HTTPS on fixed loopback ports (pebble validates on them), certificates from `pebble`.
fn with_acme(config: &mut ServerConfig, pebble: &Pebble, ports: (u16, u16), challenge: &str) {
    config.domain = "example.test".into();
    // Fixed, so a restart keeps the URL the developer's CLI is logged in to.
    config.listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    config.router.listen = SocketAddr::from(([127, 0, 0, 1], ports.0));
    config.router.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], ports.1)));
    config.https.acme_email = Some("ops@example.test".into());
    config.https.acme_directory = pebble.directory.clone();
    config.https.acme_ca_file = Some(pebble.listener_ca.clone());
    config.https.acme_challenge = challenge.into();
    config.https.acme_renew_days = 30;
}

/// Deploys the scheme-echoing app as `shop`.
fn deploy_shop(server: &TestServer) -> Developer {
    let dev = Developer::new(server, "python-stdlib");
    dev.write("app.py", PROTO_APP);
    dev.commit("Echo the scheme");
    dev.paas(&["apps:create", "shop"]).success();
    dev.git(&["push", "paas", "main"]).success();
    dev
}

async fn wait_issued(dev: &Developer, hosts: &[&str]) {
    wait_until("certificates issued", Duration::from_secs(120), || async {
        let listed = dev.paas(&["domains"]).text();
        hosts.iter().all(|host| {
            listed.lines().any(|line| line.starts_with(host) && line.contains("issued, until"))
        })
    })
    .await;
}

/// `curl` over HTTPS to `host` at the router, trusting only `root`: (exit code, output).
fn curl(root: &std::path::Path, host: &str, port: u16, extra: &[&str]) -> (i32, String) {
    let output = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(extra)
        .arg(format!("https://{host}:{port}/"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

async fn write_root(pebble: &Pebble, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("pebble-root.pem");
    std::fs::write(&path, pebble.issuing_root().await).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_domain_gets_a_certificate_served_over_http2() {
    let ports = (free_port(), free_port());
    let pebble = Pebble::start(ports.0, ports.1).await;
    let server =
        TestServer::start_with(Db::Sqlite, |c| with_acme(c, &pebble, ports, "http-01")).await;
    let dev = deploy_shop(&server);
    dev.paas(&["domains:add", "www.shop.test"]).success();
    wait_issued(&dev, &["shop.example.test", "www.shop.test"]).await;
    let root = write_root(&pebble, server.dir.path()).await;

    // curl trusts pebble's root alone: the chain the router serves is the CA's.
    let (code, said) =
        curl(&root, "www.shop.test", ports.1, &["--http2", "-w", " %{http_version}"]);
    assert_eq!((code, said.as_str()), (0, "https 2"), "HTTP/2, and the app sees https");
    let (code, said) = curl(&root, "shop.example.test", ports.1, &["--http1.1"]);
    assert_eq!((code, said.as_str()), (0, "https"));

    // Plain HTTP is sent to HTTPS, keeping the path.
    let answer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{}/cart?x=1", ports.0))
        .header("host", "www.shop.test")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 308);
    let location = format!("https://www.shop.test:{}/cart?x=1", ports.1);
    assert_eq!(answer.headers()["location"], location.as_str());
    // With redirects off, plain HTTP is served again.
    dev.paas(&["https", "--redirect", "off"]).success();
    let answer = server.app_request("www.shop.test", "/").await;
    assert_eq!(answer.text().await.unwrap(), "http");

    // Nothing is asked for a name nobody registered, whatever a client sends as SNI.
    let (code, _) = curl(&root, "evil.shop.test", ports.1, &[]);
    assert_ne!(code, 0, "no certificate for an unregistered name");
    let hosts: Vec<String> = server
        .server
        .paas
        .store()
        .certificates()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.hostname)
        .collect();
    assert_eq!(hosts, ["shop.example.test", "www.shop.test"]);

    // Certificates are kept in the store: after a restart they serve at once.
    let server = server.restart().await;
    let (code, said) = curl(&root, "www.shop.test", ports.1, &[]);
    assert_eq!((code, said.as_str()), (0, "https"), "served right after the restart");

    // A removed domain's certificate goes with it.
    dev.paas(&["domains:remove", "www.shop.test"]).success();
    wait_until("certificate dropped", Duration::from_secs(30), || async {
        curl(&root, "www.shop.test", ports.1, &[]).0 != 0
    })
    .await;
    let listed = dev.paas(&["domains"]).success();
    assert!(!listed.contains("www.shop.test"), "{listed}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_swap_in_under_load_with_no_failed_request() {
    let ports = (free_port(), free_port());
    let pebble = Pebble::start(ports.0, ports.1).await;
    let server =
        TestServer::start_with(Db::Postgres, |c| with_acme(c, &pebble, ports, "tls-alpn-01")).await;
    let dev = deploy_shop(&server);
    wait_issued(&dev, &["shop.example.test"]).await;
    let root = pebble.issuing_root().await;
    let root = reqwest::Certificate::from_pem(root.as_bytes()).unwrap();
    let https = SocketAddr::from(([127, 0, 0, 1], ports.1));
    let url = format!("https://shop.example.test:{}/", ports.1);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = Arc::new(std::sync::Mutex::new(BTreeSet::<Vec<u8>>::new()));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (stop, ok, failed, seen) = (stop.clone(), ok.clone(), failed.clone(), seen.clone());
        let (root, url) = (root.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // A new connection each time, so each handshake sees the current certificate.
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(root.clone())
                    .resolve("shop.example.test", https)
                    .tls_info(true)
                    .build()
                    .unwrap();
                match client.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        assert_eq!(response.version(), reqwest::Version::HTTP_2);
                        let info = response.extensions().get::<reqwest::tls::TlsInfo>().cloned();
                        if let Some(der) =
                            info.and_then(|i| i.peer_certificate().map(<[u8]>::to_vec))
                        {
                            seen.lock().unwrap().insert(der);
                        }
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    wait_until("the first certificate served", Duration::from_secs(10), || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    // Pebble's certificates last five years: time passes by making the stored one expire
    // in ten days, inside the 30-day renewal window. The loop is woken as by any change.
    let store = server.server.paas.store();
    let cert = store.certificate("shop.example.test").await.unwrap().unwrap();
    let (chain, key) = (cert.chain_pem.unwrap(), cert.key_pem.unwrap());
    let soon = paas_store::time_in(10 * 86_400);
    store.certificate_issued("shop.example.test", &chain, &key, &soon).await.unwrap();
    server.server.paas.sync_routes().await.unwrap();
    wait_until("the renewed certificate served", Duration::from_secs(60), || async {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    let renewed = store.certificate("shop.example.test").await.unwrap().unwrap();
    assert!(renewed.not_after.unwrap() > paas_store::time_in(365 * 86_400), "renewed once");
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed across the renewals");
    assert!(ok.load(Ordering::Relaxed) > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_validation_is_shown_with_its_reason_and_plain_http_keeps_serving() {
    let ports = (free_port(), free_port());
    // Pebble validates on a port where nothing listens: every HTTP-01 check is refused.
    let pebble = Pebble::start(free_port(), ports.1).await;
    let server =
        TestServer::start_with(Db::Sqlite, |c| with_acme(c, &pebble, ports, "http-01")).await;
    let dev = Developer::new(&server, "python-stdlib");
    dev.paas(&["apps:create", "shop"]).success();
    wait_until("the failure is shown", Duration::from_secs(60), || async {
        dev.paas(&["domains"]).text().contains("shop.example.test  failed:")
    })
    .await;
    let listed = dev.paas(&["domains"]).success();
    assert!(
        listed.contains("connection refused") || listed.contains("Connection refused"),
        "{listed}"
    );
    assert!(listed.contains("(next try "), "{listed}");
    let cert = server.server.paas.store().certificate("shop.example.test").await.unwrap().unwrap();
    assert_eq!((cert.state.as_str(), cert.failures), ("failed", 1));
    let retry = cert.retry_at.unwrap();
    assert!(retry > paas_server::core::now(), "retried later, not in a loop: {retry}");
    // No certificate: plain HTTP is served, not redirected to a handshake that fails.
    let answer = server.app_request("shop.example.test", "/").await;
    assert_eq!(answer.status(), 503, "the app has no processes yet; served, not redirected");
}

/// `paas router` in a process of its own; killed when dropped.
struct RouterProcess(std::process::Child);

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_router_gets_challenges_and_certificates_through_its_table_file() {
    let ports = (free_port(), free_port());
    let pebble = Pebble::start(ports.0, ports.1).await;
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("routes.json");
    let log = std::fs::File::create(dir.path().join("router.log")).unwrap();
    let _router = RouterProcess(
        std::process::Command::new(paas_tests::paas_bin())
            .args(["router", "--router-listen", &format!("127.0.0.1:{}", ports.0)])
            .args(["--router-https-listen", &format!("127.0.0.1:{}", ports.1), "--table"])
            .arg(&table)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let file = table.clone();
    let server = TestServer::start_with(Db::Sqlite, |c| {
        with_acme(c, &pebble, ports, "http-01");
        c.router_mode = "external".into();
        c.router_table = Some(file);
    })
    .await;
    // The HTTP-01 answer reaches the router in the table file: the CA's check passes there.
    let dev = Developer::new(&server, "python-stdlib");
    dev.paas(&["apps:create", "shop"]).success();
    wait_issued(&dev, &["shop.example.test"]).await;
    let root = write_root(&pebble, dir.path()).await;
    let status = ["-o", "/dev/null", "-w", "%{http_code}"];
    let served = || curl(&root, "shop.example.test", ports.1, &status);
    // The router re-reads its table file within a tenth of a second of the server writing
    // it, which can come a moment after the store says issued: until then, no certificate.
    wait_until("the router serves the certificate", Duration::from_secs(10), || async {
        served().0 == 0
    })
    .await;
    assert_eq!(served(), (0, "503".to_string()), "HTTPS through the router (no process yet)");
    // The file holds private keys: its owner alone reads it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&table).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // A restarted control plane's first table carries the certificates (none is dropped
    // for a moment), and with the control plane gone the router serves on.
    let server = server.restart().await;
    assert_eq!(served(), (0, "503".to_string()), "served after the restart");
    server.server.shutdown().await.unwrap();
    assert_eq!(served(), (0, "503".to_string()), "served with the control plane gone");
}
