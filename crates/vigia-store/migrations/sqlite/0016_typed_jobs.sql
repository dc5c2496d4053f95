-- Typed jobs: the relay enqueues one `event.dispatch` per batch of events (`after`, `through`)
-- and `report.incident` carries a list of routings. Jobs still waiting in the old shapes (one
-- event each, one incident each) are rewritten so none is lost across the upgrade.
UPDATE jobs
SET payload = json_object(
        'type', 'event.dispatch',
        'after', json_extract(payload, '$.event_id') - 1,
        'through', json_extract(payload, '$.event_id'))
WHERE kind = 'event.dispatch'
  AND state IN ('queued', 'running', 'failed')
  AND json_extract(payload, '$.event_id') IS NOT NULL;

UPDATE jobs
SET payload = json_object(
        'type', 'report.incident',
        'items', json_array(json_object(
            'incident_id', json_extract(payload, '$.incident_id'),
            'department_id', COALESCE(
                json_extract(payload, '$.department_id'),
                (SELECT department_id FROM incidents WHERE id = json_extract(jobs.payload, '$.incident_id'))),
            'event_id', 0)))
WHERE kind = 'report.incident'
  AND state IN ('queued', 'running', 'failed')
  AND json_extract(payload, '$.incident_id') IS NOT NULL;

-- A waiting report of an incident that has no department any more has nothing to write.
UPDATE jobs SET state = 'succeeded', finished_at = updated_at, last_error = 'no department to report to'
WHERE kind = 'report.incident'
  AND state IN ('queued', 'running', 'failed')
  AND json_extract(payload, '$.items[0].department_id') IS NULL
  AND json_extract(payload, '$.items[0].incident_id') IS NOT NULL;
