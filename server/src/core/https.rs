//! HTTPS: which hostnames need a certificate, getting them from an ACME CA (Let's Encrypt),
//! renewing them, and handing them to the router as data (with the challenge answers while
//! an issuance runs). One loop does it all, one certificate at a time, so paas never
//! hammers a CA and never asks for a name nobody registered: only `APP.DOMAIN` of an
//! existing app and custom domains added to one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use paas_router::{CertificatePem, TlsTable};
use paas_store::{Certificate, HttpsSettings, StoreError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::Result;
use super::{Actor, App, Paas};

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory: untrusted certificates, generous rate limits.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// How the CA checks that paas answers for a hostname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// A token served over plain HTTP on port 80.
    Http01,
    /// A special certificate shown in a TLS handshake on port 443 (when 80 is closed).
    TlsAlpn01,
}

/// How paas gets certificates from an ACME CA.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// Contact for the CA's expiry and policy mail.
    pub email: String,
    pub directory: String,
    /// A CA certificate (PEM) to trust for the directory itself, for a private ACME server.
    pub ca_file: Option<PathBuf>,
    pub challenge: Challenge,
    /// A certificate is renewed this long before it expires.
    pub renew_before: Duration,
}

/// HTTPS as this server runs it.
#[derive(Default)]
pub(crate) struct Https {
    pub(crate) acme: Option<AcmeSettings>,
    /// A certificate the operator gave as files (typically `*.DOMAIN`, made by DNS-01
    /// elsewhere): hostnames it covers get no ACME certificate of their own.
    pub(crate) given: Option<CertificatePem>,
    /// Challenge answers for issuances under way.
    challenges: Mutex<Challenges>,
    account: tokio::sync::Mutex<Option<Account>>,
    /// Wakes the loop when apps or domains change.
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct Challenges {
    http01: BTreeMap<String, String>,
    alpn01: Vec<CertificatePem>,
}

impl Https {
    pub(crate) fn new(acme: Option<AcmeSettings>, given: Option<CertificatePem>) -> Https {
        Https { acme, given, ..Https::default() }
    }

    /// Hostnames or apps changed: the loop looks at what needs a certificate now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn covered_by_given(&self, host: &str) -> bool {
        self.given.as_ref().is_some_and(|given| given.hosts.iter().any(|name| covers(name, host)))
    }
}

/// The operator's certificate for `domain` (`--tls-cert`, `--tls-key`), checked: it must be
/// PEM, fit its key, be valid now, and cover `*.DOMAIN` or `DOMAIN`; it is served for the
/// names it covers of these two.
pub fn given_certificate(
    domain: &str,
    chain: String,
    key: String,
) -> std::result::Result<CertificatePem, String> {
    let mut pem =
        CertificatePem { hosts: vec![format!("*.{domain}"), domain.to_string()], chain, key };
    let certified = pem.certified_key().map_err(|e| e.to_string())?;
    let leaf = certified.end_entity_cert().map_err(|e| e.to_string())?;
    let parsed = webpki::EndEntityCert::try_from(leaf).map_err(|e| format!("unreadable: {e}"))?;
    let valid_for = |name: &str| {
        rustls::pki_types::ServerName::try_from(name.to_string())
            .is_ok_and(|name| parsed.verify_is_valid_for_subject_name(&name).is_ok())
    };
    let (wildcard, apex) = (valid_for(&format!("paas-check.{domain}")), valid_for(domain));
    pem.hosts.retain(|host| if host.starts_with("*.") { wildcard } else { apex });
    if pem.hosts.is_empty() {
        return Err(format!("the certificate is for neither *.{domain} nor {domain}"));
    }
    match leaf_validity(&pem.chain) {
        Some((_, until)) if until <= OffsetDateTime::now_utc() => {
            Err(format!("the certificate expired on {}", until.date()))
        }
        Some(_) => Ok(pem),
        None => Err("the certificate's validity could not be read".into()),
    }
}

