-- A paused subscription keeps getting runs at publish (nothing is lost),
-- but its sessions claim none until it is resumed.
ALTER TABLE subscriptions ADD COLUMN paused BIGINT NOT NULL DEFAULT 0;
