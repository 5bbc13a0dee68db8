-- HTTPS: one certificate per hostname (an app's APP.DOMAIN or a custom domain), issued by
-- ACME and renewed before it expires. The private key never leaves paas: it is handed to
-- the router and shown to nobody.
CREATE TABLE certificates (
    hostname    TEXT    NOT NULL PRIMARY KEY,
    -- pending (being issued), issued, or failed (error says why; retried at retry_at)
    state       TEXT    NOT NULL,
    chain_pem   TEXT,
    key_pem     TEXT,
    not_after   TEXT,
    error       TEXT,
    -- Failed attempts in a row, for the back-off; 0 once issued.
    failures    BIGINT  NOT NULL DEFAULT 0,
    retry_at    TEXT,
    updated_at  TEXT    NOT NULL
);

-- The ACME account paas uses with each directory (credentials as instant-acme keeps them).
CREATE TABLE acme_accounts (
    directory    TEXT NOT NULL PRIMARY KEY,
    credentials  TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

-- Per app: plain HTTP is redirected to HTTPS once a certificate exists (on unless turned
-- off), and HTTPS answers carry Strict-Transport-Security (off unless turned on).
ALTER TABLE apps ADD COLUMN https_redirect BIGINT NOT NULL DEFAULT 1;
ALTER TABLE apps ADD COLUMN hsts BIGINT NOT NULL DEFAULT 0;
