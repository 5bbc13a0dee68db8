//! Handling one client request: route it, forward it, stream the answer back.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use rand::Rng;
use tokio::sync::OwnedSemaphorePermit;

use crate::backend::{Backend, BackendBody, InflightGuard};
use crate::pages::{self, Page};
use crate::table::{LiveRoute, strip_port};
use crate::upstream::{self, Answer, AnswerBody, Connection, tokens};
use crate::{Scheme, Shared};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub(crate) static VIA_VALUE: HeaderValue = HeaderValue::from_static("1.1 paas");
pub(crate) static HSTS_VALUE: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// Where HTTP-01 challenges are asked for (RFC 8555 §8.3).
const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// How one client connection reached the router.
#[derive(Debug, Clone)]
pub(crate) struct Edge {
    pub client: SocketAddr,
    /// The client's address as `X-Forwarded-For` gives it, made once per connection.
    pub client_ip: HeaderValue,
    pub scheme: Scheme,
    /// The router's port the client connected to.
    pub port: u16,
}

impl Edge {
    pub(crate) fn new(client: SocketAddr, scheme: Scheme, port: u16) -> Edge {
        let ip = client.ip().to_canonical().to_string();
        let client_ip = HeaderValue::from_str(&ip).unwrap_or(HeaderValue::from_static("-"));
        Edge { client, client_ip, scheme, port }
    }
}

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
static HOP_BY_HOP: [&HeaderName; 7] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
];

/// What the router answers with: its own page, or a backend's streamed body.
// Nearly every answer is the large variant: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ProxyBody {
    Page(Full<Bytes>),
    Backend(TrackedBody),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ProxyBody::Page(full) => match Pin::new(full).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            ProxyBody::Backend(tracked) => Pin::new(tracked).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Page(full) => full.is_end_stream(),
            ProxyBody::Backend(tracked) => tracked.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Page(full) => full.size_hint(),
            ProxyBody::Backend(tracked) => tracked.inner.size_hint(),
        }
    }
}

/// A backend's response body on its way to the client. When it ends, the connection goes
/// back to the pool, the request stops counting as in flight, and the access log is written.
pub(crate) struct TrackedBody {
    inner: AnswerBody,
    done: Option<Completion>,
}

struct Completion {
    guard: InflightGuard,
    log: AccessLog,
    bytes: u64,
}

impl Completion {
    /// `connection`: the keep-alive connection, back to the pool after a complete answer.
    fn finish(self, connection: Option<Connection>) {
        if let Some(connection) = connection {
            self.guard.backend().release(connection);
        }
        self.log.write(self.bytes);
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(done)) = (frame.data_ref(), this.done.as_mut()) {
                    done.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(done) = this.done.take() {
                    done.finish(this.inner.reusable());
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(done) = this.done.take() {
                    done.finish(None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl TrackedBody {
    /// The backend connection of a 101 answer, for the tunnel, which counts as in flight.
    fn upgraded(&mut self) -> Option<(Connection, InflightGuard)> {
        let guard = self.done.as_ref()?.guard.backend().begin();
        Some((self.inner.upgraded()?, guard))
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            // An empty body may never be polled; it still completed.
            done.finish(self.inner.reusable());
        }
    }
}

/// The facts of one request, logged once its response has been sent.
pub(crate) struct AccessLog {
    /// The app's route, once the request was routed.
    route: Option<Arc<LiveRoute>>,
    method: hyper::Method,
    /// Only the path is logged: a query string may carry secrets.
    path: Box<str>,
    status: u16,
    request_id: HeaderValue,
    started: Instant,
}

impl AccessLog {
    pub(crate) fn new(method: hyper::Method, path: &str, request_id: HeaderValue) -> AccessLog {
        let started = Instant::now();
        AccessLog { route: None, method, path: path.into(), status: 0, request_id, started }
    }

    pub(crate) fn request_id(&self) -> &HeaderValue {
        &self.request_id
    }

    fn write(&self, bytes: u64) {
        let elapsed = self.started.elapsed();
        if let Some(route) = &self.route {
            route.metrics.record(self.status, bytes, elapsed.as_micros() as u64);
        }
        tracing::info!(
            target: crate::ACCESS_LOG_TARGET,
            app = self.route.as_ref().map_or("-", |route| route.app.as_str()),
            method = self.method.as_str(),
            path = &*self.path,
            status = self.status,
            ms = elapsed.as_secs_f64() * 1000.0,
            bytes,
            request_id = id_str(&self.request_id),
        );
    }
}

/// What routing needs of a request's head, however it was read.
pub(crate) struct Head<'a> {
    /// The Host header (HTTP/2: the authority).
    pub host: &'a str,
    /// The target as sent: path and query.
    pub target: &'a str,
    /// What a trusted proxy in front said of the client (None: no proxy of ours).
    pub proxy: Option<ProxySaid<'a>>,
}

impl Head<'_> {
    pub(crate) fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target, |(path, _)| path)
    }
}

