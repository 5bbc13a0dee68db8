//! Shared helpers for the end-to-end tests: a real server on port 0 over a fresh database
//! (a new SQLite file, or a new PostgreSQL database per test), and the built `paas` binary.

pub mod browser;
pub mod developer;
pub mod github;
pub mod pebble;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use paas_server::{RunningServer, ServerConfig};
use rand::Rng;
use sqlx::Connection;
use tempfile::TempDir;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs an async test body once per database: `both_databases!(my_test);` defines
/// `my_test::sqlite` and `my_test::postgres`, each calling `my_test(Db::…)`.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Db::Postgres).await
            }
        }
    )+};
}

/// The PostgreSQL server tests create their databases on. `.ci/run` starts one and sets
/// `PAAS_TEST_DATABASE_URL`; without it the PostgreSQL half of the suite fails, by design.
pub fn postgres_admin_url() -> String {
    std::env::var("PAAS_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "PAAS_TEST_DATABASE_URL is not set: the PostgreSQL tests need a server. \
             `bash .ci/run` starts one; or point it at yours, e.g. \
             postgres://postgres@127.0.0.1:5432/postgres"
        )
    })
}

/// A new, empty database for one test; its URL.
pub async fn database_url(db: Db, dir: &TempDir) -> String {
    match db {
        Db::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("paas.db").display()),
        Db::Postgres => {
            let admin = postgres_admin_url();
            let name = format!("paas_test_{:016x}", rand::rng().random::<u64>());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL server");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create a test database");
            let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin);
            format!("{base}/{name}")
        }
    }
}

/// A control plane running in this process on a loopback port, with its admin token.
pub struct TestServer {
    pub url: String,
    /// The router's address: send app requests here with a `Host` header.
    pub router: std::net::SocketAddr,
    pub token: String,
    pub http: reqwest::Client,
    pub dir: TempDir,
    pub server: RunningServer,
    config: ServerConfig,
    network: NetworkGuard,
}

impl TestServer {
    pub async fn start(db: Db) -> TestServer {
        TestServer::start_with(db, |_| {}).await
    }

    /// A server whose settings `adjust` changes first (a smaller push limit, say).
    pub async fn start_with(db: Db, adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig::new(dir.path().join("data"));
        config.listen = "127.0.0.1:0".parse().expect("address");
        config.router.listen = "127.0.0.1:0".parse().expect("address");
        // No registry here: builds use the offline stack images (deploy/stack/build.sh).
        config.build.base_images = "local".into();
        // A network of its own: a server adopts and removes only containers on its network.
        config.docker_network = test_network();
        config.database_url = Some(database_url(db, &dir).await);
        // The pre-receive hook runs the real `paas` binary, not this test executable.
        config.git.hook_bin = Some(paas_bin());
        adjust(&mut config);
        let mut server = paas_server::start_with(config.clone(), &[paas_web_ui::router])
            .await
            .expect("server starts");
        let token = server.initial_token.take().expect("a fresh store mints a token");
        TestServer {
            url: format!("http://{}", server.addr),
            router: server.router_addr,
            token,
            http: reqwest::Client::new(),
            dir,
            server,
            network: NetworkGuard(config.docker_network.clone()),
            config,
        }
    }

    /// Stops the server and starts it again on the same data, database and Docker network
    /// (on new ports), as after a restart of paas.
    pub async fn restart(self) -> TestServer {
        let TestServer { token, http, dir, server, config, network, .. } = self;
        server.shutdown().await.expect("server stops");
        let server = paas_server::start_with(config.clone(), &[paas_web_ui::router])
            .await
            .expect("server restarts");
        assert!(server.initial_token.is_none(), "no second bootstrap token");
        TestServer {
            url: format!("http://{}", server.addr),
            router: server.router_addr,
            token,
            http,
            dir,
            server,
            config,
            network,
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The Docker network this server's app containers join.
    pub fn docker_network(&self) -> &str {
        &self.config.docker_network
    }

    /// A request through the router to the app answering at `host`.
    pub async fn app_request(&self, host: &str, path: &str) -> reqwest::Response {
        self.http
            .get(format!("http://{}{path}", self.router))
            .header("host", host)
            .send()
            .await
            .expect("router answers")
    }

    /// `GET /api/v1{path}` with the admin token, as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.api(reqwest::Method::GET, path).send().await.expect("API answers");
        response.json().await.expect("a JSON answer")
    }

    /// The first-start admin, as the core sees a request of theirs through the API.
    pub async fn admin(&self) -> paas_server::core::Actor {
        let user = self.server.paas.store().user("admin").await.expect("the admin exists");
        paas_server::core::Actor::new(user, None, paas_server::core::FrontEnd::Api)
    }

    /// A request to `/api/v1{path}` carrying the admin token.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}/api/v1{path}", self.url)).bearer_auth(&self.token)
    }
}

