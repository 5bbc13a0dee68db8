//! `paas server`: runs the platform in the foreground until SIGINT/SIGTERM.
//!
//! Settings come from flags, then `PAAS_*` environment variables, then a TOML file
//! (`--config`, else `/etc/paas/paas.toml` if it exists), then the defaults. The file's keys
//! are the flags' names with `_` for `-`: `router_listen = "0.0.0.0:80"`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};
use paas_server::ServerConfig;

#[derive(clap::Args)]
pub(crate) struct ServerArgs {
    #[command(flatten)]
    config: ServerConfig,
    /// Log format: `human` for a terminal, `json` for log collectors.
    #[arg(long, env = "PAAS_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
    /// A TOML file of settings, under the flags and PAAS_* variables (default:
    /// /etc/paas/paas.toml if it exists). Keys are the flags' names with `_` for `-`.
    #[arg(long = "config", env = "PAAS_CONFIG", value_name = "FILE")]
    config_file: Option<PathBuf>,
    /// Print the settings paas would run with, where each came from, secrets redacted; then
    /// exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    action: Option<ServerAction>,
}

#[derive(clap::Subcommand)]
enum ServerAction {
    /// Back up paas's own state into DIR while it runs: the database (SQLite copied with
    /// VACUUM INTO, PostgreSQL with pg_dump) and every app's git repository, with
    /// paas-backup.json saying what is there. Restoring: docs/operations.md.
    Backup {
        /// A new or empty folder.
        dir: PathBuf,
    },
}

/// The file read when neither `--config` nor `PAAS_CONFIG` names one.
const DEFAULT_CONFIG_FILE: &str = "/etc/paas/paas.toml";

/// Settings never read from the file: they choose the file, or are not settings.
const NOT_IN_FILE: [&str; 3] = ["config_file", "print_config", "help"];

/// `args` with the config file's settings added as flags, for those that neither a flag nor
/// an environment variable set; and which settings the file gave. `server` is how `args`
/// parsed so far, `command` the `server` subcommand.
pub(crate) fn with_config_file(
    args: Vec<OsString>,
    command: &Command,
    server: &ArgMatches,
) -> Result<(Vec<OsString>, BTreeSet<String>)> {
    let named = server.get_one::<PathBuf>("config_file").cloned();
    let path = match named {
        Some(path) => path,
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => PathBuf::from(DEFAULT_CONFIG_FILE),
        None => return Ok((args, BTreeSet::new())),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let table: toml::Table =
        text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
    let mut flags = Vec::new();
    let mut from_file = BTreeSet::new();
    for (key, value) in &table {
        let arg = command
            .get_arguments()
            .find(|a| a.get_id().as_str() == key && !NOT_IN_FILE.contains(&key.as_str()));
        let Some(long) = arg.and_then(|a| a.get_long()) else {
            bail!(
                "{}: unknown setting {key:?}; `paas server --help` lists them (write                  router_listen for --router-listen)",
                path.display()
            );
        };
        let value = match value {
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_string))
                    .collect();
                items.join(",")
            }
            other => bail!("{}: {key} cannot be {}", path.display(), other.type_str()),
        };
        if matches!(server.value_source(key), Some(ValueSource::DefaultValue) | None) {
            flags.push(OsString::from(format!("--{long}={value}")));
            from_file.insert(key.clone());
        }
    }
    // Right after `server`, before the user's own flags.
    let mut merged = args;
    let at = merged.len().min(2);
    merged.splice(at..at, flags);
    Ok((merged, from_file))
}

/// The merged settings, one `key = "value"` line each, with where it came from.
pub(crate) fn print_config(command: &Command, server: &ArgMatches, from_file: &BTreeSet<String>) {
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if NOT_IN_FILE.contains(&id) || arg.is_hide_set() || arg.get_long().is_none() {
            continue;
        }
        let value = server
            .get_raw(id)
            .map(|values| {
                values.map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(",")
            })
            .unwrap_or_default();
        let value = match id {
            "database_url" => paas_store::redact_url(&value),
            _ => value,
        };
        let source = match (from_file.contains(id), server.value_source(id)) {
            (true, _) => "config file".to_string(),
            (_, Some(ValueSource::EnvVariable)) => {
                format!("${}", arg.get_env().map(|e| e.to_string_lossy()).unwrap_or_default())
            }
            (_, Some(ValueSource::CommandLine)) => "flag".to_string(),
            _ => "default".to_string(),
        };
        println!("{id} = {}  # {source}", toml::Value::String(value));
    }
}

pub(crate) async fn run(args: ServerArgs) -> Result<()> {
    let _logs = crate::logging::init(&args.log_format);
    if let Some(ServerAction::Backup { dir }) = &args.action {
        let config = args.config.clone().with_absolute_paths()?;
        let summary = paas_server::backup::backup(&config, dir)
            .await
            .with_context(|| format!("backing up into {}", dir.display()))?;
        println!(
            "Backed up paas into {}: the {} database (schema version {}) and {} git \
             repositor{}. Add-on data is backed up with `paas pg:backups:capture`.",
            dir.display(),
            summary.database,
            summary.schema_version,
            summary.repositories.len(),
            if summary.repositories.len() == 1 { "y" } else { "ies" }
        );
        return Ok(());
    }
    let server = paas_server::start_with(args.config.clone(), &[paas_web_ui::router]).await?;
    if let Some(token) = &server.initial_token {
        let host = match server.addr.ip().is_unspecified() {
            true => format!("127.0.0.1:{}", server.addr.port()),
            false => server.addr.to_string(),
        };
        // Straight to stdout, never through the logger: log files must not hold secrets.
        println!(
            "\nCreated the admin user. Its API token is shown this once (only a hash is kept):\n\n    \
             {token}\n\nLog in from another shell with:\n\n    paas login http://{host} --token {token}\n\n\
             Then `paas passwd` sets a password for signing in (here, and to the dashboard at \
             http://{host}/), and `paas users:add EMAIL` invites your team.\n"
        );
    }
    server.run_until(shutdown_signal()).await.context("server stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
