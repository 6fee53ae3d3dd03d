-- API keys and the audit log. A key is stored as the SHA-256 of its text
-- (`hash`, hex); `id` is its public prefix (`fo_` + 8 characters), shown in
-- listings and used to revoke it. `namespace` '' = every namespace;
-- `scopes` is a comma list (publish, worker, read, admin); `events` a JSON
-- array of name patterns a `publish` key is limited to ('[]' = any).
-- Times are epoch ms; 0 = never.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    namespace TEXT NOT NULL,
    scopes TEXT NOT NULL,
    events TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT NOT NULL,
    last_used_at_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX api_keys_name ON api_keys (name);
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);

-- Every mutation, with who did it: `actor` is the key's name ('' when auth
-- is off), `action` a dotted verb (event.define, dlq.retry, key.revoke, …),
-- `target` what it touched, `detail` a short JSON object.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    namespace TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_ns_at ON audit_log (namespace, at_ms);