/// The forwarding headers of a trusted proxy in front: how the request reached *it*.
#[derive(Default)]
pub(crate) struct ProxySaid<'a> {
    /// Its `X-Forwarded-For` (the first line).
    pub forwarded_for: Option<&'a str>,
    /// Its `X-Forwarded-Proto` and `X-Forwarded-Port` (the last line of each: the proxy's own
    /// value, should it append rather than replace).
    pub proto: Option<&'a str>,
    pub port: Option<&'a str>,
}

/// Answers one request that came in at `edge` through hyper's HTTP/1.1 or HTTP/2 server,
/// whose connection holds `slot` under the connection cap.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    mut request: Request<Incoming>,
    edge: Edge,
    slot: Arc<OwnedSemaphorePermit>,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    let request_id = request_id(request.headers());
    let path = request.uri().path();
    let log = AccessLog::new(request.method().clone(), path, request_id);

    if let Some(reason) = refusal(&request) {
        return Ok(page(pages::bad_request(reason, id_str(&log.request_id)), log));
    }
    let host_value = match request.headers().get(header::HOST).filter(|h| h.to_str().is_ok()) {
        Some(host) => host.clone(),
        // HTTP/2 (and an absolute-form target): the authority, without any userinfo.
        None => {
            let authority = match (request.uri().host(), request.uri().port_u16()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_string(),
                (None, _) => String::new(),
            };
            HeaderValue::from_str(&authority).unwrap_or(HeaderValue::from_static(""))
        }
    };
    let from_proxy = shared.config.trusted_proxies.contains(edge.client.ip());
    let headers = request.headers();
    let last = |name: &HeaderName| headers.get_all(name).iter().next_back();
    let proxy = from_proxy.then(|| ProxySaid {
        forwarded_for: headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()),
        proto: last(&X_FORWARDED_PROTO).and_then(|v| v.to_str().ok()),
        port: last(&X_FORWARDED_PORT).and_then(|v| v.to_str().ok()),
    });
    let target = request.uri().path_and_query().map_or("", |p| p.as_str());
    let head = Head { host: host_value.to_str().unwrap_or(""), target, proxy };
    let (route, log) = match route(&shared, &edge, &head, log) {
        Ok(routed) => routed,
        Err(response) => return Ok(*response),
    };
    let forwarded = forwarding(&edge, &head);

    let limit = shared.config.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        // An HTTP/1 client is likely still sending: closing with its body unread would reset
        // the connection under it before it reads this answer. Read and drop the rest for a
        // while instead, as nginx's lingering close does. (HTTP/2 resets just the stream.)
        if request.version() <= Version::HTTP_11 {
            tokio::spawn(discard(request.into_body()));
        }
        return Ok(page(pages::too_large(limit, id_str(&log.request_id)), log));
    }

    // A WebSocket inside an HTTP/2 connection (RFC 8441) reaches the app as the HTTP/1.1
    // upgrade it understands; the tunnel is the same.
    let h2_websocket = is_h2_websocket(&request);
    let upgrade = (h2_websocket || is_upgrade(request.headers())).then(|| ClientUpgrade {
        on: hyper::upgrade::on(&mut request),
        h2_websocket,
        slot,
    });
    let (parts, body) = request.into_parts();
    let Some(target) = parts.uri.path_and_query() else {
        return Ok(page(pages::bad_request("missing path", id_str(&log.request_id)), log));
    };
    let method = if h2_websocket { hyper::Method::GET } else { parts.method };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers, upgrade.is_some());
    if h2_websocket {
        as_websocket_upgrade(&mut headers);
    }
    // HTTP/2 names the host in the request's authority only; an HTTP/1.1 app needs Host.
    if !headers.contains_key(header::HOST) {
        headers.insert(header::HOST, host_value.clone());
    }
    // The same claims as X-Forwarded-For in other spellings, believed by other frameworks
    // (Rack's request.ip reads Forwarded, Gin and chi X-Real-IP). The router sets neither,
    // so from a client that is no proxy of ours they are dropped rather than replaced.
    if !from_proxy && headers.keys().any(|name| name == header::FORWARDED || name == X_REAL_IP) {
        headers.remove(header::FORWARDED);
        headers.remove(&X_REAL_IP);
    }
    headers.insert(X_FORWARDED_HOST.clone(), host_value.clone());
    for (name, value) in forwarded.lines(&log.request_id) {
        headers.insert(name, value.clone());
    }
    headers.append(header::VIA, VIA_VALUE.clone());
    // A body of unknown length (chunked from an HTTP/1.1 client, or from HTTP/2 without
    // Content-Length) goes on chunked.
    let body = (!body.is_end_stream())
        .then(|| Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)));
    let chunked = body.is_some() && !headers.contains_key(header::CONTENT_LENGTH);
    let outgoing = Outgoing {
        head: upstream::request_head(&method, target.as_str(), &headers, chunked),
        body,
        chunked,
        method,
    };
    Ok(respond(&shared, &edge, route, outgoing, upgrade, log).await)
}

