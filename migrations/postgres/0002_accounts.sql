-- Accounts: passwords and invitations, token expiry, who may touch which app, and the
-- audit log of who changed what.

-- An argon2id PHC string; NULL until the user sets a password (or accepts an invitation).
ALTER TABLE users ADD COLUMN password_hash TEXT;
-- SHA-256 of a pending one-time invitation, and when it lapses.
ALTER TABLE users ADD COLUMN invite_hash TEXT;
ALTER TABLE users ADD COLUMN invite_expires_at TEXT;
-- Failed password sign-ins in a row; at the limit the account is locked until locked_until.
ALTER TABLE users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until TEXT;

ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;

-- Heroku's collaborators: the users besides admins who may see and change an app.
CREATE TABLE app_members (
    app_id      BIGINT  NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    user_id     BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- 'owner' (made the app; manages who has access) or 'member'.
    role        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
CREATE INDEX app_members_user ON app_members (user_id);

-- Apps made before accounts belong to whoever made them.
INSERT INTO app_members (app_id, user_id, role, created_at)
    SELECT apps.id, users.id, 'owner', apps.created_at
    FROM apps JOIN users ON users.email = apps.created_by;

-- Every change, by whom, from where and through which front end. Apps are named and
-- numbered, not referenced: the record outlives the app.
CREATE TABLE audit_events (
    id          BIGSERIAL PRIMARY KEY,
    created_at  TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    address     TEXT,
    via         TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    app_id      BIGINT,
    app         TEXT,
    detail      TEXT    NOT NULL
);
CREATE INDEX audit_events_app ON audit_events (app_id, id);
