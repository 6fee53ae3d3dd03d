-- Delivery semantics: per-event options (DLQ, rate limit), DLQ state and
-- attempt budget on runs, and the index that keeps ordering-key checks cheap.

CREATE TABLE event_options (
    namespace     TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    dlq           BIGINT NOT NULL DEFAULT 1,
    rl_limit      BIGINT NOT NULL DEFAULT 0,
    rl_window_ms  BIGINT NOT NULL DEFAULT 0,
    rl_key        TEXT   NOT NULL DEFAULT '',
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- 0: dead without DLQ (or not dead), 1: in the DLQ, 2: discarded from it.
-- dlq_enabled is the event's setting when the run was created.
ALTER TABLE runs ADD COLUMN dlq_enabled BIGINT NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN dlq BIGINT NOT NULL DEFAULT 0;
-- The task's max_attempts, kept so a DLQ retry gets a fresh budget.
ALTER TABLE runs ADD COLUMN attempt_budget BIGINT NOT NULL DEFAULT 0;

CREATE INDEX runs_dlq ON runs (namespace, id) WHERE dlq = 1;
-- "Is an earlier run of this key still open?" — only open keyed runs.
CREATE INDEX runs_ordering ON runs (namespace, task_id, ordering_key, id)
    WHERE ordering_key <> '' AND status IN ('queued', 'running', 'retrying');
