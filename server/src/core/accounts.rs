//! Users, their passwords and API tokens: who may sign in, and what a token stands for.
//! Only admins manage users; everyone manages their own password and tokens.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use paas_store::{ApiToken, NewUser, User, UserRecord, now, time_in};

use super::Paas;
use super::audit::{Actor, FrontEnd};
use super::auth;
use super::error::{Error, Result};
use super::validate;

/// Failed sign-ins in a row that lock an account, and for how long.
pub const LOCK_AFTER_FAILURES: i64 = 10;
pub const LOCK_SECS: i64 = 15 * 60;
/// Failed sign-ins one address may make in [`ADDRESS_WINDOW`] before it must wait.
pub const ADDRESS_FAILURES: u32 = 30;
const ADDRESS_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long an invitation stays good.
pub const INVITATION_SECS: i64 = 7 * 24 * 60 * 60;
/// The longest a token may be made to last (ten years); without an expiry it lasts until
/// revoked.
pub const MAX_TOKEN_SECS: i64 = 10 * 365 * 24 * 60 * 60;
/// `last_used_at` is written at most this often per token, not on every request.
const TOKEN_TOUCH_SECS: i64 = 60;

/// Failed sign-ins per address, kept in memory: a restart forgets them, the per-account
/// lockout (in the store) it does not.
#[derive(Default)]
pub(crate) struct SignInLimits {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl SignInLimits {
    fn check(&self, address: Option<IpAddr>) -> Result<()> {
        let Some(address) = address else { return Ok(()) };
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&address) {
            Some((count, since)) if *count >= ADDRESS_FAILURES => {
                let left = ADDRESS_WINDOW.saturating_sub(since.elapsed());
                if left.is_zero() {
                    return Ok(());
                }
                Err(Error::TooManyAttempts {
                    message: format!(
                        "too many failed sign-ins from {address}; try again in {}",
                        minutes(left.as_secs())
                    ),
                    retry_after_secs: left.as_secs().max(1),
                })
            }
            _ => Ok(()),
        }
    }

    fn failed(&self, address: Option<IpAddr>) {
        let Some(address) = address else { return };
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > 10_000 {
            failures.retain(|_, (_, since)| since.elapsed() < ADDRESS_WINDOW);
        }
        let entry = failures.entry(address).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= ADDRESS_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// "3 minutes", rounded up: how long to wait.
fn minutes(secs: u64) -> String {
    match secs.div_ceil(60) {
        1 => "1 minute".to_string(),
        n => format!("{n} minutes"),
    }
}

fn admin_only(actor: &Actor, what: &str) -> Result<()> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("only an admin can {what}")))
    }
}

/// A token's description: what it is for, shown in `paas tokens`.
fn description(text: &str) -> Result<String> {
    let text = text.trim();
    if text.is_empty() || text.len() > 200 || text.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_description",
            "a token's description must be 1 to 200 characters, with no control characters",
        ));
    }
    Ok(text.to_string())
}

impl Paas {
    /// The user a token stands for, or `None` for an unknown token. An expired token is
    /// refused with when it expired.
    pub async fn authenticate(&self, token: &str) -> Result<Option<User>> {
        if token.is_empty() {
            return Ok(None);
        }
        let Some((user, token)) = self.store().user_by_token_hash(&auth::hash_token(token)).await?
        else {
            return Ok(None);
        };
        let now = now();
        if let Some(expired) = token.expires_at.as_deref().filter(|at| *at <= now.as_str()) {
            return Err(Error::Unauthorized(format!(
                "this API token expired at {expired}; log in again or make a new one"
            )));
        }
        let stale = time_in(-TOKEN_TOUCH_SECS);
        if token.last_used_at.as_deref().is_none_or(|at| at < stale.as_str())
            && let Err(err) = self.store().touch_token(token.id, &now).await
        {
            tracing::warn!(error = %err, "could not note when a token was used");
        }
        Ok(Some(user))
    }

