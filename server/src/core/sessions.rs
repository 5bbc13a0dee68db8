//! Dashboard sessions: a sign-in with a password makes one, its token in a cookie (only the
//! hash is kept), with a CSRF token for every form it renders. They expire, end on sign-out,
//! and end with the user.

use std::net::IpAddr;

use paas_store::{Session, User, time_in};

use super::Paas;
use super::audit::{Actor, FrontEnd};
use super::auth;
use super::error::Result;

/// How long a session lasts, from sign-in.
pub const SESSION_SECS: i64 = 7 * 24 * 60 * 60;

impl Paas {
    /// Signs in with a password for a dashboard session; returns the cookie's token.
    pub async fn start_session(
        &self,
        email: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<String> {
        let user = self.sign_in(email, password, address).await?;
        let token = auth::generate_token();
        let csrf = auth::generate_token();
        let address_text = address.map(|a| a.to_string());
        let expires = time_in(SESSION_SECS);
        let store = self.store();
        store
            .create_session(
                &user,
                &auth::hash_token(&token),
                &csrf,
                address_text.as_deref(),
                &expires,
            )
            .await?;
        if rand::random::<u8>() == 0 {
            // Now and then, forget sessions that have expired.
            store.delete_expired_sessions().await?;
        }
        let actor = Actor::new(user, address, FrontEnd::Dashboard);
        self.audit(&actor, None, "session.start", "signed in to the dashboard").await;
        Ok(token)
    }

    /// The user and session a cookie's token stands for, if it is live.
    pub async fn session(&self, token: &str) -> Result<Option<(User, Session)>> {
        if token.is_empty() {
            return Ok(None);
        }
        Ok(self.store().session(&auth::hash_token(token)).await?)
    }

    /// Signs out: the session ends.
    pub async fn end_session(&self, actor: &Actor, session: &Session) -> Result<()> {
        self.store().delete_session(session.id).await?;
        self.audit(actor, None, "session.end", "signed out of the dashboard").await;
        Ok(())
    }

    /// Ends the actor's other sessions (a lost laptop); returns how many.
    pub async fn end_other_sessions(&self, actor: &Actor, keep: &Session) -> Result<u64> {
        let ended = self.store().delete_other_sessions(&actor.user, keep.id).await?;
        self.audit(actor, None, "session.end", format!("ended {ended} other sessions")).await;
        Ok(ended)
    }
}
