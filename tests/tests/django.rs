//! A real Django app, shaped like seed 002, deployed by `git push` with its dependencies from
//! PyPI behind this network's TLS-intercepting proxy: the builder, the release phase, the
//! runner and the router, all real.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Instant;

use paas_tests::developer::Developer;
use paas_tests::{Db, TestServer};

/// The host's CA bundle: on this project's machines it holds the proxy's CA.
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The line after the `RUN …{command}…` step of a build's output: `Using cache` when the
/// layer was reused.
fn after_step(output: &str, command: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(" : RUN ") && l.contains(command))
        .unwrap_or_else(|| panic!("no RUN {command} step in\n{output}"));
    lines.get(at + 1).map(|l| l.to_string()).unwrap_or_default()
}

/// The `src` of the page's `<script>`: the hashed name collectstatic gave app.js.
fn script_src(page: &str) -> String {
    let start = page.find("<script src=\"").unwrap_or_else(|| panic!("no script in\n{page}"));
    let rest = &page[start + "<script src=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn get(server: &TestServer, app: &str, path: &str) -> String {
    let response = server.app_request(&format!("{app}.localhost"), path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.text().await.unwrap()
}

/// Destroys the app and removes its images, so the next run builds from PyPI again.
async fn destroy(server: &TestServer, app: &str) {
    let releases = server.get_json(&format!("/apps/{app}/releases")).await;
    let images: Vec<String> = releases
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["image"].as_str().map(str::to_string))
        .collect();
    server.api(reqwest::Method::DELETE, &format!("/apps/{app}")).send().await.unwrap();
    let _ = std::process::Command::new("docker")
        .args(["rmi", "--force"])
        .args(&images)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// git push of the django-monorepo fixture: Django, gunicorn, WhiteNoise and psycopg2 (built
/// from source) from PyPI; collectstatic at build time; migrations in the release phase,
/// shown in the push; a page, a JSON view reading a config var, and static files through
/// the router; no compiler in the image that runs; a view-only change reuses the dependency
/// layer; and a collectstatic failure rejects the push with Django's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_monorepo_by_git_push() {
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.build.build_ca_file = Some(HOST_CA_BUNDLE.into());
    })
    .await;
    // A name of its own: image tags are per app name, and this test removes its images.
    let app = &format!("django-{:08x}", rand::random::<u32>());
    let dev = Developer::new(&server, "django-monorepo");
    // A requirements.txt of its own, so the first push really installs (and compiles psycopg2).
    let requirements = dev.checkout.join("requirements.txt");
    let text = std::fs::read_to_string(&requirements).unwrap();
    let nonce = format!("# django push test {:016x}\n", rand::random::<u64>());
    std::fs::write(&requirements, format!("{text}{nonce}")).unwrap();
    dev.commit("Fresh requirements");
    dev.paas(&["apps:create", app]).success();
    // The app's own PostgreSQL database, on the server's host, as a team would run it
    // beside paas; containers reach the host as host.docker.internal.
    let database = paas_tests::database_url(Db::Postgres, &server.dir).await;
    let database = database.replace("@127.0.0.1:", "@host.docker.internal:");
    dev.paas(&[
        "config:set",
        "GREETING=hello from a config var",
        &format!("DATABASE_URL={database}"),
        // A config var pip honours: the index to install from (PyPI itself here).
        "PIP_INDEX_URL=https://pypi.org/simple/",
    ])
    .success();

    let started = Instant::now();
    let cold = dev.git(&["push", "paas", "main"]).success();
    let cold_time = started.elapsed();
    for expected in [
        "remote: -----> Python app detected (Django)",
        "Trusting the CA bundle in PAAS_BUILD_CA_FILE",
        "Looking in indexes: https://pypi.org/simple/",
        "Building wheel for psycopg2",
        "remote: -----> Running build command: cd backend && python manage.py collectstatic",
        "static files copied to '/app/backend/staticfiles'",
        "Procfile declares types    -> release, web",
        // The release phase: Django's migrations, in the push's output.
        "remote: -----> Running release command: cd backend && python manage.py migrate --noinput",
        "Applying auth.0001_initial... OK",
        "remote: -----> Released v3",
    ] {
        assert!(cold.contains(expected), "no {expected:?} in:\n{cold}");
    }
    assert!(!after_step(&cold, "pip install -r requirements.txt").contains("Using cache"));

    let page = get(&server, app, "/").await;
    assert!(page.contains("<h1>Hello from Django</h1>"), "{page}");
    let config: serde_json::Value =
        serde_json::from_str(&get(&server, app, "/api/config/").await).unwrap();
    assert_eq!(config["greeting"], "hello from a config var");
    assert!(config["psycopg2"].as_str().unwrap().starts_with("2.9.13"), "{config}");
    // The release phase migrated the PostgreSQL database the web process uses, through the
    // psycopg2 built from source.
    let db: serde_json::Value = serde_json::from_str(&get(&server, app, "/api/db/").await).unwrap();
    assert_eq!(db["vendor"], "postgresql", "{db}");
    assert!(db["migrations"].as_i64().unwrap() >= 10, "{db}");
    // The prebuilt client, by its name and by the hashed name collectstatic gave it.
    let script = get(&server, app, "/static/app.js").await;
    assert!(script.contains("fetch(\"/api/config/\")"), "{script}");
    let hashed = script_src(&page);
    assert!(hashed.starts_with("/static/app.") && hashed != "/static/app.js", "{hashed}");
    assert_eq!(get(&server, app, &hashed).await, script);
    assert!(get(&server, app, "/static/index.html").await.contains("django-monorepo client"));

    // The image that runs has no compiler, and trusts the proxy at run time too (an app
    // calling an HTTPS API).
    let check = "if command -v gcc || command -v cc; then exit 3; fi; python -c \
                 'import urllib.request as u; u.urlopen(\"https://pypi.org/simple/\")' || exit 4";
    dev.paas(&["run", check]).success();

    // A change to a view only: the dependency layer is reused, and the push is much faster.
    dev.edit("backend/config/views.py", "Hello from Django", "Hello again from Django");
    dev.commit("New headline");
    let started = Instant::now();
    let warm = dev.git(&["push", "paas", "main"]).success();
    let warm_time = started.elapsed();
    assert!(warm.contains("remote: -----> Released v4"), "{warm}");
    assert!(warm.contains("No migrations to apply."), "the same database: {warm}");
    let install = after_step(&warm, "pip install -r requirements.txt");
    assert!(install.contains("---> Using cache"), "{warm}");
    eprintln!("django push-to-live: cold {cold_time:?}, warm (code-only) {warm_time:?}");
    assert!(warm_time * 2 < cold_time, "warm push {warm_time:?}, cold push {cold_time:?}");
    assert!(get(&server, app, "/").await.contains("<h1>Hello again from Django</h1>"));

    // A stylesheet that points at a missing file stops collectstatic: the push is rejected
    // with Django's words and the fix, and v4 serves on.
    dev.write("frontend/dist/broken.css", "body { background: url(\"missing.png\"); }\n");
    dev.commit("Broken stylesheet");
    let rejected = dev.git(&["push", "paas", "main"]).failure();
    assert!(rejected.contains("missing.png"), "{rejected}");
    assert!(rejected.contains("DISABLE_COLLECTSTATIC=1"), "{rejected}");
    assert!(rejected.contains("pre-receive hook declined"), "{rejected}");
    assert!(get(&server, app, "/").await.contains("<h1>Hello again from Django</h1>"));

    destroy(&server, app).await;
}

