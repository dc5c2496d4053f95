-- Per-day summaries for GET /stats: the counts of whole UTC days come from these small tables
-- instead of walking every incident of the range. A trigger keeps them in the same transaction
-- as the change to `incidents`, so they are never behind; a cell whose count falls to 0 stays.
-- `department_key` and `zone_key` are the id, or 0 for none (unrouted, no zone).

-- Incidents by creation day, department, category, current status and urgency.
CREATE TABLE stats_created_daily (
    day BIGINT NOT NULL,
    department_key BIGINT NOT NULL,
    category_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    urgency TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (day, department_key, category_id, status, urgency)
);

-- Incidents by creation day, department, category and zone.
CREATE TABLE stats_zone_daily (
    day BIGINT NOT NULL,
    department_key BIGINT NOT NULL,
    category_id BIGINT NOT NULL,
    zone_key BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (day, department_key, category_id, zone_key)
);

-- Incidents by resolution day, department and category (resolved now or later).
CREATE TABLE stats_resolved_daily (
    day BIGINT NOT NULL,
    department_key BIGINT NOT NULL,
    category_id BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (day, department_key, category_id)
);

-- Serialized with every writer of incidents while the tables are filled.
LOCK TABLE incidents IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO stats_created_daily (day, department_key, category_id, status, urgency, n)
SELECT created_at / 86400000, COALESCE(department_id, 0), category_id, status, urgency, COUNT(*)
FROM incidents GROUP BY 1, 2, 3, 4, 5;
INSERT INTO stats_zone_daily (day, department_key, category_id, zone_key, n)
SELECT created_at / 86400000, COALESCE(department_id, 0), category_id, COALESCE(zone_id, 0), COUNT(*)
FROM incidents GROUP BY 1, 2, 3, 4;
INSERT INTO stats_resolved_daily (day, department_key, category_id, n)
SELECT resolved_at / 86400000, COALESCE(department_id, 0), category_id, COUNT(*)
FROM incidents WHERE resolved_at IS NOT NULL GROUP BY 1, 2, 3;

CREATE FUNCTION stats_rollups_apply(r incidents, delta BIGINT) RETURNS void AS $$
BEGIN
    INSERT INTO stats_created_daily AS t (day, department_key, category_id, status, urgency, n)
    VALUES (r.created_at / 86400000, COALESCE(r.department_id, 0), r.category_id, r.status, r.urgency, delta)
    ON CONFLICT (day, department_key, category_id, status, urgency) DO UPDATE SET n = t.n + delta;
    INSERT INTO stats_zone_daily AS t (day, department_key, category_id, zone_key, n)
    VALUES (r.created_at / 86400000, COALESCE(r.department_id, 0), r.category_id, COALESCE(r.zone_id, 0), delta)
    ON CONFLICT (day, department_key, category_id, zone_key) DO UPDATE SET n = t.n + delta;
    IF r.resolved_at IS NOT NULL THEN
        INSERT INTO stats_resolved_daily AS t (day, department_key, category_id, n)
        VALUES (r.resolved_at / 86400000, COALESCE(r.department_id, 0), r.category_id, delta)
        ON CONFLICT (day, department_key, category_id) DO UPDATE SET n = t.n + delta;
    END IF;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION stats_rollups_track() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.created_at = NEW.created_at
       AND OLD.department_id IS NOT DISTINCT FROM NEW.department_id
       AND OLD.category_id = NEW.category_id AND OLD.status = NEW.status
       AND OLD.urgency = NEW.urgency AND OLD.zone_id IS NOT DISTINCT FROM NEW.zone_id
       AND OLD.resolved_at IS NOT DISTINCT FROM NEW.resolved_at THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM stats_rollups_apply(OLD, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM stats_rollups_apply(NEW, 1);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER stats_rollups
    AFTER INSERT OR UPDATE OR DELETE ON incidents
    FOR EACH ROW EXECUTE FUNCTION stats_rollups_track();
