-- The whole control-plane schema: apps and what hangs off them, users and API tokens.
-- Timestamps are RFC 3339 text written by paas; booleans are integers 0/1.

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT    NOT NULL UNIQUE,
    is_admin    BIGINT  NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL
);

CREATE TABLE api_tokens (
    id            BIGSERIAL PRIMARY KEY,
    user_id       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    TEXT    NOT NULL UNIQUE,
    description   TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    last_used_at  TEXT
);

CREATE TABLE apps (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    deploy_branch  TEXT    NOT NULL DEFAULT 'main',
    -- Last release version handed out; bumped inside the transaction that inserts a release.
    release_seq    BIGINT  NOT NULL DEFAULT 0,
    created_by     TEXT    NOT NULL,
    created_at     TEXT    NOT NULL
);

CREATE TABLE config_vars (
    app_id  BIGINT  NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (app_id, key)
);

CREATE TABLE builds (
    id              BIGSERIAL PRIMARY KEY,
    app_id          BIGINT  NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    status          TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    commit_sha      TEXT,
    commit_message  TEXT,
    kind            TEXT,
    image           TEXT,
    image_size      BIGINT,
    process_types   TEXT,
    log             TEXT    NOT NULL DEFAULT '',
    error           TEXT,
    created_by      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    finished_at     TEXT
);

CREATE TABLE releases (
    id             BIGSERIAL PRIMARY KEY,
    app_id         BIGINT  NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    version        BIGINT  NOT NULL,
    build_id       BIGINT  REFERENCES builds(id) ON DELETE SET NULL,
    image          TEXT,
    config         TEXT    NOT NULL,
    process_types  TEXT    NOT NULL DEFAULT '{}',
    description    TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    created_by     TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    UNIQUE (app_id, version)
);

CREATE TABLE formation (
    app_id        BIGINT  NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    process_type  TEXT    NOT NULL,
    quantity      BIGINT  NOT NULL,
    PRIMARY KEY (app_id, process_type)
);

CREATE TABLE domains (
    id          BIGSERIAL PRIMARY KEY,
    app_id      BIGINT  NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    hostname    TEXT    NOT NULL UNIQUE,
    created_at  TEXT    NOT NULL
);
