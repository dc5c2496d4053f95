-- Per-day summary for GET /stats/staff: the workload of whole UTC days comes from this small
-- table instead of walking every incident of the range. Triggers keep it in the same
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
    day INTEGER NOT NULL,
    department_key INTEGER NOT NULL,
    assignee_key INTEGER NOT NULL,
    open INTEGER NOT NULL,
    timed INTEGER NOT NULL,
    acknowledged INTEGER NOT NULL,
    acknowledge_ms INTEGER NOT NULL,
    resolved INTEGER NOT NULL,
    resolve_ms INTEGER NOT NULL,
    PRIMARY KEY (day, department_key, assignee_key)
) WITHOUT ROWID;

INSERT INTO stats_staff_daily
    (day, department_key, assignee_key, open, timed, acknowledged, acknowledge_ms, resolved, resolve_ms)
SELECT created_at / 86400000, COALESCE(department_id, 0), COALESCE(assignee_id, 0),
    SUM(status IN ('new', 'acknowledged', 'in_progress', 'on_hold')),
    SUM((status = 'new' AND acknowledge_due_at IS NOT NULL)
        OR (status IN ('acknowledged', 'in_progress', 'on_hold') AND resolve_due_at IS NOT NULL)),
    COUNT(acknowledged_at), COALESCE(SUM(acknowledged_at - created_at), 0),
    COUNT(resolved_at), COALESCE(SUM(resolved_at - created_at), 0)
FROM incidents GROUP BY 1, 2, 3;

CREATE TRIGGER stats_staff_insert AFTER INSERT ON incidents
BEGIN
    INSERT INTO stats_staff_daily
        (day, department_key, assignee_key, open, timed, acknowledged, acknowledge_ms, resolved, resolve_ms)
    VALUES (NEW.created_at / 86400000, COALESCE(NEW.department_id, 0), COALESCE(NEW.assignee_id, 0),
        NEW.status IN ('new', 'acknowledged', 'in_progress', 'on_hold'),
        (NEW.status = 'new' AND NEW.acknowledge_due_at IS NOT NULL)
            OR (NEW.status IN ('acknowledged', 'in_progress', 'on_hold') AND NEW.resolve_due_at IS NOT NULL),
        NEW.acknowledged_at IS NOT NULL, COALESCE(NEW.acknowledged_at - NEW.created_at, 0),
        NEW.resolved_at IS NOT NULL, COALESCE(NEW.resolved_at - NEW.created_at, 0))
    ON CONFLICT (day, department_key, assignee_key) DO UPDATE SET
        open = open + excluded.open, timed = timed + excluded.timed,
        acknowledged = acknowledged + excluded.acknowledged,
        acknowledge_ms = acknowledge_ms + excluded.acknowledge_ms,
        resolved = resolved + excluded.resolved, resolve_ms = resolve_ms + excluded.resolve_ms;
END;

CREATE TRIGGER stats_staff_delete AFTER DELETE ON incidents
BEGIN
    UPDATE stats_staff_daily SET
        open = open - (OLD.status IN ('new', 'acknowledged', 'in_progress', 'on_hold')),
        timed = timed - ((OLD.status = 'new' AND OLD.acknowledge_due_at IS NOT NULL)
            OR (OLD.status IN ('acknowledged', 'in_progress', 'on_hold') AND OLD.resolve_due_at IS NOT NULL)),
        acknowledged = acknowledged - (OLD.acknowledged_at IS NOT NULL),
        acknowledge_ms = acknowledge_ms - COALESCE(OLD.acknowledged_at - OLD.created_at, 0),
        resolved = resolved - (OLD.resolved_at IS NOT NULL),
        resolve_ms = resolve_ms - COALESCE(OLD.resolved_at - OLD.created_at, 0)
    WHERE day = OLD.created_at / 86400000 AND department_key = COALESCE(OLD.department_id, 0)
      AND assignee_key = COALESCE(OLD.assignee_id, 0);
END;

CREATE TRIGGER stats_staff_update
AFTER UPDATE OF created_at, department_id, assignee_id, status, acknowledged_at, resolved_at,
    acknowledge_due_at, resolve_due_at ON incidents
WHEN OLD.created_at IS NOT NEW.created_at OR OLD.department_id IS NOT NEW.department_id
  OR OLD.assignee_id IS NOT NEW.assignee_id OR OLD.status IS NOT NEW.status
  OR OLD.acknowledged_at IS NOT NEW.acknowledged_at OR OLD.resolved_at IS NOT NEW.resolved_at
  OR (OLD.acknowledge_due_at IS NULL) IS NOT (NEW.acknowledge_due_at IS NULL)
  OR (OLD.resolve_due_at IS NULL) IS NOT (NEW.resolve_due_at IS NULL)
BEGIN
    UPDATE stats_staff_daily SET
        open = open - (OLD.status IN ('new', 'acknowledged', 'in_progress', 'on_hold')),
        timed = timed - ((OLD.status = 'new' AND OLD.acknowledge_due_at IS NOT NULL)
            OR (OLD.status IN ('acknowledged', 'in_progress', 'on_hold') AND OLD.resolve_due_at IS NOT NULL)),
        acknowledged = acknowledged - (OLD.acknowledged_at IS NOT NULL),
        acknowledge_ms = acknowledge_ms - COALESCE(OLD.acknowledged_at - OLD.created_at, 0),
        resolved = resolved - (OLD.resolved_at IS NOT NULL),
        resolve_ms = resolve_ms - COALESCE(OLD.resolved_at - OLD.created_at, 0)
    WHERE day = OLD.created_at / 86400000 AND department_key = COALESCE(OLD.department_id, 0)
      AND assignee_key = COALESCE(OLD.assignee_id, 0);
    INSERT INTO stats_staff_daily
        (day, department_key, assignee_key, open, timed, acknowledged, acknowledge_ms, resolved, resolve_ms)
    VALUES (NEW.created_at / 86400000, COALESCE(NEW.department_id, 0), COALESCE(NEW.assignee_id, 0),
        NEW.status IN ('new', 'acknowledged', 'in_progress', 'on_hold'),
        (NEW.status = 'new' AND NEW.acknowledge_due_at IS NOT NULL)
            OR (NEW.status IN ('acknowledged', 'in_progress', 'on_hold') AND NEW.resolve_due_at IS NOT NULL),
        NEW.acknowledged_at IS NOT NULL, COALESCE(NEW.acknowledged_at - NEW.created_at, 0),
        NEW.resolved_at IS NOT NULL, COALESCE(NEW.resolved_at - NEW.created_at, 0))
    ON CONFLICT (day, department_key, assignee_key) DO UPDATE SET
        open = open + excluded.open, timed = timed + excluded.timed,
        acknowledged = acknowledged + excluded.acknowledged,
        acknowledge_ms = acknowledge_ms + excluded.acknowledge_ms,
        resolved = resolved + excluded.resolved, resolve_ms = resolve_ms + excluded.resolve_ms;
END;

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
