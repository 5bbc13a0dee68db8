//! `paas server` settings: flags, each also read from a `PAAS_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

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

    /// On the very first start, write the admin's API token to this file (mode 0600)
    /// instead of printing it.
    #[arg(long, env = "PAAS_INIT_TOKEN_FILE")]
    pub init_token_file: Option<PathBuf>,
}

impl ServerConfig {
    /// Defaults for a server in `data_dir`, as `paas server` would start with no flags.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            data_dir: data_dir.into(),
            database_url: None,
            init_token_file: None,
        }
    }

    /// `DATABASE_URL` when set, else the SQLite file under the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("paas.db").display()
            ),
        }
    }
}
