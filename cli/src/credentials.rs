//! Where `paas login` keeps the server URL and token: `$PAAS_CONFIG_DIR/credentials.toml`,
//! else `$XDG_CONFIG_HOME/paas/`, else `~/.config/paas/`, readable by its owner only.
//! `PAAS_URL` and `PAAS_TOKEN` in the environment win over the file, for scripts and CI.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Credentials {
    pub url: String,
    pub token: String,
}

pub(crate) fn config_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PAAS_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("paas"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("paas")),
        None => bail!("cannot find a config directory: set HOME or PAAS_CONFIG_DIR"),
    }
}

fn path() -> Result<PathBuf> {
    Ok(config_dir()?.join("credentials.toml"))
}

/// The stored login, with `PAAS_URL` / `PAAS_TOKEN` taking precedence.
pub(crate) fn load() -> Result<Credentials> {
    let env = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (env_url, env_token) = (env("PAAS_URL"), env("PAAS_TOKEN"));
    if let (Some(url), Some(token)) = (&env_url, &env_token) {
        return Ok(Credentials { url: url.clone(), token: token.clone() });
    }
    let path = path()?;
    let stored: Option<Credentials> = match std::fs::read_to_string(&path) {
        Ok(text) => {
            Some(toml::from_str(&text).with_context(|| format!("cannot read {}", path.display()))?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match (env_url, env_token, stored) {
        (url, token, Some(stored)) => {
            Ok(Credentials { url: url.unwrap_or(stored.url), token: token.unwrap_or(stored.token) })
        }
        (Some(url), None, None) => {
            bail!("no token for {url}: run `paas login {url}` or set PAAS_TOKEN")
        }
        _ => bail!("not logged in: run `paas login URL` (or set PAAS_URL and PAAS_TOKEN)"),
    }
}

pub(crate) fn save(credentials: &Credentials) -> Result<PathBuf> {
    let path = path()?;
    let dir = path.parent().unwrap_or(&path);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = toml::to_string(credentials)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file =
        options.open(&path).with_context(|| format!("cannot write {}", path.display()))?;
    // The mode above only applies to new files; tighten an existing one too.
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    Ok(path)
}

pub(crate) fn remove() -> Result<bool> {
    match std::fs::remove_file(path()?) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}
