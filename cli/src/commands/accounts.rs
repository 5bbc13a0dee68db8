//! Users, tokens, who may touch an app, and the audit log: `paas users`, `tokens`,
//! `access`, `audit`.

use anyhow::{Result, bail};
use paas_server::wire::{
    AddMember, AddUser, AddedUser, AuditEventView, CreatedToken, MemberView, NewToken, TokenView,
    UserView,
};

use super::session::read_stdin_line;
use super::{app_name, checked, client, nothing, progress, table};
use crate::AppArg;
use crate::client::{encode, path};

pub(crate) async fn users() -> Result<()> {
    let users: Vec<UserView> = client()?.get("/users").await?;
    let mut rows = vec![vec!["EMAIL".into(), "ROLE".into(), "SIGN-IN".into(), "SINCE".into()]];
    for user in users {
        let role = if user.admin { "admin" } else { "user" };
        let sign_in = match (&user.locked_until, user.password_set, &user.invitation_expires_at) {
            (Some(until), _, _) => format!("locked until {until}"),
            (None, true, _) => "password".to_string(),
            (None, false, Some(until)) => format!("invited (until {until})"),
            (None, false, None) => "token only".to_string(),
        };
        rows.push(vec![user.email, role.into(), sign_in, user.created_at]);
    }
    print!("{}", table(&rows));
    Ok(())
}

pub(crate) async fn add_user(email: &str, admin: bool, password_stdin: bool) -> Result<()> {
    let password = password_stdin.then(read_stdin_line).transpose()?;
    let with_password = password.is_some();
    let body = AddUser { email: email.to_string(), admin, password };
    let client = client()?;
    let added: AddedUser =
        progress(&format!("Adding {email}"), client.post("/users", &body), nothing).await?;
    match added.invitation {
        Some(invitation) => {
            println!("Invitation for {} (shown once, good for 7 days):", added.email);
            println!("  {invitation}");
            eprintln!(
                "They set their password and log in with:\n  paas login {} --invitation {invitation}",
                client.base_url()
            );
        }
        None if with_password => {
            eprintln!("They log in with: paas login {} --email {}", client.base_url(), added.email);
        }
        None => {}
    }
    Ok(())
}

pub(crate) async fn remove_user(email: &str) -> Result<()> {
    let client = client()?;
    let path = format!("/users/{}", encode(email));
    progress(&format!("Removing {email}"), client.delete(&path), nothing).await
}

pub(crate) async fn tokens(all: bool) -> Result<()> {
    let tokens: Vec<TokenView> =
        client()?.get(if all { "/tokens?all=true" } else { "/tokens" }).await?;
    let mut header = vec!["ID".into(), "DESCRIPTION".into()];
    if all {
        header.push("USER".into());
    }
    header.extend(["CREATED".into(), "LAST USED".into(), "EXPIRES".into()]);
    let mut rows = vec![header];
    for token in tokens {
        let mut row = vec![token.id.to_string(), token.description];
        if all {
            row.push(token.email);
        }
        row.push(token.created_at);
        row.push(token.last_used_at.unwrap_or_else(|| "never".into()));
        row.push(token.expires_at.unwrap_or_else(|| "never".into()));
        rows.push(row);
    }
    print!("{}", table(&rows));
    Ok(())
}

pub(crate) async fn create_token(description: &str, expires: Option<&str>) -> Result<()> {
    let expires_in_secs = expires.map(parse_duration).transpose()?;
    let body = NewToken { description: description.to_string(), expires_in_secs };
    let created: CreatedToken = client()?.post("/tokens", &body).await?;
    eprintln!(
        "Token {} ({}), expires {}; shown once, keep it safe:",
        created.info.id,
        created.info.description,
        created.info.expires_at.as_deref().unwrap_or("never")
    );
    println!("{}", created.token);
    Ok(())
}

pub(crate) async fn revoke_token(id: i64) -> Result<()> {
    let client = client()?;
    progress(&format!("Revoking token {id}"), client.delete(&format!("/tokens/{id}")), nothing)
        .await
}

/// `90d`, `12h`, `2w`, `30m` or `1y` in seconds.
fn parse_duration(text: &str) -> Result<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_secs = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => bail!("{text:?} is not a duration: use a number and m, h, d, w or y, like 90d"),
    };
    match number.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n.saturating_mul(unit_secs)),
        _ => bail!("{text:?} is not a duration: use a number and m, h, d, w or y, like 90d"),
    }
}

pub(crate) async fn access(app: &AppArg) -> Result<()> {
    let app = app_name(app)?;
    let members: Vec<MemberView> = client()?.get(&path(&["apps", &app, "access"])?).await?;
    let mut rows = vec![vec!["EMAIL".into(), "ROLE".into(), "SINCE".into()]];
    rows.extend(members.into_iter().map(|m| vec![m.email, m.role, m.created_at]));
    print!("{}", table(&rows));
    eprintln!("(admins can also see and change {app})");
    Ok(())
}

pub(crate) async fn add_access(app: &AppArg, email: &str) -> Result<()> {
    let app = app_name(app)?;
    let client = client()?;
    let body = AddMember { email: email.to_string() };
    let url = path(&["apps", &app, "access"])?;
    let added = client.call(reqwest::Method::POST, &url, &body);
    progress(&format!("Giving {email} access to {app}"), added, nothing).await
}

pub(crate) async fn remove_access(app: &AppArg, email: &str) -> Result<()> {
    let app = app_name(app)?;
    let client = client()?;
    let url = path(&["apps", &app, "access", email])?;
    let removed = client.delete(&url);
    progress(&format!("Taking {email}'s access to {app}"), removed, nothing).await
}

/// The newest `num` changes; only `app`'s when given (not inferred from a git remote: with
/// no app, an admin sees everything).
pub(crate) async fn audit(app: Option<&str>, num: usize, json: bool) -> Result<()> {
    let mut query = format!("/audit?limit={num}");
    if let Some(app) = app {
        query.push_str(&format!("&app={}", encode(&checked(app)?)));
    }
    let events: Vec<AuditEventView> = client()?.get(&query).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    let mut rows =
        vec![["WHEN", "WHO", "FROM", "VIA", "APP", "ACTION", "WHAT"].map(String::from).to_vec()];
    for event in events {
        rows.push(vec![
            event.created_at,
            event.actor,
            event.address.unwrap_or_else(|| "-".into()),
            event.via,
            event.app.unwrap_or_else(|| "-".into()),
            event.action,
            event.detail,
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_heroku_expiries() {
        assert_eq!(parse_duration("90d").unwrap(), 90 * 86_400);
        assert_eq!(parse_duration("12h").unwrap(), 12 * 3600);
        assert_eq!(parse_duration("2w").unwrap(), 14 * 86_400);
        for bad in ["", "d", "90", "-5d", "0d", "5x", "1.5d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
