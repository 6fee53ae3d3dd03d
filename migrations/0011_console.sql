-- The console lists replay jobs of a namespace newest first (ids are
-- UUIDv7). Nothing is added to the publish path's tables: indexes on
-- waitpoints by namespace and by parent run cost publish-and-wait 5 % (A/B,
-- BENCHMARKS.md section 9), so a run's waitpoints are found through its
-- journal and the waitpoints page walks waitpoints newest first.
CREATE INDEX replays_by_ns ON replays (namespace, id);
