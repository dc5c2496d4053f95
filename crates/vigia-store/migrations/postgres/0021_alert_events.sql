-- Alert events (raised, acknowledged, resolved) join the event log, so the real-time hub, the
-- job relay and the notification planner carry them exactly as they carry incident events:
-- an event is about an incident or about an alert, never both. The commit-ordered id
-- (migration 0004) and the NOTIFY (0005) apply to them unchanged.
ALTER TABLE incident_events ALTER COLUMN incident_id DROP NOT NULL;
ALTER TABLE incident_events ADD COLUMN alert_id BIGINT REFERENCES alerts (id) ON DELETE CASCADE;
ALTER TABLE incident_events ADD CONSTRAINT incident_events_about_check
    CHECK ((incident_id IS NULL) <> (alert_id IS NULL));
CREATE INDEX incident_events_alert_idx ON incident_events (alert_id, id);