/// A client's request to switch its connection to a WebSocket.
pub(crate) struct ClientUpgrade {
    on: hyper::upgrade::OnUpgrade,
    /// Asked for inside HTTP/2 (RFC 8441), answered 200 rather than 101.
    h2_websocket: bool,
    /// The client connection's place under the cap, held by the tunnel it becomes.
    slot: Arc<OwnedSemaphorePermit>,
}

/// Routes a request to its app by host, or answers it here: an ACME challenge, an unknown
/// host, a redirect to HTTPS, an app with no process up for the path. The route is also
/// in the access log from then on.
pub(crate) fn route(
    shared: &Shared,
    edge: &Edge,
    head: &Head<'_>,
    mut log: AccessLog,
) -> Result<(Arc<LiveRoute>, AccessLog), Box<Response<ProxyBody>>> {
    let path = head.path();
    // Answered before routing: the ACME server asks on the host being validated, which may
    // not be routed yet, and must never be redirected to a certificate it is there to make.
    if let Some(token) = path.strip_prefix(ACME_CHALLENGE_PATH)
        && let Some(answer) = shared.tls().http01(token)
    {
        return Err(Box::new(plain(StatusCode::OK, answer.to_string(), log)));
    }
    let host = head.host;
    let table = shared.table();
    let Some(route) = table.lookup(host).cloned() else {
        return Err(Box::new(page(pages::unknown_host(host, id_str(&log.request_id)), log)));
    };
    log.route = Some(route.clone());
    // Behind a trusted proxy that terminated TLS itself, the request already was HTTPS:
    // redirecting it would loop.
    let proxied_https =
        head.proxy.as_ref().and_then(|p| p.proto).is_some_and(|proto| {
            proto.rsplit(',').next().is_some_and(|last| last.trim() == "https")
        });
    if edge.scheme == Scheme::Http
        && route.https_redirect
        && !proxied_https
        && let Some(location) = https_location(shared, host, head.target)
    {
        return Err(Box::new(redirect(location, log)));
    }
    // Chosen by the path as sent; the route outlives a table swap meanwhile.
    let (process_type, backends) = route.serving(path);
    if backends.is_empty() {
        let unavailable = pages::no_backends(&route.app, process_type, id_str(&log.request_id));
        return Err(Box::new(page(unavailable, log)));
    }
    Ok((route, log))
}

/// What became of a forwarded request: the backend's answer, its body on the way, or the
/// router's own page when no backend answered in time.
// Nearly every outcome is an answer: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    Answered(Answer, TrackedBody),
    Page(Box<Response<ProxyBody>>),
}

