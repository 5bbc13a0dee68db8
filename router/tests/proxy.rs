//! The router against real backends on loopback: routing, error pages, headers, streaming,
//! WebSockets, requests refused before routing (h2c, ambiguous hosts), the connection cap
//! across worker threads, each worker's pooled backend connections, stopping a listener,
//! load balancing, a table swap under load with draining, and answers framed every way by a
//! hand-written backend (chunked, close-delimited, interim, refused).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use hyper::StatusCode;
use paas_router::{PathRoute, RouteTable, Router, RouterConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::*;

#[tokio::test]
async fn routes_by_host() {
    let (a, b) = (backend("alpha").await, backend("beta").await);
    let table = RouteTable {
        routes: vec![
            route("alpha", &["alpha.localhost"], &[a.addr]),
            route("beta", &["beta.localhost", "www.beta.example", "*.beta.dev"], &[b.addr]),
        ],
    };
    let (_router, addr) = router(RouterConfig::default(), table).await;
    for (host, expected) in [
        ("alpha.localhost", "alpha"),
        ("ALPHA.LocalHost:8000", "alpha"),
        ("beta.localhost", "beta"),
        ("www.beta.example", "beta"),
        ("pr-42.beta.dev", "beta"),
    ] {
        let response = get(addr, host, "/name").await;
        assert_eq!(response.status(), 200, "{host}");
        assert_eq!(response.text().await.unwrap(), expected, "{host}");
    }
    let response = get(addr, "nobody.localhost", "/name").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(response.headers().contains_key("x-request-id"));
    let page = response.text().await.unwrap();
    assert!(page.contains("No such app") && page.contains("nobody.localhost"), "{page}");
    // The backend's own 404 passes through untouched.
    let response = get(addr, "alpha.localhost", "/missing").await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "not here");
}

/// Paths go to the process type routed for their longest prefix, the rest to `web`; a
/// routed type with nothing up answers 503 naming it while `web` serves on; WebSockets
/// upgrade on a routed path.
#[tokio::test]
async fn routes_by_path_to_process_types() {
    let (web, channels, admin) =
        (backend("web").await, backend("channels").await, backend("admin").await);
    let mut app = route("shop", &["shop.localhost"], &[web.addr]);
    app.paths = vec![
        PathRoute {
            prefix: "/ws/".into(),
            process_type: "channels".into(),
            backends: vec![channels.addr],
        },
        PathRoute {
            prefix: "/ws/admin/".into(),
            process_type: "admin".into(),
            backends: vec![admin.addr],
        },
        PathRoute { prefix: "/jobs/".into(), process_type: "worker".into(), backends: vec![] },
    ];
    let (_router, addr) = router(RouterConfig::default(), RouteTable { routes: vec![app] }).await;
    for (path, expected) in [
        ("/name", "web"),
        ("/other/name", "web"),
        ("/ws/name", "channels"),
        ("/ws/admin/name", "admin"),
        ("/wsx/name", "web"),
    ] {
        let response = get(addr, "shop.localhost", path).await;
        assert_eq!(response.text().await.unwrap(), expected, "{path}");
    }
    let down = get(addr, "shop.localhost", "/jobs/x").await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(down.text().await.unwrap().contains("no worker processes running"));
    let mut tunnel = open_tunnel_to(addr, "shop.localhost", "/ws/chat").await;
    let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(echo_roundtrip(&mut tunnel, &frame).await.unwrap(), frame);
}

