-- Replay: durable server-side jobs that re-send archived events through
-- today's subscriptions, resuming from their cursor after a restart.

CREATE TABLE replays (
    id                    TEXT   PRIMARY KEY,
    namespace             TEXT   NOT NULL,
    event_pattern         TEXT   NOT NULL,
    from_ms               BIGINT NOT NULL,
    to_ms                 BIGINT NOT NULL,
    -- JSON array of task ids ("[]" = every subscriber).
    tasks_json            TEXT   NOT NULL DEFAULT '[]',
    filter_json           TEXT   NOT NULL DEFAULT '',
    dry_run               BIGINT NOT NULL DEFAULT 0,
    rate_per_sec          DOUBLE PRECISION NOT NULL DEFAULT 0,
    skip_already_replayed BIGINT NOT NULL DEFAULT 0,
    -- running | completed | cancelled | failed
    status                TEXT   NOT NULL,
    cursor_ms             BIGINT NOT NULL DEFAULT 0,
    cursor_id             TEXT   NOT NULL DEFAULT '',
    events_total          BIGINT NOT NULL DEFAULT 0,
    events_scanned        BIGINT NOT NULL DEFAULT 0,
    events_replayed       BIGINT NOT NULL DEFAULT 0,
    runs_created          BIGINT NOT NULL DEFAULT 0,
    by_task_json          TEXT   NOT NULL DEFAULT '{}',
    error                 TEXT   NOT NULL DEFAULT '',
    -- Which engine works on it, until when (replicas share the jobs).
    owner                 TEXT   NOT NULL DEFAULT '',
    lease_until_ms        BIGINT NOT NULL DEFAULT 0,
    created_at_ms         BIGINT NOT NULL,
    updated_at_ms         BIGINT NOT NULL,
    finished_at_ms        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX replays_running ON replays (lease_until_ms) WHERE status = 'running';

ALTER TABLE runs ADD COLUMN replay_of TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_replay_of ON runs (replay_of, task_id) WHERE replay_of <> '';
ALTER TABLE events ADD COLUMN replay_of TEXT NOT NULL DEFAULT '';
