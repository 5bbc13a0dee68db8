//! The client side of HTTP/1.1, by hand, for the request nearly every client sends: a head
//! and no body.
//!
//! hyper's server turns each request into a `Request` with a `HeaderMap`, a hashed table
//! built per request only for the router to write it out again line by line. Here a head is
//! parsed where it was read (httparse), routed, and sent on with its lines copied as they
//! came, minus the hop-by-hop headers and those the router sets itself; the answer goes back
//! in one write. Anything else (a body, an upgrade, `Expect`, HTTP/1.0, a head too large,
//! malformed or with many headers) hands the connection, with every byte read so far, to
//! hyper's server for the rest of its life, so no request is ever split between the two.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use crate::proxy::{self, AccessLog, Edge, Head, Outcome, Outgoing, ProxyBody, ProxySaid};
use crate::table::LiveRoute;
use crate::upstream::{Answer, hex};
use crate::{Scheme, Shared};

/// Header lines parsed in place; a head with more goes to hyper (which takes up to 100).
const HEADERS: usize = 32;
/// A head still incomplete at this size goes to hyper, which answers 431 past its limit.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Room made in the read buffer before each read.
const READ_SIZE: usize = 8 * 1024;
/// Body bytes gathered behind the head before they are written.
const WRITE_GATHER: usize = 64 * 1024;

/// Serves one client connection until it closes, its requests by hand while they are the
/// plain kind, and by hyper from the first one that is not.
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    stream: S,
    edge: Edge,
    slot: Arc<OwnedSemaphorePermit>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut client = Client {
        stream,
        input: BytesMut::with_capacity(READ_SIZE),
        output: Vec::with_capacity(READ_SIZE),
    };
    loop {
        match client.next(&shared, &edge).await {
            Ok(Next::Again) => {}
            Ok(Next::Close) => {
                let _ = client.stream.shutdown().await;
                return;
            }
            Ok(Next::Gone) => return,
            Ok(Next::ToHyper) => {
                let stream = Rewind { read: client.input.freeze(), stream: client.stream };
                crate::serve_http1(shared, stream, edge, slot).await;
                return;
            }
            Err(err) => {
                tracing::debug!(client = %edge.client, error = %err, "client connection ended");
                return;
            }
        }
    }
}

struct Client<S> {
    stream: S,
    /// Bytes read from the client and not yet used: the next request's head, or more.
    input: BytesMut,
    /// The answer being written.
    output: Vec<u8>,
}

/// What becomes of the connection after one request.
enum Next {
    /// Ready for the next request.
    Again,
    /// Answered, and the client asked to close (or the answer broke off midway).
    Close,
    /// The client left, or sent nothing in time.
    Gone,
    /// This request is one for hyper, and so is the rest of the connection.
    ToHyper,
}

