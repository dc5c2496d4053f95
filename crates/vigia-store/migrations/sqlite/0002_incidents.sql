-- Incidents: the incident core, its append-only event log (the outbox), comments, attachments,
-- votes, SLA policies, idempotency keys; per-department auto-assignment; staff availability.

ALTER TABLE departments ADD COLUMN assignment_strategy TEXT NOT NULL DEFAULT 'manual'
    CHECK (assignment_strategy IN ('manual', 'round_robin', 'least_open'));
ALTER TABLE departments ADD COLUMN last_assigned_user_id INTEGER;
ALTER TABLE users ADD COLUMN away INTEGER NOT NULL DEFAULT 0;

CREATE TABLE sla_policies (
    id INTEGER PRIMARY KEY,
    category_id INTEGER NOT NULL REFERENCES categories (id) ON DELETE CASCADE,
    urgency TEXT NOT NULL CHECK (urgency IN ('low', 'medium', 'high', 'emergency')),
    acknowledge_within_secs INTEGER NOT NULL,
    resolve_within_secs INTEGER NOT NULL,
    raise_urgency_on_breach INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    CONSTRAINT sla_policies_category_urgency_key UNIQUE (category_id, urgency)
);

CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    category_id INTEGER NOT NULL REFERENCES categories (id) ON DELETE RESTRICT,
    department_id INTEGER REFERENCES departments (id) ON DELETE RESTRICT,
    assignee_id INTEGER REFERENCES users (id),
    reporter_id INTEGER REFERENCES users (id),
    reporter_label TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    zone_id INTEGER REFERENCES zones (id) ON DELETE RESTRICT,
    location_text TEXT,
    lat REAL,
    lon REAL,
    urgency TEXT NOT NULL CHECK (urgency IN ('low', 'medium', 'high', 'emergency')),
    status TEXT NOT NULL CHECK (status IN ('new', 'acknowledged', 'in_progress', 'on_hold', 'resolved', 'closed')),
    source TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    votes INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    sla_started_at INTEGER NOT NULL,
    sla_acknowledge_secs INTEGER NOT NULL,
    sla_resolve_secs INTEGER NOT NULL,
    sla_raise_urgency INTEGER NOT NULL,
    sla_paused_since INTEGER,
    sla_paused_total_ms INTEGER NOT NULL DEFAULT 0,
    acknowledge_due_at INTEGER NOT NULL,
    resolve_due_at INTEGER,
    acknowledged_at INTEGER,
    resolved_at INTEGER,
    closed_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX incidents_status_idx ON incidents (status, id);
CREATE INDEX incidents_department_idx ON incidents (department_id, status, id);
CREATE INDEX incidents_assignee_idx ON incidents (assignee_id, status);
CREATE INDEX incidents_reporter_idx ON incidents (reporter_id, id);
CREATE INDEX incidents_category_idx ON incidents (category_id);
CREATE INDEX incidents_zone_idx ON incidents (zone_id);
CREATE INDEX incidents_created_idx ON incidents (created_at);
CREATE INDEX incidents_public_idx ON incidents (visibility, votes);

CREATE TABLE incident_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    at INTEGER NOT NULL,
    internal INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX incident_events_incident_idx ON incident_events (incident_id, id);

CREATE TABLE incident_comments (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    author TEXT NOT NULL,
    author_user_id INTEGER REFERENCES users (id),
    body TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'internal')),
    created_at INTEGER NOT NULL
);
CREATE INDEX incident_comments_incident_idx ON incident_comments (incident_id, id);

CREATE TABLE incident_attachments (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    object_key TEXT NOT NULL,
    original_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    thumbnail_key TEXT,
    uploaded_by TEXT NOT NULL,
    uploaded_by_user_id INTEGER REFERENCES users (id),
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX incident_attachments_incident_idx ON incident_attachments (incident_id, id);

CREATE TABLE incident_votes (
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (incident_id, user_id)
);

CREATE TABLE idempotency_keys (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
