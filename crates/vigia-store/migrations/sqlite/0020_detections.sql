-- Devices, monitored subjects, monitoring sessions, detections (with per-minute rollups kept
-- as they are written), alert rules, alerts with their history, and silences.
-- Confidences are millionths (INTEGER) so sums and averages are exact.

CREATE TABLE subjects (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    department_id INTEGER NOT NULL REFERENCES departments (id) ON DELETE RESTRICT,
    zone_id INTEGER REFERENCES zones (id) ON DELETE RESTRICT,
    consent_at INTEGER,
    consent_by TEXT,
    refused INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT subjects_code_key UNIQUE (code)
);
CREATE INDEX subjects_department_idx ON subjects (department_id, id);

CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    zone_id INTEGER REFERENCES zones (id) ON DELETE RESTRICT,
    location TEXT,
    api_key_id INTEGER NOT NULL REFERENCES api_keys (id),
    active INTEGER NOT NULL DEFAULT 1,
    firmware TEXT,
    last_seen_at INTEGER,
    refused INTEGER NOT NULL DEFAULT 0,
    invalid INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    CONSTRAINT devices_code_key UNIQUE (code),
    CONSTRAINT devices_api_key_key UNIQUE (api_key_id)
);

CREATE TABLE monitoring_sessions (
    id INTEGER PRIMARY KEY,
    subject_id INTEGER NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL REFERENCES devices (id),
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    started_by TEXT NOT NULL
);
CREATE INDEX monitoring_sessions_subject_idx ON monitoring_sessions (subject_id, device_id, started_at);

-- No foreign keys: the hot table of the product. Its writers check device and subject first;
-- erasing a subject deletes its rows explicitly.
CREATE TABLE detections (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    subject_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    confidence INTEGER NOT NULL,
    at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    in_session INTEGER NOT NULL,
    extra TEXT,
    CONSTRAINT detections_client_key UNIQUE (device_id, client_id)
);
CREATE INDEX detections_subject_idx ON detections (subject_id, at);
CREATE INDEX detections_at_idx ON detections (at);

-- One row per minute, subject, department, label and device. subject_id 0 is the anonymous
-- aggregate that an erased subject's rows are folded into.
CREATE TABLE detection_rollups (
    minute INTEGER NOT NULL,
    subject_id INTEGER NOT NULL,
    department_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    count INTEGER NOT NULL,
    confidence_sum INTEGER NOT NULL,
    PRIMARY KEY (minute, subject_id, department_id, label, device_id)
) WITHOUT ROWID;
CREATE INDEX detection_rollups_department_idx ON detection_rollups (department_id, minute);
CREATE INDEX detection_rollups_subject_idx ON detection_rollups (subject_id, minute);

CREATE TABLE alert_rules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    min_count INTEGER NOT NULL,
    window_secs INTEGER NOT NULL,
    confidence_floor INTEGER NOT NULL,
    cooldown_secs INTEGER NOT NULL,
    notify_departments TEXT NOT NULL DEFAULT '',
    open_incident INTEGER NOT NULL DEFAULT 0,
    incident_category_id INTEGER REFERENCES categories (id) ON DELETE RESTRICT,
    active INTEGER NOT NULL DEFAULT 1,
    deleted_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO alert_rules (name, labels, min_count, window_secs, confidence_floor, cooldown_secs, created_at, updated_at)
VALUES ('Estrés prolongado', 'stress sad', 10, 900, 500000, 3600, 0, 0);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    rule_id INTEGER NOT NULL REFERENCES alert_rules (id),
    subject_id INTEGER NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    department_id INTEGER NOT NULL,
    device_id INTEGER NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'acknowledged', 'resolved')),
    detection_count INTEGER NOT NULL,
    confidence_avg INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    raised_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    resolved_at INTEGER,
    resolved_by TEXT,
    incident_id INTEGER REFERENCES incidents (id) ON DELETE SET NULL
);
CREATE INDEX alerts_status_idx ON alerts (status, id);
CREATE INDEX alerts_department_idx ON alerts (department_id, id);
CREATE INDEX alerts_subject_idx ON alerts (subject_id, rule_id, window_end);

CREATE TABLE alert_history (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at INTEGER NOT NULL,
    notes TEXT
);
CREATE INDEX alert_history_alert_idx ON alert_history (alert_id, id);

ALTER TABLE incidents ADD COLUMN alert_id INTEGER;

CREATE TABLE silences (
    id INTEGER PRIMARY KEY,
    rule_id INTEGER REFERENCES alert_rules (id),
    subject_id INTEGER REFERENCES subjects (id) ON DELETE CASCADE,
    device_id INTEGER REFERENCES devices (id),
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    suppressed INTEGER NOT NULL DEFAULT 0,
    CHECK ((rule_id IS NOT NULL) + (subject_id IS NOT NULL) + (device_id IS NOT NULL) = 1),
    CHECK (ends_at > starts_at)
);
CREATE INDEX silences_ends_idx ON silences (ends_at);
