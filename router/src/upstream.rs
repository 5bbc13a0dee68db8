//! HTTP/1.1 to a backend, spoken by the client request's own task.
//!
//! hyper's client runs each backend connection as a task of its own: a request is handed to
//! that task over a channel and its answer handed back, every body frame too, a task wake-up
//! each way. Here the request's task writes the request and reads the answer's head itself,
//! and the answer's body ([`AnswerBody`]) reads straight from the backend's socket as the
//! client takes it, so a proxied request is one task from the client's bytes to the
//! backend's and back. The client side is `h1.rs` for plain HTTP/1.1 requests and hyper's
//! servers for the rest.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{AsHeaderName, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::backend::BackendBody;

/// Most header lines in a backend's answer, and most bytes in its head (as hyper's limits).
const MAX_HEADERS: usize = 100;
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Longest chunk-size or trailer line accepted in a chunked body.
const MAX_LINE_BYTES: usize = 4096;
/// Room made in the read buffer before each read.
const READ_SIZE: usize = 16 * 1024;

/// One keep-alive connection to a backend, with what was read from it and not yet used.
pub(crate) struct Connection {
    stream: TcpStream,
    buffer: BytesMut,
    /// Taken from the idle pool: the backend may have closed it meanwhile.
    pub reused: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connection to {0} timed out")]
    Timeout(SocketAddr),
    #[error("cannot connect to {0}: {1}")]
    Io(SocketAddr, io::Error),
}

/// Why an exchange with a backend failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("closed the connection without answering")]
    NoAnswer,
    #[error("invalid answer: {0}")]
    Invalid(String),
    /// The client's body failed: it broke off, or passed the size limit.
    #[error("request body: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
}

impl ExchangeError {
    /// Whether the backend said nothing at all: on a reused connection, it had most likely
    /// closed it before the request came, so sending it again elsewhere is safe.
    pub(crate) fn nothing_answered(&self) -> bool {
        match self {
            ExchangeError::NoAnswer => true,
            ExchangeError::Io(err) => matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }

    /// The client's body went over the size limit.
    pub(crate) fn body_too_large(&self) -> bool {
        matches!(self, ExchangeError::Body(err)
            if err.downcast_ref::<http_body_util::LengthLimitError>().is_some())
    }
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr, timeout: Duration) -> Result<Self, ConnectError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::Timeout(addr))?
            .map_err(|err| ConnectError::Io(addr, err))?;
        let _ = stream.set_nodelay(true);
        Ok(Connection { stream, buffer: BytesMut::new(), reused: false })
    }

    /// Whether an idle connection is still open with nothing unread: a closed one, or one
    /// with bytes nobody asked for, is dropped. Costs no system call while the socket has
    /// not become readable since its last answer.
    pub(crate) async fn still_idle(&mut self) -> bool {
        if !self.buffer.is_empty() {
            return false;
        }
        let readable = std::future::poll_fn(|cx| Poll::Ready(self.stream.poll_read_ready(cx)));
        match readable.await {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends a request (its head as [`request_head`] wrote it, then its body) and reads the
    /// answer's head, skipping interim (1xx) answers other than 101.
    pub(crate) async fn exchange(
        &mut self,
        head: &[u8],
        body: Option<BackendBody>,
        chunked: bool,
        method: &Method,
    ) -> Result<Answer, ExchangeError> {
        self.stream.write_all(head).await?;
        if let Some(body) = body {
            self.send_body(body, chunked).await?;
        }
        let mut read_any = false;
        loop {
            if !self.buffer.is_empty() {
                read_any = true;
                if let Some(answer) = parse_answer(&mut self.buffer, method)? {
                    return Ok(answer);
                }
            }
            if std::future::poll_fn(|cx| self.poll_fill(cx)).await? == 0 {
                return Err(if read_any {
                    ExchangeError::Invalid("the connection closed inside the head".into())
                } else {
                    ExchangeError::NoAnswer
                });
            }
        }
    }

    async fn send_body(
        &mut self,
        mut body: BackendBody,
        chunked: bool,
    ) -> Result<(), ExchangeError> {
        let mut chunk = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(ExchangeError::Body)?.into_data() else {
                continue; // trailers: not passed on
            };
            if data.is_empty() {
                continue;
            }
            if chunked {
                chunk.clear();
                chunk.extend_from_slice(hex(&mut [0; 16], data.len()));
                chunk.extend_from_slice(b"\r\n");
                chunk.extend_from_slice(&data);
                chunk.extend_from_slice(b"\r\n");
                self.stream.write_all(&chunk).await?;
            } else {
                self.stream.write_all(&data).await?;
            }
        }
        if chunked {
            self.stream.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }

    /// Reads more into the buffer: the number of bytes read, 0 at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buffer.capacity() - self.buffer.len() < READ_SIZE / 4 {
            self.buffer.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buffer)
    }

    /// The socket and whatever was read past the answer's head (a 101's first bytes).
    pub(crate) fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.buffer)
    }
}

