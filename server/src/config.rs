//! `paas server` settings: flags, each also read from a `PAAS_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The Docker network of a paas that has the engine to itself.
pub const DEFAULT_NETWORK: &str = "paas";

#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfig {
    /// Address the control plane (API, git, dashboard) listens on.
    #[arg(long, env = "PAAS_LISTEN", default_value = "127.0.0.1:7000")]
    pub listen: SocketAddr,

    /// Directory for paas's own state: the SQLite database, git repositories, build caches.
    #[arg(long, env = "PAAS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database to use instead of the embedded SQLite file, e.g.
    /// postgres://paas:secret@localhost/paas (sqlite://PATH also works).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Apps are served at APP.DOMAIN; `localhost` makes http://APP.localhost:8000 work on a
    /// laptop with no DNS set up.
    #[arg(long, env = "PAAS_DOMAIN", default_value = "localhost")]
    pub domain: String,

    /// Docker network app containers join. Only containers on it are paas's to adopt,
    /// restart or remove, so two paas servers on one Docker host need different networks;
    /// a server on another than the default also tags its images `paas/NETWORK/app-…`.
    #[arg(long, env = "PAAS_DOCKER_NETWORK", default_value = DEFAULT_NETWORK)]
    pub docker_network: String,

    /// Who runs the apps' processes: `docker` (containers on this machine's engine) or
    /// `swarm` (services on the Docker Swarm this engine manages, across its nodes; see
    /// docs/scaling.md).
    #[arg(long, env = "PAAS_SCHEDULER", default_value = "docker", value_parser = parse_scheduler)]
    pub scheduler: paas_runner::Scheduler,

    /// A Docker registry (`HOST:PORT`) that every Swarm node can pull from: each release's
    /// image is pushed there and run by its digest. Needed with --scheduler swarm on more
    /// than one node; e.g. Debian's docker-registry package on the manager (docs/scaling.md).
    #[arg(long, env = "PAAS_REGISTRY", value_name = "HOST:PORT")]
    pub registry: Option<String>,

    /// Images of this many newest releases are kept, so that rolling back to them needs no
    /// build; older ones are removed after each deploy.
    #[arg(long, env = "PAAS_KEEP_RELEASES", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    pub keep_releases: u16,

    #[command(flatten)]
    pub router: RouterSettings,

    #[command(flatten)]
    pub https: TlsSettings,

    /// Where the router runs: `in-process` (in this server, on --router-listen; for a
    /// laptop) or `external` (a `paas router --table FILE` of its own, which keeps serving
    /// while this server restarts or is upgraded; this server writes the routing table to
    /// --router-table and does not listen on --router-listen).
    #[arg(long = "router", env = "PAAS_ROUTER", default_value = "in-process", value_parser = ["in-process", "external"])]
    pub router_mode: String,

    /// The routing table file an external router follows (with --router external).
    #[arg(long, env = "PAAS_ROUTER_TABLE", required_if_eq("router_mode", "external"))]
    pub router_table: Option<PathBuf>,

    #[command(flatten)]
    pub build: BuildSettings,

    #[command(flatten)]
    pub git: GitSettings,

    /// Proxies in front of the control plane (the API, git, the dashboard, webhooks), such as
    /// nginx terminating TLS: comma-separated addresses or CIDR ranges. From them, the
    /// client's address is taken from X-Forwarded-For, for the sign-in limits and the audit
    /// log; from anyone else the header is ignored. Nobody by default.
    #[arg(long, env = "PAAS_TRUSTED_PROXIES", value_name = "CIDRS", default_value = "")]
    pub trusted_proxies: paas_router::TrustedProxies,

    /// Where backups of PostgreSQL add-ons are written (default: DATA_DIR/backups).
    #[arg(long, env = "PAAS_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,

    /// On the very first start, write the admin's API token to this file (mode 0600)
    /// instead of printing it.
    #[arg(long, env = "PAAS_INIT_TOKEN_FILE")]
    pub init_token_file: Option<PathBuf>,
}