/// Forwards a routed request to the backends serving its path.
pub(crate) async fn exchange(
    shared: &Shared,
    route: &LiveRoute,
    outgoing: Outgoing,
    upgrade: bool,
    mut log: AccessLog,
) -> Outcome {
    let (_, backends) = route.serving(&log.path);
    let forwarded = forward(shared, &route.app, backends, outgoing, upgrade).await;
    let (answer, connection, guard) = match forwarded {
        Ok(answer) => answer,
        Err(failure) => {
            let id = id_str(&log.request_id);
            let page = match failure {
                Failure::Timeout => pages::timeout(&route.app, id),
                Failure::Backend => pages::bad_gateway(&route.app, id),
                Failure::TooLarge => pages::too_large(shared.config.max_body_bytes, id),
            };
            return Outcome::Page(Box::new(self::page(page, log)));
        }
    };
    log.status = answer.status.as_u16();
    let body = answer.body(connection);
    let body = TrackedBody { inner: body, done: Some(Completion { guard, log, bytes: 0 }) };
    Outcome::Answered(answer, body)
}

/// Forwards a routed request and makes hyper's response of the answer (or the router's page
/// when no backend answered in time).
pub(crate) async fn respond(
    shared: &Shared,
    edge: &Edge,
    route: Arc<LiveRoute>,
    outgoing: Outgoing,
    upgrade: Option<ClientUpgrade>,
    log: AccessLog,
) -> Response<ProxyBody> {
    let request_id = log.request_id.clone();
    let (answer, mut body) = match exchange(shared, &route, outgoing, upgrade.is_some(), log).await
    {
        Outcome::Answered(answer, body) => (answer, body),
        Outcome::Page(page) => return *page,
    };
    let mut response = Response::new(());
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers();
    let switching = answer.status == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(response.headers_mut(), switching);
    if switching && upgrade.as_ref().is_some_and(|upgrade| upgrade.h2_websocket) {
        // RFC 8441 §5: the HTTP/2 answer to an accepted WebSocket is a 200, and the
        // HTTP/1.1 handshake's own headers mean nothing there.
        *response.status_mut() = StatusCode::OK;
        for name in [header::CONNECTION, header::UPGRADE, header::SEC_WEBSOCKET_ACCEPT] {
            response.headers_mut().remove(name);
        }
    }
    response.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
    response.headers_mut().append(header::VIA, VIA_VALUE.clone());
    // An app's own policy (includeSubDomains, preload) is kept.
    if edge.scheme == Scheme::Https
        && route.hsts
        && !response.headers().contains_key(header::STRICT_TRANSPORT_SECURITY)
    {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HSTS_VALUE.clone());
    }

    if switching
        && let Some(upgrade) = upgrade
        && let Some((backend, tunnel_guard)) = body.upgraded()
    {
        tokio::spawn(tunnel(upgrade.on, backend, tunnel_guard, upgrade.slot));
    }
    response.map(|()| ProxyBody::Backend(body))
}

/// A request on its way to a backend: its head as written on the wire, and its body.
pub(crate) struct Outgoing {
    pub head: Vec<u8>,
    pub body: Option<BackendBody>,
    pub chunked: bool,
    pub method: hyper::Method,
}

impl Outgoing {
    /// Whether sending it twice does no harm (RFC 9110 §9.2.2) once the first copy is lost:
    /// no body was taken from the client, and the method is idempotent.
    fn can_resend(&self) -> bool {
        self.body.is_none()
            && matches!(
                self.method,
                hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
            )
    }
}

enum Failure {
    /// No answer in time (connect or first byte).
    Timeout,
    /// No backend could be reached, or one failed mid-answer.
    Backend,
    /// The client's body went over the limit while it was being sent.
    TooLarge,
}

/// Sends the request to the least-busy backend, moving on to the next when a connection
/// cannot be made, and sending it again on a new connection when a reused one turned out to
/// be closed before the backend said anything (the only retries that are safe).
async fn forward(
    shared: &Shared,
    app: &str,
    backends: &[Arc<Backend>],
    mut outgoing: Outgoing,
    upgrade: bool,
) -> Result<(Answer, Connection, InflightGuard), Failure> {
    let config = &shared.config;
    let mut tried: Vec<usize> = Vec::new();
    let mut timed_out = false;
    let attempts = backends.len() + 2;
    for _ in 0..attempts {
        let Some(index) = pick(backends, &tried) else {
            break;
        };
        let backend = &backends[index];
        let guard = backend.begin();
        let connection = if upgrade {
            backend.connect(config.connect_timeout).await
        } else {
            backend.connection(config.connect_timeout).await
        };
        let mut connection = match connection {
            Ok(connection) => connection,
            Err(err) => {
                tracing::warn!(backend = %backend.addr, %app, error = %err, "backend unreachable");
                timed_out |= matches!(err, upstream::ConnectError::Timeout(_));
                tried.push(index);
                continue;
            }
        };
        let resendable = connection.reused && outgoing.can_resend();
        let exchange = connection.exchange(
            &outgoing.head,
            outgoing.body.take(),
            outgoing.chunked,
            &outgoing.method,
        );
        match tokio::time::timeout(config.first_byte_timeout, exchange).await {
            Ok(Ok(answer)) => return Ok((answer, connection, guard)),
            Ok(Err(err)) if resendable && err.nothing_answered() => continue,
            Ok(Err(err)) if err.body_too_large() => return Err(Failure::TooLarge),
            Ok(Err(err)) => {
                tracing::warn!(backend = %backend.addr, %app, error = %err, "backend failed");
                return Err(Failure::Backend);
            }
            Err(_) => return Err(Failure::Timeout),
        }
    }
    Err(if timed_out { Failure::Timeout } else { Failure::Backend })
}