#[tokio::test]
async fn error_pages_for_down_failing_and_slow_apps() {
    let slow = backend("slow").await;
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap() // dropped: nothing listens there
    };
    let table = RouteTable {
        routes: vec![
            route("idle", &["idle.localhost"], &[]),
            route("dead", &["dead.localhost"], &[dead]),
            route("slow", &["slow.localhost"], &[slow.addr]),
        ],
    };
    let config =
        RouterConfig { first_byte_timeout: Duration::from_millis(300), ..RouterConfig::default() };
    let (_router, addr) = router(config, table).await;

    let response = get(addr, "idle.localhost", "/").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = response.text().await.unwrap();
    assert!(page.contains("no web processes running") && page.contains("ps:scale web=1"), "{page}");

    let response = get(addr, "dead.localhost", "/").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.text().await.unwrap().contains("Application error"));

    let response = get(addr, "slow.localhost", "/slow?ms=2000").await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(response.text().await.unwrap().contains("timed out"));
    let response = get(addr, "slow.localhost", "/slow?ms=10").await;
    assert_eq!(response.status(), 200, "a fast answer from the same app still works");
}

/// A TLS-terminating proxy in front says the request came in over https on 443: the app hears
/// it only when the proxy's address is trusted; from anyone else the claim is replaced.
#[tokio::test]
async fn forwarded_proto_is_kept_from_trusted_proxies_only() {
    let app = backend("app").await;
    let table = || RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let seen = |addr: SocketAddr| async move {
        let response = client()
            .get(format!("http://{addr}/headers"))
            .header("host", "app.localhost")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-port", "443")
            .header("x-forwarded-for", "203.0.113.7")
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        let header = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).map(str::to_string)
        };
        ["x-forwarded-proto", "x-forwarded-port", "x-forwarded-for"].map(|h| header(h).unwrap())
    };

    let (_untrusting, addr) = router(RouterConfig::default(), table()).await;
    let port = addr.port().to_string();
    assert_eq!(seen(addr).await, ["http", port.as_str(), "127.0.0.1"]);

    let config = RouterConfig {
        trusted_proxies: "10.0.0.0/8, 127.0.0.0/8".parse().unwrap(),
        ..RouterConfig::default()
    };
    let (_trusting, addr) = router(config, table()).await;
    assert_eq!(seen(addr).await, ["https", "443", "203.0.113.7, 127.0.0.1"]);

    // A proxy that names only the scheme: the scheme's port, not the router's.
    let response = client()
        .get(format!("http://{addr}/headers"))
        .header("host", "app.localhost")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(response.text().await.unwrap().contains("x-forwarded-port: 443\n"));

    // Only sensible values pass, even from a trusted proxy.
    let response = client()
        .get(format!("http://{addr}/headers"))
        .header("host", "app.localhost")
        .header("x-forwarded-proto", "gopher")
        .send()
        .await
        .unwrap();
    assert!(response.text().await.unwrap().contains("x-forwarded-proto: http\n"));
}

/// What the app hears when a client sends `sent` along with `Host: app.localhost`.
async fn headers_seen(addr: SocketAddr, sent: &[(&str, &str)]) -> String {
    let mut request =
        client().get(format!("http://{addr}/headers")).header("host", "app.localhost");
    for (name, value) in sent {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().text().await.unwrap()
}

fn header_in(seen: &str, name: &str) -> Option<String> {
    seen.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).map(str::to_string)
}

/// `Forwarded` and `X-Real-IP` make the same claims as `X-Forwarded-For` (Rack's `request.ip`,
/// Gin and chi believe them): from a client that is not a trusted proxy they never reach the
/// app; a trusted proxy's pass as they came.
#[tokio::test]
async fn forwarded_and_x_real_ip_come_from_trusted_proxies_only() {
    let app = backend("app").await;
    let table = || RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let claims = [("forwarded", "for=203.0.113.7;proto=https"), ("x-real-ip", "203.0.113.7")];

    let (_untrusting, addr) = router(RouterConfig::default(), table()).await;
    let seen = headers_seen(addr, &claims).await;
    assert_eq!(header_in(&seen, "forwarded"), None, "{seen}");
    assert_eq!(header_in(&seen, "x-real-ip"), None, "{seen}");

    let config =
        RouterConfig { trusted_proxies: "127.0.0.0/8".parse().unwrap(), ..RouterConfig::default() };
    let (_trusting, addr) = router(config, table()).await;
    let seen = headers_seen(addr, &claims).await;
    assert_eq!(header_in(&seen, "forwarded").as_deref(), Some(claims[0].1), "{seen}");
    assert_eq!(header_in(&seen, "x-real-ip").as_deref(), Some(claims[1].1), "{seen}");
}