/// The head of a request to a backend: the request line and `headers` as they are, and
/// `Transfer-Encoding: chunked` when the body's length is not known (`chunked`).
pub(crate) fn request_head(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    chunked: bool,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A backend's answer: its head as it came, and how its body is framed.
pub(crate) struct Answer {
    pub status: StatusCode,
    /// The head's bytes, status line included.
    head: Bytes,
    /// Where each header line's name and value are in `head` (a `Content-Length` that
    /// `Transfer-Encoding` overrides is left out).
    lines: Vec<Line>,
    framing: Framing,
    /// The connection may carry another request after this answer.
    keep_alive: bool,
}

/// A header line's name and value, as offsets in the head.
#[derive(Clone, Copy)]
struct Line {
    name: (u32, u32),
    value: (u32, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// HEAD, 1xx, 204, 304 (RFC 9112 §6.3 rule 1) and 101, after which the bytes are a tunnel's.
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

impl Answer {
    /// The body, read from `connection` as the client takes it.
    pub(crate) fn body(&self, connection: Connection) -> AnswerBody {
        let state = match self.framing {
            Framing::Empty => Read::Done,
            Framing::Length(length) => Read::Length(length),
            Framing::Chunked => Read::ChunkSize,
            Framing::UntilClose => Read::UntilClose,
        };
        let keep_alive = self.keep_alive && self.framing != Framing::UntilClose;
        AnswerBody { connection: Some(connection), state, keep_alive }
    }

    /// The header lines as they came, names as sent (any case).
    pub(crate) fn lines(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let slice = |(start, end): (u32, u32)| &self.head[start as usize..end as usize];
        self.lines.iter().map(move |line| {
            // httparse let through only token characters in a name: ASCII.
            (std::str::from_utf8(slice(line.name)).unwrap_or(""), slice(line.value))
        })
    }

    /// The header lines in a map, for hyper's server.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.lines.len());
        for (name, value) in self.lines() {
            // Checked when the head was read.
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value))
            {
                headers.append(name, value);
            }
        }
        headers
    }
}

