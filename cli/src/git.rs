//! The `paas` git remote: how the CLI finds the app of the checkout it runs in, and how
//! `apps:create` wires a checkout to its new app.

use std::process::Command;

/// URL of `remote` in the current repository, if there is such a remote.
pub(crate) fn remote_url(remote: &str) -> Option<String> {
    let output = Command::new("git").args(["remote", "get-url", remote]).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// `https://paas.example.com/shop.git` → `shop`.
pub(crate) fn app_from_remote_url(url: &str) -> Option<String> {
    let last = url.trim_end_matches('/').rsplit('/').next()?;
    let name = last.strip_suffix(".git").unwrap_or(last);
    (!name.is_empty()).then(|| name.to_string())
}

pub(crate) fn in_repository() -> bool {
    Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Points `remote` at `url`, adding it or replacing what it pointed at.
pub(crate) fn set_remote(remote: &str, url: &str) -> std::io::Result<bool> {
    let verb = if remote_url(remote).is_some() { "set-url" } else { "add" };
    Ok(Command::new("git").args(["remote", verb, remote, url]).status()?.success())
}

pub(crate) fn remove_remote(remote: &str) -> bool {
    Command::new("git")
        .args(["remote", "remove", remote])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_from_remote_urls() {
        assert_eq!(app_from_remote_url("http://127.0.0.1:7000/shop.git").as_deref(), Some("shop"));
        assert_eq!(app_from_remote_url("https://paas.example.com/shop").as_deref(), Some("shop"));
        assert_eq!(app_from_remote_url("https://h/x/blog.git/").as_deref(), Some("blog"));
        assert_eq!(app_from_remote_url(""), None);
    }
}