/// Without PAAS_BUILD_CA_FILE, pip does not trust the proxy: the push is rejected with the
/// setting to use, and nothing is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_push_without_the_ca_bundle_names_the_setting() {
    let server = TestServer::start(Db::Sqlite).await;
    let app = &format!("django-no-ca-{:08x}", rand::random::<u32>());
    let dev = Developer::new(&server, "django-monorepo");
    dev.paas(&["apps:create", app]).success();
    dev.paas(&["config:set", "PIP_INDEX_URL=https://pypi.org/simple/"]).success();
    let out = dev.git(&["push", "paas", "main"]).failure();
    for expected in [
        "CERTIFICATE_VERIFY_FAILED",
        "set PAAS_BUILD_CA_FILE",
        "Push rejected: nothing was deployed",
        "pre-receive hook declined",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
    let releases = server.get_json(&format!("/apps/{app}/releases")).await;
    let versions: Vec<i64> =
        releases.as_array().unwrap().iter().map(|r| r["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, vec![2, 1], "only the app's creation and the config change: {releases}");
    let builds = server.get_json(&format!("/apps/{app}/builds")).await;
    assert_eq!(builds[0]["status"], "failed", "{builds}");
    destroy(&server, app).await;
}

/// One text message over a WebSocket to `path` through the router; the text that comes back.
async fn websocket_echo(server: &TestServer, host: &str, path: &str, text: &str) -> String {
    websocket_session(server.router, host, path, text, std::time::Duration::ZERO).await.unwrap()
}

/// Opens a WebSocket to `path` through the router at `router`, holds it open for `hold`, then
/// sends `text` and returns the answer. (The handshake, one text frame each way and pongs to
/// the server's pings, written out: no client library is needed for it.) Errors say what
/// went wrong, for a load test to count.
async fn websocket_session(
    router: std::net::SocketAddr,
    host: &str,
    path: &str,
    text: &str,
    hold: std::time::Duration,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |e: std::io::Error| e.to_string();
    let mut stream = tokio::net::TcpStream::connect(router).await.map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.map_err(io)?);
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("HTTP/1.1 101") {
        return Err(format!("no upgrade: {head}"));
    }
    tokio::time::sleep(hold).await;
    // A final text frame, masked as a client's must be.
    assert!(text.len() < 126);
    let mask = [7u8, 1, 9, 4];
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await.map_err(io)?;
    loop {
        let first = stream.read_u8().await.map_err(io)?;
        let length = stream.read_u8().await.map_err(io)?;
        if length & 0x80 != 0 || length >= 126 {
            return Err(format!("not a short unmasked frame: {first:#x} {length:#x}"));
        }
        let mut payload = vec![0; usize::from(length)];
        stream.read_exact(&mut payload).await.map_err(io)?;
        match first {
            0x81 => return String::from_utf8(payload).map_err(|e| e.to_string()),
            // daphne pings a connection held open (every 20 s): answered as a browser would,
            // with a pong carrying the same bytes, masked.
            0x89 => {
                let mut pong = vec![0x8a, 0x80 | length];
                pong.extend_from_slice(&mask);
                pong.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
                stream.write_all(&pong).await.map_err(io)?;
            }
            0x8a => {}
            _ => return Err(format!("not a final text frame: {first:#x} {length:#x}")),
        }
    }
}

/// Seed 004's shape: a Django Channels app with no `web:` line gets daphne from
/// ASGI_APPLICATION, and its WebSockets work through the router, next to plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_channels_app_serves_websockets_on_daphne() {
    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.build.build_ca_file = Some(HOST_CA_BUNDLE.into());
    })
    .await;
    let app = &format!("channels-{:08x}", rand::random::<u32>());
    let dev = Developer::new(&server, "django-channels");
    dev.paas(&["apps:create", app]).success();
    let out = dev.git(&["push", "paas", "main"]).success();
    assert!(out.contains("remote: -----> Python app detected (Django)"), "{out}");
    assert!(out.contains("remote: -----> Released v2"), "{out}");
    let releases = server.get_json(&format!("/apps/{app}/releases")).await;
    let web = &releases[0]["process_types"]["web"];
    assert_eq!(web, "daphne --bind 0.0.0.0 --port $PORT --proxy-headers chat.asgi:application");

    let host = format!("{app}.localhost");
    let page: serde_json::Value = serde_json::from_str(&get(&server, app, "/").await).unwrap();
    assert_eq!(page["server"], "daphne");
    // daphne believes the router's X-Forwarded-For: the client is this test, not the router.
    assert_eq!(page["client"], "127.0.0.1", "{page}");
    let echo = websocket_echo(&server, &host, "/ws/echo/", "hello over the router").await;
    assert_eq!(echo, "echo: hello over the router");
    destroy(&server, app).await;
}

