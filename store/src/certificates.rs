//! HTTPS: certificates per hostname, the ACME account, and each app's redirect and HSTS.

use super::*;

const CERTIFICATE_COLUMNS: &str =
    "hostname, state, chain_pem, key_pem, not_after, error, failures, retry_at, updated_at";

impl Store {
    /// Every certificate paas keeps, issued or not, by hostname.
    pub async fn certificates(&self) -> Result<Vec<Certificate>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates ORDER BY hostname"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn certificate(&self, hostname: &str) -> Result<Option<Certificate>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE hostname = $1"
        ))
        .bind(hostname)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Marks `hostname` as being issued; an issued certificate is kept (and served) while
    /// its renewal runs.
    pub async fn certificate_pending(&self, hostname: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO certificates (hostname, state, updated_at) VALUES ($1, 'pending', $2)
             ON CONFLICT (hostname) DO UPDATE SET
                 state = CASE WHEN certificates.chain_pem IS NULL THEN 'pending'
                              ELSE certificates.state END,
                 updated_at = $2",
        )
        .bind(hostname)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn certificate_issued(
        &self,
        hostname: &str,
        chain_pem: &str,
        key_pem: &str,
        not_after: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO certificates
                 (hostname, state, chain_pem, key_pem, not_after, failures, updated_at)
             VALUES ($1, 'issued', $2, $3, $4, 0, $5)
             ON CONFLICT (hostname) DO UPDATE SET state = 'issued', chain_pem = $2,
                 key_pem = $3, not_after = $4, error = NULL, failures = 0, retry_at = NULL,
                 updated_at = $5",
        )
        .bind(hostname)
        .bind(chain_pem)
        .bind(key_pem)
        .bind(not_after)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed issuance, to be tried again at `retry_at`. A certificate already
    /// issued stays (and is served) until it expires: only a renewal failed.
    pub async fn certificate_failed(
        &self,
        hostname: &str,
        error: &str,
        retry_at: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO certificates (hostname, state, error, failures, retry_at, updated_at)
             VALUES ($1, 'failed', $2, 1, $3, $4)
             ON CONFLICT (hostname) DO UPDATE SET state = 'failed', error = $2,
                 failures = certificates.failures + 1, retry_at = $3, updated_at = $4",
        )
        .bind(hostname)
        .bind(error)
        .bind(retry_at)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the certificate of a hostname no app answers at any more.
    pub async fn delete_certificate(&self, hostname: &str) -> Result<()> {
        sqlx::query("DELETE FROM certificates WHERE hostname = $1")
            .bind(hostname)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The ACME account kept for `directory`, as its serialised credentials.
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT credentials FROM acme_accounts WHERE directory = $1")
                .bind(directory)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(credentials,)| credentials))
    }

    pub async fn save_acme_account(&self, directory: &str, credentials: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO acme_accounts (directory, credentials, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (directory) DO UPDATE SET credentials = $2",
        )
        .bind(directory)
        .bind(credentials)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Each app's HTTPS settings, by app name.
    pub async fn https_settings(&self) -> Result<BTreeMap<String, HttpsSettings>> {
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT name, https_redirect, hsts FROM apps")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(name, redirect, hsts)| {
                (name, HttpsSettings { redirect: redirect != 0, hsts: hsts != 0 })
            })
            .collect())
    }

    pub async fn app_https(&self, app: &App) -> Result<HttpsSettings> {
        let (redirect, hsts): (i64, i64) =
            sqlx::query_as("SELECT https_redirect, hsts FROM apps WHERE id = $1")
                .bind(app.id)
                .fetch_one(&self.pool)
                .await?;
        Ok(HttpsSettings { redirect: redirect != 0, hsts: hsts != 0 })
    }

    pub async fn set_app_https(&self, app: &App, settings: HttpsSettings) -> Result<()> {
        sqlx::query("UPDATE apps SET https_redirect = $1, hsts = $2 WHERE id = $3")
            .bind(i64::from(settings.redirect))
            .bind(i64::from(settings.hsts))
            .bind(app.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