/// Whether a certificate for `name` (maybe `*.parent`) is valid for `host`.
fn covers(name: &str, host: &str) -> bool {
    let (name, host) = (name.to_ascii_lowercase(), host.to_ascii_lowercase());
    match name.strip_prefix("*.") {
        Some(parent) => host.split_once('.').is_some_and(|(_, rest)| rest == parent),
        None => name == host,
    }
}

/// A hostname's certificate as users see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertificateStatus {
    /// `issued`, `pending`, `failed`, `given` (the operator's files), or `none` (no HTTPS,
    /// or a name no public CA signs, like `*.localhost`).
    pub state: String,
    /// When the served certificate expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Why the last issuance failed, and when it is tried again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
}

/// An app's HTTPS, as `paas domains` and `paas https` show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AppHttps {
    /// Whether this server serves HTTPS at all.
    pub enabled: bool,
    pub redirect: bool,
    pub hsts: bool,
    pub hosts: Vec<HostHttps>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HostHttps {
    pub hostname: String,
    /// A custom domain (else the app's own `APP.DOMAIN`).
    pub custom: bool,
    pub certificate: Option<CertificateStatus>,
}

impl CertificateStatus {
    fn bare(state: &str) -> CertificateStatus {
        CertificateStatus { state: state.into(), expires: None, error: None, retry_at: None }
    }

    /// In a few words, as the CLI and the dashboard show it: `issued, until 2027-03-01`,
    /// `failed: why (next try …)`.
    pub fn describe(&self) -> String {
        let date =
            |at: &Option<String>| at.as_deref().map(|t| t.get(..10).unwrap_or(t).to_string());
        match self.state.as_str() {
            "issued" => format!("issued, until {}", date(&self.expires).unwrap_or_default()),
            "failed" => {
                let mut text =
                    format!("failed: {}", self.error.as_deref().unwrap_or("no reason given"));
                if let Some(retry) = &self.retry_at {
                    text.push_str(&format!(" (next try {retry})"));
                }
                if let Some(until) = date(&self.expires) {
                    text.push_str(&format!("; the current certificate serves until {until}"));
                }
                text
            }
            "pending" => "pending: being requested".into(),
            "given" => "the server's own certificate (--tls-cert)".into(),
            _ => "none: no public certificate for this name".into(),
        }
    }
}

/// Shortest pause of the loop between two rounds.
const MIN_PAUSE: Duration = Duration::from_secs(5);
/// Longest: certificates due are looked for at least this often.
const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// First retry of a failed issuance; doubled each time after, up to a day.
const FIRST_RETRY: Duration = Duration::from_secs(300);
const LAST_RETRY: Duration = Duration::from_secs(24 * 3600);

impl Paas {
    /// Turns HTTPS on: `acme` issues certificates, `given` is served as it is.
    pub fn with_https(mut self, acme: Option<AcmeSettings>, given: Option<CertificatePem>) -> Paas {
        self.https = Arc::new(Https::new(acme, given));
        self
    }

    /// What the router needs for HTTPS now: the operator's certificate, every issued one
    /// that has not expired, and the answers to challenges under way.
    pub(crate) async fn tls_table(&self) -> Result<TlsTable> {
        let mut table = TlsTable::default();
        let now = OffsetDateTime::now_utc();
        // Only for names an app still answers at: a domain removed while ACME was off (its
        // certificate not yet forgotten by the loop) must not be served.
        let names = self.app_hosts().await?;
        for cert in self.store().certificates().await? {
            if !names.contains(&cert.hostname) {
                continue;
            }
            let (Some(chain), Some(key)) = (cert.chain_pem, cert.key_pem) else { continue };
            let expired = cert.not_after.as_deref().and_then(parse_time).is_none_or(|t| t <= now);
            if !expired {
                table.certificates.push(CertificatePem { hosts: vec![cert.hostname], chain, key });
            }
        }
        if let Some(given) = &self.https.given {
            table.certificates.push(given.clone());
        }
        let challenges = self.https.challenges.lock().unwrap_or_else(|p| p.into_inner());
        table.http01 = challenges.http01.clone();
        table.alpn01 = challenges.alpn01.clone();
        Ok(table)
    }

