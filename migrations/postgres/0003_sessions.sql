-- Dashboard sign-ins: a cookie holds the session token, of which only the SHA-256 hash is
-- kept; each session has its own CSRF token for the forms it renders.
CREATE TABLE sessions (
    id            BIGSERIAL PRIMARY KEY,
    token_hash    TEXT    NOT NULL UNIQUE,
    user_id       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token    TEXT    NOT NULL,
    address       TEXT,
    created_at    TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
