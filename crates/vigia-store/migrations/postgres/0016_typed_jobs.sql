-- Typed jobs: the relay enqueues one `event.dispatch` per batch of events (`after`, `through`)
-- and `report.incident` carries a list of routings. Jobs still waiting in the old shapes (one
-- event each, one incident each) are rewritten so none is lost across the upgrade.
UPDATE jobs
SET payload = json_build_object(
        'type', 'event.dispatch',
        'after', (payload::json ->> 'event_id')::bigint - 1,
        'through', (payload::json ->> 'event_id')::bigint)::text
WHERE kind = 'event.dispatch'
  AND state IN ('queued', 'running', 'failed')
  AND payload::json ->> 'event_id' IS NOT NULL;

UPDATE jobs
SET payload = json_build_object(
        'type', 'report.incident',
        'items', json_build_array(json_build_object(
            'incident_id', (payload::json ->> 'incident_id')::bigint,
            'department_id', COALESCE(
                (payload::json ->> 'department_id')::bigint,
                (SELECT i.department_id FROM incidents i WHERE i.id = (jobs.payload::json ->> 'incident_id')::bigint)),
            'event_id', 0)))::text
WHERE kind = 'report.incident'
  AND state IN ('queued', 'running', 'failed')
  AND payload::json ->> 'incident_id' IS NOT NULL;

-- A waiting report of an incident that has no department any more has nothing to write.
UPDATE jobs SET state = 'succeeded', finished_at = updated_at, last_error = 'no department to report to'
WHERE kind = 'report.incident'
  AND state IN ('queued', 'running', 'failed')
  AND payload::json -> 'items' -> 0 ->> 'department_id' IS NULL
  AND payload::json -> 'items' -> 0 ->> 'incident_id' IS NOT NULL;
