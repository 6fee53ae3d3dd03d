-- The operator console's listings walk these newest first (ids are
-- UUIDv7): waitpoints of a namespace and of a parent run, replay jobs of a
-- namespace. (Events are listed from the archive, or by name through
-- events_by_name; no index is added to the publish path's tables.)
CREATE INDEX waitpoints_by_ns ON waitpoints (namespace, id);
CREATE INDEX waitpoints_by_parent ON waitpoints (parent_run_id) WHERE parent_run_id <> '';
CREATE INDEX replays_by_ns ON replays (namespace, id);