fn parse_scheduler(text: &str) -> Result<paas_runner::Scheduler, String> {
    text.parse()
}

/// How apps are built.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildSettings {
    /// Base images for detected builds: `auto` (for each language, the paas/* stack image
    /// deploy/stack/build.sh builds offline when the Docker engine has it, else the official
    /// one; looked up at every build), `official` (python:3.14-slim, node:22-slim, … pulled
    /// from a registry) or `local` (the paas/* stack images only). PAAS_IMAGE_PYTHON,
    /// PAAS_IMAGE_NODE, … override one language.
    #[arg(long, env = "PAAS_BASE_IMAGES", default_value = "auto", value_parser = ["auto", "official", "local"])]
    pub base_images: String,

    /// A PEM bundle of CAs that builds trust and images keep, for servers that reach package
    /// indexes through a TLS-intercepting proxy.
    #[arg(long, env = "PAAS_BUILD_CA_FILE")]
    pub build_ca_file: Option<PathBuf>,

    /// Also add that bundle after every FROM of an app's own Dockerfile whatever its base
    /// (Dockerfiles FROM paas stack images always get it): their build steps trust the proxy
    /// with no change to the Dockerfile. See docs/builds.md for the trade-off.
    #[arg(long, env = "PAAS_BUILD_CA_INJECT", value_parser = clap::builder::FalseyValueParser::new())]
    pub build_ca_inject: bool,

    /// When the Python version an app asks for has no local image, build it on the nearest
    /// newer one (the log warns) instead of failing the build.
    #[arg(long, env = "PAAS_PYTHON_ALLOW_NEWER", value_parser = clap::builder::FalseyValueParser::new())]
    pub python_allow_newer: bool,

    /// Longest a build may run: seconds, or with a unit (15m, 1h).
    #[arg(long, env = "PAAS_BUILD_TIMEOUT", default_value = "15m")]
    pub build_timeout: String,
}

impl BuildSettings {
    /// The builder's configuration: these settings, plus the per-language `PAAS_IMAGE_*`
    /// overrides from the environment.
    pub fn builder_config(&self) -> Result<paas_builder::BuilderConfig, paas_builder::BuildError> {
        paas_builder::BuilderConfig::from_lookup(&|key| match key {
            "PAAS_BASE_IMAGES" => Some(self.base_images.clone()),
            "PAAS_BUILD_CA_FILE" => {
                self.build_ca_file.as_ref().map(|path| path.display().to_string())
            }
            "PAAS_BUILD_CA_INJECT" => Some(if self.build_ca_inject { "1" } else { "0" }.into()),
            "PAAS_PYTHON_ALLOW_NEWER" => {
                Some(if self.python_allow_newer { "1" } else { "0" }.into())
            }
            "PAAS_BUILD_TIMEOUT" => Some(self.build_timeout.clone()),
            other => std::env::var(other).ok(),
        })
    }
}

/// `git push` over HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct GitSettings {
    /// Largest push accepted, in MiB: a bigger pack is refused with a message saying so.
    #[arg(long, env = "PAAS_MAX_PUSH_MB", default_value_t = 512)]
    pub max_push_mb: u64,

    /// The `paas` binary the repositories' pre-receive hook runs to report back to this
    /// server (default: the binary running the server).
    #[arg(long, env = "PAAS_GIT_HOOK_BIN", hide = true)]
    pub hook_bin: Option<PathBuf>,

    /// Most git requests (pushes, fetches) served at once; more wait their turn, up to
    /// `--git-queue-wait`.
    #[arg(long, env = "PAAS_GIT_MAX_REQUESTS", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub git_max_requests: u16,

    /// Seconds a git request waits for its turn before it is refused with a 503 (raise it
    /// when builds are long and pushes queue behind them).
    #[arg(long, env = "PAAS_GIT_QUEUE_WAIT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub git_queue_wait: u64,

    /// Where linked GitHub repositories are fetched from (GitHub Enterprise: its URL).
    #[arg(long, env = "PAAS_GITHUB_URL", default_value = "https://github.com")]
    pub github_url: String,

    /// GitHub's API, for commit statuses (GitHub Enterprise: `https://HOST/api/v3`).
    #[arg(long, env = "PAAS_GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,
}

