-- Routes by path: requests whose path starts with a prefix go to a process type other than
-- web (daphne's /ws/ beside gunicorn); the longest prefix wins.
CREATE TABLE app_routes (
    app_id        INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    prefix        TEXT    NOT NULL,
    process_type  TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (app_id, prefix)
);