    /// Hands the router (and an external router's file) the current TLS table.
    pub async fn publish_tls(&self) -> Result<()> {
        let table = self.tls_table().await?;
        for err in self.router().set_tls(&table) {
            tracing::error!(error = %err, "certificate left out");
        }
        if let Some(file) = &self.router_file {
            file.set_tls(table);
            // Written with the routing table (not through sync_routes, which would wake
            // the loop calling this).
            let draining = self.apply_routes().await?;
            tokio::spawn(draining.wait(Duration::from_secs(30)));
        }
        Ok(())
    }

    /// The hostnames that should have an ACME certificate: every app's `APP.DOMAIN` and
    /// custom domains, less those the operator's certificate covers and `localhost` names.
    async fn wanted_hosts(&self) -> Result<Vec<String>> {
        let mut hosts = self.app_hosts().await?;
        hosts.retain(|host| public_name(host) && !self.https.covered_by_given(host));
        Ok(hosts)
    }

    /// Every name an app answers at, sorted.
    async fn app_hosts(&self) -> Result<Vec<String>> {
        let mut hosts: Vec<String> = Vec::new();
        for app in self.store().apps().await? {
            hosts.push(format!("{}.{}", app.name, self.domain()));
        }
        hosts.extend(self.store().all_domains().await?.into_iter().map(|(_, host)| host));
        hosts.sort();
        hosts.dedup();
        Ok(hosts)
    }

    /// Certificate state for each of `hosts`, as `paas domains` shows it.
    pub async fn certificate_status(
        &self,
        hosts: &[String],
    ) -> Result<BTreeMap<String, CertificateStatus>> {
        let mut statuses = BTreeMap::new();
        for host in hosts {
            let status = if self.https.covered_by_given(host) {
                CertificateStatus::bare("given")
            } else if self.https.acme.is_none() || !public_name(host) {
                CertificateStatus::bare("none")
            } else {
                match self.store().certificate(host).await? {
                    Some(cert) => status_of(&cert),
                    None => CertificateStatus::bare("pending"),
                }
            };
            statuses.insert(host.clone(), status);
        }
        Ok(statuses)
    }

    /// The app's hostnames (`APP.DOMAIN` first, then its custom domains) with their
    /// certificates, and its redirect and HSTS settings.
    pub async fn https_of(&self, app: &App) -> Result<AppHttps> {
        let mut hosts = vec![format!("{}.{}", app.name, self.domain())];
        hosts.extend(self.store().domains(app).await?.into_iter().map(|d| d.hostname));
        let statuses = self.certificate_status(&hosts).await?;
        let settings = self.store().app_https(app).await?;
        Ok(AppHttps {
            enabled: self.https.acme.is_some() || self.https.given.is_some(),
            redirect: settings.redirect,
            hsts: settings.hsts,
            hosts: hosts
                .into_iter()
                .enumerate()
                .map(|(i, hostname)| {
                    let certificate = statuses.get(&hostname).cloned();
                    HostHttps { custom: i > 0, hostname, certificate }
                })
                .collect(),
        })
    }

    /// Changes the app's redirect or HSTS setting (`None` leaves one as it is).
    pub async fn set_https_settings(
        &self,
        actor: &Actor,
        app: &App,
        redirect: Option<bool>,
        hsts: Option<bool>,
    ) -> Result<HttpsSettings> {
        let mut settings = self.store().app_https(app).await?;
        settings.redirect = redirect.unwrap_or(settings.redirect);
        settings.hsts = hsts.unwrap_or(settings.hsts);
        self.store().set_app_https(app, settings).await?;
        let said =
            format!("redirect {}, hsts {}", on_off(settings.redirect), on_off(settings.hsts));
        self.audit(actor, Some(app), "https.set", said).await;
        self.sync_routes().await?;
        Ok(settings)
    }

