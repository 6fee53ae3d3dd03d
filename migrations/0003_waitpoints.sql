-- Waitpoints: durable "wait for X" records. Kinds: runs (scatter-gather),
-- time (sleep), token (completed from outside). A run suspended on one is
-- in status 'waiting' and is re-queued in the same transaction that
-- completes the waitpoint.

CREATE TABLE waitpoints (
    id              TEXT   PRIMARY KEY,
    namespace       TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    -- waiting | completed | timed_out
    status          TEXT   NOT NULL,
    -- Runs not yet final (kind = runs).
    pending         BIGINT NOT NULL DEFAULT 0,
    total           BIGINT NOT NULL DEFAULT 0,
    event_id        TEXT   NOT NULL DEFAULT '',
    -- The run suspended on this waitpoint, if any.
    parent_run_id   TEXT   NOT NULL DEFAULT '',
    -- Deadline (runs/token) or wake-up time (time); 0 = none.
    timeout_at_ms   BIGINT NOT NULL DEFAULT 0,
    -- Token data.
    data_json       TEXT   NOT NULL DEFAULT '',
    created_at_ms   BIGINT NOT NULL,
    completed_at_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX waitpoints_due ON waitpoints (timeout_at_ms) WHERE status = 'waiting' AND timeout_at_ms > 0;
CREATE INDEX waitpoints_by_event ON waitpoints (event_id);

-- Children point at the waitpoint that waits for them.
ALTER TABLE runs ADD COLUMN waitpoint_id TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_by_waitpoint ON runs (waitpoint_id) WHERE waitpoint_id <> '';

-- The journal of a durable run: memoized steps and the waitpoints it
-- suspended on, replayed to the handler when it is re-invoked.
CREATE TABLE run_steps (
    run_id        TEXT   NOT NULL,
    step_key      TEXT   NOT NULL,
    value_json    TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_key)
);
