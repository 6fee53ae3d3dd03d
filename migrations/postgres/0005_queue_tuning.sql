-- PostgreSQL only: storage parameters for the hot tables.

-- The runs table is a queue: every row is inserted, updated 2-3 times and
-- then left alone. Leave room on each page so status updates stay HOT (no
-- new index entries for columns outside the indexes), and vacuum it often
-- so dead versions are reclaimed before the claim index degrades.
ALTER TABLE runs SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);
ALTER TABLE events SET (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.05
);