    /// Runs until the server stops: issues what is missing, renews what is due, forgets
    /// certificates of names gone, each round; then sleeps until the next one is due or an
    /// app or domain changes.
    pub fn certificate_loop(&self) -> Option<tokio::task::JoinHandle<()>> {
        let acme = self.https.acme.clone()?;
        let paas = self.clone();
        Some(tokio::spawn(async move {
            loop {
                let next = match paas.certificate_round(&acme).await {
                    Ok(next) => next,
                    Err(err) => {
                        tracing::error!(error = %err, "certificate round failed");
                        FIRST_RETRY
                    }
                };
                let pause = next.clamp(MIN_PAUSE, MAX_PAUSE);
                tokio::select! {
                    () = paas.https.wake.notified() => {}
                    () = tokio::time::sleep(pause) => {}
                    () = paas.stopping().cancelled() => return,
                }
                // Never two rounds closer than this, however often apps change.
                tokio::select! {
                    () = tokio::time::sleep(MIN_PAUSE) => {}
                    () = paas.stopping().cancelled() => return,
                }
            }
        }))
    }

    /// One pass over the wanted hostnames; returns how long until the next thing is due.
    async fn certificate_round(&self, acme: &AcmeSettings) -> Result<Duration> {
        let wanted = self.wanted_hosts().await?;
        let mut changed = false;
        for cert in self.store().certificates().await? {
            if !wanted.contains(&cert.hostname) {
                self.store().delete_certificate(&cert.hostname).await?;
                tracing::info!(host = %cert.hostname, "certificate dropped: no app answers there now");
                changed = true;
            }
        }
        if changed {
            self.publish_tls().await?;
        }
        let mut next = MAX_PAUSE;
        for host in wanted {
            if self.stopping().is_cancelled() {
                break;
            }
            let cert = self.store().certificate(&host).await?;
            let due_in = cert.as_ref().map_or(Duration::ZERO, |c| due_in(c, acme.renew_before));
            if !due_in.is_zero() {
                next = next.min(due_in);
                continue;
            }
            self.store().certificate_pending(&host).await?;
            let renewal = cert.as_ref().is_some_and(|c| c.chain_pem.is_some());
            tracing::info!(%host, renewal, "requesting a certificate");
            let outcome = self.issue(acme, &host).await;
            self.clear_challenges();
            match outcome {
                Ok((chain, key, not_after)) => {
                    self.store().certificate_issued(&host, &chain, &key, &not_after).await?;
                    tracing::info!(%host, until = %not_after, "certificate issued");
                    let event = format!("certificate for {host} issued, valid until {not_after}");
                    self.app_event_for_host(&host, event).await;
                }
                Err(reason) => {
                    let failures = cert.as_ref().map_or(0, |c| c.failures);
                    let wait = retry_delay(failures, &reason);
                    let retry_at = paas_store::time_in(wait.as_secs() as i64);
                    self.store().certificate_failed(&host, &reason.to_string(), &retry_at).await?;
                    tracing::warn!(%host, error = %reason, %retry_at, "certificate not issued");
                    let event =
                        format!("certificate for {host} failed: {reason}; retrying at {retry_at}");
                    self.app_event_for_host(&host, event).await;
                    next = next.min(wait);
                }
            }
            self.publish_tls().await?;
        }
        Ok(next)
    }

    /// Writes `event` to the log of the app answering at `host`.
    async fn app_event_for_host(&self, host: &str, event: String) {
        let suffix = format!(".{}", self.domain());
        let app = match host.strip_suffix(&suffix) {
            Some(name) => Some(name.to_string()),
            None => self.store().all_domains().await.ok().and_then(|domains| {
                domains.into_iter().find(|(_, h)| h == host).map(|(app, _)| app)
            }),
        };
        if let Some(app) = app {
            self.events().emit(&app, "https", event);
        }
    }

    fn clear_challenges(&self) {
        *self.https.challenges.lock().unwrap_or_else(|p| p.into_inner()) = Challenges::default();
    }