/// A request read and routed: answered here, or to be forwarded.
// Forwarding is the common case: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Plan {
    Answer(Box<Response<ProxyBody>>),
    Forward(Arc<LiveRoute>, Outgoing, AccessLog),
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Reads, routes and answers one request.
    async fn next(&mut self, shared: &Shared, edge: &Edge) -> io::Result<Next> {
        let deadline = tokio::time::Instant::now() + shared.config.idle_timeout;
        let (plan, close, head_only) = loop {
            if !self.input.is_empty() {
                match plan(shared, edge, &self.input) {
                    Parsed::Complete { plan, size, close, head_only } => {
                        self.input.advance(size);
                        break (plan, close, head_only);
                    }
                    Parsed::Partial if self.input.len() <= MAX_HEAD_BYTES => {}
                    Parsed::Partial | Parsed::Unusual => return Ok(Next::ToHyper),
                }
            }
            if self.input.capacity() - self.input.len() < READ_SIZE / 4 {
                self.input.reserve(READ_SIZE);
            }
            let read =
                tokio::time::timeout_at(deadline, read_buf(&mut self.stream, &mut self.input));
            match read.await {
                Ok(Ok(0)) | Err(_) => return Ok(Next::Gone),
                Ok(Ok(_)) => {}
                Ok(Err(err)) => return Err(err),
            }
        };
        let (route, outgoing, log) = match plan {
            Plan::Answer(page) => {
                let sent = self.send(*page, head_only, close).await;
                return next_after(sent, close);
            }
            Plan::Forward(route, outgoing, log) => (route, outgoing, log),
        };
        let request_id = log.request_id().clone();
        let sent = match proxy::exchange(shared, &route, outgoing, false, log).await {
            Outcome::Page(page) => self.send(*page, head_only, close).await,
            Outcome::Answered(answer, body) => {
                let head = self.answer_head(&answer, &route, edge, &request_id);
                self.send_rest(answer.status, head, ProxyBody::Backend(body), head_only, close)
                    .await
            }
        };
        next_after(sent, close)
    }

    /// Writes a response made here: a page of the router's own.
    async fn send(
        &mut self,
        response: Response<ProxyBody>,
        head_only: bool,
        close: bool,
    ) -> io::Result<bool> {
        let (parts, body) = response.into_parts();
        self.output.clear();
        status_line(&mut self.output, parts.status);
        for (name, value) in &parts.headers {
            line(&mut self.output, name.as_str().as_bytes(), value.as_bytes());
        }
        let head = HeadSaid {
            date: parts.headers.contains_key(header::DATE),
            length: parts.headers.contains_key(header::CONTENT_LENGTH),
        };
        self.send_rest(parts.status, head, body, head_only, close).await
    }

    /// Begins the head of a backend's answer for the client: its lines as they came but
    /// the hop-by-hop ones (RFC 9110 §7.6.1), with the router's `X-Request-ID` and `Via`,
    /// and HSTS over HTTPS where the route asks for it and the app set none.
    fn answer_head(
        &mut self,
        answer: &Answer,
        route: &LiveRoute,
        edge: &Edge,
        request_id: &HeaderValue,
    ) -> HeadSaid {
        let out = &mut self.output;
        out.clear();
        status_line(out, answer.status);
        let named = answer
            .lines()
            .any(|(name, value)| name.eq_ignore_ascii_case("connection") && names_headers(value));
        let mut said = HeadSaid::default();
        let mut hsts = false;
        for (name, value) in answer.lines() {
            let dropped = HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
                || name.eq_ignore_ascii_case("x-request-id")
                || (named && named_by_connection(answer.lines(), name));
            if !dropped {
                said.date |= name.eq_ignore_ascii_case("date");
                said.length |= name.eq_ignore_ascii_case("content-length");
                hsts |= name.eq_ignore_ascii_case("strict-transport-security");
                line(out, name.as_bytes(), value);
            }
        }
        line(out, b"x-request-id", request_id.as_bytes());
        line(out, b"via", proxy::VIA_VALUE.as_bytes());
        if edge.scheme == Scheme::Https && route.hsts && !hsts {
            line(out, b"strict-transport-security", proxy::HSTS_VALUE.as_bytes());
        }
        said
    }

    /// Ends the head begun in the output (`Date` if it has none, the framing) and writes the
    /// body; false if the body broke off (the client cannot tell where it ended unless the
    /// connection closes).
    async fn send_rest(
        &mut self,
        status: StatusCode,
        head: HeadSaid,
        mut body: ProxyBody,
        head_only: bool,
        close: bool,
    ) -> io::Result<bool> {
        let bodiless = head_only
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let out = &mut self.output;
        if !head.date {
            date_line(out);
        }
        let exact = body.size_hint().exact();
        let chunked = !bodiless && !head.length && exact.is_none();
        if !bodiless
            && !head.length
            && let Some(exact) = exact
        {
            line(out, b"content-length", itoa(&mut [0; 20], exact));
        }
        if chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if bodiless {
            drop(body);
            return self.flush().await.map(|()| true);
        }
        loop {
            // What the backend already sent goes out with the head; waiting for more, what
            // is gathered goes out first (a stream of events must not sit here).
            let frame =
                match std::future::poll_fn(|cx| Poll::Ready(poll_frame(&mut body, cx))).await {
                    Poll::Ready(frame) => frame,
                    Poll::Pending => {
                        self.flush().await?;
                        std::future::poll_fn(|cx| poll_frame(&mut body, cx)).await
                    }
                };
            let data = match frame {
                None => break,
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "answer broke off");
                    self.flush().await?;
                    return Ok(false);
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue,
                },
            };
            if chunked {
                let mut digits = [0; 16];
                self.output.extend_from_slice(hex(&mut digits, data.len()));
                self.output.extend_from_slice(b"\r\n");
            }
            if self.output.len() + data.len() > WRITE_GATHER {
                self.flush().await?;
                self.stream.write_all(&data).await?;
            } else {
                self.output.extend_from_slice(&data);
            }
            if chunked {
                self.output.extend_from_slice(b"\r\n");
            }
        }
        if chunked {
            self.output.extend_from_slice(b"0\r\n\r\n");
        }
        drop(body);
        self.flush().await.map(|()| true)
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output).await?;
            self.output.clear();
        }
        self.stream.flush().await
    }
}

