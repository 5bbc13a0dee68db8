//! `paas server`: runs the platform in the foreground until SIGINT/SIGTERM.

use anyhow::{Context, Result};
use paas_server::ServerConfig;

#[derive(clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    config: ServerConfig,
    /// Log format: `human` for a terminal, `json` for log collectors.
    #[arg(long, env = "PAAS_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
}

pub async fn run(args: ServerArgs) -> Result<()> {
    init_tracing(&args.log_format);
    let server = paas_server::start(args.config.clone()).await?;
    if let Some(token) = &server.initial_token {
        let host = match server.addr.ip().is_unspecified() {
            true => format!("127.0.0.1:{}", server.addr.port()),
            false => server.addr.to_string(),
        };
        // Straight to stdout, never through the logger: log files must not hold secrets.
        println!(
            "\nCreated the admin user. Its API token is shown this once (only a hash is kept):\n\n    \
             {token}\n\nLog in from another shell with:\n\n    paas login http://{host} --token {token}\n"
        );
    }
    server.run_until(shutdown_signal()).await.context("server stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

pub(crate) fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PAAS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        "json" => builder.json().try_init(),
        _ => builder.try_init(),
    };
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
