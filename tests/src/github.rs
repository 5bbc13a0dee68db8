//! A stand-in for GitHub, which cannot run here, speaking its real protocols: repositories
//! over git's smart HTTP (the real `git http-backend`), and the commit-status API, whose
//! calls it records for the tests to check.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

/// A commit status paas sent: the path, the `Authorization` header and the JSON body.
#[derive(Debug, Clone)]
pub struct StatusCall {
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Seen {
    statuses: Arc<Mutex<Vec<StatusCall>>>,
    /// The `Authorization` header of each git request.
    git_auth: Arc<Mutex<Vec<String>>>,
}

pub struct FakeGithub {
    /// Serves both the repositories (`URL/OWNER/REPO.git`) and the API (`URL/api`).
    pub url: String,
    root: TempDir,
    seen: Seen,
}

impl FakeGithub {
    pub async fn start() -> FakeGithub {
        let root = tempfile::tempdir().unwrap();
        let seen = Seen::default();
        let state = (root.path().to_path_buf(), seen.clone());
        let app = axum::Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeGithub { url, root, seen }
    }

    /// A new empty repository `OWNER/REPO`; returns its path, to push to directly.
    pub fn create_repo(&self, full_name: &str) -> PathBuf {
        let path = self.root.path().join(format!("{full_name}.git"));
        std::fs::create_dir_all(&path).unwrap();
        let status = std::process::Command::new("git")
            .args(["init", "--bare", "-q", "-b", "main"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        path
    }

    pub fn statuses(&self) -> Vec<StatusCall> {
        self.seen.statuses.lock().unwrap().clone()
    }

    pub fn git_authorizations(&self) -> Vec<String> {
        self.seen.git_auth.lock().unwrap().clone()
    }
}

async fn handle(State((root, seen)): State<(PathBuf, Seen)>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = parts.uri.path().to_string();
    if path.starts_with("/api/repos/")
        && path.contains("/statuses/")
        && parts.method == Method::POST
    {
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        seen.statuses.lock().unwrap().push(StatusCall { path, authorization: auth, body });
        return (StatusCode::CREATED, "{}").into_response();
    }
    seen.git_auth.lock().unwrap().push(auth);
    let query = parts.uri.query().unwrap_or_default().to_string();
    http_backend(&root, &parts.method, &path, &query, &parts.headers, body).await
}

/// Runs `git http-backend` as the CGI program it is.
async fn http_backend(
    root: &Path,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", method.as_str())
        .env("CONTENT_TYPE", header("content-type"))
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move { stdin.write_all(&body).await });
    let output = child.wait_with_output().await.unwrap();
    let _ = writer.await;
    let text = output.stdout;
    let split = text.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let split = split.or_else(|| text.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, gap)) = split else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no CGI headers").into_response();
    };
    let mut response = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(&text[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(200);
            response = response.status(code);
        } else {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(text[end + gap..].to_vec())).unwrap()
}