#[tokio::test]
async fn forwarding_headers() {
    let app = backend("app").await;
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let (_router, addr) = router(RouterConfig::default(), table).await;

    let response = client()
        .get(format!("http://{addr}/headers"))
        .header("host", "app.localhost:8000")
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "x-hop-only")
        .header("x-hop-only", "secret")
        .header("proxy-authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(request_id.len(), 32);
    assert!(response.headers()["via"].to_str().unwrap().contains("paas"));
    let seen = response.text().await.unwrap();
    let header = |name: &str| {
        seen.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).map(str::to_string)
    };
    assert_eq!(header("host").as_deref(), Some("app.localhost:8000"), "{seen}");
    // The client is no proxy of ours: its own X-Forwarded-For is replaced, not believed.
    assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(header("x-forwarded-port"), Some(addr.port().to_string()));
    assert_eq!(header("x-forwarded-host").as_deref(), Some("app.localhost:8000"));
    assert_eq!(header("x-request-id"), Some(request_id));
    assert!(header("x-request-start").unwrap().starts_with("t="));
    assert!(header("via").unwrap().contains("1.1 paas"));
    assert_eq!(header("x-hop-only"), None, "headers named by Connection are hop-by-hop");
    assert_eq!(header("proxy-authorization"), None);

    // A client's own request id is kept when it is sane, replaced when it is not.
    let given = "client-chosen-id-0123456789";
    let response = client()
        .get(format!("http://{addr}/headers"))
        .header("host", "app.localhost")
        .header("x-request-id", given)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], given);
    assert!(response.text().await.unwrap().contains(&format!("x-request-id: {given}")));
    let response = client()
        .get(format!("http://{addr}/headers"))
        .header("host", "app.localhost")
        .header("x-request-id", "short")
        .send()
        .await
        .unwrap();
    assert_ne!(response.headers()["x-request-id"], "short");
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let app = backend("app").await;
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let config = RouterConfig { max_body_bytes: 8 * 1024 * 1024, ..RouterConfig::default() };
    let (_router, addr) = router(config, table).await;

    // Server-sent events reach the client as they are produced, not at the end.
    let started = Instant::now();
    let response = get(addr, "app.localhost", "/sse").await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: 0\n\n");
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "first event took {:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"data: 1\n\ndata: 2\n\n");
    assert!(started.elapsed() >= Duration::from_millis(1400));

    // A streamed (chunked) upload of several MiB arrives whole.
    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 * 1024])));
    let response = client()
        .post(format!("http://{addr}/echo"))
        .header("host", "app.localhost")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), (64 * 64 * 1024).to_string());

    // Over the limit with a declared length: 413 before the app sees anything.
    let hits_before = app.hits.load(Ordering::SeqCst);
    let response = client()
        .post(format!("http://{addr}/echo"))
        .header("host", "app.localhost")
        .body(vec![0u8; 9 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.hits.load(Ordering::SeqCst), hits_before);
}

/// Opens a WebSocket-style upgrade through the router and returns the raw stream.
async fn open_tunnel(addr: SocketAddr, host: &str) -> TcpStream {
    open_tunnel_to(addr, host, "/ws").await
}

async fn open_tunnel_to(addr: SocketAddr, host: &str, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let handshake = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: websocket"), "{head}");
    stream
}

/// A response's status line and headers, read byte by byte so nothing after them is taken.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Writes `request` as it is, bytes no HTTP client library would send, and returns the
/// response's head and its `Content-Length` body.
async fn raw_request(addr: SocketAddr, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, value)| value.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (head, String::from_utf8(body).unwrap())
}

async fn echo_roundtrip(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(payload).await?;
    let mut back = vec![0u8; payload.len()];
    stream.read_exact(&mut back).await?;
    Ok(back)
}