impl Default for GitSettings {
    fn default() -> GitSettings {
        GitSettings {
            max_push_mb: 512,
            hook_bin: None,
            git_max_requests: 32,
            git_queue_wait: 60,
            github_url: "https://github.com".into(),
            github_api_url: "https://api.github.com".into(),
        }
    }
}

/// HTTPS: certificates from an ACME CA (Let's Encrypt), or given as files.
#[derive(Debug, Clone, clap::Args)]
pub struct TlsSettings {
    /// Get certificates from an ACME CA (Let's Encrypt by default) for every app's
    /// APP.DOMAIN and custom domain, with this contact address; turns HTTPS on (the router
    /// then listens on --router-https-listen, :443 by default). DNS for those names must
    /// point here, and port 80 or 443 be open to the internet.
    #[arg(long, env = "PAAS_ACME_EMAIL", value_name = "EMAIL")]
    pub acme_email: Option<String>,

    /// The ACME directory: `letsencrypt`, `letsencrypt-staging` (untrusted certificates,
    /// for trying things out without hitting rate limits), or a directory URL.
    #[arg(long, env = "PAAS_ACME_DIRECTORY", value_name = "URL", default_value = "letsencrypt")]
    pub acme_directory: String,

    /// A CA certificate (PEM) to trust for the ACME directory itself, for a private ACME
    /// server (an internal CA, or pebble in tests).
    #[arg(long, env = "PAAS_ACME_CA_FILE", value_name = "PEM")]
    pub acme_ca_file: Option<PathBuf>,

    /// How the CA checks a name is ours: `http-01` (port 80), `tls-alpn-01` (port 443), or
    /// `auto`: http-01 when the router listens on port 80, else tls-alpn-01.
    #[arg(long, env = "PAAS_ACME_CHALLENGE", default_value = "auto", value_parser = ["auto", "http-01", "tls-alpn-01"])]
    pub acme_challenge: String,

    /// Renew a certificate this many days before it expires.
    #[arg(long, env = "PAAS_ACME_RENEW_DAYS", value_name = "DAYS", default_value_t = 30)]
    pub acme_renew_days: u32,

    /// A certificate chain (PEM) served for every *.DOMAIN name, for operators who get a
    /// wildcard certificate elsewhere (by DNS-01); names it covers get no ACME certificate.
    /// Needs --tls-key.
    #[arg(long, env = "PAAS_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "PAAS_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> TlsSettings {
        TlsSettings {
            acme_email: None,
            acme_directory: "letsencrypt".into(),
            acme_ca_file: None,
            acme_challenge: "auto".into(),
            acme_renew_days: 30,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl TlsSettings {
    /// Whether the router serves HTTPS at all.
    pub fn enabled(&self) -> bool {
        self.acme_email.is_some() || self.tls_cert.is_some()
    }

    /// The ACME directory URL `--acme-directory` names.
    pub fn directory_url(&self) -> String {
        match self.acme_directory.as_str() {
            "letsencrypt" => crate::core::LETS_ENCRYPT.into(),
            "letsencrypt-staging" => crate::core::LETS_ENCRYPT_STAGING.into(),
            url => url.into(),
        }
    }

    /// The challenge to answer, given the ports the router listens on.
    pub fn challenge(&self, http_port: u16) -> crate::core::Challenge {
        match self.acme_challenge.as_str() {
            "http-01" => crate::core::Challenge::Http01,
            "tls-alpn-01" => crate::core::Challenge::TlsAlpn01,
            _ if http_port == 80 => crate::core::Challenge::Http01,
            _ => crate::core::Challenge::TlsAlpn01,
        }
    }
}

/// The router's settings, shared by `paas server` and a standalone `paas router`.
#[derive(Debug, Clone, clap::Args)]
pub struct RouterSettings {
    /// Address the router (the apps' HTTP entry point) listens on.
    #[arg(
        id = "router_listen",
        value_name = "ADDR",
        long = "router-listen",
        env = "PAAS_ROUTER_LISTEN",
        default_value = "0.0.0.0:8000"
    )]
    pub listen: SocketAddr,

