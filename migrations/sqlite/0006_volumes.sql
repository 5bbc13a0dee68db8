-- Persistent volumes: a named Docker volume per app and name, mounted at a path in every
-- process of the app (and its one-off runs), kept across deploys, rollbacks and restarts.
CREATE TABLE app_volumes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    UNIQUE (app_id, name),
    UNIQUE (app_id, path)
);
