-- Per-incident reports: one per incident *and department*, so that a department an incident
-- was routed to keeps its report when the incident is rerouted (0008 kept one per incident).
DROP INDEX reports_incident_key;
CREATE UNIQUE INDEX reports_incident_department_key ON reports (incident_id, department_id)
    WHERE kind = 'incident';

-- Report links: the signed, expiring links to one department's report of one incident that
-- e-mails carry to department contacts (who need no account). The token signs the row's id,
-- incident, department and expiry; the row is what an admin revokes. One per e-mail (event and
-- recipient), so planning an e-mail again reuses its link.
CREATE TABLE report_links (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    department_id INTEGER NOT NULL REFERENCES departments (id) ON DELETE CASCADE,
    event_id INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT
);
CREATE UNIQUE INDEX report_links_event_recipient_key ON report_links (event_id, recipient);
CREATE INDEX report_links_incident_idx ON report_links (incident_id, id);

-- A reporter's /stats counts the public incidents of a range (and their own): read from these
-- partial covering indexes, without visiting the incidents.
CREATE INDEX incidents_public_created_idx ON incidents
    (created_at, status, urgency, category_id, department_id, zone_id) WHERE visibility = 'public';
CREATE INDEX incidents_public_resolved_idx ON incidents (resolved_at, category_id, department_id)
    WHERE visibility = 'public' AND resolved_at IS NOT NULL;