    /// Checks an email and password, counting failures per account (locking it at
    /// [`LOCK_AFTER_FAILURES`]) and per address. The way in for `paas login` and the
    /// dashboard; the answer does not say whether the email exists.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<User> {
        self.sign_in_limits.check(address)?;
        let email = email.trim().to_ascii_lowercase();
        let record = self.store().user_record(&email).await?;
        if let Some(until) = record.as_ref().and_then(|r| r.locked_until.clone()) {
            locked(&until)?;
        }
        let hash = record.as_ref().and_then(|r| r.password_hash.as_deref());
        if auth::verify_password(password, hash).await
            && let Some(record) = record
        {
            if record.failed_logins > 0 || record.locked_until.is_some() {
                self.store().clear_failed_logins(&record.user).await?;
            }
            return Ok(record.user);
        }
        self.sign_in_limits.failed(address);
        if let Some(record) = record {
            self.count_failed_sign_in(&Actor::new(record.user, address, FrontEnd::Api)).await?;
        }
        Err(Error::Unauthorized("wrong email or password".into()))
    }

    /// Counts a wrong password against the account; the one that reaches the limit locks it
    /// (and is answered as locked).
    async fn count_failed_sign_in(&self, actor: &Actor) -> Result<()> {
        let until = time_in(LOCK_SECS);
        let store = self.store();
        if let Some(until) =
            store.record_failed_login(&actor.user, LOCK_AFTER_FAILURES, &until).await?
        {
            let detail = format!("locked after {LOCK_AFTER_FAILURES} failed sign-ins");
            self.audit(actor, None, "user.lock", detail).await;
            locked(&until)?;
        }
        Ok(())
    }

    /// Signs in and issues a personal token named `description` (`paas login`).
    pub async fn log_in(
        &self,
        email: &str,
        password: &str,
        address: Option<IpAddr>,
        description: &str,
    ) -> Result<(ApiToken, String)> {
        self::description(description)?;
        let user = self.sign_in(email, password, address).await?;
        self.create_token(&Actor::new(user, address, FrontEnd::Api), description, None).await
    }

    /// Sets the password of the user invited with `invitation` (once, before it lapses) and
    /// issues their first personal token, named `description`.
    pub async fn accept_invitation(
        &self,
        invitation: &str,
        password: &str,
        address: Option<IpAddr>,
        description: &str,
    ) -> Result<(ApiToken, String)> {
        self.sign_in_limits.check(address)?;
        // Everything checked before the invitation is spent.
        validate::password(password)?;
        self::description(description)?;
        let hash = auth::hash_password(password).await?;
        let accepted =
            self.store().accept_invitation(&auth::hash_token(invitation.trim()), &hash).await?;
        let Some(user) = accepted else {
            self.sign_in_limits.failed(address);
            return Err(Error::Unauthorized(
                "that invitation is unknown, used or expired; ask an admin for a new one".into(),
            ));
        };
        let actor = Actor::new(user, address, FrontEnd::Api);
        self.audit(&actor, None, "user.accept", "accepted the invitation and set a password").await;
        self.create_token(&actor, description, None).await
    }

    pub async fn users(&self, actor: &Actor) -> Result<Vec<UserRecord>> {
        admin_only(actor, "list users")?;
        Ok(self.store().users().await?)
    }

    /// Adds a user with a password, or (with none) a one-time invitation, returned to be
    /// handed over: only its hash is kept.
    pub async fn add_user(
        &self,
        actor: &Actor,
        email: &str,
        is_admin: bool,
        password: Option<&str>,
    ) -> Result<(User, Option<String>)> {
        admin_only(actor, "add users")?;
        let email = validate::email(email)?;
        let mut new = NewUser { email, is_admin, ..NewUser::default() };
        let mut invitation = None;
        match password {
            Some(password) => {
                validate::password(password)?;
                new.password_hash = Some(auth::hash_password(password).await?);
            }
            None => {
                let code = auth::generate_invitation();
                new.invitation = Some((auth::hash_token(&code), time_in(INVITATION_SECS)));
                invitation = Some(code);
            }
        }
        let user = self.store().create_user(&new).await?;
        let role = if is_admin { "an admin" } else { "a user" };
        self.audit(actor, None, "user.add", format!("added {} as {role}", user.email)).await;
        Ok((user, invitation))
    }

    /// Removes a user: their tokens stop working at once and their app access goes. The
    /// apps they made stay (admins still see them). The last admin cannot be removed.
    pub async fn remove_user(&self, actor: &Actor, email: &str) -> Result<()> {
        admin_only(actor, "remove users")?;
        let user = self.store().delete_user(&email.trim().to_ascii_lowercase()).await?;
        self.audit(actor, None, "user.remove", format!("removed {}", user.email)).await;
        Ok(())
    }

    /// Changes the actor's own password. One set before must be given again; a wrong one
    /// counts as a failed sign-in.
    pub async fn change_password(
        &self,
        actor: &Actor,
        current: Option<&str>,
        password: &str,
    ) -> Result<()> {
        validate::password(password)?;
        let record = self.store().user_record(actor.email()).await?;
        let record = record.ok_or_else(|| Error::Unauthorized("this user was removed".into()))?;
        if let Some(hash) = record.password_hash.as_deref() {
            // The current password is a sign-in like any other: locked means locked here too.
            if let Some(until) = record.locked_until.as_deref() {
                locked(until)?;
            }
            let given = current.unwrap_or_default();
            if !auth::verify_password(given, Some(hash)).await {
                self.count_failed_sign_in(actor).await?;
                return Err(Error::Forbidden("the current password is wrong".into()));
            }
        }
        let hash = auth::hash_password(password).await?;
        self.store().set_password(&record.user, &hash).await?;
        self.audit(actor, None, "user.password", "changed their password").await;
        Ok(())
    }

    /// The actor's own tokens, or (`all`, admins only) everyone's.
    pub async fn tokens(&self, actor: &Actor, all: bool) -> Result<Vec<ApiToken>> {
        if all {
            admin_only(actor, "list everyone's tokens")?;
        }
        Ok(self.store().tokens((!all).then_some(&actor.user)).await?)
    }

    /// Makes a token for the actor, lasting `expires_in_secs` or until revoked. The token is
    /// returned this once; only its hash is kept.
    pub async fn create_token(
        &self,
        actor: &Actor,
        description: &str,
        expires_in_secs: Option<i64>,
    ) -> Result<(ApiToken, String)> {
        let description = self::description(description)?;
        if let Some(secs) = expires_in_secs
            && !(60..=MAX_TOKEN_SECS).contains(&secs)
        {
            return Err(Error::invalid(
                "invalid_expiry",
                "a token must last at least a minute and at most ten years",
            ));
        }
        let token = auth::generate_token();
        let expires_at = expires_in_secs.map(time_in);
        let stored = self
            .store()
            .create_token(
                &actor.user,
                &auth::hash_token(&token),
                &description,
                expires_at.as_deref(),
            )
            .await?;
        let detail = format!("created token {} ({description})", stored.id);
        self.audit(actor, None, "token.create", detail).await;
        Ok((stored, token))
    }

    /// Revokes one of the actor's tokens (an admin: anyone's). Another user's token is
    /// "not found" to a non-admin.
    pub async fn revoke_token(&self, actor: &Actor, id: i64) -> Result<ApiToken> {
        let token = self
            .store()
            .token(id)
            .await?
            .filter(|t| t.user_id == actor.user.id || actor.is_admin())
            .ok_or_else(|| Error::NotFound(format!("token {id}")))?;
        self.store().delete_token(token.id).await?;
        let detail =
            format!("revoked token {} of {} ({})", token.id, token.email, token.description);
        self.audit(actor, None, "token.revoke", detail).await;
        Ok(token)
    }
}

