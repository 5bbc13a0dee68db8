-- Pipelines: apps in stages (development → staging → production). A promotion releases one
-- stage's current image on the next stage's apps, with their own config, without a rebuild.
CREATE TABLE pipelines (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    -- Review apps for pull requests: JSON (the app whose GitHub link they come from, config
    -- vars to copy, add-ons to create, whether forks' pull requests get one); NULL: none.
    review      TEXT,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- An app is in at most one pipeline, at one stage.
CREATE TABLE pipeline_apps (
    app_id       INTEGER NOT NULL PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    pipeline_id  INTEGER NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    stage        TEXT NOT NULL,
    added_by     TEXT NOT NULL,
    added_at     TEXT NOT NULL
);
CREATE INDEX pipeline_apps_by_pipeline ON pipeline_apps (pipeline_id);

-- Tag deploys: a pushed tag matching this pattern (`*`, `v*`) builds a release that waits
-- for approval; NULL refuses tags as before.
ALTER TABLE apps ADD COLUMN deploy_tags TEXT;
-- The tag a build was made of, and what its paas.toml declares (JSON), applied when its
-- release goes out: at once, or when a waiting release is approved.
ALTER TABLE builds ADD COLUMN git_tag TEXT;
ALTER TABLE builds ADD COLUMN manifest TEXT;
