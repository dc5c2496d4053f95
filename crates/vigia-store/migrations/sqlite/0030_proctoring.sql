-- Exam proctoring (media pipeline): exams, their participants with a reference face embedding,
-- and the captures analysed against it. A capture's object key is unique: the same file
-- arriving twice (a retried POST, a storage scan on two nodes) is recorded and analysed once.

CREATE TABLE exams (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL,
    title TEXT NOT NULL,
    category_id INTEGER NOT NULL REFERENCES categories (id) ON DELETE RESTRICT,
    department_id INTEGER REFERENCES departments (id) ON DELETE RESTRICT,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    threshold REAL NOT NULL,
    captures_per_minute INTEGER NOT NULL,
    alerts_before_final INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    CONSTRAINT exams_code_key UNIQUE (code)
);

CREATE TABLE exam_participants (
    id INTEGER PRIMARY KEY,
    exam_id INTEGER NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    name TEXT NOT NULL,
    reference_key TEXT,
    -- JSON array of 128 numbers
    reference_embedding TEXT,
    reference_faces TEXT,
    enrolled_at INTEGER,
    consecutive_alerts INTEGER NOT NULL DEFAULT 0,
    last_status TEXT,
    incident_id INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    CONSTRAINT exam_participants_external_key UNIQUE (exam_id, external_id)
);

CREATE TABLE exam_captures (
    id INTEGER PRIMARY KEY,
    exam_id INTEGER NOT NULL REFERENCES exams (id) ON DELETE CASCADE,
    participant_id INTEGER REFERENCES exam_participants (id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    file_name TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('api', 'storage')),
    status TEXT NOT NULL CHECK (status IN ('queued', 'OK', 'ALERT', 'ALERT_FINAL')),
    reason TEXT,
    distance REAL,
    result TEXT,
    result_key TEXT,
    incident_id INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    review TEXT CHECK (review IN ('false_positive', 'confirmed')),
    reviewed_by TEXT,
    reviewed_at INTEGER,
    received_at INTEGER NOT NULL,
    analyzed_at INTEGER,
    CONSTRAINT exam_captures_object_key UNIQUE (object_key)
);
CREATE INDEX exam_captures_exam_idx ON exam_captures (exam_id, id);
CREATE INDEX exam_captures_participant_idx ON exam_captures (participant_id, id);