    /// Address the router serves HTTPS on (HTTP/2 and HTTP/1.1). Default: 0.0.0.0:443 when
    /// HTTPS is on (--acme-email or --tls-cert), else none.
    #[arg(
        id = "router_https_listen",
        value_name = "ADDR",
        long = "router-https-listen",
        env = "PAAS_ROUTER_HTTPS_LISTEN"
    )]
    pub https_listen: Option<SocketAddr>,

    /// Router: seconds allowed to connect to an app container (then 502/504).
    #[arg(
        id = "router_connect_timeout",
        value_name = "SECS",
        long = "router-connect-timeout",
        env = "PAAS_ROUTER_CONNECT_TIMEOUT",
        default_value_t = 5
    )]
    pub connect_timeout: u64,

    /// Router: seconds an app has to start answering a request (then 504).
    #[arg(
        id = "router_response_timeout",
        value_name = "SECS",
        long = "router-response-timeout",
        env = "PAAS_ROUTER_RESPONSE_TIMEOUT",
        default_value_t = 30
    )]
    pub response_timeout: u64,

    /// Router: seconds an idle client keep-alive connection stays open.
    #[arg(
        id = "router_idle_timeout",
        value_name = "SECS",
        long = "router-idle-timeout",
        env = "PAAS_ROUTER_IDLE_TIMEOUT",
        default_value_t = 55
    )]
    pub idle_timeout: u64,

    /// Router: largest request body accepted, in MiB (then 413).
    #[arg(
        id = "router_max_body_mb",
        value_name = "MIB",
        long = "router-max-body-mb",
        env = "PAAS_ROUTER_MAX_BODY_MB",
        default_value_t = 100
    )]
    pub max_body_mb: u64,

    /// Router: proxies in front of paas whose X-Forwarded-Proto and X-Forwarded-Port are
    /// passed on to apps (a load balancer terminating TLS): comma-separated addresses or
    /// CIDR ranges, such as 10.0.0.0/8. Nobody by default.
    #[arg(
        id = "router_trusted_proxies",
        value_name = "CIDRS",
        long = "router-trusted-proxies",
        env = "PAAS_ROUTER_TRUSTED_PROXIES",
        default_value = ""
    )]
    pub trusted_proxies: paas_router::TrustedProxies,

    /// Router: most client connections open at once, WebSockets included; more wait to be
    /// accepted until one closes.
    #[arg(
        id = "router_max_connections",
        value_name = "N",
        long = "router-max-connections",
        env = "PAAS_ROUTER_MAX_CONNECTIONS",
        default_value_t = 10_000
    )]
    pub max_connections: usize,

    /// Router: threads serving clients, each with its own connections to the apps (0: one
    /// per core).
    #[arg(
        id = "router_workers",
        value_name = "N",
        long = "router-workers",
        env = "PAAS_ROUTER_WORKERS",
        default_value_t = 0
    )]
    pub workers: usize,
}

impl Default for RouterSettings {
    fn default() -> RouterSettings {
        RouterSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            https_listen: None,
            connect_timeout: 5,
            response_timeout: 30,
            idle_timeout: 55,
            max_body_mb: 100,
            trusted_proxies: paas_router::TrustedProxies::default(),
            max_connections: 10_000,
            workers: 0,
        }
    }
}