#[tokio::test]
async fn websockets_are_tunnelled_byte_for_byte() {
    let app = backend("app").await;
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let (_router, addr) = router(RouterConfig::default(), table).await;
    let mut tunnel = open_tunnel(addr, "app.localhost").await;
    // A masked WebSocket text frame "hello", then arbitrary binary: all of it echoes back.
    let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(echo_roundtrip(&mut tunnel, &frame).await.unwrap(), frame);
    let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    assert_eq!(echo_roundtrip(&mut tunnel, &binary).await.unwrap(), binary);
}

/// An h2c upgrade would hand the client a raw HTTP/2 connection to the app, past everything
/// the router does per request (h2c smuggling): it is refused, while WebSockets still upgrade.
#[tokio::test]
async fn h2c_upgrades_are_refused() {
    let app = backend("app").await;
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let (_router, addr) = router(RouterConfig::default(), table).await;
    // As curl --http2 sends it, and the same tucked behind another protocol.
    for upgrade in ["h2c", "foo/1, H2C"] {
        let request = format!(
            "GET /name HTTP/1.1\r\nHost: app.localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        );
        let (head, body) = raw_request(addr, &request).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{upgrade}: {head}");
        assert!(body.contains("h2c upgrade is not supported"), "{body}");
    }
    assert_eq!(app.hits.load(Ordering::SeqCst), 0, "the app never saw the upgrade");
    let mut tunnel = open_tunnel(addr, "app.localhost").await;
    assert_eq!(echo_roundtrip(&mut tunnel, b"still ws").await.unwrap(), b"still ws");
}

/// Two Host headers, or an absolute-form target naming another host than Host, leave the app
/// to whichever one a reader takes: 400, as RFC 9112 §3.2 requires, and no app sees it.
#[tokio::test]
async fn ambiguous_hosts_are_refused() {
    let (alpha, beta) = (backend("alpha").await, backend("beta").await);
    let table = RouteTable {
        routes: vec![
            route("alpha", &["alpha.localhost"], &[alpha.addr]),
            route("beta", &["beta.localhost"], &[beta.addr]),
        ],
    };
    let (_router, addr) = router(RouterConfig::default(), table).await;
    for request in [
        "GET /name HTTP/1.1\r\nHost: alpha.localhost\r\nHost: beta.localhost\r\n\r\n",
        "GET /name HTTP/1.1\r\nHost: alpha.localhost\r\nhost: alpha.localhost\r\n\r\n",
        "GET http://beta.localhost/name HTTP/1.1\r\nHost: alpha.localhost\r\n\r\n",
    ] {
        let (head, body) = raw_request(addr, request).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{request:?}: {head}");
        assert!(body.contains("Host header"), "{body}");
    }
    let hits = alpha.hits.load(Ordering::SeqCst) + beta.hits.load(Ordering::SeqCst);
    assert_eq!(hits, 0, "no app saw an ambiguous request");

    // An absolute-form target that agrees with Host, case and port aside, is served.
    let request = "GET http://Beta.localhost/name HTTP/1.1\r\nHost: beta.localhost:8000\r\n\r\n";
    let (head, body) = raw_request(addr, request).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "beta");
}

/// At `max_connections` the router stops accepting: the next client waits, unanswered, until
/// an open connection closes, be it an idle keep-alive or a WebSocket tunnel.
#[tokio::test]
async fn open_connections_are_capped() {
    let app = backend("app").await;
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    // More workers than slots: a worker waiting for a slot must not accept meanwhile.
    let config = RouterConfig { max_connections: 2, workers: 4, ..RouterConfig::default() };
    let (_router, addr) = router(config, table).await;
    let request = "GET /name HTTP/1.1\r\nHost: app.localhost\r\n\r\n";

    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let third = tokio::spawn(raw_request(addr, request));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "a third client waits while two connections are open");
    drop(first);
    let (head, body) = tokio::time::timeout(Duration::from_secs(5), third).await.unwrap().unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "app");

    // The third client has gone; a tunnel takes its place and keeps it after the handshake.
    let tunnel = open_tunnel(addr, "app.localhost").await;
    let fourth = tokio::spawn(raw_request(addr, request));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!fourth.is_finished(), "an open tunnel is an open connection");
    drop(tunnel);
    let (head, _) = tokio::time::timeout(Duration::from_secs(5), fourth).await.unwrap().unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// Each worker thread keeps its own keep-alive connections to a backend: requests that