    /// The ACME account for the directory: kept in the store, made on first use.
    async fn account(&self, acme: &AcmeSettings) -> std::result::Result<Account, Issuance> {
        let mut cached = self.https.account.lock().await;
        if let Some(account) = cached.as_ref() {
            return Ok(account.clone());
        }
        let builder = || match &acme.ca_file {
            Some(path) => Account::builder_with_root(path),
            None => Account::builder(),
        };
        let stored = self.store().acme_account(&acme.directory).await.map_err(Issuance::Store)?;
        let account = match stored {
            Some(json) => {
                let credentials = serde_json::from_str(&json)
                    .map_err(|e| Issuance::Other(format!("stored ACME account unreadable: {e}")))?;
                builder()?.from_credentials(credentials).await?
            }
            None => {
                let contact = format!("mailto:{}", acme.email);
                let new = NewAccount {
                    contact: &[&contact],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, credentials) =
                    builder()?.create(&new, acme.directory.clone(), None).await?;
                let json = serde_json::to_string(&credentials)
                    .map_err(|e| Issuance::Other(e.to_string()))?;
                self.store()
                    .save_acme_account(&acme.directory, &json)
                    .await
                    .map_err(Issuance::Store)?;
                tracing::info!(directory = %acme.directory, "ACME account created");
                account
            }
        };
        *cached = Some(account.clone());
        Ok(account)
    }

    /// One issuance for `host`: order, answer the challenge, finalise, download. Returns the
    /// chain, its private key, and its expiry (RFC 3339).
    async fn issue(
        &self,
        acme: &AcmeSettings,
        host: &str,
    ) -> std::result::Result<(String, String, String), Issuance> {
        let account = self.account(acme).await?;
        let identifiers = [Identifier::Dns(host.to_string())];
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
        let kind = match acme.challenge {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut ready = Vec::new();
        {
            let mut authorizations = order.authorizations();
            while let Some(authorization) = authorizations.next().await {
                let mut authorization = authorization?;
                if authorization.status == AuthorizationStatus::Valid {
                    continue; // validated recently for this account
                }
                let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                    return Err(Issuance::Other(format!("the CA offers no {kind:?} challenge")));
                };
                let key_authorization = challenge.key_authorization();
                self.answer(acme.challenge, host, &challenge.token, &key_authorization)?;
                ready.push(challenge.url.clone());
                self.publish_tls().await.map_err(|e| Issuance::Other(e.to_string()))?;
                challenge.set_ready().await?;
            }
        }
        let polling = RetryPolicy::new()
            .initial_delay(Duration::from_millis(500))
            .timeout(Duration::from_secs(90));
        if order.poll_ready(&polling).await? != OrderStatus::Ready {
            return Err(Issuance::Other(validation_error(&mut order).await));
        }
        let key = order.finalize().await?;
        let chain = order.poll_certificate(&polling).await?;
        let not_after = leaf_not_after(&chain)
            .ok_or_else(|| Issuance::Other("the CA's certificate could not be read".into()))?;
        Ok((chain, key, not_after))
    }

    /// Puts the answer to a challenge where the router serves it.
    fn answer(
        &self,
        challenge: Challenge,
        host: &str,
        token: &str,
        key_authorization: &instant_acme::KeyAuthorization,
    ) -> std::result::Result<(), Issuance> {
        let mut challenges = self.https.challenges.lock().unwrap_or_else(|p| p.into_inner());
        match challenge {
            Challenge::Http01 => {
                challenges.http01.insert(token.to_string(), key_authorization.as_str().to_string());
            }
            Challenge::TlsAlpn01 => {
                let digest = key_authorization.digest();
                let key = rcgen::KeyPair::generate().map_err(|e| Issuance::Other(e.to_string()))?;
                let mut params = rcgen::CertificateParams::new(vec![host.to_string()])
                    .map_err(|e| Issuance::Other(e.to_string()))?;
                params.custom_extensions =
                    vec![rcgen::CustomExtension::new_acme_identifier(digest.as_ref())];
                let cert = params.self_signed(&key).map_err(|e| Issuance::Other(e.to_string()))?;
                challenges.alpn01.push(CertificatePem {
                    hosts: vec![host.to_string()],
                    chain: cert.pem(),
                    key: key.serialize_pem(),
                });
            }
        }
        Ok(())
    }
}

