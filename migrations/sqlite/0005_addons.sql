-- Add-ons: databases and caches paas runs for apps (PostgreSQL, Redis), the apps each is
-- attached to (as DATABASE_URL, REDIS_URL, …), and the backups taken of them.
CREATE TABLE addons (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    -- postgres | redis
    service         TEXT    NOT NULL,
    -- The major version its data was made with: never upgraded in place.
    major           TEXT    NOT NULL,
    image           TEXT    NOT NULL,
    -- The app it was created for; destroying that app destroys nothing of the add-on.
    app_id          INTEGER REFERENCES apps(id) ON DELETE SET NULL,
    username        TEXT,
    -- In the URLs attached apps get; the add-on needs it to be made again.
    password        TEXT    NOT NULL,
    database        TEXT,
    -- A cron expression (UTC) for backups, or none.
    backup_schedule TEXT,
    created_by      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    -- Kept after addons:destroy, so a rollback to a release that used it can say so.
    destroyed_at    TEXT
);
CREATE UNIQUE INDEX addons_live_name ON addons (name) WHERE destroyed_at IS NULL;

CREATE TABLE addon_attachments (
    addon_id    INTEGER NOT NULL REFERENCES addons(id) ON DELETE CASCADE,
    app_id      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    -- DATABASE: the app gets DATABASE_URL.
    name        TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (addon_id, app_id),
    UNIQUE (app_id, name)
);

CREATE TABLE addon_backups (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    addon_id    INTEGER NOT NULL REFERENCES addons(id) ON DELETE CASCADE,
    -- running | succeeded | failed
    status      TEXT    NOT NULL,
    size_bytes  BIGINT,
    error       TEXT,
    -- Where the dump is, once it succeeded.
    file        TEXT,
    created_by  TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    finished_at TEXT
);
CREATE INDEX addon_backups_addon ON addon_backups (addon_id, id);