/// What the head written so far already says.
#[derive(Default)]
struct HeadSaid {
    date: bool,
    length: bool,
}

/// Whether the connection takes another request after one was `sent` (true: whole).
fn next_after(sent: io::Result<bool>, close: bool) -> io::Result<Next> {
    Ok(if close || !sent? { Next::Close } else { Next::Again })
}

fn poll_frame(
    body: &mut ProxyBody,
    cx: &mut Context<'_>,
) -> Poll<Option<io::Result<hyper::body::Frame<Bytes>>>> {
    Pin::new(body).poll_frame(cx)
}

async fn read_buf<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut BytesMut,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, buffer))
        .await
}

/// What the start of `input` holds.
#[allow(clippy::large_enum_variant)] // as `Plan`
enum Parsed {
    /// A whole head of `size` bytes, and what to do with it. `close`: the client wants the
    /// connection closed after the answer; `head_only`: the answer has no body (HEAD).
    Complete {
        plan: Plan,
        size: usize,
        close: bool,
        head_only: bool,
    },
    Partial,
    /// Not a request for this path: hyper takes it (and answers a malformed one).
    Unusual,
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), never passed on either way. (In a request,
/// `Transfer-Encoding` and `Upgrade` send it to hyper's path.)
static HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the router sets itself, whatever the client sent.
static SET_BY_THE_ROUTER: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-host",
    "x-request-id",
    "x-request-start",
];

