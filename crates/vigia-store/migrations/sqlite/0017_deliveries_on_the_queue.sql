-- One queue: every attempt of an e-mail or webhook delivery is a `notification.deliver` job.
-- The deliveries table is the delivery log only (no claim of its own), and nothing follows the
-- event outbox but the job relay. Deliveries still waiting at the upgrade get the job of their
-- next attempt, so none is lost.
INSERT INTO jobs (kind, payload, state, max_attempts, run_at, created_at, updated_at)
SELECT 'notification.deliver',
       json_object('type', 'notification.deliver', 'delivery_id', id, 'attempt', attempts + 1),
       'queued', NULL, COALESCE(next_attempt_at, updated_at), updated_at, updated_at
FROM notification_deliveries
WHERE status IN ('pending', 'failed') AND channel IN ('email', 'webhook');

ALTER TABLE notification_deliveries DROP COLUMN locked_until;
DROP TABLE notification_cursor;
