-- Proctoring events on the event log: one row per analysed capture (`media.analyzed`) and per
-- review (`proctoring.reviewed`). Their ids come from the sequence of `incident_events`, so
-- the two tables read as one log with one monotonic cursor: real-time clients resume from the
-- same `last_event_id` whichever kind of event they saw last. Every insert notifies the event
-- readers of all nodes, as incident events do (migration 0005).

CREATE TABLE exam_events (
    id BIGINT PRIMARY KEY DEFAULT nextval(pg_get_serial_sequence('incident_events', 'id')::regclass),
    exam_id BIGINT NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
    capture_id BIGINT REFERENCES exam_captures (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX exam_events_exam_idx ON exam_events (exam_id, id);

CREATE TRIGGER exam_events_notify
    AFTER INSERT ON exam_events
    FOR EACH ROW EXECUTE FUNCTION incident_events_notify();
