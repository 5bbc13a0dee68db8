//! WebSocket echo, both ends, for `bench/router.sh`: how many messages per second a proxy
//! carries between clients and an app.
//!
//!   websocket_bench echo ADDR
//!       a WebSocket echo server (RFC 6455: handshake, masked frames in, frames out)
//!   websocket_bench load ADDR HOST CONNECTIONS SECONDS [BYTES]
//!       CONNECTIONS clients, each sending a BYTES-long text message (32 by default) and
//!       waiting for its echo, again and again for SECONDS; prints
//!       "MESSAGES_PER_SECOND P50_MS P99_MS FAILED_CONNECTIONS MESSAGES"
//!
//! Written out by hand (a frame is a few bytes of header) so the bench needs nothing more.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["echo", addr] => runtime.block_on(echo(addr.parse()?)),
        ["load", addr, host, connections, seconds, rest @ ..] => {
            let size = rest.first().map_or(Ok(32), |s| s.parse())?;
            let seconds = Duration::from_secs(seconds.parse()?);
            runtime.block_on(load(addr.parse()?, host, connections.parse()?, seconds, size))
        }
        _ => {
            Err("usage: websocket_bench echo ADDR | load ADDR HOST CONNECTIONS SECONDS [BYTES]"
                .into())
        }
    }
}

/// The `Sec-WebSocket-Accept` answer to a key (RFC 6455 §4.2.2).
fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Reads an HTTP head up to its blank line; returns its lines.
async fn read_head<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Result<Vec<String>, Error> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err("connection closed during the handshake".into());
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// One frame: its opcode and unmasked payload.
async fn read_frame<R: AsyncReadExt + Unpin>(reader: &mut R) -> Result<(u8, Vec<u8>), Error> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).await?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => u64::from(reader.read_u16().await?),
        127 => reader.read_u64().await?,
        n => u64::from(n),
    };
    let mut mask = [0u8; 4];
    if masked {
        reader.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; usize::try_from(len)?];
    reader.read_exact(&mut payload).await?;
    if masked {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    Ok((opcode, payload))
}

/// A final frame; clients mask theirs (RFC 6455 §5.3), servers do not.
fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

async fn echo(addr: SocketAddr) -> Result<(), Error> {
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = echo_connection(stream).await;
        });
    }
}

async fn echo_connection(stream: TcpStream) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let head = read_head(&mut reader).await?;
    let key = header(&head, "sec-websocket-key").ok_or("no Sec-WebSocket-Key")?;
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    write.write_all(answer.as_bytes()).await?;
    loop {
        let (opcode, payload) = read_frame(&mut reader).await?;
        match opcode {
            0x8 => {
                write.write_all(&frame(0x8, &payload, None)).await?;
                return Ok(());
            }
            0x9 => write.write_all(&frame(0xA, &payload, None)).await?,
            _ => write.write_all(&frame(opcode, &payload, None)).await?,
        }
    }
}

async fn load(
    addr: SocketAddr,
    host: &str,
    connections: usize,
    duration: Duration,
    size: usize,
) -> Result<(), Error> {
    let until = Instant::now() + duration;
    let mut clients = Vec::new();
    for _ in 0..connections {
        let host = host.to_string();
        clients.push(tokio::spawn(async move { client(addr, &host, until, size).await }));
    }
    let started = Instant::now();
    let (mut latencies, mut errors) = (Vec::new(), 0usize);
    for client in clients {
        match client.await? {
            Ok(mut times) => latencies.append(&mut times),
            Err(_) => errors += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let quantile = |q: f64| -> f64 {
        let Some(last) = latencies.len().checked_sub(1) else { return 0.0 };
        latencies[(last as f64 * q) as usize].as_secs_f64() * 1000.0
    };
    println!(
        "{:.0} {:.2} {:.2} {errors} {}",
        latencies.len() as f64 / elapsed,
        quantile(0.5),
        quantile(0.99),
        latencies.len()
    );
    Ok(())
}

/// One client: the handshake, then message, echo, message… until `until`.
async fn client(
    addr: SocketAddr,
    host: &str,
    until: Instant,
    size: usize,
) -> Result<Vec<Duration>, Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    write.write_all(request.as_bytes()).await?;
    let head = read_head(&mut reader).await?;
    if !head.first().is_some_and(|status| status.contains(" 101 ")) {
        return Err(format!("no upgrade: {:?}", head.first()).into());
    }
    if header(&head, "sec-websocket-accept") != Some(accept_key(&key).as_str()) {
        return Err("wrong Sec-WebSocket-Accept".into());
    }
    let message = vec![b'x'; size];
    let mut times = Vec::new();
    while Instant::now() < until {
        let sent = Instant::now();
        write.write_all(&frame(0x1, &message, Some(rand::random()))).await?;
        let (opcode, payload) = read_frame(&mut reader).await?;
        if opcode != 0x1 || payload != message {
            return Err("the echo differs from the message".into());
        }
        times.push(sent.elapsed());
    }
    write.write_all(&frame(0x8, &[0x03, 0xe8], Some(rand::random()))).await?;
    Ok(times)
}
