-- Per-day summary for GET /stats/staff: the workload of whole UTC days comes from this small
-- table instead of walking every incident of the range. A trigger keeps it in the same
-- transaction as the change to `incidents`; a cell whose counts fall to 0 stays.
--
-- Keyed by creation day, department and assignee (`*_key`: the id, or 0 for none):
--   open            incidents not yet resolved
--   timed           open incidents whose current target is set (acknowledge when new,
--                   resolve when started): overdue = timed - those whose target is still ahead
--   acknowledged,   acknowledged incidents and the sum of their milliseconds from creation
--   acknowledge_ms
--   resolved,       resolved incidents and the sum of their milliseconds from creation
--   resolve_ms
CREATE TABLE stats_staff_daily (
    day BIGINT NOT NULL,
    department_key BIGINT NOT NULL,
    assignee_key BIGINT NOT NULL,
    open BIGINT NOT NULL,
    timed BIGINT NOT NULL,
    acknowledged BIGINT NOT NULL,
    acknowledge_ms BIGINT NOT NULL,
    resolved BIGINT NOT NULL,
    resolve_ms BIGINT NOT NULL,
    PRIMARY KEY (day, department_key, assignee_key)
);

-- Serialized with every writer of incidents while the table is filled.
LOCK TABLE incidents IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO stats_staff_daily
    (day, department_key, assignee_key, open, timed, acknowledged, acknowledge_ms, resolved, resolve_ms)
SELECT created_at / 86400000, COALESCE(department_id, 0), COALESCE(assignee_id, 0),
    COUNT(*) FILTER (WHERE status IN ('new', 'acknowledged', 'in_progress', 'on_hold')),
    COUNT(*) FILTER (WHERE (status = 'new' AND acknowledge_due_at IS NOT NULL)
        OR (status IN ('acknowledged', 'in_progress', 'on_hold') AND resolve_due_at IS NOT NULL)),
    COUNT(acknowledged_at), COALESCE(SUM(acknowledged_at - created_at), 0),
    COUNT(resolved_at), COALESCE(SUM(resolved_at - created_at), 0)
FROM incidents GROUP BY 1, 2, 3;

CREATE FUNCTION stats_staff_apply(r incidents, delta BIGINT) RETURNS void AS $$
BEGIN
    INSERT INTO stats_staff_daily AS t
        (day, department_key, assignee_key, open, timed, acknowledged, acknowledge_ms, resolved, resolve_ms)
    VALUES (r.created_at / 86400000, COALESCE(r.department_id, 0), COALESCE(r.assignee_id, 0),
        delta * (r.status IN ('new', 'acknowledged', 'in_progress', 'on_hold'))::int,
        delta * ((r.status = 'new' AND r.acknowledge_due_at IS NOT NULL)
            OR (r.status IN ('acknowledged', 'in_progress', 'on_hold') AND r.resolve_due_at IS NOT NULL))::int,
        delta * (r.acknowledged_at IS NOT NULL)::int, delta * COALESCE(r.acknowledged_at - r.created_at, 0),
        delta * (r.resolved_at IS NOT NULL)::int, delta * COALESCE(r.resolved_at - r.created_at, 0))
    ON CONFLICT (day, department_key, assignee_key) DO UPDATE SET
        open = t.open + excluded.open, timed = t.timed + excluded.timed,
        acknowledged = t.acknowledged + excluded.acknowledged,
        acknowledge_ms = t.acknowledge_ms + excluded.acknowledge_ms,
        resolved = t.resolved + excluded.resolved, resolve_ms = t.resolve_ms + excluded.resolve_ms;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION stats_staff_track() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.created_at = NEW.created_at
       AND OLD.department_id IS NOT DISTINCT FROM NEW.department_id
       AND OLD.assignee_id IS NOT DISTINCT FROM NEW.assignee_id
       AND OLD.status = NEW.status
       AND OLD.acknowledged_at IS NOT DISTINCT FROM NEW.acknowledged_at
       AND OLD.resolved_at IS NOT DISTINCT FROM NEW.resolved_at
       AND (OLD.acknowledge_due_at IS NULL) = (NEW.acknowledge_due_at IS NULL)
       AND (OLD.resolve_due_at IS NULL) = (NEW.resolve_due_at IS NULL) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM stats_staff_apply(OLD, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM stats_staff_apply(NEW, 1);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER stats_staff
    AFTER INSERT OR UPDATE OR DELETE ON incidents
    FOR EACH ROW EXECUTE FUNCTION stats_staff_track();

-- The workload of partial days is one pass over the creation-time range of the index below,
-- which also serves the global report's mean times and breaches (it replaces 0008's
-- `incidents_report_idx` with a superset). The indexes that served the former per-department
-- and per-assignee scans go, which makes every write to `incidents` cheaper.
CREATE INDEX incidents_created_workload_idx ON incidents (created_at, department_id, assignee_id,
    status, acknowledged_at, acknowledge_due_at, resolved_at, resolve_due_at, sla_started_at,
    sla_resolve_secs, sla_paused_total_ms, sla_paused_since);
DROP INDEX incidents_report_idx;
DROP INDEX incidents_department_stats_idx;
DROP INDEX incidents_department_open_idx;
DROP INDEX incidents_assignee_stats_idx;
DROP INDEX incidents_assignee_open_idx;

-- Open incidents whose current target is still ahead (subtracted from `timed` to count the
-- overdue ones): a range of due times at the end of these small partial indexes, index only.
CREATE INDEX incidents_new_due_idx ON incidents (acknowledge_due_at, department_id, assignee_id,
    created_at, status) WHERE status = 'new';
CREATE INDEX incidents_started_due_idx ON incidents (resolve_due_at, department_id, assignee_id,
    created_at, status) WHERE status IN ('acknowledged', 'in_progress', 'on_hold');
