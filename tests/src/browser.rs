//! A real browser for the dashboard tests: headless Chromium driven by chromedriver over the
//! W3C WebDriver protocol (plain JSON over HTTP, spoken here with reqwest).

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key WebDriver uses for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session; the driver process stops when it is dropped.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
}

/// An element on the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at `width`×900 (phone width or not).
    pub async fn start(width: u32) -> Browser {
        let port = crate::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (apt-get install chromium-driver; .ci/run does)");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},900")],
            },
        }}});
        let deadline = Instant::now() + Duration::from_secs(30);
        let session = loop {
            match http.post(format!("{base}/session")).json(&capabilities).send().await {
                Ok(response) => {
                    let body: Value = response.json().await.unwrap();
                    let id = body["value"]["sessionId"].as_str();
                    break id.unwrap_or_else(|| panic!("no browser session: {body}")).to_string();
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => panic!("chromedriver did not answer: {err}"),
            }
        };
        Browser { driver, http, session: format!("{base}/session/{session}") }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        response["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap().to_string()
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.find("body").await.text().await
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().unwrap().to_string()
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub async fn run(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The first element matching the CSS `selector`, waiting up to 10 s for it.
    pub async fn find(&self, selector: &str) -> Element<'_> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": selector})),
                )
                .await;
            if let Some(id) = found[ELEMENT].as_str() {
                return Element { browser: self, id: id.to_string() };
            }
            assert!(Instant::now() < deadline, "no element {selector:?} on {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `limit` for the page's text to contain `needle`; returns the text.
    pub async fn wait_for_text(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "no {needle:?} within {limit:?} in:\n{text}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Saves a PNG of the page to `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) {
        use base64::Engine;
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap()).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Element<'_> {
    async fn call(&self, method: reqwest::Method, what: &str, body: Option<Value>) -> Value {
        self.browser.call(method, &format!("/element/{}{what}", self.id), body).await
    }

    pub async fn click(&self) {
        self.call(reqwest::Method::POST, "/click", Some(json!({}))).await;
    }

    /// Types `text` into the element (after what is there).
    pub async fn type_text(&self, text: &str) {
        self.call(reqwest::Method::POST, "/value", Some(json!({"text": text}))).await;
    }

    pub async fn clear(&self) {
        self.call(reqwest::Method::POST, "/clear", Some(json!({}))).await;
    }

    pub async fn text(&self) -> String {
        self.call(reqwest::Method::GET, "/text", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Browser {
    /// Ends the browser session (closing Chromium), then the driver.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where the dashboard tests put their screenshots: `$PAAS_SCREENSHOTS`, else
/// `target/screenshots` of the workspace.
pub fn screenshot_dir() -> std::path::PathBuf {
    match std::env::var_os("PAAS_SCREENSHOTS") {
        Some(dir) => dir.into(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots"),
    }
}