/// Parses an answer's head from the start of `buffer`, consuming it; `None` while incomplete.
/// Interim answers (100 Continue, 103 Early Hints) are consumed and skipped.
fn parse_answer(buffer: &mut BytesMut, method: &Method) -> Result<Option<Answer>, ExchangeError> {
    loop {
        // Most answers have a few headers: 100 empty ones written for every answer showed
        // in profiles, so room for 100 is made only when 16 are not enough.
        let mut few = [httparse::EMPTY_HEADER; 16];
        let mut many = Vec::new();
        let mut parsed = httparse::Response::new(&mut few);
        let mut result = parsed.parse(buffer);
        if let Err(httparse::Error::TooManyHeaders) = result {
            many.resize(MAX_HEADERS, httparse::EMPTY_HEADER);
            parsed = httparse::Response::new(&mut many);
            result = parsed.parse(buffer);
        }
        let size = match result {
            Ok(httparse::Status::Complete(size)) => size,
            Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD_BYTES => {
                return Err(ExchangeError::Invalid("head too large".into()));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(err) => return Err(ExchangeError::Invalid(err.to_string())),
        };
        let status = StatusCode::from_u16(parsed.code.unwrap_or(0))
            .map_err(|_| ExchangeError::Invalid("bad status code".into()))?;
        let http11 = parsed.version == Some(1);
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            buffer.advance(size);
            continue;
        }
        let mut closes = false;
        let mut transfer_encoding: Option<&str> = None;
        let mut length: Option<Option<u64>> = None;
        let mut lengths_agree = true;
        for line in parsed.headers.iter() {
            let (name, value) = (line.name, line.value);
            let value_tokens = || {
                value
                    .split(|&b| b == b',')
                    .map(|token| std::str::from_utf8(token.trim_ascii()).unwrap_or("\u{fffd}"))
            };
            if name.eq_ignore_ascii_case("connection") {
                closes |= value_tokens().any(|token| token.eq_ignore_ascii_case("close"));
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = value_tokens().next_back().or(transfer_encoding);
            } else if name.eq_ignore_ascii_case("content-length") {
                for token in value_tokens() {
                    let this = token.parse::<u64>().ok();
                    lengths_agree &= this.is_some() && length.is_none_or(|first| first == this);
                    length = length.or(Some(this));
                }
            }
        }
        let mut keep_alive = http11 && !closes;
        // RFC 9112 §6.3 rule 3: Transfer-Encoding wins over Content-Length, and such a
        // message may be an attempt at smuggling: never reuse the connection, and leave the
        // length out.
        let drop_length = transfer_encoding.is_some() && length.is_some();
        let framing = if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || method == Method::HEAD
        {
            Framing::Empty
        } else if let Some(last) = transfer_encoding {
            keep_alive &= !drop_length;
            if last.eq_ignore_ascii_case("chunked") {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else if length.is_some() {
            match length.flatten() {
                Some(length) if lengths_agree => Framing::Length(length),
                _ => return Err(ExchangeError::Invalid("bad Content-Length".into())),
            }
        } else {
            Framing::UntilClose
        };
        let start = buffer.as_ptr() as usize;
        let offsets = |text: &[u8]| {
            let from = text.as_ptr() as usize - start;
            (from as u32, (from + text.len()) as u32)
        };
        let lines = parsed
            .headers
            .iter()
            .filter(|line| !(drop_length && line.name.eq_ignore_ascii_case("content-length")))
            .map(|line| Line { name: offsets(line.name.as_bytes()), value: offsets(line.value) })
            .collect();
        let head = buffer.split_to(size).freeze();
        return Ok(Some(Answer { status, head, lines, framing, keep_alive }));
    }
}

/// The comma-separated items of every `name` header line, trimmed.
pub(crate) fn tokens(headers: &HeaderMap, name: impl AsHeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// An answer's body, decoded from the backend's framing, as hyper's server sends it on
/// (re-framed for the client's protocol). At its end the connection can be taken back for
/// the next request ([`AnswerBody::reusable`]).
pub(crate) struct AnswerBody {
    connection: Option<Connection>,
    state: Read,
    keep_alive: bool,
}

#[derive(Debug, Clone, Copy)]
enum Read {
    Length(u64),
    UntilClose,
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Done,
}

impl AnswerBody {
    /// The connection, if the body was read to its end and another request may follow.
    pub(crate) fn reusable(&mut self) -> Option<Connection> {
        let finished = matches!(self.state, Read::Done | Read::Length(0));
        let clean = self.connection.as_ref().is_some_and(|c| c.buffer.is_empty());
        if finished && clean && self.keep_alive { self.connection.take() } else { None }
    }

    /// The connection of a 101 answer, for the tunnel.
    pub(crate) fn upgraded(&mut self) -> Option<Connection> {
        self.connection.take()
    }

    fn next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let Some(connection) = self.connection.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            let buffer = &mut connection.buffer;
            match self.state {
                Read::Done | Read::Length(0) => return Poll::Ready(None),
                Read::Length(left) | Read::ChunkData(left) if !buffer.is_empty() => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buffer.len());
                    let left = left - take as u64;
                    self.state = match self.state {
                        Read::ChunkData(_) if left == 0 => Read::ChunkEnd,
                        Read::ChunkData(_) => Read::ChunkData(left),
                        _ => Read::Length(left),
                    };
                    return Poll::Ready(Some(Ok(buffer.split_to(take).freeze())));
                }
                Read::UntilClose if !buffer.is_empty() => {
                    return Poll::Ready(Some(Ok(buffer.split().freeze())));
                }
                Read::ChunkSize | Read::ChunkEnd | Read::Trailers => {
                    if let Some(line) = take_line(buffer)? {
                        self.state = match self.state {
                            Read::ChunkSize => match chunk_size(&line)? {
                                0 => Read::Trailers,
                                size => Read::ChunkData(size),
                            },
                            Read::ChunkEnd if line.is_empty() => Read::ChunkSize,
                            Read::ChunkEnd => return Poll::Ready(Some(Err(invalid("chunk")))),
                            // Trailer lines are read and not passed on.
                            _ if line.is_empty() => Read::Done,
                            state => state,
                        };
                        continue;
                    }
                }
                _ => {}
            }
            // More bytes are needed.
            match ready!(connection.poll_fill(cx)) {
                Ok(0) if matches!(self.state, Read::UntilClose) => {
                    self.state = Read::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    let err =
                        io::Error::new(io::ErrorKind::UnexpectedEof, "backend closed mid-body");
                    return Poll::Ready(Some(Err(err)));
                }
                Ok(_) => {}
                Err(err) => return Poll::Ready(Some(Err(err))),
            }
        }
    }
}