/// The `paas` binary of this workspace, rebuilt first when it is missing or older than any
/// source it is made from: a test must never drive a stale binary.
pub fn paas_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("PAAS_BIN") {
            return PathBuf::from(path);
        }
        // Test executables live in target/<profile>/deps/; the binary one level up.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test binary in target/<profile>/deps");
        let bin = profile_dir.join("paas");
        let sources = newest_source();
        if modified(&bin).is_none_or(|built| built < sources) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "-p", "paas-cli", "--bin", "paas"])
                .current_dir(workspace_root())
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build -p paas-cli failed");
        }
        bin
    })
    .clone()
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace")
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time among the files the `paas` binary is built from.
fn newest_source() -> std::time::SystemTime {
    fn walk(path: &Path, newest: &mut std::time::SystemTime) {
        let Ok(meta) = std::fs::metadata(path) else { return };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        } else if let Ok(time) = meta.modified() {
            *newest = (*newest).max(time);
        }
    }
    let root = workspace_root();
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    walk(&root.join("Cargo.toml"), &mut newest);
    walk(&root.join("Cargo.lock"), &mut newest);
    walk(&root.join("migrations"), &mut newest);
    for krate in ["cli", "server", "store", "builder", "runner", "router", "web-ui"] {
        walk(&root.join(krate).join("Cargo.toml"), &mut newest);
        walk(&root.join(krate).join("src"), &mut newest);
    }
    newest
}

/// Gives back what a test server made in Docker when dropped, also when the test failed:
/// its apps' containers and images, and its network (Docker has room for only a few dozen
/// bridge networks). `.ci/run` sweeps what a killed test run left.
pub struct NetworkGuard(pub String);

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        remove_docker_network(&self.0);
    }
}

/// A Docker network name of its own for one test server.
pub fn test_network() -> String {
    format!("paas-test-{:08x}", rand::rng().random::<u32>())
}

/// Removes the containers on the network `name` (add-ons' too, with their volumes), the
/// images a server on it built (tagged `paas/NAME/…`), its apps' networks, and the network.
pub fn remove_docker_network(name: &str) {
    let docker = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    };
    let label = format!("label=io.paas.network={name}");
    // Swarm's services first (their tasks' containers carry the label too, removed below).
    for id in docker(&["service", "ls", "-q", "--filter", &label]).split_whitespace() {
        docker(&["service", "rm", id]);
    }
    for id in docker(&["ps", "-aq", "--filter", &label]).split_whitespace() {
        docker(&["rm", "-f", "-v", id]);
    }
    for volume in docker(&["volume", "ls", "-q", "--filter", &label]).split_whitespace() {
        docker(&["volume", "rm", "-f", volume]);
    }
    // Its apps' own networks, where they meet their add-ons: `NAME-app-APP`.
    let apps = format!("{name}-app-");
    for network in docker(&["network", "ls", "--format", "{{.Name}}"]).split_whitespace() {
        if network.starts_with(&apps) {
            docker(&["network", "rm", network]);
        }
    }
    let reference = format!("reference=paas/{name}/*");
    let images = docker(&["images", "--filter", &reference, "--format", "{{.ID}}"]);
    for id in images.split_whitespace().collect::<std::collections::BTreeSet<_>>() {
        docker(&["rmi", "-f", id]);
    }
    docker(&["network", "rm", name]);
}