/// Parses a request head from the start of `input` and decides what to do with it.
fn plan(shared: &Shared, edge: &Edge, input: &[u8]) -> Parsed {
    let mut lines = [httparse::EMPTY_HEADER; HEADERS];
    let mut request = httparse::Request::new(&mut lines);
    let size = match request.parse(input) {
        Ok(httparse::Status::Complete(size)) => size,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Unusual,
    };
    let (Some(method), Some(target), Some(1)) = (request.method, request.path, request.version)
    else {
        return Parsed::Unusual;
    };
    if method == "CONNECT" || !target.starts_with('/') {
        return Parsed::Unusual;
    }
    let headers = &*request.headers;
    let mut host = None;
    let mut close = false;
    let mut named = false;
    let mut given_id = None;
    let mut proxy = ProxySaid::default();
    for line in headers {
        let name = line.name;
        let value = line.value;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Parsed::Unusual; // hyper's path answers 400
            }
            host = Some(value);
        } else if name.eq_ignore_ascii_case("content-length") {
            if value != b"0" {
                return Parsed::Unusual;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Parsed::Unusual;
        } else if name.eq_ignore_ascii_case("connection") {
            close |=
                value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
            named |= names_headers(value);
        } else if name.eq_ignore_ascii_case("x-request-id") {
            given_id = Some(value);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            proxy.forwarded_for = proxy.forwarded_for.or(std::str::from_utf8(value).ok());
        } else if name.eq_ignore_ascii_case("x-forwarded-proto") {
            proxy.proto = std::str::from_utf8(value).ok();
        } else if name.eq_ignore_ascii_case("x-forwarded-port") {
            proxy.port = std::str::from_utf8(value).ok();
        }
    }
    // Host must be one line of visible ASCII, as hyper's path reads it.
    let Some(host) = host.and_then(|h| std::str::from_utf8(h).ok()) else {
        return Parsed::Unusual;
    };
    if !host.bytes().all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t') {
        return Parsed::Unusual;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Unusual;
    };
    let head_only = method == Method::HEAD;
    let from_proxy = shared.config.trusted_proxies.contains(edge.client.ip());
    let head = Head { host, target, proxy: from_proxy.then_some(proxy) };
    let request_id = proxy::request_id_from(given_id);
    let log = AccessLog::new(method.clone(), head.path(), request_id);
    let (route, log) = match proxy::route(shared, edge, &head, log) {
        Ok(routed) => routed,
        Err(response) => {
            return Parsed::Complete { plan: Plan::Answer(response), size, close, head_only };
        }
    };

    let mut out = Vec::with_capacity(size + 256);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for line in headers {
        let name = line.name;
        let dropped = HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
            || SET_BY_THE_ROUTER.iter().any(|set| name.eq_ignore_ascii_case(set))
            // The same claims as X-Forwarded-For in other spellings (see `handle`).
            || (!from_proxy
                && (name.eq_ignore_ascii_case("forwarded") || name.eq_ignore_ascii_case("x-real-ip")))
            || (named && named_by_connection(headers.iter().map(|h| (h.name, h.value)), name));
        if !dropped {
            self::line(&mut out, name.as_bytes(), line.value);
        }
    }
    let forwarded = proxy::forwarding(edge, &head);
    line(&mut out, b"x-forwarded-host", host.as_bytes());
    for (name, value) in forwarded.lines(log.request_id()) {
        line(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    line(&mut out, b"via", proxy::VIA_VALUE.as_bytes());
    out.extend_from_slice(b"\r\n");
    let outgoing = Outgoing { head: out, body: None, chunked: false, method };
    Parsed::Complete { plan: Plan::Forward(route, outgoing, log), size, close, head_only }
}

/// Whether a `Connection` line names the header `name` (as hop-by-hop).
fn named_by_connection<'a>(
    mut lines: impl Iterator<Item = (&'a str, &'a [u8])>,
    name: &str,
) -> bool {
    lines.any(|(line, value)| {
        line.eq_ignore_ascii_case("connection")
            && value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
    })
}

/// Whether a `Connection` value names any header: a token besides `keep-alive` and `close`.
fn names_headers(value: &[u8]) -> bool {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).any(|token| {
        !token.is_empty()
            && !token.eq_ignore_ascii_case(b"keep-alive")
            && !token.eq_ignore_ascii_case(b"close")
    })
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `date: …` in HTTP's form (RFC 9110 §5.6.7), made once a second per thread.
fn date_line(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let now = SystemTime::now();
    let second = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(made, date)| {
        if *made != second {
            *date = httpdate::fmt_http_date(now);
            *made = second;
        }
        line(out, b"date", date.as_bytes());
    });
}

/// `n` in decimal, written into `buffer`.
fn itoa(buffer: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buffer[at..];
        }
    }
}

/// A client connection handed to hyper with the bytes already read from it, which hyper
/// reads first.
struct Rewind<S> {
    read: Bytes,
    stream: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_decimal_and_hex() {
        for n in [0u64, 7, 10, 4096, u64::MAX] {
            assert_eq!(itoa(&mut [0; 20], n), n.to_string().as_bytes());
        }
        for n in [0usize, 9, 10, 255, 65_536] {
            assert_eq!(hex(&mut [0; 16], n), format!("{n:x}").as_bytes());
        }
    }

    #[test]
    fn connection_names_hop_by_hop_headers() {
        let lines = [
            httparse::Header { name: "Connection", value: b"keep-alive, X-Secret" },
            httparse::Header { name: "x-secret", value: b"1" },
        ];
        let pairs = || lines.iter().map(|h| (h.name, h.value));
        assert!(named_by_connection(pairs(), "X-SECRET"));
        assert!(!named_by_connection(pairs(), "x-other"));
        assert!(names_headers(b"keep-alive, X-Secret") && !names_headers(b"Keep-Alive, close"));
    }
}