/// The error for an account locked until `until`, unless that has passed.
fn locked(until: &str) -> Result<()> {
    let Ok(at) = time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
    else {
        return Ok(());
    };
    let left = (at - time::OffsetDateTime::now_utc()).whole_seconds();
    if left <= 0 {
        return Ok(());
    }
    let left = left.unsigned_abs();
    Err(Error::TooManyAttempts {
        message: format!(
            "this account is locked after {LOCK_AFTER_FAILURES} failed sign-ins in a row; try \
             again in {} (at {until})",
            minutes(left)
        ),
        retry_after_secs: left,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_in_whole_minutes() {
        assert_eq!(minutes(1), "1 minute");
        assert_eq!(minutes(61), "2 minutes");
        assert_eq!(minutes(900), "15 minutes");
    }

    #[test]
    fn an_address_waits_after_too_many_failures() {
        let limits = SignInLimits::default();
        let address = Some(IpAddr::from([192, 0, 2, 1]));
        for _ in 0..ADDRESS_FAILURES {
            assert!(limits.check(address).is_ok());
            limits.failed(address);
        }
        let Err(Error::TooManyAttempts { message, retry_after_secs }) = limits.check(address)
        else {
            panic!("not limited")
        };
        assert!(message.contains("192.0.2.1") && message.contains("15 minutes"), "{message}");
        assert!(retry_after_secs > 800);
        assert!(limits.check(Some(IpAddr::from([192, 0, 2, 2]))).is_ok(), "others go on");
        assert!(limits.check(None).is_ok());
    }

    #[test]
    fn a_lock_that_has_passed_is_no_lock() {
        assert!(locked(&time_in(-5)).is_ok());
        assert!(matches!(locked(&time_in(300)), Err(Error::TooManyAttempts { .. })));
        assert!(locked("garbage").is_ok());
    }
}
