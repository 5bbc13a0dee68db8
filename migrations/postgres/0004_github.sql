-- GitHub auto-deploy: an app linked to a repository and branch, the webhook secret that
-- signs its deliveries, an optional token (private repositories, commit statuses), and every
-- delivery with what came of it.
CREATE TABLE github_links (
    app_id      BIGINT  NOT NULL PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    repository  TEXT    NOT NULL,
    branch      TEXT    NOT NULL,
    -- The HMAC key GitHub signs with: paas must hold it to check signatures.
    secret      TEXT    NOT NULL,
    -- Never shown again after the link is made, never logged.
    token       TEXT,
    created_by  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE TABLE github_deliveries (
    id           BIGSERIAL PRIMARY KEY,
    -- X-GitHub-Delivery: unique, so a redelivery is recognised and deploys nothing.
    delivery     TEXT    NOT NULL UNIQUE,
    app_id       BIGINT  REFERENCES apps(id) ON DELETE CASCADE,
    event        TEXT    NOT NULL,
    commit_sha   TEXT,
    outcome      TEXT    NOT NULL,
    created_at   TEXT    NOT NULL
);
CREATE INDEX github_deliveries_app ON github_deliveries (app_id, id);
