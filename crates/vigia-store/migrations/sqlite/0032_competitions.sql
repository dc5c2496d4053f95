-- Video competitions: an admin opens one with a submission window and a voting window; each
-- person submits one entry (a video streamed to `uploaded/competitions/{competition}/{entry}/`,
-- transcoded by the `media.transcode` job into `processed/competitions/...`); one vote per
-- person and competition. `results` holds the ranking frozen when voting closed.

CREATE TABLE competitions (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    department_id INTEGER REFERENCES departments (id) ON DELETE SET NULL,
    submissions_open_at INTEGER NOT NULL,
    submissions_close_at INTEGER NOT NULL,
    voting_open_at INTEGER NOT NULL,
    voting_close_at INTEGER NOT NULL,
    results TEXT,
    frozen_at INTEGER,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE competition_entries (
    id INTEGER PRIMARY KEY,
    competition_id INTEGER NOT NULL REFERENCES competitions (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    object_key TEXT NOT NULL,
    original_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '',
    -- hidden from every read until the upload finished
    uploading BOOLEAN NOT NULL DEFAULT TRUE,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
    reason TEXT,
    progress REAL NOT NULL DEFAULT 0,
    info TEXT,
    video_key TEXT,
    poster_key TEXT,
    strip_key TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX competition_entries_one_per_person ON competition_entries (competition_id, user_id);
CREATE INDEX competition_entries_uploading_idx ON competition_entries (created_at) WHERE uploading;

CREATE TABLE competition_votes (
    competition_id INTEGER NOT NULL REFERENCES competitions (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    entry_id INTEGER NOT NULL REFERENCES competition_entries (id) ON DELETE CASCADE,
    voted_at INTEGER NOT NULL,
    PRIMARY KEY (competition_id, user_id)
);
CREATE INDEX competition_votes_entry_idx ON competition_votes (entry_id, voted_at);
