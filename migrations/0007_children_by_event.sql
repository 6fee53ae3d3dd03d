-- A runs waitpoint waits for every run of one event (waitpoints.event_id),
-- so its children are found through runs_by_event and filtered on
-- waitpoint_id. The partial index on waitpoint_id held one entry per child
-- row version: a publish-and-wait child is inserted, claimed and completed,
-- and none of those updates can be HOT, so each wrote a new entry (3 of
-- the ~14 index writes a scatter-gather run costs on Postgres).
DROP INDEX runs_by_waitpoint;