/// `n` in hexadecimal (a chunk's size line), written into `buffer`.
pub(crate) fn hex(buffer: &mut [u8; 16], mut n: usize) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b"0123456789abcdef"[n % 16];
        n /= 16;
        if n == 0 {
            return &buffer[at..];
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad {what} framing from the backend"))
}

/// A whole line (without its CRLF) from the start of `buffer`, consumed; `None` while
/// incomplete.
fn take_line(buffer: &mut BytesMut) -> io::Result<Option<BytesMut>> {
    match buffer.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) => {
            let line = buffer.split_to(end);
            buffer.advance(2);
            Ok(Some(line))
        }
        None if buffer.len() > MAX_LINE_BYTES => Err(invalid("chunk line")),
        None => Ok(None),
    }
}

/// A chunk-size line's size, its extensions ignored.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits).map_err(|_| invalid("chunk size"))?.trim();
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid("chunk size"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| invalid("chunk size"))
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let polled = this.next_frame(cx);
        if let Poll::Ready(Some(Err(_))) = polled {
            // A broken body leaves the connection in no state to be reused.
            this.connection = None;
        }
        polled.map(|frame| frame.map(|data| data.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, Read::Done | Read::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            Read::Length(left) => SizeHint::with_exact(left),
            Read::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header;

    fn parse(text: &str, method: Method) -> Answer {
        let mut buffer = BytesMut::from(text);
        match parse_answer(&mut buffer, &method) {
            Ok(Some(answer)) => answer,
            Ok(None) => panic!("incomplete: {text:?}"),
            Err(err) => panic!("{err}: {text:?}"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
        assert_eq!(parse(ok, Method::GET).framing, Framing::Length(5));
        assert_eq!(parse(ok, Method::HEAD).framing, Framing::Empty);
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n";
        assert_eq!(parse(chunked, Method::GET).framing, Framing::Chunked);
        let both = "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n";
        let answer = parse(both, Method::GET);
        assert_eq!(answer.framing, Framing::Chunked);
        assert!(!answer.keep_alive && !answer.headers().contains_key(header::CONTENT_LENGTH));
        let none = "HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(parse(none, Method::GET).framing, Framing::UntilClose);
        let empty = "HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse(empty, Method::GET).framing, Framing::Empty);
        let old = "HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(!parse(old, Method::GET).keep_alive);
        let close = "HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n";
        assert!(!parse(close, Method::GET).keep_alive);
        let interim =
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse(interim, Method::POST).status, StatusCode::CREATED);
        let mut buffer =
            BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n");
        assert!(parse_answer(&mut buffer, &Method::GET).is_err(), "disagreeing lengths");
        let many: String = (0..40).map(|i| format!("x-{i}: {i}\r\n")).collect();
        let long = format!("HTTP/1.1 200 OK\r\n{many}content-length: 0\r\n\r\n");
        assert_eq!(parse(&long, Method::GET).headers().len(), 41, "more than the first 16");
        let lines: Vec<_> =
            parse(&long, Method::GET).lines().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
        assert_eq!(lines[39], ("x-39".to_string(), b"39".to_vec()));
        let mut buffer = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-le");
        assert!(matches!(parse_answer(&mut buffer, &Method::GET), Ok(None)));
    }

    #[test]
    fn request_heads_are_written_as_given() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("a.example"));
        headers.append("x-two", HeaderValue::from_static("1"));
        headers.append("x-two", HeaderValue::from_static("2"));
        let head = request_head(&Method::POST, "/p?q=1", &headers, true);
        assert_eq!(
            String::from_utf8_lossy(&head),
            "POST /p?q=1 HTTP/1.1\r\nhost: a.example\r\nx-two: 1\r\nx-two: 2\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1a").ok(), Some(26));
        assert_eq!(chunk_size(b"0;name=value").ok(), Some(0));
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"xyz").is_err());
        assert!(chunk_size(b"ffffffffffffffffff").is_err(), "too long");
    }
}
