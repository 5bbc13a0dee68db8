//! `paas server backup DIR`: paas's own state, taken while it runs. The database (SQLite by
//! `VACUUM INTO`, PostgreSQL by `pg_dump`) and a mirror of every app's git repository go into
//! DIR, with `paas-backup.json` saying what is there. Add-on data has backups of its own
//! (`paas pg:backups`), and volumes are Docker's; docs/operations.md has the restore steps.

use std::path::{Path, PathBuf};

use paas_store::{Backend, Store};
use serde::Serialize;

use crate::ServerConfig;

/// What a backup holds, written as `paas-backup.json` beside it.
#[derive(Debug, Serialize)]
pub struct BackupSummary {
    pub created_at: String,
    /// `sqlite` (in `paas.db`) or `postgres` (in `paas.pgdump`, pg_restore's custom format).
    pub database: &'static str,
    pub schema_version: i64,
    /// The apps' repositories, mirrored under `repos/`.
    pub repositories: Vec<String>,
}

fn fail(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(what.to_string())
}

/// Backs up the state of the server `config` describes into `dir`, which must be new or
/// empty (a backup never mixes with another).
pub async fn backup(config: &ServerConfig, dir: &Path) -> std::io::Result<BackupSummary> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(fail(format!("{} is not empty: back up into a new folder", dir.display())));
    }
    let url = config.database_url();
    let store = Store::connect_as_is(&url).await.map_err(fail)?;
    // It holds config vars and webhook secrets: for its owner's eyes only.
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let schema_version = store.schema_version().await.map_err(fail)?;
    let database = match store.backend() {
        Backend::Sqlite => {
            store.backup_sqlite_into(&dir.join("paas.db")).await.map_err(fail)?;
            "sqlite"
        }
        Backend::Postgres => {
            pg_dump(&url, &dir.join("paas.pgdump")).await?;
            "postgres"
        }
    };
    store.close().await;

    let mut repositories = Vec::new();
    let repos = config.data_dir.join("repos");
    if repos.is_dir() {
        let mut names: Vec<PathBuf> =
            std::fs::read_dir(&repos)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        std::fs::create_dir_all(dir.join("repos"))?;
        for source in names.into_iter().filter(|p| p.join("HEAD").exists()) {
            let name = source.file_name().unwrap_or_default().to_owned();
            mirror(&source, &dir.join("repos").join(&name)).await?;
            repositories.push(name.to_string_lossy().trim_end_matches(".git").to_string());
        }
    }
    let summary =
        BackupSummary { created_at: paas_store::now(), database, schema_version, repositories };
    let json = serde_json::to_vec_pretty(&summary).map_err(fail)?;
    std::fs::write(dir.join("paas-backup.json"), json)?;
    Ok(summary)
}

/// A copy of a repository's refs and objects, sharing no file with it.
async fn mirror(source: &Path, target: &Path) -> std::io::Result<()> {
    let output = tokio::process::Command::new("git")
        .args(["clone", "--quiet", "--mirror", "--no-hardlinks"])
        .arg(source)
        .arg(target)
        .output()
        .await?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(fail(format!("cannot copy {}: {}", source.display(), why.trim())));
    }
    Ok(())
}

/// `pg_dump` of the database at `url`, its password passed in the environment rather than on
/// a command line others can read.
async fn pg_dump(url: &str, file: &Path) -> std::io::Result<()> {
    let (url, password) = split_password(url);
    let mut command = tokio::process::Command::new("pg_dump");
    command.args(["--format=custom", "--no-owner", "--file"]).arg(file).arg("--dbname").arg(&url);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().await.map_err(|e| fail(format!("cannot run pg_dump: {e}")))?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(fail(format!("pg_dump failed: {}", why.trim())));
    }
    Ok(())
}

/// `postgres://user:secret@host/db` → (`postgres://user@host/db`, `secret`), the password
/// percent-decoded as the URL encodes it (the last `@` ends the credentials).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_string(), None) };
    let Some((credentials, host)) = rest.rsplit_once('@') else { return (url.to_string(), None) };
    match credentials.split_once(':') {
        Some((user, password)) => {
            (format!("{scheme}://{user}@{host}"), Some(percent_decode(password)))
        }
        None => (url.to_string(), None),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_leave_the_url() {
        let (url, password) = super::split_password("postgres://paas:s3cret@db:5432/paas");
        assert_eq!(url, "postgres://paas@db:5432/paas");
        assert_eq!(password.as_deref(), Some("s3cret"));
        assert_eq!(super::split_password("sqlite:///x").1, None);
        let (url, password) = super::split_password("postgres://paas:p%40ss@db/paas");
        assert_eq!((url.as_str(), password.as_deref()), ("postgres://paas@db/paas", Some("p@ss")));
    }
}