/// Seed 004's other shape: gunicorn serves HTTP as `web`, daphne serves `/ws/` as `channels`,
/// the route declared in paas.toml. Ten rollouts under HTTP load and WebSocket sessions that
/// stay open across them fail nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_on_daphne_behind_a_ws_route_beside_gunicorn() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let server = TestServer::start_with(Db::Sqlite, |config| {
        config.build.build_ca_file = Some(HOST_CA_BUNDLE.into());
    })
    .await;
    let app = &format!("split-{:08x}", rand::random::<u32>());
    let dev = Developer::new(&server, "django-channels");
    dev.write(
        "requirements.txt",
        "Django==5.2.19\nchannels==4.3.2\ndaphne==4.2.3\ngunicorn==23.0.0\n",
    );
    dev.write(
        "Procfile",
        "release: python manage.py migrate --noinput\n\
         web: gunicorn chat.wsgi --bind 0.0.0.0:$PORT\n\
         channels: daphne -b 0.0.0.0 -p $PORT --proxy-headers chat.asgi:application\n",
    );
    dev.write("paas.toml", "[routes]\n\"/ws/\" = \"channels\"\n");
    dev.commit("gunicorn for HTTP, daphne for /ws/");
    dev.paas(&["apps:create", app]).success();
    let out = dev.git(&["push", "paas", "main"]).success();
    for expected in [
        "Applying the routes, volumes and jobs the app declares",
        "routed /ws/ to channels",
        "channels is scaled to 0: /ws/ answers 503 until `paas ps:scale channels=1`",
    ] {
        assert!(out.contains(expected), "no {expected:?} in:\n{out}");
    }
    dev.paas(&["ps:scale", "channels=1"]).success();
    let listed = dev.paas(&["routes"]).success();
    assert!(listed.contains("/ws/*") && listed.contains("channels"), "{listed}");

    let host = format!("{app}.localhost");
    let page: serde_json::Value = serde_json::from_str(&get(&server, app, "/").await).unwrap();
    assert!(page["server"].as_str().unwrap().starts_with("gunicorn/"), "{page}");
    let echo = websocket_echo(&server, &host, "/ws/echo/", "hello daphne").await;
    assert_eq!(echo, "echo: hello daphne");

    // HTTP requests one after another, and WebSocket sessions held open a second each,
    // while the app rolls out ten times.
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (http_done, ws_done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (failures, done, stop) = (failures.clone(), http_done.clone(), stop.clone());
        let (http, router, host) = (server.http.clone(), server.router, host.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer =
                    http.get(format!("http://{router}/")).header("host", &host).send().await;
                match answer {
                    Ok(r) if r.status() == 200 => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.lock().unwrap().push(format!("HTTP {}", r.status())),
                    Err(e) => failures.lock().unwrap().push(format!("HTTP {e}")),
                }
            }
        }));
    }
    for client in 0..3 {
        let (failures, done, stop) = (failures.clone(), ws_done.clone(), stop.clone());
        let (router, host) = (server.router, host.clone());
        clients.push(tokio::spawn(async move {
            let hold = std::time::Duration::from_millis(1000);
            while !stop.load(Ordering::Relaxed) {
                let text = format!("client {client}");
                match websocket_session(router, &host, "/ws/echo/", &text, hold).await {
                    Ok(echo) if echo == format!("echo: {text}") => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(other) => failures.lock().unwrap().push(format!("WebSocket said {other}")),
                    Err(e) => failures.lock().unwrap().push(format!("WebSocket {e}")),
                }
            }
        }));
    }
    for rollout in 1..=10 {
        dev.paas(&["config:set", &format!("ROLLOUT={rollout}")]).success();
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let (http_done, ws_done) = (http_done.load(Ordering::Relaxed), ws_done.load(Ordering::Relaxed));
    assert!(
        failures.is_empty(),
        "{} failed ({http_done} HTTP, {ws_done} WebSocket ok): {failures:?}",
        failures.len()
    );
    assert!(http_done > 100 && ws_done > 10, "{http_done} HTTP, {ws_done} WebSocket");
    let releases = server.get_json(&format!("/apps/{app}/releases")).await;
    assert_eq!(releases[0]["version"], 12, "ten config releases after v2");
    destroy(&server, app).await;
}
