-- Scheduled jobs: a command run as a one-off of the app's current release on a cron
-- schedule (UTC), with what came of its last run.
CREATE TABLE cron_jobs (
    id                BIGSERIAL PRIMARY KEY,
    app_id            BIGINT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    schedule          TEXT    NOT NULL,
    command           TEXT    NOT NULL,
    created_by        TEXT    NOT NULL,
    created_at        TEXT    NOT NULL,
    -- The scheduled minute of the last run started: a paas restarted within that minute
    -- does not run it again.
    last_minute       TEXT,
    -- 1 while a run is under way: the next one due meanwhile is skipped, not doubled.
    running           INTEGER NOT NULL DEFAULT 0,
    last_started_at   TEXT,
    last_finished_at  TEXT,
    last_exit_code    BIGINT,
    -- Why the last run did not run or finish (not deployed, interrupted, timed out).
    last_error        TEXT,
    runs              BIGINT  NOT NULL DEFAULT 0,
    skipped           BIGINT  NOT NULL DEFAULT 0
);
