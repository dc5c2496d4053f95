-- Per-day summaries for GET /stats: the counts of whole UTC days come from these small tables
-- instead of walking every incident of the range. Triggers keep them in the same transaction as
-- the change to `incidents`, so they are never behind; a cell whose count falls to 0 stays.
-- `department_key` and `zone_key` are the id, or 0 for none (unrouted, no zone).

-- Incidents by creation day, department, category, current status and urgency.
CREATE TABLE stats_created_daily (
    day INTEGER NOT NULL,
    department_key INTEGER NOT NULL,
    category_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    urgency TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (day, department_key, category_id, status, urgency)
) WITHOUT ROWID;

-- Incidents by creation day, department, category and zone.
CREATE TABLE stats_zone_daily (
    day INTEGER NOT NULL,
    department_key INTEGER NOT NULL,
    category_id INTEGER NOT NULL,
    zone_key INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (day, department_key, category_id, zone_key)
) WITHOUT ROWID;

-- Incidents by resolution day, department and category (resolved now or later).
CREATE TABLE stats_resolved_daily (
    day INTEGER NOT NULL,
    department_key INTEGER NOT NULL,
    category_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (day, department_key, category_id)
) WITHOUT ROWID;

INSERT INTO stats_created_daily (day, department_key, category_id, status, urgency, n)
SELECT created_at / 86400000, COALESCE(department_id, 0), category_id, status, urgency, COUNT(*)
FROM incidents GROUP BY 1, 2, 3, 4, 5;
INSERT INTO stats_zone_daily (day, department_key, category_id, zone_key, n)
SELECT created_at / 86400000, COALESCE(department_id, 0), category_id, COALESCE(zone_id, 0), COUNT(*)
FROM incidents GROUP BY 1, 2, 3, 4;
INSERT INTO stats_resolved_daily (day, department_key, category_id, n)
SELECT resolved_at / 86400000, COALESCE(department_id, 0), category_id, COUNT(*)
FROM incidents WHERE resolved_at IS NOT NULL GROUP BY 1, 2, 3;

CREATE TRIGGER stats_incident_insert AFTER INSERT ON incidents
BEGIN
    INSERT INTO stats_created_daily (day, department_key, category_id, status, urgency, n)
    VALUES (NEW.created_at / 86400000, COALESCE(NEW.department_id, 0), NEW.category_id, NEW.status, NEW.urgency, 1)
    ON CONFLICT (day, department_key, category_id, status, urgency) DO UPDATE SET n = n + 1;
    INSERT INTO stats_zone_daily (day, department_key, category_id, zone_key, n)
    VALUES (NEW.created_at / 86400000, COALESCE(NEW.department_id, 0), NEW.category_id, COALESCE(NEW.zone_id, 0), 1)
    ON CONFLICT (day, department_key, category_id, zone_key) DO UPDATE SET n = n + 1;
    INSERT INTO stats_resolved_daily (day, department_key, category_id, n)
    SELECT NEW.resolved_at / 86400000, COALESCE(NEW.department_id, 0), NEW.category_id, 1
    WHERE NEW.resolved_at IS NOT NULL
    ON CONFLICT (day, department_key, category_id) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER stats_incident_delete AFTER DELETE ON incidents
BEGIN
    UPDATE stats_created_daily SET n = n - 1
    WHERE day = OLD.created_at / 86400000 AND department_key = COALESCE(OLD.department_id, 0)
      AND category_id = OLD.category_id AND status = OLD.status AND urgency = OLD.urgency;
    UPDATE stats_zone_daily SET n = n - 1
    WHERE day = OLD.created_at / 86400000 AND department_key = COALESCE(OLD.department_id, 0)
      AND category_id = OLD.category_id AND zone_key = COALESCE(OLD.zone_id, 0);
    UPDATE stats_resolved_daily SET n = n - 1
    WHERE OLD.resolved_at IS NOT NULL AND day = OLD.resolved_at / 86400000
      AND department_key = COALESCE(OLD.department_id, 0) AND category_id = OLD.category_id;
END;

CREATE TRIGGER stats_incident_update_created
AFTER UPDATE OF created_at, department_id, category_id, status, urgency ON incidents
WHEN OLD.created_at IS NOT NEW.created_at OR OLD.department_id IS NOT NEW.department_id
  OR OLD.category_id IS NOT NEW.category_id OR OLD.status IS NOT NEW.status
  OR OLD.urgency IS NOT NEW.urgency
BEGIN
    UPDATE stats_created_daily SET n = n - 1
    WHERE day = OLD.created_at / 86400000 AND department_key = COALESCE(OLD.department_id, 0)
      AND category_id = OLD.category_id AND status = OLD.status AND urgency = OLD.urgency;
    INSERT INTO stats_created_daily (day, department_key, category_id, status, urgency, n)
    VALUES (NEW.created_at / 86400000, COALESCE(NEW.department_id, 0), NEW.category_id, NEW.status, NEW.urgency, 1)
    ON CONFLICT (day, department_key, category_id, status, urgency) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER stats_incident_update_zone
AFTER UPDATE OF created_at, department_id, category_id, zone_id ON incidents
WHEN OLD.created_at IS NOT NEW.created_at OR OLD.department_id IS NOT NEW.department_id
  OR OLD.category_id IS NOT NEW.category_id OR OLD.zone_id IS NOT NEW.zone_id
BEGIN
    UPDATE stats_zone_daily SET n = n - 1
    WHERE day = OLD.created_at / 86400000 AND department_key = COALESCE(OLD.department_id, 0)
      AND category_id = OLD.category_id AND zone_key = COALESCE(OLD.zone_id, 0);
    INSERT INTO stats_zone_daily (day, department_key, category_id, zone_key, n)
    VALUES (NEW.created_at / 86400000, COALESCE(NEW.department_id, 0), NEW.category_id, COALESCE(NEW.zone_id, 0), 1)
    ON CONFLICT (day, department_key, category_id, zone_key) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER stats_incident_update_resolved
AFTER UPDATE OF resolved_at, department_id, category_id ON incidents
WHEN OLD.resolved_at IS NOT NEW.resolved_at OR OLD.department_id IS NOT NEW.department_id
  OR OLD.category_id IS NOT NEW.category_id
BEGIN
    UPDATE stats_resolved_daily SET n = n - 1
    WHERE OLD.resolved_at IS NOT NULL AND day = OLD.resolved_at / 86400000
      AND department_key = COALESCE(OLD.department_id, 0) AND category_id = OLD.category_id;
    INSERT INTO stats_resolved_daily (day, department_key, category_id, n)
    SELECT NEW.resolved_at / 86400000, COALESCE(NEW.department_id, 0), NEW.category_id, 1
    WHERE NEW.resolved_at IS NOT NULL
    ON CONFLICT (day, department_key, category_id) DO UPDATE SET n = n + 1;
END;