/// Why an issuance failed, as `paas domains` shows it.
#[derive(Debug, thiserror::Error)]
enum Issuance {
    #[error("{}", problem_text(.0))]
    Acme(#[from] instant_acme::Error),
    #[error("{0}")]
    Store(StoreError),
    #[error("{0}")]
    Other(String),
}

impl Issuance {
    fn rate_limited(&self) -> bool {
        matches!(self, Issuance::Acme(instant_acme::Error::Api(problem))
            if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:rateLimited"))
    }
}

/// The CA's own words when it gave them.
fn problem_text(err: &instant_acme::Error) -> String {
    match err {
        instant_acme::Error::Api(problem) => {
            let kind = problem.r#type.as_deref().unwrap_or("").rsplit(':').next().unwrap_or("");
            match &problem.detail {
                Some(detail) if !kind.is_empty() => format!("{detail} ({kind})"),
                Some(detail) => detail.clone(),
                None => format!("the CA refused ({kind})"),
            }
        }
        other => {
            // The cause is often a few sources down (a refused connection, a TLS error).
            let mut text = format!("could not reach the ACME CA: {other}");
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

/// What the CA said about a failed validation.
async fn validation_error(order: &mut instant_acme::Order) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else { continue };
        for challenge in &state.challenges {
            if let Some(problem) = &challenge.error {
                return problem_text(&instant_acme::Error::Api(problem.clone()));
            }
        }
    }
    "the CA could not validate the domain".into()
}

/// How long to wait after a failure: 5 minutes, doubled per failure in a row, at most a
/// day; at least an hour when the CA said its rate limit was hit.
fn retry_delay(failures_before: i64, reason: &Issuance) -> Duration {
    let doubling = u32::try_from(failures_before.clamp(0, 16)).unwrap_or(16);
    let delay = FIRST_RETRY.saturating_mul(2u32.saturating_pow(doubling)).min(LAST_RETRY);
    if reason.rate_limited() { delay.max(Duration::from_secs(3600)) } else { delay }
}

/// How long until `cert` needs work: zero when it must be issued (or renewed) now.
fn due_in(cert: &Certificate, renew_before: Duration) -> Duration {
    let now = OffsetDateTime::now_utc();
    let until = |at: Option<&str>| {
        let at = at.and_then(parse_time)?;
        Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
    };
    match cert.state.as_str() {
        "failed" => until(cert.retry_at.as_deref()).unwrap_or(Duration::ZERO),
        "issued" => {
            // A third of the certificate's life at most, so a short-lived certificate (or a
            // window set longer than certificates live) is not renewed as soon as issued.
            let lifetime = cert.chain_pem.as_deref().and_then(leaf_validity);
            let window = lifetime.map_or(renew_before, |(from, to)| {
                renew_before.min(Duration::try_from(to - from).unwrap_or(Duration::ZERO) / 3)
            });
            let left = until(cert.not_after.as_deref());
            left.map_or(Duration::ZERO, |left| left.saturating_sub(window))
        }
        // Pending: an issuance cut short by a stop; start again.
        _ => Duration::ZERO,
    }
}

fn status_of(cert: &Certificate) -> CertificateStatus {
    let served = cert.chain_pem.is_some().then(|| cert.not_after.clone()).flatten();
    CertificateStatus {
        state: match (cert.state.as_str(), &served) {
            // A renewal under way or failed: the certificate served is still good.
            (_, Some(_)) if cert.state != "failed" => "issued".into(),
            (state, _) => state.to_string(),
        },
        expires: served,
        error: cert.error.clone().filter(|_| cert.state == "failed"),
        retry_at: cert.retry_at.clone().filter(|_| cert.state == "failed"),
    }
}

fn on_off(value: bool) -> &'static str {
    if value { "on" } else { "off" }
}

/// Names paas can get a certificate for: not `localhost` or under it, not a bare label,
/// not a wildcard (that takes DNS-01: give it with --tls-cert).
fn public_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host.contains('.')
        && host != "localhost"
        && !host.ends_with(".localhost")
        && !host.starts_with("*.")
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// The expiry of the first certificate of a PEM chain, as RFC 3339.
fn leaf_not_after(chain: &str) -> Option<String> {
    leaf_validity(chain)?.1.format(&Rfc3339).ok()
}

/// When the first certificate of a PEM chain starts and stops being valid.
fn leaf_validity(chain: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    use rustls::pki_types::pem::PemObject;
    let leaf = rustls::pki_types::CertificateDer::pem_slice_iter(chain.as_bytes()).next()?.ok()?;
    der::validity(leaf.as_ref())
}

/// Just enough DER to read a certificate's validity (RFC 5280 §4.1), which is all paas
/// needs from a certificate the CA made.
mod der {
    use time::{Date, Month, OffsetDateTime, Time};

