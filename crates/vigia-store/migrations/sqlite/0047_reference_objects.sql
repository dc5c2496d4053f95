-- Reference photos that landed in storage as `reference/{user}.{jpg,jpeg,png}`: one row per
-- object version (S3's ETag, a local file's inode/mtime/size), so a version is checked once
-- however many scans or nodes see it, and a replaced object is checked again. The check's
-- outcome (embedding, or the refusal) is stored with it, once, for every participant with
-- that user id, including participants added later.

CREATE TABLE reference_objects (
    id INTEGER PRIMARY KEY,
    object_key TEXT NOT NULL,
    version TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'accepted', 'refused')),
    refusal TEXT,
    embedding TEXT,
    faces TEXT,
    seen_at INTEGER NOT NULL,
    checked_at INTEGER,
    CONSTRAINT reference_objects_version_key UNIQUE (object_key, version)
);
CREATE INDEX reference_objects_user_idx ON reference_objects (user_id, id);

-- The refusal of the latest reference that came from storage (`code: message`), shown until
-- a valid reference replaces it; the reference already enrolled stays in force meanwhile.
ALTER TABLE exam_participants ADD COLUMN reference_refused TEXT;
-- The storage reference last applied, so an older version checked late never overrides it.
ALTER TABLE exam_participants ADD COLUMN reference_object_id INTEGER;
CREATE INDEX exam_participants_external_idx ON exam_participants (external_id);
