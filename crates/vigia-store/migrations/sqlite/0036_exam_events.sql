-- Proctoring events on the event log: one row per analysed capture (`media.analyzed`) and per
-- review (`proctoring.reviewed`). Their ids come from the same sequence as `incident_events`
-- (the store bumps `sqlite_sequence` for `incident_events` and inserts the id it got), so the
-- two tables read as one log with one monotonic cursor: real-time clients resume from the same
-- `last_event_id` whichever kind of event they saw last.

CREATE TABLE exam_events (
    id INTEGER PRIMARY KEY,
    exam_id INTEGER NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
    capture_id INTEGER REFERENCES exam_captures (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX exam_events_exam_idx ON exam_events (exam_id, id);

-- The shared sequence needs its row before the first incident event exists.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'incident_events', COALESCE((SELECT MAX(id) FROM incident_events), 0)
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'incident_events');
