-- Statistics and rankings: covering indexes, so that every aggregate reads one index range (a
-- dimension's value, then the creation time) and never touches the table. The scope and filter
-- columns (department, category) ride along so scoped and filtered aggregates stay index-only.
-- Four indexes of 0002 are prefixes of wider ones here and are dropped.

DROP INDEX incidents_created_idx;
DROP INDEX incidents_category_idx;
DROP INDEX incidents_zone_idx;
DROP INDEX incidents_assignee_idx;

-- creation time (replaces incidents_created_idx), resolutions per day
CREATE INDEX incidents_created_scope_idx ON incidents (created_at, department_id, category_id);
CREATE INDEX incidents_resolved_scope_idx ON incidents (resolved_at, department_id, category_id)
    WHERE resolved_at IS NOT NULL;
-- counts by status, urgency and day (one pass), by category and department (one pass), by zone
CREATE INDEX incidents_status_stats_idx ON incidents (status, urgency, created_at, department_id, category_id);
CREATE INDEX incidents_category_stats_idx ON incidents (category_id, department_id, created_at);
CREATE INDEX incidents_department_stats_idx ON incidents (department_id, created_at, category_id, acknowledged_at, resolved_at);
CREATE INDEX incidents_zone_stats_idx ON incidents (zone_id, created_at, department_id, category_id);
-- staff workload: open and overdue, mean times, per department and per assignee
CREATE INDEX incidents_department_open_idx ON incidents (department_id, status, created_at, acknowledge_due_at, resolve_due_at);
CREATE INDEX incidents_assignee_stats_idx ON incidents (assignee_id, created_at, department_id, acknowledged_at, resolved_at);
CREATE INDEX incidents_assignee_open_idx ON incidents (assignee_id, status, created_at, department_id, acknowledge_due_at, resolve_due_at);
-- public rankings: the most voted public incidents of a zone or category
CREATE INDEX incidents_public_zone_votes_idx ON incidents (zone_id, votes, id) WHERE visibility = 'public';
CREATE INDEX incidents_public_category_votes_idx ON incidents (category_id, votes, id) WHERE visibility = 'public';