/// Least outstanding requests; ties broken round-robin so equal backends share the load.
fn pick(backends: &[Arc<Backend>], skip: &[usize]) -> Option<usize> {
    thread_local! {
        // Per thread: a counter shared by every worker would bounce between cores.
        static NEXT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    let n = backends.len();
    if n == 1 {
        return (!skip.contains(&0)).then_some(0);
    }
    let start = NEXT.with(|next| next.replace(next.get().wrapping_add(1)));
    (0..n)
        .map(|i| (start + i) % n)
        .filter(|i| !skip.contains(i))
        .min_by_key(|&i| backends[i].inflight())
}

/// Reads a refused request's body and drops it, for [`LINGER`] and [`LINGER_BYTES`] at most.
async fn discard(mut body: Incoming) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(LINGER, async {
        let mut read = 0;
        while read < LINGER_BYTES
            && let Some(Ok(frame)) = body.frame().await
        {
            read += frame.data_ref().map_or(0, Bytes::len);
        }
    })
    .await;
}

/// How long, and how much of, a refused body is read before the connection is closed.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// Copies bytes both ways until either side closes; the client's connection keeps its
/// `_slot` under the connection cap until then.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    backend: Connection,
    guard: InflightGuard,
    _slot: Arc<OwnedSemaphorePermit>,
) {
    use tokio::io::AsyncWriteExt;
    let mut client = match client.await {
        Ok(client) => TokioIo::new(client),
        Err(err) => {
            tracing::debug!(error = %err, "upgrade failed");
            return;
        }
    };
    // What the backend sent right after its 101, read with the answer's head.
    let (mut backend_io, early) = backend.into_parts();
    if !early.is_empty() && client.write_all(&early).await.is_err() {
        return;
    }
    let mut closing = guard.backend().closing();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut backend_io) => {}
        _ = closing.wait_for(|closing| *closing) => {
            tracing::debug!(backend = %guard.backend().addr, "closing tunnel at drain deadline");
        }
    }
}

fn page(page: Page, mut log: AccessLog) -> Response<ProxyBody> {
    log.status = page.status.as_u16();
    log.write(page.body.len() as u64);
    let mut response = Response::new(ProxyBody::Page(Full::new(page.body)));
    *response.status_mut() = page.status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_REQUEST_ID.clone(), log.request_id.clone());
    response
}