    /// One element: its tag, its contents, and what follows it.
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let len = rest[..count].iter().fold(0usize, |len, &b| (len << 8) | usize::from(b));
            (len, &rest[count..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }

    /// `notBefore` and `notAfter`.
    pub(super) fn validity(certificate: &[u8]) -> Option<(OffsetDateTime, OffsetDateTime)> {
        const SEQUENCE: u8 = 0x30;
        let (SEQUENCE, certificate, _) = element(certificate)? else { return None };
        let (SEQUENCE, tbs, _) = element(certificate)? else { return None };
        // [0] version (optional), serial, signature algorithm, issuer, then validity.
        let (tag, _, mut rest) = element(tbs)?;
        if tag != 0xa0 {
            rest = tbs;
        }
        for _ in 0..3 {
            rest = element(rest)?.2;
        }
        let (SEQUENCE, validity, _) = element(rest)? else { return None };
        let (tag, not_before, rest) = element(validity)?;
        let from = time(tag, not_before)?;
        let (tag, not_after, _) = element(rest)?;
        Some((from, time(tag, not_after)?))
    }

    /// A UTCTime or GeneralizedTime in UTC.
    fn time(tag: u8, text: &[u8]) -> Option<OffsetDateTime> {
        let text = std::str::from_utf8(text).ok()?;
        let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<u16>().ok();
        let (year, at) = match tag {
            // UTCTime: YYMMDDHHMMSSZ, 50–99 meaning 19xx.
            0x17 => {
                let yy = digits(0..2)?;
                (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
            }
            // GeneralizedTime: YYYYMMDDHHMMSSZ.
            0x18 => (digits(0..4)?, 4),
            _ => return None,
        };
        if !text.ends_with('Z') {
            return None;
        }
        let part = |i: usize| digits(at + 2 * i..at + 2 * i + 2).and_then(|v| u8::try_from(v).ok());
        let month = Month::try_from(part(0)?).ok()?;
        let date = Date::from_calendar_date(i32::from(year), month, part(1)?).ok()?;
        let time = Time::from_hms(part(2)?, part(3)?, part(4)?).ok()?;
        Some(date.with_time(time).assume_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_until(not_after: OffsetDateTime) -> String {
        let mut params = rcgen::CertificateParams::new(vec!["shop.example.com".into()]).unwrap();
        params.not_after = not_after;
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn expiry_is_read_from_the_leaf() {
        let cases = [
            // UTCTime (before 2050) and GeneralizedTime (from 2050).
            time::macros::datetime!(2027-03-04 05:06:07 UTC),
            time::macros::datetime!(2051-12-31 23:59:59 UTC),
        ];
        for when in cases {
            let pem = certificate_until(when);
            let chain =
                format!("{pem}{}", certificate_until(time::macros::datetime!(2030-01-01 0:00 UTC)));
            let read = leaf_not_after(&chain).unwrap();
            assert_eq!(read, when.format(&Rfc3339).unwrap());
        }
        assert_eq!(leaf_not_after("not a certificate"), None);
        assert_eq!(der::validity(&[0x30, 0x82, 0xff]), None, "truncated DER is refused");
    }

    fn given(names: &[&str], not_after: OffsetDateTime) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_after = not_after;
        let key = rcgen::KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn an_operators_certificate_is_served_for_the_names_it_covers() {
        let later = OffsetDateTime::now_utc() + time::Duration::days(60);
        let (chain, key) = given(&["*.example.com", "example.com"], later);
        let pem = given_certificate("example.com", chain, key).unwrap();
        assert_eq!(pem.hosts, ["*.example.com", "example.com"]);
        let (chain, key) = given(&["*.example.com"], later);
        assert_eq!(given_certificate("example.com", chain, key).unwrap().hosts, ["*.example.com"]);

        let (chain, key) = given(&["*.other.org"], later);
        let err = given_certificate("example.com", chain, key).unwrap_err();
        assert!(err.contains("neither *.example.com nor example.com"), "{err}");
        let past = OffsetDateTime::now_utc() - time::Duration::days(1);
        let (chain, key) = given(&["*.example.com"], past);
        assert!(given_certificate("example.com", chain, key).unwrap_err().contains("expired"));
        let (chain, _) = given(&["*.example.com"], later);
        let (_, other_key) = given(&["*.example.com"], later);
        let err = given_certificate("example.com", chain, other_key).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn a_renewal_window_is_a_third_of_the_lifetime_at_most() {
        // A six-day certificate with 30 days asked: renewed with 2 days left, not at once.
        let now = OffsetDateTime::now_utc();
        let mut params = rcgen::CertificateParams::new(vec!["shop.example.com".into()]).unwrap();
        params.not_before = now;
        params.not_after = now + time::Duration::days(6);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut short = cert("issued", Some(6 * 86400), None);
        short.chain_pem = Some(params.self_signed(&key).unwrap().pem());
        let due = due_in(&short, Duration::from_secs(30 * 86400));
        let four_days = Duration::from_secs(4 * 86400);
        assert!(due > four_days - Duration::from_secs(60) && due <= four_days, "{due:?}");
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("*.example.com", "shop.example.com"));
        assert!(covers("*.Example.com", "SHOP.example.com"));
        assert!(!covers("*.example.com", "a.shop.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(covers("example.com", "example.com"));
    }

    #[test]
    fn only_public_names_get_certificates() {
        assert!(public_name("shop.example.com"));
        assert!(!public_name("shop.localhost"));
        assert!(!public_name("localhost"));
        assert!(!public_name("intranet"));
        assert!(!public_name("*.example.com"));
    }

    fn cert(state: &str, not_after: Option<i64>, retry_at: Option<i64>) -> Certificate {
        Certificate {
            hostname: "shop.example.com".into(),
            state: state.into(),
            chain_pem: not_after.map(|_| "PEM".into()),
            key_pem: not_after.map(|_| "KEY".into()),
            not_after: not_after.map(paas_store::time_in),
            error: None,
            failures: 0,
            retry_at: retry_at.map(paas_store::time_in),
            updated_at: paas_store::now(),
        }
    }

    #[test]
    fn renewal_and_retries_come_due() {
        let month = Duration::from_secs(30 * 86400);
        let day = 86400;
        assert_eq!(due_in(&cert("issued", Some(20 * day), None), month), Duration::ZERO);
        let left = due_in(&cert("issued", Some(40 * day), None), month);
        assert!(
            left > Duration::from_secs(9 * day as u64)
                && left <= Duration::from_secs(10 * day as u64)
        );
        assert_eq!(due_in(&cert("pending", None, None), month), Duration::ZERO);
        let retry = due_in(&cert("failed", None, Some(600)), month);
        assert!(retry > Duration::from_secs(590), "{retry:?}");
        assert_eq!(due_in(&cert("failed", None, Some(-5)), month), Duration::ZERO);
    }

    #[test]
    fn failures_back_off_to_a_day() {
        let other = Issuance::Other("no".into());
        assert_eq!(retry_delay(0, &other), Duration::from_secs(300));
        assert_eq!(retry_delay(1, &other), Duration::from_secs(600));
        assert_eq!(retry_delay(3, &other), Duration::from_secs(2400));
        assert_eq!(retry_delay(40, &other), LAST_RETRY);
    }

    #[test]
    fn a_renewal_failure_still_shows_the_served_certificate() {
        let mut failing = cert("failed", Some(10 * 86400), Some(600));
        failing.error = Some("timeout".into());
        let status = status_of(&failing);
        assert_eq!(status.state, "failed");
        assert!(status.expires.is_some() && status.error.is_some());
        let renewing = status_of(&cert("pending", Some(10 * 86400), None));
        assert_eq!(renewing.state, "issued");
    }
}
