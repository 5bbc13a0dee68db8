//! Is a new process ready for traffic? A TCP connect to its `PORT`, then, if the app names a
//! path, an HTTP GET that must answer 2xx or 3xx — repeated until it passes or the budget is
//! spent (the shape of Dokku's `healthchecks` and kamal-proxy's deploy check).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::RunError;

/// How to decide that a process is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `GET` this path once the port accepts connections, e.g. `/health`; `None`: the TCP
    /// connect alone decides.
    pub path: Option<String>,
    /// The `Host` header of that GET; `None`: the process's `IP:PORT`. Apps that check the
    /// host (Django's `ALLOWED_HOSTS`) want their own hostname here.
    pub host: Option<String>,
    /// The whole check's budget: it fails when this runs out.
    pub timeout: Duration,
    /// One probe's limit (connect plus the response's status line).
    pub attempt_timeout: Duration,
    /// At most this many probes.
    pub attempts: u32,
    /// Pause between probes.
    pub wait: Duration,
}

impl Default for HealthCheck {
    /// A minute for the app to boot, probed twice a second.
    fn default() -> HealthCheck {
        HealthCheck {
            path: None,
            host: None,
            timeout: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(5),
            attempts: 120,
            wait: Duration::from_millis(500),
        }
    }
}

impl HealthCheck {
    pub(crate) fn check(&self) -> Result<(), RunError> {
        if let Some(path) = &self.path
            && (!path.starts_with('/')
                || path.contains(|c: char| c.is_whitespace() || c.is_control()))
        {
            return Err(RunError::InvalidSpec(format!(
                "health check path {path:?} must start with `/` and contain no spaces"
            )));
        }
        if let Some(host) = &self.host
            && (host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()))
        {
            return Err(RunError::InvalidSpec(format!("health check host {host:?} is invalid")));
        }
        Ok(())
    }
}

/// Probes `addr` until one probe passes (`Ok`), or the attempts or the time run out (`Err`
/// with the reason, which names the last probe's failure).
pub(crate) async fn probe_until_healthy(
    addr: SocketAddr,
    check: &HealthCheck,
) -> Result<(), String> {
    let deadline = Instant::now() + check.timeout;
    let mut attempts = 0;
    let mut last = String::from("no probe finished");
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(format!(
                "not healthy within {}s ({attempts} probes); last: {last}",
                seconds(check.timeout)
            ));
        }
        attempts += 1;
        let limit = check.attempt_timeout.min(remaining);
        match tokio::time::timeout(limit, probe(addr, check)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(reason)) => last = reason,
            Err(_) => last = format!("no answer from {addr} within {}s", seconds(limit)),
        }
        if attempts >= check.attempts {
            return Err(format!("{attempts} probes failed; last: {last}"));
        }
        tokio::time::sleep_until((Instant::now() + check.wait).min(deadline)).await;
    }
}

/// One probe.
async fn probe(addr: SocketAddr, check: &HealthCheck) -> Result<(), String> {
    let mut stream =
        TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let Some(path) = &check.path else {
        return Ok(());
    };
    let host = check.host.clone().unwrap_or_else(|| addr.to_string());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: paas-healthcheck\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("GET {path}: {e}"))?;
    // Only the status line matters.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 8192 {
        let n = stream.read(&mut buf).await.map_err(|e| format!("GET {path}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    match status_code(&head) {
        Some(status) if (200..400).contains(&status) => Ok(()),
        Some(status) => Err(format!("GET {path} answered {status}")),
        None if head.is_empty() => Err(format!("GET {path}: the connection closed with no answer")),
        None => Err(format!("GET {path}: the answer is not HTTP")),
    }
}

/// The status of `HTTP/1.1 200 OK…`.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    words.next()?.parse().ok()
}

fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 { format!("{secs:.0}") } else { format!("{secs:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 302 Found\r\nLocation: /\r\n"), Some(302));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
        assert_eq!(seconds(Duration::from_secs(60)), "60");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5");
    }

    #[test]
    fn paths_and_hosts_are_checked() {
        let mut check = HealthCheck { path: Some("/health?full=1".into()), ..Default::default() };
        assert!(check.check().is_ok());
        for bad in ["health", "/a b", "/a\r\nX-Injected: 1"] {
            check.path = Some(bad.into());
            assert!(check.check().is_err(), "{bad:?}");
        }
        check.path = None;
        check.host = Some("shop.localhost\r\n".into());
        assert!(check.check().is_err());
    }

    /// A local server that answers `status` to every request.
    async fn server(status: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn probes_pass_on_2xx_and_3xx_and_fail_on_the_rest() {
        let fast = |path: &str| HealthCheck {
            path: Some(path.into()),
            timeout: Duration::from_secs(2),
            attempts: 3,
            wait: Duration::from_millis(10),
            ..Default::default()
        };
        let ok = server("200 OK").await;
        assert_eq!(probe_until_healthy(ok, &fast("/")).await, Ok(()));
        let redirect = server("301 Moved Permanently").await;
        assert_eq!(probe_until_healthy(redirect, &fast("/")).await, Ok(()));
        let broken = server("500 Internal Server Error").await;
        let reason = probe_until_healthy(broken, &fast("/health")).await.unwrap_err();
        assert_eq!(reason, "3 probes failed; last: GET /health answered 500");

        // Nothing listens: refused at once, until the attempts run out.
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let reason = probe_until_healthy(closed, &fast("/")).await.unwrap_err();
        assert!(reason.starts_with("3 probes failed; last: cannot connect"), "{reason}");
    }
}
