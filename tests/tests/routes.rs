//! Routes by path on real containers: `/ws/` to a process type of its own beside `web`,
//! health-checked and rolled out with no failed request, kept through a restart of paas.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use paas_tests::developer::Developer;
use paas_tests::{Db, TestServer};

/// Answers every GET with the process that answered (`web.1`, `ws.1`).
const WHO: &str = r#"
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["PAAS_PROCESS"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "5000"))), Handler).serve_forever()
"#;

async fn who(server: &TestServer, path: &str) -> String {
    let response = server.app_request("split.localhost", path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_go_to_their_process_type_with_no_failed_request() {
    let server = TestServer::start(Db::Sqlite).await;
    let dev = Developer::new(&server, "python-stdlib");
    dev.write("app.py", WHO);
    dev.write("Procfile", "web: python app.py\nws: python app.py\n");
    dev.commit("Two process types");
    dev.paas(&["apps:create", "split"]).success();
    dev.git(&["push", "paas", "main"]).success();
    dev.paas(&["ps:scale", "ws=1"]).success();
    assert_eq!(who(&server, "/ws/chat").await, "web.1", "no route yet");

    let added = dev.paas(&["routes:add", "/ws/", "ws"]).success();
    assert!(added.contains("Requests to /ws/* go to split's ws processes"), "{added}");
    assert_eq!(who(&server, "/ws/chat").await, "ws.1");
    assert_eq!(who(&server, "/").await, "web.1");
    assert_eq!(who(&server, "/wsx").await, "web.1");
    let listed = dev.paas(&["routes"]).success();
    assert!(listed.contains("/ws/*") && listed.contains("everything else"), "{listed}");

    // Load on both while the whole app rolls out and ws restarts alone: nothing fails.
    let failed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for path in ["/ws/chat", "/"] {
        let (failed, done, stop) = (failed.clone(), done.clone(), stop.clone());
        let (http, router) = (server.http.clone(), server.router);
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = http
                    .get(format!("http://{router}{path}"))
                    .header("host", "split.localhost")
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status() == 200 => done.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    dev.paas(&["config:set", "ROLLOUT=1"]).success();
    dev.paas(&["ps:restart", "ws"]).success();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {}", done.load(Ordering::Relaxed));
    assert!(done.load(Ordering::Relaxed) > 50);
    assert_eq!(who(&server, "/ws/chat").await, "ws.1");

    // Wrong input: a clear error, and nothing changes.
    for (args, says) in [
        (&["routes:add", "ws/", "ws"][..], "starts with /"),
        (&["routes:add", "/", "ws"], "goes to web already"),
        (&["routes:add", "/x/", "web"], "other than web"),
        (&["routes:add", "/x/", "nope"], "has no process type \"nope\""),
        (&["routes:remove", "/nope/"], "route /nope/ of split not found"),
    ] {
        let out = dev.paas(args).failure();
        assert!(out.contains(says), "paas {args:?}: {out}");
    }

    // A restart of paas keeps the route and adopts the ws process as its backend.
    let server = server.restart().await;
    let dev = dev.logged_in_to(&server);
    assert_eq!(who(&server, "/ws/chat").await, "ws.1");
    dev.paas(&["routes:remove", "/ws/"]).success();
    assert_eq!(who(&server, "/ws/chat").await, "web.1");
}
