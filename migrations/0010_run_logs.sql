-- What handlers logged, per attempt (sent by the SDK worker on a timer and
-- before the result). Bounded per attempt by the engine (limits.rs).
CREATE TABLE run_logs (
    run_id   TEXT   NOT NULL,
    attempt  BIGINT NOT NULL,
    seq      BIGINT NOT NULL,
    at_ms    BIGINT NOT NULL,
    level    TEXT   NOT NULL,
    message  TEXT   NOT NULL,
    fields   TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, attempt, seq)
);