/// follow one another reuse them, whichever worker took the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_connections_are_reused_by_each_worker() {
    let app = backend("app").await;
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let config = RouterConfig { workers: 3, ..RouterConfig::default() };
    let (_router, addr) = router(config, table).await;
    // Four clients side by side, each on a connection of its own, 25 requests each.
    let clients = (0..4).map(|_| {
        tokio::spawn(async move {
            let client = client();
            for _ in 0..25 {
                let response = client
                    .get(format!("http://{addr}/name"))
                    .header("host", "app.localhost")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.text().await.unwrap(), "app");
            }
        })
    });
    for client in clients.collect::<Vec<_>>() {
        client.await.unwrap();
    }
    assert_eq!(app.hits.load(Ordering::SeqCst), 100);
    let opened = app.connections.load(Ordering::SeqCst);
    assert!(opened <= 4, "at most one backend connection per client at a time: {opened}");
}

/// Stopping a listener stops accepting on every worker; a request already under way still
/// gets its answer.
#[tokio::test]
async fn a_stopped_listener_finishes_what_it_started_and_accepts_nothing() {
    let app = backend("app").await;
    let router = Router::new(RouterConfig { workers: 2, ..RouterConfig::default() });
    let _ = router
        .set_table(&RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = router.clone();
    let served = tokio::spawn(async move {
        serving
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    let slow = tokio::spawn(raw_request(
        addr,
        "GET /slow?ms=600 HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n",
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), served).await.unwrap().unwrap().unwrap();
    let (head, body) = tokio::time::timeout(Duration::from_secs(5), slow).await.unwrap().unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "app");
    assert!(TcpStream::connect(addr).await.is_err(), "nothing listens once stopped");
}

#[tokio::test]
async fn balances_and_skips_refusing_backends() {
    let backends = [backend("one").await, backend("two").await, backend("three").await];
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let mut addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    addrs.push(dead);
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &addrs)] };
    let (_router, addr) = router(RouterConfig::default(), table).await;
    for _ in 0..60 {
        let response = get(addr, "app.localhost", "/name").await;
        assert_eq!(response.status(), 200, "a refused connection moves on to a live backend");
    }
    for backend in &backends {
        let hits = backend.hits.load(Ordering::SeqCst);
        assert!(hits >= 10, "every live backend takes a share: {hits}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swap_under_load_drops_nothing_and_drains() {
    let (old, new) = (backend("old").await, backend("new").await);
    let (router, addr) = router(
        RouterConfig::default(),
        RouteTable { routes: vec![route("app", &["app.localhost"], &[old.addr])] },
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let successes = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (stop, failures, successes) = (stop.clone(), failures.clone(), successes.clone());
        load.push(tokio::spawn(async move {
            let client = client();
            while !stop.load(Ordering::Relaxed) {
                let result = client
                    .get(format!("http://{addr}/slow?ms=30"))
                    .header("host", "app.localhost")
                    .send()
                    .await;
                let ok = match result {
                    Ok(r) => r.status() == 200 && r.text().await.is_ok(),
                    Err(_) => false,
                };
                let counter = if ok { &successes } else { &failures };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let draining = router
        .set_table(&RouteTable { routes: vec![route("app", &["app.localhost"], &[new.addr])] });
    assert_eq!(draining.addrs(), vec![old.addr]);
    assert!(draining.wait(Duration::from_secs(5)).await, "the old backend drained in time");
    let old_hits_after_drain = old.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no request failed during the swap");
    assert!(successes.load(Ordering::Relaxed) > 100);
    assert_eq!(
        old.hits.load(Ordering::SeqCst),
        old_hits_after_drain,
        "no new request reached the old backend"
    );
    assert!(new.hits.load(Ordering::SeqCst) > 50);
    assert!(router.requests_for("app") as usize >= successes.load(Ordering::Relaxed));
    assert!(
        router.render_metrics().contains("paas_router_requests_total{app=\"app\",code=\"2xx\"}")
    );
}

#[tokio::test]
async fn tunnels_close_at_the_drain_deadline_not_before() {
    let (old, new) = (backend("old").await, backend("new").await);
    let (router, addr) = router(
        RouterConfig::default(),
        RouteTable { routes: vec![route("app", &["app.localhost"], &[old.addr])] },
    )
    .await;
    let mut tunnel = open_tunnel(addr, "app.localhost").await;
    let draining = router
        .set_table(&RouteTable { routes: vec![route("app", &["app.localhost"], &[new.addr])] });
    let deadline = Duration::from_millis(800);
    let wait = tokio::spawn(draining.wait(deadline));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(echo_roundtrip(&mut tunnel, b"still open").await.unwrap(), b"still open");
    assert!(!wait.await.unwrap(), "an open tunnel keeps the backend busy until the deadline");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(2), tunnel.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "tunnel closed after the deadline: {closed:?}"
    );
    // New connections go to the new backend.
    assert_eq!(get(addr, "app.localhost", "/name").await.text().await.unwrap(), "new");
}

/// What a hand-written backend does with one request: the bytes it writes back (none: it
/// says nothing) and whether it then closes the connection.
type Answering = fn(head: &str, nth_on_connection: usize) -> (Vec<u8>, bool);

/// A backend speaking HTTP/1.1 by hand on raw sockets, for answers hyper would never send.
/// Request bodies are read by their `Content-Length`. Counts the requests it read.
async fn raw_backend(answer: Answering) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                for nth in 1.. {
                    let end = loop {
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| value.trim().parse::<usize>().unwrap());
                    while buffer.len() < end + length {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.drain(..end + length);
                    counted.fetch_add(1, Ordering::SeqCst);
                    let (bytes, close) = answer(&head, nth);
                    if stream.write_all(&bytes).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, requests)
}

#[tokio::test]
async fn answers_framed_every_way_reach_the_client_whole() {
    let (backend, _) = raw_backend(|head, _| {
        let path = head.split(' ').nth(1).unwrap_or("");
        let (text, close): (&str, bool) = match path {
            "/length" => ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", false),
            "/chunked" => (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                 5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
                false,
            ),
            "/until-close" => ("HTTP/1.0 200 OK\r\n\r\nuntil the end", true),
            "/interim" => (
                "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
                 HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
                false,
            ),
            "/empty" => ("HTTP/1.1 204 No Content\r\n\r\n", false),
            "/two-lengths" => {
                ("HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nxy", true)
            }
            // Transfer-Encoding wins, and the length must not reach the client beside it.
            "/length-and-chunked" => (
                "HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n0\r\n\r\n",
                true,
            ),
            "/hops" => (
                "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
                 Keep-Alive: timeout=5\r\nX-Request-ID: the-app-s-own-id-0123456789\r\n\
                 X-App: kept\r\nVia: 1.1 app-cache\r\ncontent-length: 2\r\n\r\nok",
                false,
            ),
            _ => ("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", false),
        };
        (text.as_bytes().to_vec(), close)
    })
    .await;
    let table = RouteTable { routes: vec![route("raw", &["raw.localhost"], &[backend])] };
    let (_router, addr) = router(RouterConfig::default(), table).await;
    for (path, status, body) in [
        ("/length", 200, "hello"),
        ("/chunked", 200, "hello world"),
        ("/until-close", 200, "until the end"),
        ("/interim", 201, "ok"),
        ("/empty", 204, ""),
        ("/length", 200, "hello"),
    ] {
        let response = get(addr, "raw.localhost", path).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(response.text().await.unwrap(), body, "{path}");
    }
    // Two lengths that disagree could be read either way by whatever sits behind: refused.
    let response = get(addr, "raw.localhost", "/two-lengths").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let (head, _) = raw_request(
        addr,
        "GET /length-and-chunked HTTP/1.1\r\nHost: raw.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!head.to_ascii_lowercase().contains("content-length"), "{head}");
    assert_eq!(
        get(addr, "raw.localhost", "/length-and-chunked").await.text().await.unwrap(),
        "hello"
    );
    // Hop-by-hop headers stop here in this direction too; the request id is the router's.
    let response = get(addr, "raw.localhost", "/hops").await;
    let headers = response.headers();
    for hop in ["x-hop", "keep-alive", "connection"] {
        assert!(!headers.contains_key(hop), "{hop}: {headers:?}");
    }
    assert_eq!(headers["x-app"], "kept");
    assert_eq!(headers["x-request-id"].len(), 32, "{headers:?}");
    let via: Vec<_> = headers.get_all("via").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(via, ["1.1 app-cache", "1.1 paas"]);
}

#[tokio::test]
async fn a_backend_closing_idle_connections_costs_no_request() {
    // As gunicorn does after its keep-alive time (2 s by default): answer, then close.
    let (backend, requests) =
        raw_backend(|_, _| (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(), true))
            .await;
    let table = RouteTable { routes: vec![route("raw", &["raw.localhost"], &[backend])] };
    let (_router, addr) = router(RouterConfig::default(), table).await;
    for _ in 0..5 {
        assert_eq!(get(addr, "raw.localhost", "/").await.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(requests.load(Ordering::SeqCst), 5, "each request reached it once");
}

#[tokio::test]
async fn only_a_bodyless_get_is_sent_again_when_a_reused_connection_closes_unanswered() {
    // Closes every connection at its second request without a word: the moment a keep-alive
    // connection is closed under a request that was already on its way.
    let (backend, requests) = raw_backend(|_, nth| match nth {
        1 => (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(), false),
        _ => (Vec::new(), true),
    })
    .await;
    let table = RouteTable { routes: vec![route("raw", &["raw.localhost"], &[backend])] };
    let config = RouterConfig { workers: 1, ..RouterConfig::default() };
    let (_router, addr) = router(config, table).await;
    let client = client();
    let send = |method: reqwest::Method, body: &'static str| {
        let request =
            client.request(method, format!("http://{addr}/")).header("host", "raw.localhost");
        async move { request.body(body).send().await.unwrap().status() }
    };
    assert_eq!(send(reqwest::Method::GET, "").await, StatusCode::OK);
    // On the reused connection: closed unanswered, sent again on a new one.
    assert_eq!(send(reqwest::Method::GET, "").await, StatusCode::OK);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    // A POST may have been acted on: never sent twice.
    assert_eq!(send(reqwest::Method::POST, "order=1").await, StatusCode::BAD_GATEWAY);
    assert_eq!(requests.load(Ordering::SeqCst), 4);
}

/// One answer read off a raw connection: its head, and its body by `Content-Length` (none
/// for an answer to HEAD).
async fn read_answer(stream: &mut TcpStream, head_only: bool) -> (String, String) {
    let head = read_head(stream).await;
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, value)| value.trim().parse().unwrap());
    let mut body = vec![0u8; if head_only { 0 } else { length }];
    stream.read_exact(&mut body).await.unwrap();
    (head, String::from_utf8(body).unwrap())
}

/// Plain requests are read by the router's own HTTP/1.1 code, anything else by hyper's, which
/// takes over the connection from the first such request with every byte already read: here
/// pipelined GET and HEAD, then a POST with a body, then a GET asking to close, all in one
/// write, each answered in order.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order_across_the_hand_over_to_hyper() {
    let app = backend("app").await;
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let (_router, addr) = router(RouterConfig::default(), table).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let requests = "GET /name HTTP/1.1\r\nHost: app.localhost\r\n\r\n\
                    HEAD /name HTTP/1.1\r\nHost: app.localhost\r\n\r\n\
                    POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\n\r\nhello\
                    GET /name HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(requests.as_bytes()).await.unwrap();
    for (head_only, body) in [(false, "app"), (true, ""), (false, "5"), (false, "app")] {
        let (head, got) = read_answer(&mut stream, head_only).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains("\r\nx-request-id: "), "{head}");
        assert!(head.to_ascii_lowercase().contains("\r\ndate: "), "{head}");
        assert_eq!(got, body, "{head}");
    }
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "closed after the last answer, as asked: {rest:?}");
    assert_eq!(app.hits.load(Ordering::SeqCst), 4);
}

/// `Connection: close` on a plain request: answered, said so, and closed; a request's
/// `Connection` header and the headers it names never reach the app.
#[tokio::test]
async fn a_plain_request_asking_to_close_is_answered_then_closed() {
    let app = backend("app").await;
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let (_router, addr) = router(RouterConfig::default(), table).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = "GET /headers HTTP/1.1\r\nHost: app.localhost\r\nConnection: close, X-Hop\r\n\
                   X-Hop: secret\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, seen) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.to_ascii_lowercase().contains("\r\nconnection: close"), "{head}");
    assert!(seen.contains("x-kept: 1\n"), "{seen}");
    for hop in ["x-hop", "keep-alive", "connection: close"] {
        assert!(!seen.contains(hop), "{hop} reached the app: {seen}");
    }
}

/// Requests the router's own HTTP/1.1 code leaves to hyper are served all the same: HTTP/1.0,
/// more header lines than it parses in place, a head larger than it reads; a malformed one
/// gets hyper's 400.
#[tokio::test]
async fn unusual_requests_are_served_by_hyper() {
    let app = backend("app").await;
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let (_router, addr) = router(RouterConfig::default(), table).await;

    let (head, body) = raw_request(addr, "GET /name HTTP/1.0\r\nHost: app.localhost\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "app");

    let many: String = (0..40).map(|n| format!("X-Line-{n}: {n}\r\n")).collect();
    let request = format!("GET /headers HTTP/1.1\r\nHost: app.localhost\r\n{many}\r\n");
    let (head, seen) = raw_request(addr, &request).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(seen.contains("x-line-39: 39\n") && seen.contains("x-forwarded-for: "), "{seen}");

    let large = "a".repeat(20 * 1024);
    let request =
        format!("GET /headers HTTP/1.1\r\nHost: app.localhost\r\nX-Large: {large}\r\n\r\n");
    let (head, seen) = raw_request(addr, &request).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(seen.contains(&large), "the large header reached the app");

    let (head, _) = raw_request(addr, "GET /name HTTP/1.1\r\nHost app.localhost\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(app.hits.load(Ordering::SeqCst), 3, "the malformed one reached no app");
}

/// A client connection with no new request for the idle timeout is closed, whether it sent
/// one before or nothing at all.
#[tokio::test]
async fn idle_http1_connections_are_closed() {
    let app = backend("app").await;
    let table = RouteTable { routes: vec![route("app", &["app.localhost"], &[app.addr])] };
    let config =
        RouterConfig { idle_timeout: Duration::from_millis(300), ..RouterConfig::default() };
    let (_router, addr) = router(config, table).await;
    let mut used = TcpStream::connect(addr).await.unwrap();
    used.write_all(b"GET /name HTTP/1.1\r\nHost: app.localhost\r\n\r\n").await.unwrap();
    let (head, body) = read_answer(&mut used, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "app");
    let answered = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let connected = Instant::now();
    for (stream, started) in [(&mut used, answered), (&mut silent, connected)] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest));
        assert!(read.await.is_ok_and(|r| r.is_ok()), "closed by the router");
        assert!(rest.is_empty(), "{rest:?}");
        assert!(started.elapsed() >= Duration::from_millis(200), "not before the timeout");
    }
}