/// A short text answer of the router's own.
fn plain(status: StatusCode, body: String, mut log: AccessLog) -> Response<ProxyBody> {
    log.status = status.as_u16();
    log.write(body.len() as u64);
    let mut response = Response::new(ProxyBody::Page(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_REQUEST_ID.clone(), log.request_id.clone());
    response
}

/// A permanent redirect that keeps the method and body (308), to the same target over HTTPS.
fn redirect(location: HeaderValue, log: AccessLog) -> Response<ProxyBody> {
    let body = format!("Moved to {}\n", location.to_str().unwrap_or("https"));
    let mut response = plain(StatusCode::PERMANENT_REDIRECT, body, log);
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// Where a plain HTTP request for `host` belongs over HTTPS, if the router serves HTTPS and
/// has a certificate for that host.
fn https_location(shared: &Shared, host: &str, target: &str) -> Option<HeaderValue> {
    let port = shared.https_port.load(Ordering::Relaxed);
    let name = strip_port(host);
    if port == 0 || shared.tls().certificate(name).is_none() {
        return None;
    }
    let target = if target.is_empty() { "/" } else { target };
    let location = match port {
        443 => format!("https://{name}{target}"),
        port => format!("https://{name}:{port}{target}"),
    };
    HeaderValue::from_str(&location).ok()
}

fn id_str(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or("-")
}

/// Why a request is answered 400 before it is routed, if it is.
fn refusal(request: &Request<Incoming>) -> Option<&'static str> {
    let headers = request.headers();
    // RFC 9112 §3.2 says 400: routing by either one could reach another app than the one a
    // proxy or cache in front, reading the other, believes the request is for.
    if headers.get_all(header::HOST).iter().nth(1).is_some() {
        return Some("more than one Host header");
    }
    // An absolute-form target (`GET http://a.example/ HTTP/1.1`) names the host too, and
    // RFC 9112 §3.2.2 prefers it to Host, yet the app sees only Host: refuse to choose.
    if let Some(target) = request.uri().host() {
        let host = headers.get(header::HOST).map(|h| h.to_str().map_or("", strip_port));
        let same = |host: &str| {
            host.trim_end_matches('.').eq_ignore_ascii_case(target.trim_end_matches('.'))
        };
        if host.is_some_and(|host| !same(host)) {
            return Some("the request target names another host than the Host header");
        }
    }
    // After an h2c upgrade the connection is HTTP/2 straight to the app, and every later
    // stream on it would pass the router unseen (h2c smuggling). Refused rather than
    // ignored, so a client that asked learns why.
    if tokens(headers, header::UPGRADE).any(|token| token.eq_ignore_ascii_case("h2c")) {
        return Some("h2c upgrade is not supported");
    }
    None
}

/// An extended CONNECT (RFC 8441) opening a WebSocket over HTTP/2.
fn is_h2_websocket(request: &Request<Incoming>) -> bool {
    request.method() == hyper::Method::CONNECT
        && request
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// The HTTP/1.1 handshake headers an HTTP/2 WebSocket request has no need of: the app
/// checks them. The key is fresh; the app's answer to it stays between router and app.
fn as_websocket_upgrade(headers: &mut HeaderMap) {
    use base64::Engine;
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let nonce: [u8; 16] = rand::rng().random();
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    if let Ok(key) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, key);
    }
    if !headers.contains_key(header::SEC_WEBSOCKET_VERSION) {
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && tokens(headers, header::CONNECTION).any(|token| token.eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers, and any header the `Connection` header names. For an
/// upgrade, `Connection: upgrade` and `Upgrade` must pass through.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // `keep-alive` and `close` are the usual tokens, and name no header but one removed below.
    let named: Vec<HeaderName> = tokens(headers, header::CONNECTION)
        .filter(|token| {
            !token.eq_ignore_ascii_case("keep-alive") && !token.eq_ignore_ascii_case("close")
        })
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .filter(|name| !(upgrade && name == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    // Most messages carry one of these at most (`Connection`): a look at the names present
    // is cheaper than a hashed removal of each.
    let mut present = 0u8;
    for name in headers.keys() {
        if let Some(index) = HOP_BY_HOP.iter().position(|hop| *hop == name) {
            present |= 1 << index;
        }
    }
    for (index, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << index) != 0 {
            headers.remove(*name);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if headers.keys().any(|name| name == header::UPGRADE) {
        headers.remove(header::UPGRADE);
    }
}

/// The headers the router sets on every request it forwards.
pub(crate) struct Forwarded {
    forwarded_for: HeaderValue,
    proto: HeaderValue,
    port: HeaderValue,
    start: HeaderValue,
}

impl Forwarded {
    /// Each header with its value, to replace whatever the client sent under that name
    /// (`X-Forwarded-Host`, the Host as sent, aside).
    pub(crate) fn lines<'a>(
        &'a self,
        request_id: &'a HeaderValue,
    ) -> [(&'static HeaderName, &'a HeaderValue); 5] {
        [
            (&X_FORWARDED_FOR, &self.forwarded_for),
            (&X_FORWARDED_PROTO, &self.proto),
            (&X_FORWARDED_PORT, &self.port),
            (&X_REQUEST_ID, request_id),
            (&X_REQUEST_START, &self.start),
        ]
    }
}

/// The `X-Forwarded-*` values of a request that reached this router at `edge` (how the
/// client connected: scheme and port). A trusted proxy's own `X-Forwarded-Proto` and
/// `X-Forwarded-Port` (how the request reached *it*) are kept when they make sense.
pub(crate) fn forwarding(edge: &Edge, head: &Head<'_>) -> Forwarded {
    let proxy = head.proxy.as_ref();
    // A trusted proxy's list is extended; anyone else's is a claim about itself that apps
    // (daphne's --proxy-headers, rate limits) would believe, so it is replaced.
    let previous = proxy.and_then(|p| p.forwarded_for).filter(|f| !f.trim().is_empty());
    let forwarded_for = match previous {
        Some(previous) => {
            let client_ip = edge.client_ip.to_str().unwrap_or("-");
            HeaderValue::from_str(&format!("{previous}, {client_ip}"))
                .unwrap_or_else(|_| edge.client_ip.clone())
        }
        None => edge.client_ip.clone(),
    };
    let proxy_proto = proxy.and_then(|p| p.proto).and_then(|proto| match proto {
        "http" => Some(Scheme::Http),
        "https" => Some(Scheme::Https),
        _ => None,
    });
    let proxy_port = proxy.and_then(|p| p.port).and_then(|port| port.parse::<u16>().ok());
    // A proxy that names only the scheme: its default port, not this router's.
    let proxy_port =
        proxy_port.or(proxy_proto.map(|proto| if proto == Scheme::Https { 443 } else { 80 }));
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Forwarded {
        forwarded_for,
        proto: HeaderValue::from_static(proxy_proto.unwrap_or(edge.scheme).as_str()),
        port: HeaderValue::from(proxy_port.unwrap_or(edge.port)),
        start: request_start(millis),
    }
}

/// The client's `X-Request-ID` when it is 20–200 safe characters, else a new random one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&X_REQUEST_ID) {
        Some(given) if safe_request_id(given.as_bytes()) => given.clone(),
        _ => new_request_id(),
    }
}

/// [`request_id`] of an `X-Request-ID` as sent.
pub(crate) fn request_id_from(given: Option<&[u8]>) -> HeaderValue {
    match given.filter(|given| safe_request_id(given)).map(HeaderValue::from_bytes) {
        Some(Ok(given)) => given,
        _ => new_request_id(),
    }
}

fn safe_request_id(bytes: &[u8]) -> bool {
    (20..=200).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(b))
}

fn new_request_id() -> HeaderValue {
    let mut id: u128 = rand::rng().random();
    let mut hex = [0u8; 32];
    for digit in hex.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(id & 0xf) as usize];
        id >>= 4;
    }
    HeaderValue::from_bytes(&hex).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// `X-Request-Start: t=MILLIS` (Heroku's form, read by APM agents for queue time).
