//! `paas login`, `logout`, `whoami`, `passwd`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use paas_server::wire::{AcceptInvitation, Account, ChangePassword, CreatedToken, LogIn};
use reqwest::Method;

use crate::client::Client;
use crate::credentials::{self, Credentials};

/// How `paas login` proves who it is.
pub(crate) struct LoginArgs {
    pub url: String,
    /// An API token (the one the server printed on its first start, or one from
    /// `paas tokens:create`).
    pub token: Option<String>,
    pub email: Option<String>,
    /// An invitation from `paas users:add`: sets the password first.
    pub invitation: Option<String>,
    pub password_stdin: bool,
}

pub(crate) async fn login(args: LoginArgs) -> Result<()> {
    let url = args.url.trim_end_matches('/').to_string();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("{url:?} is not a server URL: use http://HOST:PORT or https://HOST");
    }
    let token = match (&args.token, &args.invitation) {
        (Some(token), _) => token.trim().to_string(),
        (None, Some(invitation)) => {
            accept_invitation(&url, invitation, args.password_stdin).await?
        }
        (None, None) => log_in(&url, args.email, args.password_stdin).await?,
    };
    let credentials = Credentials { url, token };
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

/// A client for a server not logged in to yet: the sign-in routes need no token.
fn anonymous(url: &str) -> Result<Client> {
    Client::new(&Credentials { url: url.to_string(), token: String::new() })
}

/// Email and password for a personal token named after this machine.
async fn log_in(url: &str, email: Option<String>, password_stdin: bool) -> Result<String> {
    let email = match email {
        Some(email) => email,
        None => prompt("Email", false)?,
    };
    let password = if password_stdin { read_stdin_line()? } else { prompt("Password", true)? };
    let body = LogIn { email, password, description: machine_description() };
    let created: CreatedToken = anonymous(url)?.post("/login", &body).await?;
    Ok(created.token)
}

/// Sets the password an invitation asks for, and signs in with it.
async fn accept_invitation(url: &str, invitation: &str, password_stdin: bool) -> Result<String> {
    let password = if password_stdin { read_stdin_line()? } else { new_password()? };
    let body = AcceptInvitation {
        invitation: invitation.trim().to_string(),
        password,
        description: machine_description(),
    };
    let created: CreatedToken = anonymous(url)?.post("/invitations/accept", &body).await?;
    Ok(created.token)
}

/// "paas CLI on HOSTNAME": how `paas tokens` tells this machine's token from others.
fn machine_description() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "an unnamed machine".to_string());
    format!("paas CLI on {host}")
}

/// Asks for a line on the terminal (without echo for secrets); reads a plain line when
/// stdin is not a terminal.
pub(crate) fn prompt(label: &str, secret: bool) -> Result<String> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    if interactive {
        eprint!("{label}: ");
        std::io::stderr().flush()?;
        if secret {
            set_echo(false);
        }
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if interactive && secret {
        set_echo(true);
        eprintln!();
    }
    read?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    if line.trim().is_empty() {
        bail!("no {} given", label.to_lowercase());
    }
    Ok(line)
}

/// A new password, typed twice on a terminal.
pub(crate) fn new_password() -> Result<String> {
    let password = prompt("New password (at least 8 characters)", true)?;
    if std::io::stdin().is_terminal() && prompt("Again", true)? != password {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(password)
}

/// The first line of standard input, for `--password-stdin` (`echo "$PW" | paas …`).
pub(crate) fn read_stdin_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    if line.is_empty() {
        bail!("no password on standard input");
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
    let role = if account.admin { " (admin)" } else { "" };
    println!("{}{role} on {}", account.email, client.base_url());
    Ok(())
}

/// `paas passwd`: the current password (when one is set), then the new one; with
/// `--password-stdin`, each on a line of its own.
pub(crate) async fn passwd(password_stdin: bool) -> Result<()> {
    let client = super::client()?;
    let account: Account = client.get("/account").await?;
    let (current_password, password) = if password_stdin {
        let current = account.password_set.then(read_stdin_line).transpose()?;
        (current, read_stdin_line()?)
    } else {
        let current = account.password_set.then(|| prompt("Current password", true)).transpose()?;
        (current, new_password()?)
    };
    let body = ChangePassword { current_password, password };
    super::progress(
        &format!("Setting the password of {}", account.email),
        client.call(Method::PUT, "/account/password", &body),
        super::nothing,
    )
    .await
}
