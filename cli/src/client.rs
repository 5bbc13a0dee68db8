//! A small client for the paas JSON API. Server errors come back as their message.

use anyhow::{Result, anyhow};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::credentials::Credentials;

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub(crate) fn new(credentials: &Credentials) -> Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("paas-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            base: credentials.url.trim_end_matches('/').to_string(),
            token: credentials.token.clone(),
        })
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(Method::GET, path, None::<&()>).await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub(crate) async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// A GET whose body the caller reads as it streams in.
    pub(crate) async fn get_stream(&self, path: &str) -> Result<reqwest::Response> {
        self.request(Method::GET, path, None::<&()>).await
    }

    /// A POST whose answer the caller reads as it streams in.
    pub(crate) async fn post_stream(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<reqwest::Response> {
        self.request(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<()> {
        self.request(Method::DELETE, path, None::<&()>).await?;
        Ok(())
    }

    /// A request whose answer has no body worth reading (`204 No Content`).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<()> {
        self.request(method, path, Some(body)).await?;
        Ok(())
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let response = self.request(method, path, body).await?;
        response.json().await.map_err(|e| anyhow!("unexpected answer from {}: {e}", self.base))
    }

    /// A POST of bytes sent as they are read (a command's standard input), whose answer the
    /// caller reads as it streams in.
    pub(crate) async fn post_bytes_stream(
        &self,
        path: &str,
        body: reqwest::Body,
    ) -> Result<reqwest::Response> {
        let url = format!("{}/api/v1{path}", self.base);
        let request = self.http.post(&url).bearer_auth(&self.token);
        let request = request.header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        self.execute(request.body(body)).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<reqwest::Response> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.execute(request).await
    }

    /// Sends `request`; an error status becomes the server's message.
    async fn execute(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach paas at {}: {}", self.base, root_cause(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{status}: {}", text.trim()));
        if status == StatusCode::UNAUTHORIZED {
            return Err(anyhow!("{message} (log in again with `paas login {}`)", self.base));
        }
        Err(anyhow!(message))
    }
}

/// An API path from its segments, each percent-encoded: a `/` or `?` in an app name, a
/// hostname or a version is data, never a way to another route. `.` and `..` are refused,
/// as URL parsers resolve them even encoded (`%2E%2E`).
pub(crate) fn path(segments: &[&str]) -> Result<String> {
    let mut path = String::new();
    for segment in segments {
        if matches!(*segment, "" | "." | "..") {
            return Err(anyhow!("{segment:?} cannot be part of a URL path"));
        }
        path.push('/');
        path.push_str(&encode(segment));
    }
    Ok(path)
}

/// `text` with everything but letters, digits and `-._~` percent-encoded: fit for one path
/// segment or one query value.
pub(crate) fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_data() {
        assert_eq!(path(&["apps", "shop", "config"]).unwrap(), "/apps/shop/config");
        assert_eq!(path(&["apps", "x/../victim"]).unwrap(), "/apps/x%2F..%2Fvictim");
        assert_eq!(path(&["d", "a?b#c d%é"]).unwrap(), "/d/a%3Fb%23c%20d%25%C3%A9");
        for bad in ["", ".", ".."] {
            assert!(path(&["apps", bad]).is_err(), "{bad:?}");
        }
        assert_eq!(encode("web&tail=true"), "web%26tail%3Dtrue");
    }
}
