-- The W3C trace context of the publish (`send {event}` span) that created
-- the event: every run's attempts link to it. Empty when not traced.
ALTER TABLE events ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';
