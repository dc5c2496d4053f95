-- Video processing on the real-time stream: the hub reads unfinished and recently changed
-- videos after each wake-up (`transcodes::live`). On SQLite the writer's commit hook wakes it
-- when these tables change (see `db::watch_event_commits`).
CREATE INDEX media_transcodes_live_idx ON media_transcodes (status, updated_at);
CREATE INDEX competition_entries_live_idx ON competition_entries (status, updated_at);
