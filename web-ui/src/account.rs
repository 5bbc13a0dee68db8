//! One's own account (password, API tokens, other sessions) and, for admins, the users.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use paas_server::core::{Error, Paas};
use serde::Deserialize;

use crate::apps::Notice;
use crate::page::{self, Layout, encode, render, render_status};
use crate::session::{CsrfForm, SignedIn};

struct TokenRow {
    id: i64,
    description: String,
    created_at: String,
    last_used_at: String,
    expires_at: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
    notice: Option<String>,
    error: Option<String>,
    /// A token just made, shown this once.
    new_token: Option<String>,
}

async fn account_page(
    paas: &Paas,
    signed_in: &SignedIn,
    notice: Option<String>,
    error: Option<String>,
    new_token: Option<String>,
) -> Response {
    let tokens = match paas.tokens(&signed_in.actor, false).await {
        Ok(tokens) => tokens,
        Err(err) => return page::error_page(Some(signed_in.layout("Account")), &err),
    };
    let status = if error.is_some() { 422 } else { 200 };
    let page = AccountPage {
        layout: signed_in.layout("Account"),
        tokens: tokens
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                description: t.description,
                created_at: t.created_at,
                last_used_at: t.last_used_at.unwrap_or_else(|| "never".into()),
                expires_at: t.expires_at.unwrap_or_else(|| "never".into()),
            })
            .collect(),
        notice,
        error,
        new_token,
    };
    render_status(status, &page)
}

fn back(path: &str, notice: &str) -> Response {
    use axum::response::IntoResponse;
    axum::response::Redirect::to(&format!("{path}?notice={}", encode(notice))).into_response()
}

pub(crate) async fn page(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Query(notice): Query<Notice>,
) -> Response {
    account_page(&paas, &signed_in, notice.into_inner(), None, None).await
}

#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    again: String,
}

pub(crate) async fn change_password(
    State(paas): State<Paas>,
    CsrfForm { signed_in, form }: CsrfForm<PasswordChange>,
) -> Response {
    if form.password != form.again {
        let error = "The two new passwords differ; nothing was changed.".to_string();
        return account_page(&paas, &signed_in, None, Some(error), None).await;
    }
    let current = Some(form.current_password.as_str()).filter(|c| !c.is_empty());
    match paas.change_password(&signed_in.actor, current, &form.password).await {
        Ok(()) => back("/account", "Password changed"),
        Err(err) => account_page(&paas, &signed_in, None, Some(err.public_message()), None).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct NewToken {
    #[serde(default)]
    description: String,
    /// Days; empty: until revoked.
    #[serde(default)]
    expires_days: String,
}

pub(crate) async fn create_token(
    State(paas): State<Paas>,
    CsrfForm { signed_in, form }: CsrfForm<NewToken>,
) -> Response {
    let expires = match form.expires_days.trim() {
        "" => Ok(None),
        days => days.parse::<i64>().map(|d| Some(d.saturating_mul(86_400))).map_err(|_| {
            Error::invalid("invalid_expiry", format!("{days:?} is not a number of days"))
        }),
    };
    let created = match expires {
        Ok(expires) => paas.create_token(&signed_in.actor, &form.description, expires).await,
        Err(err) => Err(err),
    };
    match created {
        Ok((_, token)) => account_page(&paas, &signed_in, None, None, Some(token)).await,
        Err(err) => account_page(&paas, &signed_in, None, Some(err.public_message()), None).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenId {
    id: i64,
}

pub(crate) async fn revoke_token(
    State(paas): State<Paas>,
    CsrfForm { signed_in, form }: CsrfForm<TokenId>,
) -> Response {
    match paas.revoke_token(&signed_in.actor, form.id).await {
        Ok(token) => {
            back("/account", &format!("Revoked token {} ({})", token.id, token.description))
        }
        Err(err) => page::error_page(Some(signed_in.layout("Account")), &err),
    }
}

pub(crate) async fn end_other_sessions(
    State(paas): State<Paas>,
    CsrfForm { signed_in, .. }: CsrfForm<crate::session::Empty>,
) -> Response {
    match paas.end_other_sessions(&signed_in.actor, &signed_in.session).await {
        Ok(n) => back("/account", &format!("Signed out of {n} other sessions")),
        Err(err) => page::error_page(Some(signed_in.layout("Account")), &err),
    }
}

struct UserRow {
    email: String,
    admin: bool,
    sign_in: String,
    created_at: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserRow>,
    notice: Option<String>,
    /// An invitation just made, shown this once.
    invitation: Option<(String, String)>,
}

async fn users_page(
    paas: &Paas,
    signed_in: &SignedIn,
    notice: Option<String>,
    invitation: Option<(String, String)>,
) -> Response {
    let users = match paas.users(&signed_in.actor).await {
        Ok(users) => users,
        Err(err) => return page::error_page(Some(signed_in.layout("Users")), &err),
    };
    let now = paas_server::core::now();
    let rows = users
        .into_iter()
        .map(|u| {
            let sign_in = match (&u.locked_until, &u.password_hash, &u.invite_expires_at) {
                (Some(until), _, _) if *until > now => format!("locked until {until}"),
                (_, Some(_), _) => "password".to_string(),
                (_, None, Some(until)) => format!("invited (until {until})"),
                _ => "token only".to_string(),
            };
            UserRow {
                admin: u.user.admin(),
                email: u.user.email,
                sign_in,
                created_at: u.user.created_at,
            }
        })
        .collect();
    render(&UsersPage { layout: signed_in.layout("Users"), users: rows, notice, invitation })
}

pub(crate) async fn users(
    State(paas): State<Paas>,
    signed_in: SignedIn,
    Query(notice): Query<Notice>,
) -> Response {
    users_page(&paas, &signed_in, notice.into_inner(), None).await
}

#[derive(Deserialize)]
pub(crate) struct NewUser {
    #[serde(default)]
    email: String,
    admin: Option<String>,
}

pub(crate) async fn add_user(
    State(paas): State<Paas>,
    CsrfForm { signed_in, form }: CsrfForm<NewUser>,
) -> Response {
    let admin = form.admin.is_some();
    match paas.add_user(&signed_in.actor, &form.email, admin, None).await {
        Ok((user, invitation)) => {
            let invitation = invitation.map(|code| (user.email.clone(), code));
            users_page(&paas, &signed_in, Some(format!("Added {}", user.email)), invitation).await
        }
        Err(err) => page::error_page(Some(signed_in.layout("Users")), &err),
    }
}

#[derive(Deserialize)]
pub(crate) struct Email {
    email: String,
}

pub(crate) async fn remove_user(
    State(paas): State<Paas>,
    CsrfForm { signed_in, form }: CsrfForm<Email>,
) -> Response {
    match paas.remove_user(&signed_in.actor, &form.email).await {
        Ok(()) => back("/users", &format!("Removed {}", form.email.trim())),
        Err(err) => page::error_page(Some(signed_in.layout("Users")), &err),
    }
}
