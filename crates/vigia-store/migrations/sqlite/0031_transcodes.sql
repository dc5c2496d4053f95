-- Video attachments: one processing row per video, queued in the transaction that makes the
-- attachment visible; `processed/attachments/{incident}/{attachment}/...` once ready.

CREATE TABLE media_transcodes (
    attachment_id INTEGER PRIMARY KEY REFERENCES incident_attachments (id) ON DELETE CASCADE,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
    reason TEXT,
    progress REAL NOT NULL DEFAULT 0,
    info TEXT,
    video_key TEXT,
    poster_key TEXT,
    strip_key TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX media_transcodes_incident_idx ON media_transcodes (incident_id);
