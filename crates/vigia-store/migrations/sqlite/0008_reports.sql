-- Reports: every generated report (global, per incident, custom) with its period, the object
-- keys of its files and a JSON summary. A global report is identified by the minute its period
-- ends (its object key is `reports/global/report_YYYY-MM-DD_HH-MM.*`), an incident report by
-- its incident: running either again replaces the row instead of adding one.

CREATE TABLE reports (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('global', 'incident', 'custom')),
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
CREATE UNIQUE INDEX reports_global_end_key ON reports (period_end) WHERE kind = 'global';
CREATE UNIQUE INDEX reports_incident_key ON reports (incident_id) WHERE kind = 'incident';
CREATE INDEX reports_kind_idx ON reports (kind, id);
CREATE INDEX reports_department_idx ON reports (department_id, id);

-- The global report's mean times and SLA breaches: one pass over the creation-time range,
-- index only (the counts by dimension use the statistics indexes of 0003).
CREATE INDEX incidents_report_idx ON incidents (created_at, acknowledged_at, acknowledge_due_at,
    resolved_at, sla_started_at, sla_resolve_secs, sla_paused_total_ms, sla_paused_since);
