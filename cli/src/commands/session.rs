//! `paas login`, `logout`, `whoami`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Result, bail};
use paas_server::wire::Account;

use crate::client::Client;
use crate::credentials::{self, Credentials};

pub(crate) async fn login(url: &str, token: Option<String>) -> Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("{url:?} is not a server URL: use http://HOST:PORT or https://HOST");
    }
    let token = match token {
        Some(token) => token,
        None => prompt_token()?,
    };
    let credentials =
        Credentials { url: url.trim_end_matches('/').to_string(), token: token.trim().to_string() };
    let account: Account = Client::new(&credentials)?.get("/account").await?;
    let path = credentials::save(&credentials)?;
    println!("Logged in to {} as {}", credentials.url, account.email);
    eprintln!("Saved to {}", path.display());
    if super::push::install_credential_helper(&credentials.url) {
        eprintln!("git now sends this token when you push to {}", credentials.url);
    } else {
        eprintln!(
            "warning: could not set up git's credential helper; git will ask for a password \
             (paste the token)"
        );
    }
    Ok(())
}

/// Reads the token from stdin, without echo on a terminal.
fn prompt_token() -> Result<String> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    if interactive {
        eprint!("API token (printed by `paas server` on its first start): ");
        std::io::stderr().flush()?;
        set_echo(false);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if interactive {
        set_echo(true);
        eprintln!();
    }
    read?;
    if line.trim().is_empty() {
        bail!("no token given: pass --token TOKEN or type it at the prompt");
    }
    Ok(line)
}

fn set_echo(on: bool) {
    let _ = std::process::Command::new("stty").arg(if on { "echo" } else { "-echo" }).status();
}

pub(crate) fn logout() -> Result<()> {
    if let Ok(saved) = credentials::load() {
        super::push::remove_credential_helper(&saved.url);
    }
    if credentials::remove()? {
        println!("Logged out");
    } else {
        println!("Not logged in");
    }
    Ok(())
}

pub(crate) async fn whoami() -> Result<()> {
    let client = super::client()?;
    let account: Account = client.get("/account").await?;
    println!("{} on {}", account.email, client.base_url());
    Ok(())
}
