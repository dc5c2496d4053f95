-- Proctoring events reach webhooks and e-mail (issue 20): the relay and the dispatch planner
-- read `exam_events` as well as `incident_events` (one cursor: both share one id sequence). A
-- delivery about an exam event names it here; `event_id` stays the incident log's key (its
-- foreign key points at `incident_events`). One delivery per exam event, channel and target,
-- as for incident events, so planning twice creates nothing new.
ALTER TABLE notification_deliveries ADD COLUMN exam_event_id INTEGER REFERENCES exam_events (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX notification_deliveries_exam_event_target_key
    ON notification_deliveries (exam_event_id, channel, target);
