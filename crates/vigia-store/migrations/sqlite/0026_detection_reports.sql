-- Detection window reports (issue 19): the `reports` table also records kind `detections`,
-- one per period end like the global report (`reports/detections/detections_YYYY-MM-DD_HH-MM.*`).
-- SQLite cannot change a CHECK constraint: the table is rebuilt with the same rows, columns and
-- indexes (no other table references it).

CREATE TABLE reports_rebuilt (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('global', 'incident', 'custom', 'detections')),
    period_start INTEGER,
    period_end INTEGER,
    incident_id INTEGER REFERENCES incidents (id) ON DELETE CASCADE,
    department_id INTEGER REFERENCES departments (id) ON DELETE SET NULL,
    -- JSON object: format (`json`, `csv`, `xlsx`) → object key
    objects TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO reports_rebuilt (id, kind, period_start, period_end, incident_id, department_id, objects,
    summary, created_by, created_at, updated_at)
SELECT id, kind, period_start, period_end, incident_id, department_id, objects, summary, created_by,
    created_at, updated_at FROM reports;
DROP TABLE reports;
ALTER TABLE reports_rebuilt RENAME TO reports;
CREATE UNIQUE INDEX reports_global_end_key ON reports (period_end) WHERE kind = 'global';
CREATE UNIQUE INDEX reports_incident_department_key ON reports (incident_id, department_id)
    WHERE kind = 'incident';
CREATE UNIQUE INDEX reports_detections_end_key ON reports (period_end) WHERE kind = 'detections';
CREATE INDEX reports_kind_idx ON reports (kind, id);
CREATE INDEX reports_department_idx ON reports (department_id, id);
