-- Notifications: department escalation contacts, the reporter's opt-in for status-change
-- e-mails, webhook endpoints, and the delivery log every outbound channel shares
-- (one row per delivery, one row per attempt).

ALTER TABLE departments ADD COLUMN escalation_emails TEXT NOT NULL DEFAULT '[]';
ALTER TABLE users ADD COLUMN notify_status_changes INTEGER NOT NULL DEFAULT 0;

-- Secrets are kept as given (`whsec_...`): they are needed to sign. JSON array of
-- {"secret": "...", "expires_at": ms or null}; every unexpired secret signs each delivery.
CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    event_types TEXT NOT NULL,
    secrets TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    failure_streak INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- target: the e-mail address, the webhook endpoint id, or (upload, written by the reports stage)
-- the destination object key. message_id is the `webhook-id` or
-- the e-mail Message-ID, the same on every attempt. payload is what is sent (rendered at plan
-- time). event_id is NULL for scheduled reports and test events.
CREATE TABLE notification_deliveries (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'webhook', 'upload')),
    target TEXT NOT NULL,
    endpoint_id INTEGER REFERENCES webhook_endpoints (id) ON DELETE SET NULL,
    event_id INTEGER REFERENCES incident_events (id) ON DELETE CASCADE,
    incident_id INTEGER,
    message_type TEXT NOT NULL,
    message_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    locked_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    delivered_at INTEGER,
    CONSTRAINT notification_deliveries_message_id_key UNIQUE (message_id),
    CONSTRAINT notification_deliveries_event_target_key UNIQUE (event_id, channel, target)
);
CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (status, next_attempt_at);
CREATE INDEX notification_deliveries_incident_idx ON notification_deliveries (incident_id, id);
CREATE INDEX notification_deliveries_endpoint_idx ON notification_deliveries (endpoint_id, id);

CREATE TABLE notification_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES notification_deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX notification_attempts_delivery_idx ON notification_attempts (delivery_id, id);

-- The last incident event the notification planner has handled (one row).
CREATE TABLE notification_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