fn request_start(millis: u128) -> HeaderValue {
    HeaderValue::from_bytes(written(&mut [0; 48], format_args!("t={millis}")))
        .unwrap_or(HeaderValue::from_static("t=0"))
}

/// `text` formatted into `buffer`, with no `String` in between: these headers are made for
/// every request.
fn written<'a>(buffer: &'a mut [u8], text: std::fmt::Arguments<'_>) -> &'a [u8] {
    use std::io::Write;
    let size = buffer.len();
    let mut rest = &mut buffer[..];
    let _ = rest.write_fmt(text);
    let used = size - rest.len();
    &buffer[..used]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        let mut headers = HeaderMap::new();
        let fresh = request_id(&headers);
        assert_eq!(fresh.len(), 32);
        assert!(fresh.as_bytes().iter().all(u8::is_ascii_hexdigit), "{fresh:?}");
        assert_ne!(request_id(&headers), fresh, "each one is new");
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("short"));
        assert_ne!(request_id(&headers), "short");
        let good = "0123456789abcdef-ghij-klmn";
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static(good));
        assert_eq!(request_id(&headers), good);
        headers
            .insert(&X_REQUEST_ID, HeaderValue::from_static("has spaces in it so it is refused"));
        assert_ne!(request_id(&headers), "has spaces in it so it is refused");
    }

    #[test]
    fn request_start_is_heroku_s_form() {
        for millis in [0u128, 7, 1_764_720_000_123, u128::from(u64::MAX)] {
            assert_eq!(request_start(millis), format!("t={millis}").as_str());
        }
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-kept"));

        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&headers));
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
    }
}
