-- Fanout schema, portable: the same SQL runs on SQLite and PostgreSQL.
-- Ids are UUIDv7 text made by the engine, JSON is TEXT, times are epoch
-- milliseconds (BIGINT), booleans are 0/1. Postgres-only tuning lives in
-- migrations/postgres/.

CREATE TABLE event_definitions (
    namespace        TEXT   NOT NULL,
    name             TEXT   NOT NULL,
    version          BIGINT NOT NULL,
    schema_json      TEXT   NOT NULL,
    schema_canonical TEXT   NOT NULL,
    description      TEXT   NOT NULL DEFAULT '',
    created_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (namespace, name, version)
);

CREATE TABLE subscriptions (
    namespace          TEXT   NOT NULL,
    task_id            TEXT   NOT NULL,
    event              TEXT   NOT NULL,
    filter_json        TEXT   NOT NULL DEFAULT '',
    consumer_group     TEXT   NOT NULL DEFAULT '',
    max_attempts       BIGINT NOT NULL,
    initial_backoff_ms BIGINT NOT NULL,
    max_backoff_ms     BIGINT NOT NULL,
    backoff_multiplier DOUBLE PRECISION NOT NULL,
    lease_ms           BIGINT NOT NULL,
    created_at_ms      BIGINT NOT NULL,
    updated_at_ms      BIGINT NOT NULL,
    PRIMARY KEY (namespace, task_id)
);

-- Events are the source of truth and the archive outbox (archived = 0).
CREATE TABLE events (
    id               TEXT   PRIMARY KEY,
    namespace        TEXT   NOT NULL,
    name             TEXT   NOT NULL,
    version          BIGINT NOT NULL,
    payload          TEXT   NOT NULL,
    ordering_key     TEXT   NOT NULL DEFAULT '',
    idempotency_key  TEXT   NOT NULL DEFAULT '',
    tags             TEXT   NOT NULL DEFAULT '[]',
    fan_out_count    BIGINT NOT NULL,
    publisher_run_id TEXT   NOT NULL DEFAULT '',
    published_at_ms  BIGINT NOT NULL,
    archived         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_outbox ON events (id) WHERE archived = 0;
CREATE INDEX events_by_name ON events (namespace, name, id);

-- Idempotency keys: the unique key, not a read-then-write, decides.
CREATE TABLE idempotency_keys (
    namespace     TEXT   NOT NULL,
    event         TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    event_id      TEXT   NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (namespace, event, key)
);

CREATE TABLE runs (
    id                  TEXT   PRIMARY KEY,
    namespace           TEXT   NOT NULL,
    event_id            TEXT   NOT NULL,
    event               TEXT   NOT NULL,
    task_id             TEXT   NOT NULL,
    status              TEXT   NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    max_attempts        BIGINT NOT NULL,
    initial_backoff_ms  BIGINT NOT NULL,
    max_backoff_ms      BIGINT NOT NULL,
    backoff_multiplier  DOUBLE PRECISION NOT NULL,
    lease_ms            BIGINT NOT NULL,
    available_at_ms     BIGINT NOT NULL,
    lease_expires_at_ms BIGINT NOT NULL DEFAULT 0,
    started_at_ms       BIGINT NOT NULL DEFAULT 0,
    worker_id           TEXT   NOT NULL DEFAULT '',
    ordering_key        TEXT   NOT NULL DEFAULT '',
    consumer_group      TEXT   NOT NULL DEFAULT '',
    output_json         TEXT   NOT NULL DEFAULT '',
    last_error          TEXT   NOT NULL DEFAULT '',
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL
);
-- Only claimable runs are in the claim index; terminal runs never touch it.
CREATE INDEX runs_claim ON runs (namespace, task_id, available_at_ms) WHERE status IN ('queued', 'retrying');
CREATE INDEX runs_lease ON runs (lease_expires_at_ms) WHERE status = 'running';
CREATE INDEX runs_by_event ON runs (event_id);
CREATE INDEX runs_by_ns ON runs (namespace, id);

CREATE TABLE run_attempts (
    run_id         TEXT   NOT NULL,
    attempt        BIGINT NOT NULL,
    worker_id      TEXT   NOT NULL,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT NOT NULL,
    ok             BIGINT NOT NULL,
    output_json    TEXT   NOT NULL DEFAULT '',
    error          TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, attempt)
);