impl RouterSettings {
    pub fn router_config(&self) -> paas_router::RouterConfig {
        paas_router::RouterConfig {
            connect_timeout: Duration::from_secs(self.connect_timeout),
            first_byte_timeout: Duration::from_secs(self.response_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_body_bytes: self.max_body_mb.saturating_mul(1024 * 1024),
            trusted_proxies: self.trusted_proxies.clone(),
            max_connections: self.max_connections,
            workers: self.workers,
        }
    }
}

impl ServerConfig {
    /// Defaults for a server in `data_dir`, as `paas server` would start with no flags.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            data_dir: data_dir.into(),
            database_url: None,
            domain: "localhost".into(),
            docker_network: DEFAULT_NETWORK.into(),
            scheduler: paas_runner::Scheduler::Docker,
            registry: None,
            keep_releases: 5,
            router: RouterSettings::default(),
            https: TlsSettings::default(),
            router_mode: "in-process".into(),
            router_table: None,
            build: BuildSettings {
                base_images: "auto".into(),
                build_ca_file: None,
                build_ca_inject: false,
                python_allow_newer: false,
                build_timeout: "15m".into(),
            },
            git: GitSettings::default(),
            trusted_proxies: paas_router::TrustedProxies::default(),
            init_token_file: None,
            backup_dir: None,
        }
    }

    /// Makes every path setting absolute, against the working directory at start. The server
    /// runs git and Docker in other directories, where a relative `./data` would name
    /// somewhere else (a push once created `data/repos/data/repos/APP.git`).
    pub fn with_absolute_paths(mut self) -> std::io::Result<ServerConfig> {
        self.data_dir = std::path::absolute(&self.data_dir)?;
        for path in [
            self.build.build_ca_file.as_mut(),
            self.init_token_file.as_mut(),
            self.git.hook_bin.as_mut(),
            self.backup_dir.as_mut(),
            self.router_table.as_mut(),
            self.https.acme_ca_file.as_mut(),
            self.https.tls_cert.as_mut(),
            self.https.tls_key.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            *path = std::path::absolute(&*path)?;
        }
        Ok(self)
    }

    /// The table file of an external router, when the router runs on its own.
    pub fn external_router_table(&self) -> Option<&std::path::Path> {
        (self.router_mode == "external").then_some(self.router_table.as_deref()).flatten()
    }

    /// Where add-on backups go: `--backup-dir`, else `DATA_DIR/backups`.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir.clone().unwrap_or_else(|| self.data_dir.join("backups"))
    }

    /// `DATABASE_URL` when set, else the SQLite file under the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!("sqlite://{}?mode=rwc", self.data_dir.join("paas.db").display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        build: BuildSettings,
    }

    #[test]
    fn base_images_default_to_auto() {
        assert_eq!(ServerConfig::new("data").build.base_images, "auto");
        // The flag's own default, whatever PAAS_BASE_IMAGES says where the test runs.
        let command = Flags::command();
        let flag = command.get_arguments().find(|a| a.get_id() == "base_images");
        let defaults = flag.map(|a| a.get_default_values().to_vec()).unwrap_or_default();
        assert_eq!(defaults, ["auto"]);

        for value in ["auto", "official", "local"] {
            let flags = Flags::try_parse_from(["paas", "--base-images", value]);
            assert_eq!(flags.map(|f| f.build.base_images).ok().as_deref(), Some(value));
        }
        assert!(Flags::try_parse_from(["paas", "--base-images", "dockerhub"]).is_err());
        let config = ServerConfig::new("data").build.builder_config();
        let source = config.map(|c| c.base_images.source).ok();
        assert_eq!(source, Some(paas_builder::ImageSource::Auto));
    }

    #[test]
    fn relative_paths_are_made_absolute_against_the_working_directory() {
        let mut config = ServerConfig::new("./data");
        config.build.build_ca_file = Some("certs/ca.pem".into());
        config.init_token_file = Some("token".into());
        let config = config.with_absolute_paths().expect("a working directory");
        let cwd = std::env::current_dir().expect("a working directory");
        assert!(config.data_dir.is_absolute() && config.data_dir.starts_with(&cwd));
        assert_eq!(config.build.build_ca_file, Some(cwd.join("certs/ca.pem")));
        assert_eq!(config.init_token_file, Some(cwd.join("token")));
        assert!(config.database_url().contains(&cwd.join("data").display().to_string()));
    }
}
