-- no-transaction
-- Alert events (raised, acknowledged, resolved) join the event log, so the real-time hub, the
-- job relay and the notification planner carry them exactly as they carry incident events:
-- an event is about an incident or about an alert, never both. SQLite cannot drop NOT NULL
-- from a column, so the table is rebuilt (SQLite's documented procedure: foreign keys off
-- around one transaction). Ids and the AUTOINCREMENT high-water
-- mark are kept, so cursors held by clients and by the relay stay valid.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE incident_events_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER REFERENCES incidents (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    at INTEGER NOT NULL,
    internal INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL,
    alert_id INTEGER REFERENCES alerts (id) ON DELETE CASCADE,
    CONSTRAINT incident_events_about_check CHECK ((incident_id IS NULL) <> (alert_id IS NULL))
);
INSERT INTO incident_events_new (id, incident_id, kind, actor, at, internal, data)
    SELECT id, incident_id, kind, actor, at, internal, data FROM incident_events ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'incident_events_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'incident_events_new', seq FROM sqlite_sequence WHERE name = 'incident_events';
DROP TABLE incident_events;
ALTER TABLE incident_events_new RENAME TO incident_events;
CREATE INDEX incident_events_incident_idx ON incident_events (incident_id, id);
CREATE INDEX incident_events_alert_idx ON incident_events (alert_id, id);
COMMIT;
PRAGMA foreign_keys = ON;
