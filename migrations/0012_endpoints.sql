-- HTTP subscribers and the poison policy. A subscription's state replaces
-- the paused flag's meaning (`paused` is still written, = state holds runs):
-- active | paused | tripped | probing | disabled. The breaker settings and
-- the endpoint (JSON: url, timeout, concurrency, rate, secrets) are set by
-- `subscriptions create|update`, never by a worker registering a task.
ALTER TABLE subscriptions ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
ALTER TABLE subscriptions ADD COLUMN breaker_after BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN probe_after_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN endpoint_json TEXT NOT NULL DEFAULT '';
UPDATE subscriptions SET state = 'paused' WHERE paused = 1;