/// `paas server` as a process of its own (the built binary) on loopback ports, as a user
/// runs it: what a test needs to kill it with SIGKILL and start it again.
pub struct ServerProcess {
    pub child: Child,
    /// The control plane: `http://127.0.0.1:PORT`.
    pub url: String,
    /// The router, where apps answer.
    pub router: std::net::SocketAddr,
    /// The Docker network its apps join, removed when this is dropped.
    pub network: Option<String>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(network) = &self.network {
            remove_docker_network(network);
        }
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

impl ServerProcess {
    /// Starts `paas server` with its data and token file in `dir`, on `url`'s port (a free
    /// one if `None`), building with the offline base images, and waits until it answers.
    pub async fn start(
        dir: &Path,
        database_url: &str,
        network: &str,
        url: Option<(&str, std::net::SocketAddr)>,
    ) -> ServerProcess {
        ServerProcess::start_with_env(dir, database_url, network, url, &[]).await
    }

    /// [`ServerProcess::start`] with more `PAAS_*` settings in its environment.
    pub async fn start_with_env(
        dir: &Path,
        database_url: &str,
        network: &str,
        url: Option<(&str, std::net::SocketAddr)>,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        // Ports this process picks may be taken by another test before the server binds
        // them: then it exits at once, and it is started again on others.
        for _attempt in 0..3 {
            let (url, router) = match url {
                Some((url, router)) => (url.to_string(), router),
                None => {
                    let api = free_port();
                    let router = loop {
                        let port = free_port();
                        if port != api {
                            break port;
                        }
                    };
                    let router = std::net::SocketAddr::from(([127, 0, 0, 1], router));
                    (format!("http://127.0.0.1:{api}"), router)
                }
            };
            let log = dir.join("server.log");
            let child = Command::new(paas_bin())
                .args(["server", "--listen", url.trim_start_matches("http://")])
                .args(["--router-listen", &router.to_string()])
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--init-token-file")
                .arg(dir.join("token"))
                .args(["--docker-network", network, "--base-images", "local"])
                .env("DATABASE_URL", database_url)
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("server log file"))
                .spawn()
                .expect("start paas server");
            let mut server =
                ServerProcess { child, url, router, network: Some(network.to_string()) };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(response) = reqwest::get(format!("{}/healthz", server.url)).await
                    && response.status().is_success()
                {
                    return server;
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    let said = std::fs::read_to_string(&log).unwrap_or_default();
                    eprintln!("paas server exited with {status} at start:\n{said}");
                    server.network = None;
                    break;
                }
                let said = || std::fs::read_to_string(&log).unwrap_or_default();
                assert!(Instant::now() < deadline, "paas server did not come up:\n{}", said());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("paas server did not start in three attempts; see the logs above");
    }

    /// Stops it as systemd does (SIGTERM) and waits up to 30 s for it to exit, leaving its
    /// Docker network, its apps' containers and its data as they are; how it exited.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.network = None;
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "SIGTERM to paas server");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for paas server") {
                return status;
            }
            assert!(Instant::now() < deadline, "paas server did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills it the hard way (SIGKILL, as `kill -9`), leaving its Docker network, its apps'
    /// containers and its data as they are.
    pub fn kill(mut self) {
        self.network = None;
        self.child.kill().expect("kill paas server");
        self.child.wait().expect("reap paas server");
    }
}

/// Polls `check` every 100 ms until it holds; fails the test, naming `what`, after `limit`.
pub async fn wait_until<F: Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Steady requests through the router to the app at `host`, from `clients` loops, each
/// counted as good (a 200 with its whole body) or failed, until [`Load::stop`]; bounded to
/// 5 minutes whatever happens.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(router: std::net::SocketAddr, host: &str, clients: usize) -> Load {
        use std::sync::atomic::Ordering;
        let load = Load {
            stop: Default::default(),
            ok: Default::default(),
            failed: Default::default(),
            clients: Vec::new(),
        };
        let clients = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (load.stop.clone(), load.ok.clone(), load.failed.clone());
                let (url, host) = (format!("http://{router}/"), host.to_string());
                tokio::spawn(async move {
                    let client = reqwest::Client::builder().no_proxy().build().expect("client");
                    let deadline = Instant::now() + Duration::from_secs(300);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let answer = client.get(&url).header("host", &host).send().await;
                        let good = match answer {
                            Ok(response) => {
                                response.status() == 200 && response.bytes().await.is_ok()
                            }
                            Err(_) => false,
                        };
                        let counter = if good { &ok } else { &failed };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load { clients, ..load }
    }

    /// Stops the clients; the requests that succeeded and those that failed.
    pub async fn stop(self) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.await.expect("load client");
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}
