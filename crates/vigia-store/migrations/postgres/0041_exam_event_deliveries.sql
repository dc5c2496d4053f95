-- Proctoring events reach webhooks and e-mail (issue 20): the relay and the dispatch planner
-- read `exam_events` as well as `incident_events` (one cursor: both share one id sequence). A
-- delivery about an exam event names it here; `event_id` stays the incident log's key (its
-- foreign key points at `incident_events`). One delivery per exam event, channel and target,
-- as for incident events, so planning twice creates nothing new.
ALTER TABLE notification_deliveries ADD COLUMN exam_event_id BIGINT REFERENCES exam_events (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX notification_deliveries_exam_event_target_key
    ON notification_deliveries (exam_event_id, channel, target);

-- A reader that follows the log by `id > cursor` (the relay, the real-time hub) must never see
-- an exam event's id become visible after a larger one. Incident events draw their id under a
-- transaction-scoped advisory lock (migration 0004); exam events drew theirs with a bare
-- `nextval`, so one committed late could be passed over by the relay for good. They now draw it
-- here, under the same lock, so both tables' ids are handed out in commit order.
CREATE FUNCTION next_event_id() RETURNS BIGINT AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7362019001);
    RETURN nextval(pg_get_serial_sequence('incident_events', 'id'));
END
$$ LANGUAGE plpgsql;
