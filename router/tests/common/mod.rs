//! What the router's tests share: a small app server and a router on loopback.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)] // each test file uses a part of it

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use paas_router::{Route, RouteTable, Router, RouterConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A small app server: `/name`, `/headers`, `/slow?ms=N`, `/sse`, `/echo`, and a raw echo after
/// any `Upgrade` request.
pub struct TestBackend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

pub async fn backend(name: &'static str) -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (counter, accepted) = (hits.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    respond(name, req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    TestBackend { addr, hits, connections }
}

pub fn full(text: impl Into<Bytes>) -> TestBody {
    Full::new(text.into()).boxed()
}

pub async fn respond(
    name: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    if req.headers().contains_key("upgrade") {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(full(""))
            .unwrap());
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = match path.as_str() {
        p if p.ends_with("/name") => full(name),
        "/headers" => {
            let mut text = String::new();
            for (key, value) in req.headers() {
                text.push_str(&format!("{key}: {}\n", value.to_str().unwrap_or("?")));
            }
            full(text)
        }
        "/slow" => {
            let ms: u64 = query.trim_start_matches("ms=").parse().unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            full(name)
        }
        "/sse" => {
            let stream = futures_util::stream::unfold(0, |n| async move {
                if n == 3 {
                    return None;
                }
                if n > 0 {
                    tokio::time::sleep(Duration::from_millis(700)).await;
                }
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from(format!("data: {n}\n\n")))),
                    n + 1,
                ))
            });
            return Ok(Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap());
        }
        "/echo" => {
            let collected =
                req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            full(format!("{}", collected.len()))
        }
        _ => {
            return Ok(Response::builder().status(404).body(full("not here")).unwrap());
        }
    };
    Ok(Response::new(body))
}

/// A router on a loopback port with `table`.
pub async fn router(config: RouterConfig, table: RouteTable) -> (Router, SocketAddr) {
    let router = Router::new(config);
    let _ = router.set_table(&table);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = router.clone();
    tokio::spawn(async move { serving.serve(listener, std::future::pending()).await });
    (router, addr)
}

pub fn route(app: &str, hosts: &[&str], backends: &[SocketAddr]) -> Route {
    Route {
        app: app.into(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        backends: backends.to_vec(),
        paths: vec![],
        https_redirect: false,
        hsts: false,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn get(addr: SocketAddr, host: &str, path: &str) -> reqwest::Response {
    client().get(format!("http://{addr}{path}")).header("host", host).send().await.unwrap()
}
